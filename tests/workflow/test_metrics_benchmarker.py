"""The metrics stage against scib-metrics' own ``Benchmarker`` on the same embeddings, and its
subsample for the quadratic (silhouette) metrics, Leiden and kBET at scale."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from scdiva.bench.tasks.integration import metrics as M


def _data(n_per: int = 40, seed: int = 0):
    """3 cell types x 3 batches; one embedding mixes batches, the other keeps them apart."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(["a", "b", "c"], 3 * n_per)
    batches = np.tile(np.repeat(["b1", "b2", "b3"], n_per), 3)
    centers = {"a": [0, 0, 0, 0, 0], "b": [12, 0, 0, 0, 0], "c": [0, 12, 0, 0, 0]}
    base = np.array([centers[x] for x in labels], dtype=np.float32)
    mixed = base + rng.normal(size=base.shape).astype(np.float32)
    apart = mixed.copy()
    apart[:, 2] += 8.0 * (batches == "b2") - 8.0 * (batches == "b3")
    pre = apart + rng.normal(scale=0.1, size=base.shape).astype(np.float32)
    return labels, batches, {"mixed": mixed, "apart": apart}, pre


@pytest.mark.jax
@pytest.mark.slow
def test_totals_equal_benchmarker():
    from scib_metrics.benchmark import Benchmarker

    labels, batches, embeddings, pre = _data()
    adata = ad.AnnData(X=np.zeros((len(labels), 1), dtype=np.float32),
                       obs=pd.DataFrame({"batch": batches, "label": labels}, index=[f"c{i}" for i in range(len(labels))]))
    adata.obsm["X_pre"] = pre
    for key, emb in embeddings.items():
        adata.obsm[key] = emb
    bench = Benchmarker(adata, batch_key="batch", label_key="label", embedding_obsm_keys=list(embeddings),
                        pre_integrated_embedding_obsm_key="X_pre", progress_bar=False)
    # The same exact neighbours as the metrics stage (below EXACT_KNN_MAX_CELLS cells).
    bench.prepare(neighbor_computer=lambda x, k: M.compute_neighbors(x, k))
    # and the same seeded diffusion map for kBET (M.kbet)
    with M.seeded_diffusion_neighbours(seed=0):
        bench.benchmark()
    theirs = bench.get_results(min_max_scale=False)
    for key, emb in embeddings.items():
        values = M.compute_integration_metrics(emb, batches=batches, labels=labels, pre_embedding=pre,
                                               progress=False)
        ours = M.aggregate_scores(values)
        assert ours["total_score"] == pytest.approx(float(theirs.loc[key, "Total"]), abs=1e-6), key
        assert ours["batch_score"] == pytest.approx(float(theirs.loc[key, "Batch correction"]), abs=1e-6)
        assert ours["bio_score"] == pytest.approx(float(theirs.loc[key, "Bio conservation"]), abs=1e-6)
    # and the comparison means something: the two embeddings' totals differ
    assert abs(float(theirs.loc["mixed", "Total"]) - float(theirs.loc["apart", "Total"])) > 0.05


def test_metrics_subsample_is_stratified_and_exact_size():
    labels = np.repeat(["a", "b", "c", "d"], [5000, 3000, 1500, 500])
    batches = np.tile(["x", "y"], 5000)
    sub = M.metrics_subsample(labels, batches, 1000, seed=0)
    assert len(sub) == 1000 and len(np.unique(sub)) == 1000
    assert dict(zip(*np.unique(labels[sub], return_counts=True), strict=True)) == {"a": 500, "b": 300,
                                                                                   "c": 150, "d": 50}
    assert (M.metrics_subsample(labels, batches, None, 0) == np.arange(10_000)).all()
    assert (M.metrics_subsample(labels, batches, 20_000, 0) == np.arange(10_000)).all()
    # the run's seed picks the subsample: the same seed scores the same cells again, another seed others
    assert (M.metrics_subsample(labels, batches, 1000, seed=0) == sub).all()
    assert not np.array_equal(M.metrics_subsample(labels, batches, 1000, seed=1), sub)
    assert M.cells_scored("silhouette_label", 80_000) == M.SUBSAMPLE_MAX_CELLS
    assert M.cells_scored("silhouette_label", 80_000, None) == 80_000
    assert M.cells_scored("nmi_leiden", 80_000) == M.cells_scored("kbet", 80_000) == M.SUBSAMPLE_MAX_CELLS
    assert M.cells_scored("ilisi", 80_000) == 80_000


