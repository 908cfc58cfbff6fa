"""Known answers for every scIB metric and aggregate in `scdiva.bench.tasks.integration.metrics`.

Each metric is checked on data whose answer is known by construction (perfectly mixed vs perfectly
separated batches, labels that split cleanly vs not at all, a label present in one batch only),
against a hand-written implementation of its definition and against the reference implementation
(scib-metrics, scikit-learn). Graph metrics get hand-built neighbour graphs (equal distances), so
their values are exact fractions. Arguments are placed so that swapping two of them changes the
answer. Aggregate membership is checked by metric name, not through the code's own flags.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scib_metrics.nearest_neighbors import NeighborsResults

from scdiva.bench.tasks.integration import metrics as M

BATCH_AGGREGATE = {"bras", "ilisi", "kbet", "graph_connectivity", "pcr_comparison"}
BIO_AGGREGATE = {"isolated_labels", "nmi_kmeans", "ari_kmeans", "silhouette_label", "clisi"}
DIAGNOSTICS = {"silhouette_batch", "nmi_leiden", "ari_leiden"}


# --- hand implementations of the definitions ----------------------------------------------

def _distances(x: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    if metric == "cosine":
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        return 1 - unit @ unit.T
    return np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))


def _silhouette_samples(x, groups, metric="euclidean", between="nearest"):
    """Rousseeuw's silhouette per cell, written out: (b - a) / max(a, b)."""
    d = _distances(np.asarray(x, dtype=float), metric)
    groups = np.asarray(groups)
    out = np.zeros(len(groups))
    for i in range(len(groups)):
        same = (groups == groups[i]) & (np.arange(len(groups)) != i)
        if not same.any():
            continue
        a = d[i, same].mean()
        others = [d[i, groups == g].mean() for g in np.unique(groups) if g != groups[i]]
        b = min(others) if between == "nearest" else d[i, groups != groups[i]].mean()
        out[i] = (b - a) / max(a, b)
    return out


def _batch_asw(x, labels, batches, metric="euclidean", between="nearest"):
    """scIB batch ASW: per label, mean of 1 - |silhouette of batches|; mean over labels with 2+ batches."""
    per_label = []
    for label in np.unique(labels):
        m = labels == label
        if len(np.unique(batches[m])) < 2:
            continue
        per_label.append(np.mean(1 - np.abs(_silhouette_samples(x[m], batches[m], metric, between))))
    return float(np.mean(per_label))


def _graph(neighbour_lists) -> NeighborsResults:
    """Neighbour graph with the given lists, every edge of length 1."""
    idx = np.asarray(neighbour_lists, dtype=int)
    return NeighborsResults(indices=idx, distances=np.ones(idx.shape, dtype=np.float32))


def _lisi_graph(neighbour_lists) -> NeighborsResults:
    """LISI graph: m equal-length neighbours per cell, padded with 2m self entries to k = 3m columns.

    scib-metrics masks self entries and calibrates the weights to perplexity k // 3 = m; with m
    equally distant neighbours that target is met at once, so each neighbour weighs exactly 1/m.
    """
    rows = [[i] * (2 * len(nbrs)) + list(nbrs) for i, nbrs in enumerate(neighbour_lists)]
    return _graph(rows)


# --- constructed data -----------------------------------------------------------------------

# 16 cells: labels A/B x batches x/y, 4 cells per (label, batch), cell i = 4 * group + j.
GROUPS = list(itertools.product("AB", "xy"))
LABELS16 = np.repeat([g[0] for g in GROUPS], 4)
BATCHES16 = np.repeat([g[1] for g in GROUPS], 4)


def _members(label: str, batch: str) -> list[int]:
    return [i for i in range(16) if LABELS16[i] == label and BATCHES16[i] == batch]


