"""Shared fixtures of the paper tests: the embedded PBMCs, preprocessed as the workflow does."""

from pathlib import Path

import anndata as ad
import pytest

DATA = Path(__file__).resolve().parents[2] / "data" / "pbmc_3chem_symphony.h5ad"


@pytest.fixture(scope="session")
def pbmc_preprocessed() -> ad.AnnData:
    from scdiva.bench.core.preprocess import preprocess

    return preprocess(ad.read_h5ad(DATA), dataset="pbmc_3chem", batch_key="donor", label_key="cell_type",
                      coarse_label_key="cell_type_broad", seed=0)
