"""`scdiva.bench.score_embedding`: a user's own embedding scored with the benchmark's scIB table."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scanpy as sc

import scdiva.bench
from scdiva.bench.tasks.integration.metrics import AGGREGATES, METRICS

PBMC = Path(__file__).resolve().parents[2] / "data" / "pbmc_3chem_symphony.h5ad"


@pytest.fixture(scope="module")
def pbmc() -> ad.AnnData:
    adata = ad.read_h5ad(PBMC)
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    sc.pp.pca(adata, n_comps=30, random_state=0)
    rng = np.random.default_rng(0)
    # control 1: noise - no cell-type structure, batches perfectly mixed
    adata.obsm["noise"] = rng.normal(size=(adata.n_obs, 10)).astype(np.float32)
    # control 2: batch only - cells sit at their donor's corner, cell types ignored
    donors = adata.obs["donor"].astype("category").cat.codes.to_numpy()
    adata.obsm["batch_only"] = (np.eye(3)[donors] * 10 + rng.normal(scale=0.1, size=(adata.n_obs, 3))).astype(
        np.float32)
    return adata


def test_bad_keys_are_refused_before_scoring(pbmc: ad.AnnData) -> None:
    with pytest.raises(KeyError, match="'X_mine'"):
        scdiva.bench.score_embedding(pbmc, "X_mine", "donor", "cell_type")
    with pytest.raises(KeyError, match="batch_key column 'batch'"):
        scdiva.bench.score_embedding(pbmc, "X_pca", "batch", "cell_type")
    with pytest.raises(KeyError, match="'X_unint'"):
        scdiva.bench.score_embedding(pbmc, "X_pca", "donor", "cell_type", pre_embedding_key="X_unint")


@pytest.mark.jax
@pytest.mark.slow
def test_pca_keeps_cell_types_and_batch_only_embedding_scores_worst_on_batch(pbmc: ad.AnnData) -> None:
    pca = scdiva.bench.score_embedding(pbmc, "X_pca", "donor", "cell_type")
    assert list(pca.columns) == ["metric", "kind", "value"]
    assert list(pca["metric"]) == [*METRICS, *AGGREGATES]
    assert set(pca.loc[pca.metric.isin(AGGREGATES), "kind"]) == {"aggregate"}
    assert pca["value"].between(0, 1).all(), pca
    noise = scdiva.bench.score_embedding(pbmc, "noise", "donor", "cell_type", pre_embedding_key=None)
    batch_only = scdiva.bench.score_embedding(pbmc, "batch_only", "donor", "cell_type")
    score = {name: frame.set_index("metric")["value"] for name, frame in
             (("pca", pca), ("noise", noise), ("batch_only", batch_only))}
    # the PCA separates PBMC cell types; noise does not
    assert score["pca"]["bio_score"] > score["noise"]["bio_score"] + 0.2
    assert score["pca"]["nmi_kmeans"] > 0.5 > score["noise"]["nmi_kmeans"]
    # an embedding made of donor identity only is the worst batch correction of the three; noise mixes best
    assert score["batch_only"]["batch_score"] < score["pca"]["batch_score"] < score["noise"]["batch_score"]
    assert score["batch_only"]["ilisi"] < 0.05