def _neighbours(mode: str, lisi: bool = False) -> NeighborsResults:
    """Neighbours of each cell (cell j of its (label, batch) group). 'separated': 4 of its own group;
    'mixed': cells j, j+1 of its group and of the same label's other batch (a cycle through the
    label); 'label_mixed': cells j, j+1 of its group and of the other label in its batch.
    With `lisi`, only the second member of each pair (1 of its group, 1 of the partner group)."""
    rows = []
    for i in range(16):
        label, batch = LABELS16[i], BATCHES16[i]
        own = _members(label, batch)
        j = own.index(i)
        other_batch = "y" if batch == "x" else "x"
        other_label = "B" if label == "A" else "A"
        partner = {"separated": own, "mixed": _members(label, other_batch),
                   "label_mixed": _members(other_label, batch)}[mode]
        if lisi:
            rows.append([own[(j + 1) % 4], partner[(j + 1) % 4] if mode != "separated" else own[(j + 2) % 4]])
        elif mode == "separated":
            rows.append(own)
        else:
            rows.append([own[j], own[(j + 1) % 4], partner[j], partner[(j + 1) % 4]])
    return _lisi_graph(rows) if lisi else _graph(rows)


def _blobs(*, batch_shift: float, n_per: int = 30, seed: int = 0, isolated: bool = False):
    """Cell types A, B, C at far-apart centres, 2 batches; C only in batch x when `isolated`."""
    rng = np.random.default_rng(seed)
    centres = {"A": [0.0, 0.0, 0.0], "B": [30.0, 0.0, 0.0], "C": [0.0, 30.0, 0.0]}
    labels, batches = [], []
    for label in "ABC":
        for batch in "xy":
            n = 2 * n_per if (isolated and label == "C" and batch == "x") else n_per
            if isolated and label == "C" and batch == "y":
                continue
            labels += [label] * n
            batches += [batch] * n
    labels, batches = np.array(labels), np.array(batches)
    x = np.array([centres[lab] for lab in labels]) + rng.normal(size=(len(labels), 3))
    x[batches == "y", 2] += batch_shift
    return x.astype(np.float32), labels, batches


# --- silhouettes ----------------------------------------------------------------------------

@pytest.mark.jax
def test_silhouette_label_matches_its_definition_and_sklearn():
    from sklearn.metrics import silhouette_score

    x, labels, batches = _blobs(batch_shift=5.0)
    hand = (np.mean(_silhouette_samples(x, labels)) + 1) / 2
    ours = M.silhouette_label(x, labels)
    assert ours == pytest.approx(hand, abs=1e-4)
    assert ours == pytest.approx((silhouette_score(x, labels) + 1) / 2, abs=1e-4)
    assert ours > 0.85  # three far-apart types
    shuffled = np.random.default_rng(0).permutation(labels)
    assert M.silhouette_label(x, shuffled) == pytest.approx((silhouette_score(x, shuffled) + 1) / 2, abs=1e-4)
    assert M.silhouette_label(x, shuffled) < 0.55  # labels that do not split: about (0 + 1) / 2


@pytest.mark.jax
def test_two_point_silhouette_by_hand():
    # A at 0 and 1, B at 10 and 11 (1-D): a = 1 for every cell, b = 10.5 / 9.5 / 9.5 / 10.5.
    x = np.array([[0.0], [1.0], [10.0], [11.0]], dtype=np.float32)
    labels = np.array(["A", "A", "B", "B"])
    s = [1 - 1 / 10.5, 1 - 1 / 9.5, 1 - 1 / 9.5, 1 - 1 / 10.5]
    assert M.silhouette_label(x, labels) == pytest.approx((np.mean(s) + 1) / 2, abs=1e-5)


@pytest.mark.jax
def test_silhouette_batch_and_bras_by_hand_and_by_extremes():
    mixed, labels, batches = _blobs(batch_shift=0.0)
    split, _, _ = _blobs(batch_shift=40.0)
    for x in (mixed, split):
        assert M.silhouette_batch(x, labels, batches) == pytest.approx(_batch_asw(x, labels, batches), abs=1e-4)
        # BRAS: cosine distance, mean distance to the other batches (= nearest with two batches).
        assert M.bras(x + 50.0, labels, batches) == pytest.approx(
            _batch_asw(x + 50.0, labels, batches, metric="cosine", between="mean_other"), abs=1e-4)
    assert M.silhouette_batch(mixed, labels, batches) > 0.9 > 0.2 > M.silhouette_batch(split, labels, batches)
    assert M.bras(mixed + 50.0, labels, batches) > 0.85 > 0.3 > M.bras(split + 50.0, labels, batches)
    # Labels and batches swapped: batches mixed within each label does NOT mean labels mixed within a batch.
    assert M.silhouette_batch(mixed, batches, labels) < 0.3
    assert M.bras(mixed + 50.0, batches, labels) < 0.5


