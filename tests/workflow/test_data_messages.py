"""Two data cases a new user meets: counts with a few non-integer values (the error names the rounding
option), and a `subsample` larger than the data (all cells kept, logged, and the number actually kept
recorded). Real files: the embedded PBMC data, written and read the way the preprocess job does."""

from __future__ import annotations

import logging
from pathlib import Path

import anndata
import numpy as np
import pytest
import scipy.sparse as sp

from scdiva.bench.core.formats import read_counts
from scdiva.bench.core.preprocess import PreprocessSettings, preprocess
from scdiva.bench.core.validate import DatasetValidationError

PBMC = Path(__file__).resolve().parents[2] / "data" / "pbmc_3chem_symphony.h5ad"
SETTINGS = PreprocessSettings(n_top_genes=500, n_pcs=20)
STRATA = ["donor", "cell_type"]


def _job(path: Path, subsample: int | None, round_counts: bool = False) -> anndata.AnnData:
    """What workflow/scripts/preprocess.py does: read the kept rows, then preprocess them."""
    adata = read_counts(path, dataset="pbmc", subsample=subsample, strata=STRATA, seed=0, round_counts=round_counts)
    return preprocess(adata, dataset="pbmc", batch_key="donor", label_key="cell_type", subsample=subsample,
                      settings=SETTINGS, seed=0)


@pytest.fixture(scope="module")
def estimated_counts(tmp_path_factory) -> Path:
    """The PBMC counts with 3 values of one batch made expected counts (x.5), as in the scIB pancreas."""
    adata = anndata.read_h5ad(PBMC)
    x = sp.csr_matrix(adata.X, dtype=np.float32)
    first = np.flatnonzero((adata.obs["donor"] == "3pv1").to_numpy())[0]
    x.data[x.indptr[first]:x.indptr[first] + 3] += 0.5
    adata.X = x
    path = tmp_path_factory.mktemp("estimated") / "pbmc.h5ad"
    adata.write_h5ad(path)
    return path


def test_non_integer_counts_error_names_the_rounding_option(estimated_counts):
    with pytest.raises(DatasetValidationError) as info:
        _job(estimated_counts, subsample=None)
    message = str(info.value)
    assert "dataset 'pbmc': X has non-integer values (" in message
    assert "(3 of " in message and "stored values checked are not integers)" in message
    assert "set `datasets.pbmc.round_counts: true` to round them (logged per batch)" in message
    # ... and the option it names does what it says
    out = _job(estimated_counts, subsample=None, round_counts=True)
    assert out.n_obs == 1200


def test_subsample_larger_than_the_data_records_the_cells_kept(tmp_path, caplog):
    small = anndata.read_h5ad(PBMC)[::4].copy()  # 300 cells
    path = tmp_path / "small.h5ad"
    small.write_h5ad(path)
    with caplog.at_level(logging.INFO):
        out = _job(path, subsample=5000)
    record = out.uns["preprocess"]
    assert record["subsample"] == 300 and record["subsample_requested"] == 5000
    assert record["cells_in"] == 300
    assert ("dataset 'pbmc': `datasets.pbmc.subsample` is 5000 but the data have 300 cells: all 300 are kept"
            in caplog.text)


def test_subsample_smaller_than_the_data_records_and_logs_it(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        out = _job(PBMC, subsample=400)
    record = out.uns["preprocess"]
    assert record["subsample"] == 400 == record["subsample_requested"] == record["cells_in"]
    assert "dataset 'pbmc': reading the 400 of 1200 cells a subsample keeps (stratified by donor x cell_type" \
        in caplog.text
    assert "but the data have" not in caplog.text