@pytest.mark.jax
@pytest.mark.slow
def test_subsampled_metrics_use_the_subsample_and_the_rest_all_cells():
    labels, batches, embeddings, pre = _data(n_per=30)
    emb = embeddings["apart"]
    full = M.compute_integration_metrics(emb, batches=batches, labels=labels, pre_embedding=pre, progress=False)
    part = M.compute_integration_metrics(emb, batches=batches, labels=labels, pre_embedding=pre, progress=False,
                                         subsample_max_cells=90)
    sub = M.metrics_subsample(labels, batches, 90, seed=0)
    assert part["silhouette_label"] == pytest.approx(M.silhouette_label(emb[sub], labels[sub]), abs=1e-6)
    assert part["bras"] == pytest.approx(M.bras(emb[sub], labels[sub], batches[sub]), abs=1e-6)
    assert part["silhouette_label"] != pytest.approx(full["silhouette_label"], abs=1e-9)
    # Leiden and kBET score the subsample on the subsample's own 15- and 50-neighbour graphs
    leiden = M.nmi_ari_leiden(M.compute_neighbors(emb[sub], n_neighbors=15), labels[sub])
    assert (part["nmi_leiden"], part["ari_leiden"]) == pytest.approx((leiden["nmi_leiden"], leiden["ari_leiden"]),
                                                                     abs=1e-6)
    assert part["nmi_leiden"] != pytest.approx(full["nmi_leiden"], abs=1e-3)
    mixed = embeddings["mixed"]  # kBET is 0 on both for the batch-separated embedding
    mixed_part = M.compute_integration_metrics(mixed, batches=batches, labels=labels, pre_embedding=pre,
                                               progress=False, subsample_max_cells=90)["kbet"]
    kbet = M.kbet(M.compute_neighbors(mixed[sub], n_neighbors=50), batches[sub], labels[sub])
    assert mixed_part == pytest.approx(kbet, abs=1e-6)
    assert mixed_part != pytest.approx(M.kbet(M.compute_neighbors(mixed, n_neighbors=50), batches, labels), abs=1e-3)
    for name in ("ilisi", "clisi", "graph_connectivity", "pcr_comparison", "nmi_kmeans"):
        assert part[name] == pytest.approx(full[name], abs=1e-6), name


@pytest.mark.jax
def test_kbet_is_repeatable_and_needs_no_approximate_neighbour_search(monkeypatch):
    import pynndescent

    labels, batches, embeddings, _ = _data(n_per=30)
    noise = np.random.default_rng(1).normal(size=embeddings["mixed"].shape).astype(np.float32)

    def score(emb):
        return M.kbet(M.compute_neighbors(emb, n_neighbors=50), batches, labels)

    def no_search(*args, **kwargs):
        raise AssertionError("kBET below EXACT_KNN_MAX_CELLS cells must not run pynndescent (numba compile)")

    monkeypatch.setattr(pynndescent.NNDescent, "__init__", no_search)
    first = score(noise)
    np.random.seed(123)  # the global state the unseeded library code drew from
    score(embeddings["apart"])
    assert score(noise) == first
    # and the library's own diffusion code is back in place afterwards
    from scib_metrics.utils import _diffusion_nn

    assert _diffusion_nn._compute_eigen.__module__ == "scib_metrics.utils._diffusion_nn"