@pytest.mark.jax
def test_isolated_labels_scores_only_the_label_in_fewest_batches():
    import scib_metrics

    x, labels, batches = _blobs(batch_shift=0.0, isolated=True)
    s = (_silhouette_samples(x, labels) + 1) / 2
    assert M.isolated_labels(x, labels, batches) == pytest.approx(s[labels == "C"].mean(), abs=1e-4)
    assert M.isolated_labels(x, labels, batches) == pytest.approx(
        scib_metrics.isolated_labels(x, labels, batches), abs=1e-6)
    # Move C next to A: only C's score drops (A is in both batches, so it is not isolated).
    near = x.copy()
    near[labels == "C"] -= np.array([0.0, 29.0, 0.0], dtype=np.float32)
    s_near = (_silhouette_samples(near, labels) + 1) / 2
    assert M.isolated_labels(near, labels, batches) == pytest.approx(s_near[labels == "C"].mean(), abs=1e-4)
    assert M.isolated_labels(near, labels, batches) < M.isolated_labels(x, labels, batches) - 0.2
    # With no isolated label (every label in both batches) all labels count, each with equal weight.
    x2, labels2, batches2 = _blobs(batch_shift=0.0)
    s2 = (_silhouette_samples(x2, labels2) + 1) / 2
    expected = np.mean([s2[labels2 == lab].mean() for lab in "ABC"])
    assert M.isolated_labels(x2, labels2, batches2) == pytest.approx(expected, abs=1e-4)


# --- clustering ------------------------------------------------------------------------------

