"""Shared fixtures: the embedded PBMC data and one tiny ScDiVa model trained once per session."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
PBMC = REPO / "data" / "pbmc_3chem_symphony.h5ad"
HOLDOUT = "3pv1"  # the chemistry held out of training (query)
REFERENCE_STEPS = 150  # ~10 epochs of the 910 reference cells; about a minute on one CPU thread


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    # the 2 CPU cores are shared with other test processes: one thread avoids oversubscription
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def pbmc() -> ad.AnnData:
    return ad.read_h5ad(PBMC)


@pytest.fixture(scope="session")
def pbmc_split(pbmc):
    is_query = (pbmc.obs["donor"] == HOLDOUT).to_numpy()
    return pbmc[~is_query].copy(), pbmc[is_query].copy()


@pytest.fixture(scope="session")
def trained(pbmc_split):
    """A tiny model trained on two chemistries (masked expression + ELBO + annotation)."""
    from scdiva import ScDiVaModel

    reference, _ = pbmc_split
    model = ScDiVaModel.from_config("tiny", genes=reference.var_names, seed=0)
    history = model.fit(reference, tasks=["masked_expression", "integration", "annotation"], batch_key="donor",
                        label_key="cell_type", max_steps=REFERENCE_STEPS, seed=0, progress_bar=False)
    return model, history


@pytest.fixture()
def small_pbmc(pbmc) -> ad.AnnData:
    """120 cells, 40 from each chemistry (a fast subset)."""
    index = np.concatenate([np.flatnonzero((pbmc.obs["donor"] == d).to_numpy())[:40]
                            for d in sorted(set(pbmc.obs["donor"]))])
    return pbmc[index].copy()
