"""Each integration method on real (preprocessed, 480-cell) PBMC data: shape, finiteness, seeds,
input checks, and that Harmony mixes the three chemistries better than the unintegrated PCA."""

from __future__ import annotations

import anndata
import numpy as np
import pytest

from scdiva.bench.methods import (
    DEFAULT_PARAMS,
    GPU_CAPABLE_METHODS,
    INTEGRATION_METHODS,
    integrate,
    write_embedding,
)

QUICK = {"scvi": {"max_epochs": 2}, "scanvi": {"max_epochs": 2, "scanvi_max_epochs": 1}}
# ScDiVa's registry entries need a checkpoint; tests/paper/test_scdiva_methods.py covers them.
BASELINES = ["unintegrated", "harmony", "scanorama", "scvi", "scanvi"]


@pytest.fixture(scope="module")
def embeddings(pbmc_small):
    out = {}
    for method in BASELINES:
        adata = pbmc_small.copy()
        integrate(adata, method, batch_key="donor", label_key="cell_type", seed=0,
                  params=QUICK.get(method, {}), threads=1)
        out[method] = adata
    return out


def test_registry_is_consistent():
    assert set(INTEGRATION_METHODS) == set(DEFAULT_PARAMS)
    assert set(BASELINES) <= set(INTEGRATION_METHODS)
    assert GPU_CAPABLE_METHODS <= set(INTEGRATION_METHODS)
    assert DEFAULT_PARAMS["scvi"]["max_epochs"] is None  # None = scvi-tools' own heuristic


@pytest.mark.parametrize("method", BASELINES)
def test_method_writes_a_finite_embedding(embeddings, pbmc_small, method):
    emb = embeddings[method].obsm["X_emb"]
    assert emb.shape[0] == pbmc_small.n_obs and 2 <= emb.shape[1] <= 100
    assert np.isfinite(emb).all()
    assert emb.std(axis=0).max() > 0  # not a constant output
    assert embeddings[method].uns["runtime_s"] > 0


def test_unintegrated_is_the_preprocessing_pca(embeddings, pbmc_small):
    np.testing.assert_allclose(embeddings["unintegrated"].obsm["X_emb"], pbmc_small.obsm["X_pca"], rtol=1e-6)


def test_scanvi_starts_from_scvi_and_uses_default_heuristic_epochs(embeddings):
    assert embeddings["scanvi"].uns["scvi_epochs"] == 2 and embeddings["scanvi"].uns["scanvi_epochs"] == 1


def test_harmony_mixes_batches_better_than_pca(embeddings):
    from scdiva.bench.metrics import compute_neighbors, ilisi

    def batch_mixing(adata):
        return ilisi(compute_neighbors(adata.obsm["X_emb"]), adata.obs["donor"].to_numpy())

    pca, harmony = batch_mixing(embeddings["unintegrated"]), batch_mixing(embeddings["harmony"])
    assert harmony > pca + 0.1, (pca, harmony)


def test_same_seed_same_embedding(pbmc_small, embeddings):
    again = pbmc_small.copy()
    integrate(again, "harmony", batch_key="donor", label_key="cell_type", seed=0, params={}, threads=1)
    np.testing.assert_allclose(again.obsm["X_emb"], embeddings["harmony"].obsm["X_emb"], rtol=1e-5, atol=1e-5)


def test_unknown_parameter_fails_before_training(pbmc_small):
    with pytest.raises(ValueError, match=r"methods\.scvi.*max_epoch"):
        integrate(pbmc_small.copy(), "scvi", batch_key="donor", label_key="cell_type", seed=0,
                  params={"max_epoch": 3}, threads=1)


def test_unknown_method_and_missing_keys_are_named(pbmc_small):
    with pytest.raises(KeyError, match="unknown integration method 'mnn'"):
        integrate(pbmc_small.copy(), "mnn", batch_key="donor", label_key=None, seed=0)
    with pytest.raises(KeyError, match="'chemistry'"):
        integrate(pbmc_small.copy(), "harmony", batch_key="chemistry", label_key=None, seed=0)
    with pytest.raises(ValueError, match="label"):
        integrate(pbmc_small.copy(), "scanvi", batch_key="donor", label_key=None, seed=0, params=QUICK["scanvi"])


def test_write_embedding_is_minimal_and_atomic(embeddings, tmp_path):
    path = tmp_path / "out" / "seed0.h5ad"
    write_embedding(embeddings["harmony"], path, method="harmony", seed=0)
    back = anndata.read_h5ad(path)
    assert back.n_vars == 0 and list(back.obsm) == ["X_emb"]
    assert back.obs_names.equals(embeddings["harmony"].obs_names)
    assert back.uns["runtime_s"] > 0 and back.uns["seed"] == 0
    assert sorted(p.name for p in path.parent.iterdir()) == ["seed0.h5ad"]  # no temp file left