@pytest.mark.jax
def test_kmeans_nmi_ari_clean_split_and_independent_labels():
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    x, labels, _ = _blobs(batch_shift=0.0)
    clean = M.nmi_ari_kmeans(x, labels)
    assert clean == pytest.approx({"nmi_kmeans": 1.0, "ari_kmeans": 1.0}, abs=1e-6)
    # Two clusters (A+C vs B is not the split: use A vs B only) and labels crossed evenly with them.
    keep = labels != "C"
    x2, clusters = x[keep], labels[keep]
    crossed = np.tile(["p", "q"], len(clusters) // 2)
    assert normalized_mutual_info_score(clusters, crossed) == pytest.approx(0.0, abs=1e-9)
    got = M.nmi_ari_kmeans(x2, crossed)
    assert got["nmi_kmeans"] == pytest.approx(0.0, abs=1e-6)
    assert got["ari_kmeans"] == pytest.approx(adjusted_rand_score(clusters, crossed), abs=1e-6)
    assert got["ari_kmeans"] < 0.0  # ARI of an even crossing is slightly negative, not 0 or 0.5


@pytest.mark.jax
def test_leiden_nmi_ari_clean_split():
    x, labels, _ = _blobs(batch_shift=0.0)
    nn = M.compute_neighbors(x, n_neighbors=15)
    assert M.nmi_ari_leiden(nn, labels) == pytest.approx({"nmi_leiden": 1.0, "ari_leiden": 1.0}, abs=1e-6)
    shuffled = np.random.default_rng(0).permutation(labels)
    assert M.nmi_ari_leiden(nn, shuffled)["ari_leiden"] < 0.1


# --- graph metrics on hand-built graphs: exact fractions -------------------------------------

@pytest.mark.jax
def test_ilisi_is_one_when_every_neighbourhood_is_half_each_batch_and_zero_when_pure():
    # Weights 1/m: Simpson index = sum of squared batch fractions -> LISI 2 (mixed) or 1 (pure);
    # scaled as (LISI - 1) / (n_batches - 1).
    assert M.ilisi(_neighbours("mixed", lisi=True), BATCHES16) == pytest.approx(1.0, abs=1e-6)
    assert M.ilisi(_neighbours("separated", lisi=True), BATCHES16) == pytest.approx(0.0, abs=1e-6)
    # Two of three neighbours from its own batch: Simpson 5/9, LISI 1.8, scaled 0.8.
    rows = []
    for i in range(16):
        own = [c for c in _members(LABELS16[i], BATCHES16[i]) if c != i]
        rows.append(own[:2] + _members(LABELS16[i], "y" if BATCHES16[i] == "x" else "x")[:1])
    assert M.ilisi(_lisi_graph(rows), BATCHES16) == pytest.approx(0.8, abs=1e-6)


@pytest.mark.jax
def test_clisi_is_one_for_pure_label_neighbourhoods_and_zero_for_even_ones():
    # Scaled as (n_labels - LISI) / (n_labels - 1).
    assert M.clisi(_neighbours("mixed", lisi=True), LABELS16) == pytest.approx(1.0, abs=1e-6)
    assert M.clisi(_neighbours("label_mixed", lisi=True), LABELS16) == pytest.approx(0.0, abs=1e-6)
    # batches and labels swapped: the batch-mixed graph has evenly mixed "labels"
    assert M.clisi(_neighbours("mixed", lisi=True), BATCHES16) == pytest.approx(0.0, abs=1e-6)


def test_graph_connectivity_is_the_largest_component_fraction_per_label():
    assert M.graph_connectivity(_neighbours("mixed"), LABELS16) == pytest.approx(1.0)
    # Separated: each label falls into two components of 4 (one per batch) -> 4/8 for each label.
    assert M.graph_connectivity(_neighbours("separated"), LABELS16) == pytest.approx(0.5)
    # Label A: batch-x cells 0-3 link to each other only, 4-7 link into x -> 4-7 are singletons in
    # the strong-component sense: largest component 4 of 8. Label B fully mixed: 1.
    mixed = _neighbours("mixed").indices
    rows = [_members("A", "x") if LABELS16[i] == "A" else list(mixed[i]) for i in range(16)]
    assert M.graph_connectivity(_graph(rows), LABELS16) == pytest.approx((4 / 8 + 1.0) / 2)


@pytest.mark.jax
def test_kbet_extremes_and_reference():
    import scib_metrics

    mixed, labels, batches = _blobs(batch_shift=0.0, n_per=20)
    split, _, _ = _blobs(batch_shift=40.0, n_per=20)
    nn_mixed = M.compute_neighbors(mixed, n_neighbors=30)
    nn_split = M.compute_neighbors(split, n_neighbors=30)
    assert M.kbet(nn_mixed, batches, labels) == pytest.approx(
        scib_metrics.kbet_per_label(nn_mixed, batches, labels), abs=1e-9)
    assert M.kbet(nn_mixed, batches, labels) > 0.8
    assert M.kbet(nn_split, batches, labels) < 0.05
    # Swapped: per batch, are the labels mixed? They are cleanly separated.
    assert M.kbet(nn_mixed, labels, batches) < 0.3


@pytest.mark.jax
def test_pcr_comparison_known_values_and_direction():
    rng = np.random.default_rng(0)
    batches = np.repeat(["x", "y"], 60)
    pre = rng.normal(size=(120, 5)).astype(np.float32)
    pre[batches == "y"] += np.array([6.0, 0, 0, 0, 0], dtype=np.float32)
    # Centre each batch: no linear function of the batch is left in any direction, so the
    # variance explained by batch drops to exactly 0 -> PCR comparison 1.
    post = pre.copy()
    for b in ("x", "y"):
        post[batches == b] -= post[batches == b].mean(axis=0)
    assert M.pcr_comparison(pre, post, batches) == pytest.approx(1.0, abs=1e-4)
    assert M.pcr_comparison(pre, pre, batches) == pytest.approx(0.0, abs=1e-6)
    half = pre.copy()
    half[batches == "y", 0] -= 3.0  # half the shift removed
    assert 0.2 < M.pcr_comparison(pre, half, batches) < 0.9
    # Arguments swapped (the batch effect added, not removed): clipped at 0.
    assert M.pcr_comparison(half, pre, batches) == pytest.approx(0.0, abs=1e-6)


# --- all metrics together, and the aggregates -------------------------------------------------

@pytest.fixture(scope="module")
def full_scores():
    pre, labels, batches = _blobs(batch_shift=40.0, isolated=True)
    mixed, _, _ = _blobs(batch_shift=0.0, isolated=True)
    return {name: M.compute_integration_metrics(x, batches=batches, labels=labels, pre_embedding=pre, progress=False)
            for name, x in (("mixed", mixed), ("split", pre))}, (pre, mixed, labels, batches)


@pytest.mark.jax
def test_each_metric_in_the_table_is_the_named_metric(full_scores):
    """compute_integration_metrics passes each metric its own arguments, graph and neighbour count."""
    scores, (pre, mixed, labels, batches) = full_scores
    got = scores["mixed"]
    nn = M.compute_neighbors(mixed)
    assert set(got) == set(M.METRICS)
    expected = {
        "silhouette_label": M.silhouette_label(mixed, labels),
        "silhouette_batch": M.silhouette_batch(mixed, labels, batches),
        "bras": M.bras(mixed, labels, batches),
        "isolated_labels": M.isolated_labels(mixed, labels, batches),
        "clisi": M.clisi(nn.subset_neighbors(90), labels),
        "ilisi": M.ilisi(nn.subset_neighbors(90), batches),
        "kbet": M.kbet(nn.subset_neighbors(50), batches, labels),
        "graph_connectivity": M.graph_connectivity(nn.subset_neighbors(15), labels),
        "pcr_comparison": M.pcr_comparison(pre, mixed, batches),
        **M.nmi_ari_kmeans(mixed, labels),
        **M.nmi_ari_leiden(nn.subset_neighbors(15), labels),
    }
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-6), name


