"""Gene-name conventions shared by the model (scdiva.data.vocab) and the benchmark checks
(scdiva.bench.core.validate); no heavy imports."""

from __future__ import annotations

import re

#: An Ensembl gene id of any species (ENSG..., ENSMUSG...), with an optional version suffix (.17).
ENSEMBL_ID = re.compile(r"^ENS[A-Z]*G\d{6,}(\.\d+)?$")
