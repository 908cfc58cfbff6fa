"""Snakemake adapter: concatenate per-seed score files into `*_by_seed.csv` and the summary table."""

import pandas as pd

from scdiva.bench.io import atomic_path
from scdiva.bench.provenance import with_run_id
from scdiva.bench.seed_tables import summarise_seeds

by_seed = pd.concat([pd.read_csv(path) for path in snakemake.input], ignore_index=True)
keys = list(snakemake.params.group_by)
with atomic_path(snakemake.output.by_seed) as tmp:
    by_seed.to_csv(tmp, index=False)
with atomic_path(snakemake.output.summary) as tmp:
    with_run_id(summarise_seeds(by_seed, keys), snakemake.params.run_id).to_csv(tmp, index=False)