@pytest.mark.jax
def test_mixed_beats_separated_on_every_batch_metric_and_ties_on_bio(full_scores):
    scores, _ = full_scores
    for name, info in M.METRICS.items():
        if info.kind == "batch":
            assert scores["mixed"][name] > scores["split"][name] + 0.3, name
    for name in ("nmi_kmeans", "ari_kmeans", "clisi"):
        assert scores["mixed"][name] == pytest.approx(1.0, abs=1e-6), name


STANDARD = ("batch_score", "bio_score", "total_score")


def test_aggregate_membership_by_name():
    base = {name: 0.5 for name in M.METRICS}
    before = M.aggregate_scores(base)
    for name in M.METRICS:
        moved = M.aggregate_scores({**base, name: 1.0})
        if name in BATCH_AGGREGATE:
            assert moved["batch_score"] == pytest.approx(0.5 + 0.5 / len(BATCH_AGGREGATE)), name
            assert moved["bio_score"] == pytest.approx(0.5), name
        elif name in BIO_AGGREGATE:
            assert moved["bio_score"] == pytest.approx(0.5 + 0.5 / len(BIO_AGGREGATE)), name
            assert moved["batch_score"] == pytest.approx(0.5), name
        else:
            assert name in DIAGNOSTICS
            assert [moved[k] for k in STANDARD] == pytest.approx([before[k] for k in STANDARD]), name
        # the graph aggregates move with the six graph metrics and nothing else
        graph_moved = moved["graph_total_score"] != pytest.approx(before["graph_total_score"])
        assert graph_moved == (name in M.GRAPH_METRICS), name
    assert set(M.METRICS) == BATCH_AGGREGATE | BIO_AGGREGATE | DIAGNOSTICS
    assert set(M.GRAPH_METRICS) == {"ilisi", "kbet", "graph_connectivity", "clisi", "nmi_leiden", "ari_leiden"}


def test_aggregate_values_by_hand():
    values = {"bras": 0.1, "ilisi": 0.2, "kbet": 0.3, "graph_connectivity": 0.4, "pcr_comparison": 0.5,
              "isolated_labels": 0.9, "nmi_kmeans": 0.8, "ari_kmeans": 0.7, "silhouette_label": 0.6, "clisi": 0.5,
              "silhouette_batch": 0.05, "nmi_leiden": 0.01, "ari_leiden": 0.02}
    agg = M.aggregate_scores(values)
    graph_batch, graph_bio = (0.2 + 0.3 + 0.4) / 3, (0.5 + 0.01 + 0.02) / 3  # iLISI, kBET, GC; cLISI, Leiden
    assert agg == pytest.approx({"batch_score": 0.3, "bio_score": 0.7, "total_score": 0.4 * 0.3 + 0.6 * 0.7,
                                 "graph_batch_score": graph_batch, "graph_bio_score": graph_bio,
                                 "graph_total_score": 0.4 * graph_batch + 0.6 * graph_bio})
    # A NaN metric is left out of its group's mean (not counted as 0, not propagated).
    agg_nan = M.aggregate_scores({**values, "kbet": float("nan")})
    assert agg_nan["batch_score"] == pytest.approx((0.1 + 0.2 + 0.4 + 0.5) / 4)
    # A group with no finite metric is NaN, and so is the total.
    no_batch = {k: v for k, v in values.items() if k not in BATCH_AGGREGATE}
    agg_none = M.aggregate_scores(no_batch)
    assert np.isnan(agg_none["batch_score"]) and np.isnan(agg_none["total_score"])
    assert agg_none["bio_score"] == pytest.approx(0.7)


