"""scIB metrics on arrays with a known answer, the aggregates, and a cross-check against `scib`."""

from __future__ import annotations

import numpy as np
import pytest

from scdiva.bench.tasks.integration import metrics as M


def _clusters(mixed: bool, n_per=60, seed=0):
    """3 well-separated cell types x 2 batches; separated batches are shifted far apart."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(["a", "b", "c"], 2 * n_per)
    batches = np.tile(np.repeat(["b1", "b2"], n_per), 3)
    centers = {"a": [0, 0, 0, 0], "b": [20, 0, 0, 0], "c": [0, 20, 0, 0]}
    x = np.array([centers[label] for label in labels], dtype=float) + rng.normal(size=(len(labels), 4))
    if not mixed:
        x[batches == "b2", 2] += 50
    return x.astype(np.float32), labels, batches


@pytest.fixture(scope="module")
def scores():
    out = {}
    pre, _, _ = _clusters(mixed=False)
    for mixed in (True, False):
        x, labels, batches = _clusters(mixed)
        out[mixed] = M.compute_integration_metrics(x, batches=batches, labels=labels, pre_embedding=pre,
                                                   progress=False)
    return out


@pytest.mark.jax
@pytest.mark.parametrize("metric", ["ilisi", "kbet", "bras", "silhouette_batch", "pcr_comparison"])
def test_batch_metrics_prefer_mixed_batches(scores, metric):
    assert scores[True][metric] > scores[False][metric] + 0.3, (scores[True][metric], scores[False][metric])


@pytest.mark.jax
def test_extremes_are_where_documented(scores):
    assert scores[True]["ilisi"] > 0.8 and scores[False]["ilisi"] < 0.05
    assert scores[False]["pcr_comparison"] == pytest.approx(0.0, abs=1e-6)  # same as the pre embedding
    assert scores[True]["nmi_kmeans"] == pytest.approx(1.0, abs=1e-6)  # 3 clean clusters = 3 labels
    for mixed in (True, False):  # neighbourhoods hold one cell type in both
        assert scores[mixed]["clisi"] == pytest.approx(1.0, abs=1e-6)
    # Separated: each cell type splits into two equal batch islands, so the largest holds at most
    # half. Mixed: near 1 (scib-metrics takes strongly connected components of the directed k-NN
    # graph, so a few cells that are nobody's neighbour stand alone).
    assert scores[True]["graph_connectivity"] > 0.95
    assert 0.4 < scores[False]["graph_connectivity"] <= 0.5 + 1e-9


@pytest.mark.jax
def test_all_metrics_in_unit_interval(scores):
    for values in scores.values():
        assert set(values) == set(M.METRICS)
        assert all(0.0 <= v <= 1.0 for v in values.values()), values


@pytest.mark.jax
def test_bio_metrics_drop_for_random_labels():
    x, labels, batches = _clusters(mixed=True)
    shuffled = np.random.default_rng(1).permutation(labels)
    assert M.silhouette_label(x, labels) > M.silhouette_label(x, shuffled) + 0.2
    assert M.nmi_ari_kmeans(x, shuffled)["ari_kmeans"] < 0.1


def test_aggregates_follow_scib_weights():
    values = {name: (0.2 if info.kind == "batch" else 0.9) for name, info in M.METRICS.items()}
    values["silhouette_batch"] = 1.0  # diagnostic only: must not move the batch score
    agg = M.aggregate_scores(values)
    assert agg["batch_score"] == pytest.approx(0.2) and agg["bio_score"] == pytest.approx(0.9)
    assert agg["total_score"] == pytest.approx(0.4 * 0.2 + 0.6 * 0.9)
    values["kbet"] = float("nan")  # skipped, not propagated
    assert M.aggregate_scores(values)["batch_score"] == pytest.approx(0.2)


def test_metric_docstrings_state_range_and_direction():
    for fn in (M.silhouette_label, M.silhouette_batch, M.bras, M.isolated_labels, M.nmi_ari_kmeans,
               M.nmi_ari_leiden, M.clisi, M.ilisi, M.kbet, M.graph_connectivity, M.pcr_comparison):
        assert "[0, 1]" in fn.__doc__ and "higher" in fn.__doc__.lower(), fn.__name__


def test_bad_input_is_rejected_before_neighbours():
    x, labels, batches = _clusters(mixed=True)
    with pytest.raises(ValueError, match="one row per cell"):
        M.compute_integration_metrics(x, batches=batches[:-1], labels=labels, pre_embedding=x)
    x_nan = x.copy()
    x_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        M.compute_integration_metrics(x_nan, batches=batches, labels=labels, pre_embedding=x)


@pytest.mark.jax
def test_matches_scib_on_the_same_embedding_and_graph(pbmc_small):
    """ASW batch and graph connectivity agree with the reference `scib` package within 1e-3.

    Both get the same embedding (Harmony-free PCA of real PBMCs). Graph connectivity: scib reads the
    scanpy graph in ``obsp["connectivities"]`` (symmetric); scib-metrics reads the directed k-NN
    graph and takes strongly connected components. We give scib-metrics scanpy's own k-NN indices,
    symmetrised, so both see the same graph.
    """
    import scanpy as sc
    import scib
    from scib_metrics.nearest_neighbors import NeighborsResults

    adata = pbmc_small.copy()
    adata.obsm["X_emb"] = adata.obsm["X_pca"]
    labels, batches = adata.obs["cell_type"].to_numpy(), adata.obs["donor"].to_numpy()

    ours = M.silhouette_batch(adata.obsm["X_emb"], labels, batches)
    ref = scib.metrics.silhouette_batch(adata, batch_key="donor", label_key="cell_type", embed="X_emb",
                                        verbose=False)
    assert ours == pytest.approx(ref, abs=1e-3)

    sc.pp.neighbors(adata, use_rep="X_emb", n_neighbors=15)
    ref_gc = scib.metrics.graph_connectivity(adata, label_key="cell_type")
    graph = adata.obsp["connectivities"].tocsr()
    graph = ((graph + graph.T) > 0).tocsr()
    k = int(np.diff(graph.indptr).max())
    idx = np.zeros((adata.n_obs, k + 1), dtype=int)
    dist = np.full((adata.n_obs, k + 1), np.inf)
    for i in range(adata.n_obs):  # pad each row with itself so every row has k + 1 entries
        nbrs = graph.indices[graph.indptr[i]:graph.indptr[i + 1]]
        idx[i] = np.concatenate([[i], nbrs, np.full(k - len(nbrs), i)])
        dist[i] = np.concatenate([[0.0], np.ones(len(nbrs)), np.zeros(k - len(nbrs))])
    ours_gc = M.graph_connectivity(NeighborsResults(indices=idx, distances=dist), labels)
    assert ours_gc == pytest.approx(ref_gc, abs=1e-3)


def test_checked_inputs_reach_the_metrics_each_in_its_place(monkeypatch):
    """Two batches are enough; labels, batches, the PCA and the caller's seed and subsample limit reach the
    metrics unchanged (computing them needs JAX: here the step that computes them records its inputs;
    `test_each_metric_in_the_table_is_the_named_metric` checks the values themselves)."""
    calls = []
    monkeypatch.setattr(M, "_scib_metrics", lambda *args, **kwargs: calls.append((args, kwargs)) or {"ok": 1.0})
    x, labels, batches = _clusters(mixed=True, n_per=2)  # 12 cells: 3 labels x 2 batches
    pre = x[:, ::-1].astype(np.float64) + 1.0
    values = M.compute_integration_metrics(x.astype(np.float64), batches=list(batches), labels=list(labels),
                                           pre_embedding=pre, seed=7, n_jobs=3, progress=False,
                                           subsample_max_cells=10)
    assert values == {"ok": 1.0}
    (embedding, got_batches, got_labels, got_pre), kwargs = calls[0]
    assert embedding.dtype == np.float32 and np.array_equal(embedding, x)
    assert got_batches.tolist() == batches.tolist() and got_labels.tolist() == labels.tolist()
    assert np.array_equal(got_pre, pre)
    assert kwargs == {"seed": 7, "n_jobs": 3, "progress": False, "subsample_max_cells": 10}
    # batch and label values of any type are compared as text (e.g. integer donor ids)
    M.compute_integration_metrics(x, batches=np.repeat([1, 2], 6), labels=np.tile([0, 1, 2], 4), pre_embedding=pre)
    assert calls[1][0][1].tolist() == ["1"] * 6 + ["2"] * 6 and calls[1][0][2].tolist() == ["0", "1", "2"] * 4


def test_bad_input_messages_are_exact():
    x, labels, batches = _clusters(mixed=True, n_per=2)
    x[0, 0] = np.inf
    with pytest.raises(ValueError, match="^embedding has non-finite values$"):
        M.compute_integration_metrics(x, batches=batches, labels=labels, pre_embedding=x)
    with pytest.raises(ValueError, match="^batch metrics need at least 2 batches$"):
        M.compute_integration_metrics(x[1:], batches=np.full(11, "b1"), labels=labels[1:], pre_embedding=x[1:])
    with pytest.raises(ValueError, match=r"^embedding \(12, 4\), batches 11, labels 12 and pre_embedding \(12, 4\) "
                                         r"must all have one row per cell$"):
        M.compute_integration_metrics(x, batches=batches[1:], labels=labels, pre_embedding=x)