def test_metrics_frame_and_kinds():
    values = {name: 0.5 for name in M.METRICS}
    frame = M.metrics_frame(values, dataset="d", method="m", seed=3)
    assert list(frame.columns) == ["dataset", "method", "seed", "metric", "value"]
    assert list(frame["metric"]) == [*M.METRICS, "batch_score", "bio_score", "total_score", "graph_batch_score",
                                     "graph_bio_score", "graph_total_score"]
    assert (frame["dataset"] == "d").all() and (frame["seed"] == 3).all()
    assert frame.set_index("metric")["value"]["total_score"] == pytest.approx(0.5)
    assert {n: M.metric_kind(n) for n in ("ilisi", "clisi", "total_score", "batch_score")} == {
        "ilisi": "batch", "clisi": "bio", "total_score": "aggregate", "batch_score": "aggregate"}
    assert {n for n in M.METRICS if M.metric_kind(n) == "batch"} == BATCH_AGGREGATE | {"silhouette_batch"}


def test_compute_neighbors_is_the_exact_knn_with_self_first():
    from sklearn.neighbors import NearestNeighbors

    x, _, _ = _blobs(batch_shift=0.0)
    nn = M.compute_neighbors(x, n_neighbors=10)
    assert nn.indices.shape == (len(x), 10)
    np.testing.assert_array_equal(nn.indices[:, 0], np.arange(len(x)))
    dist, idx = NearestNeighbors(n_neighbors=10).fit(x).kneighbors(x)
    np.testing.assert_allclose(nn.distances, dist, rtol=1e-5, atol=1e-5)
    assert M.compute_neighbors(x[:5], n_neighbors=90).indices.shape == (5, 4)  # capped at n - 1


def test_large_data_takes_the_approximate_knn_with_self_first(monkeypatch):
    x, _, _ = _blobs(batch_shift=0.0)
    exact = M.compute_neighbors(x, n_neighbors=10)
    monkeypatch.setattr(M, "EXACT_KNN_MAX_CELLS", len(x))  # n cells exactly: still exact
    np.testing.assert_array_equal(M.compute_neighbors(x, n_neighbors=10).indices, exact.indices)
    monkeypatch.setattr(M, "EXACT_KNN_MAX_CELLS", len(x) - 1)  # one more cell than the limit: pynndescent
    approx = M.compute_neighbors(x, n_neighbors=10, seed=3)
    assert approx.indices.shape == (len(x), 10)
    np.testing.assert_array_equal(approx.indices[:, 0], np.arange(len(x)))
    # three far-apart blobs: the approximate neighbours are the exact ones
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(approx.indices, exact.indices, strict=True)]) > 0.95
    np.testing.assert_array_equal(M.compute_neighbors(x, n_neighbors=10, seed=3).indices, approx.indices)


def test_bad_input_is_named():
    x, labels, batches = _blobs(batch_shift=0.0)
    for kwargs in ({"batches": batches[:-1], "labels": labels, "pre_embedding": x},
                   {"batches": batches, "labels": labels[:-1], "pre_embedding": x},
                   {"batches": batches, "labels": labels, "pre_embedding": x[:-1]}):
        with pytest.raises(ValueError, match="one row per cell"):
            M.compute_integration_metrics(x, progress=False, **kwargs)
    with pytest.raises(ValueError, match="one row per cell"):
        M.compute_integration_metrics(x[:, 0], batches=batches, labels=labels, pre_embedding=x, progress=False)
    with pytest.raises(ValueError, match="2 batches"):
        M.compute_integration_metrics(x, batches=np.full(len(x), "x"), labels=labels, pre_embedding=x,
                                      progress=False)
    inf = x.copy()
    inf[3, 1] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        M.compute_integration_metrics(inf, batches=batches, labels=labels, pre_embedding=x, progress=False)
