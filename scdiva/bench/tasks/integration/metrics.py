"""scIB integration metrics (via scib-metrics) and their batch / bio / total aggregates.

Every metric is scaled to [0, 1] (the ARIs to [-0.5, 1]) with higher = better, as in scIB (Luecken et al. 2022). The
neighbour graph is built once per embedding with pynndescent (15, 50 and 90 neighbours, as
``scib_metrics.benchmark.Benchmarker`` does) and shared by the graph-based metrics.

Aggregates (:func:`aggregate_scores`, the one place they are computed):

* ``batch_score`` = mean of the batch-correction metrics flagged ``in_aggregate``
* ``bio_score``   = mean of the bio-conservation metrics flagged ``in_aggregate``
* ``total_score`` = 0.4 * batch_score + 0.6 * bio_score (scIB's weights)
* ``graph_batch_score``, ``graph_bio_score``, ``graph_total_score``: the same over the metrics that need
  only a neighbour graph (:data:`GRAPH_METRICS`: iLISI, kBET, graph connectivity; cLISI, Leiden NMI and
  ARI), for every method: what a graph-only method (BBKNN) is compared on. A graph-only method has no
  embedding, so its embedding metrics and the three aggregates above are not applicable (NaN).

They are computed from the raw metric values of one (dataset, method, seed), NOT min-max scaled
across methods (scIB's paper scales across methods; scib-metrics' ``Benchmarker.get_results``
does not by default). Raw values therefore stay comparable when methods are added or removed.
The aggregate set follows scib-metrics' default ``Benchmarker``: BRAS (not the classic batch ASW)
for batch, k-means NMI/ARI for bio. ``silhouette_batch`` and the Leiden NMI/ARI are computed and
reported as diagnostics but left out of the aggregates so no quantity is counted twice.

At scale (as scib-metrics' own large-data guidance does): neighbours are exact up to
:data:`EXACT_KNN_MAX_CELLS` cells and approximate (pynndescent) above; the silhouette-based metrics
(:data:`QUADRATIC_METRICS`, O(n^2) in cells) and the Leiden clustering diagnostics
(:data:`LEIDEN_METRICS`: ten Leiden runs, one per resolution) and kBET (a diffusion map of each label's
graph) are computed on a stratified subsample (label x batch, seeded) of :data:`SUBSAMPLE_MAX_CELLS`
cells when there are more, the last two on the subsample's own neighbour graph. The ``n_cells`` column
of the metrics table says how many cells each value was computed on (:func:`cells_scored`).

Why this loop and not ``scib_metrics.benchmark.Benchmarker``: the values are the same (its Totals equal
:func:`aggregate_scores` on the same embeddings and neighbours; tests/workflow/test_metrics_benchmarker.py),
but Benchmarker computes every embedding's neighbour graph before scoring any (k=90 graphs of all
methods held at once: ~1 GB per embedding at 1M cells), has no subsample for its quadratic metrics,
and leaves out the silhouette-batch and Leiden diagnostics reported here. This loop holds one
embedding's graph at a time and scores the quadratic metrics, Leiden and kBET on the documented subsample.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
import types
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from scdiva.bench.core.io import atomic_path
from scdiva.bench.core.numba_cache import import_with_numba_cache
from scdiva.bench.core.outcomes import embedding_status, first_line
from scdiva.bench.methods._common import GRAPH_KEY

BATCH_WEIGHT = 0.4
BIO_WEIGHT = 0.6
NEIGHBOR_COUNTS = (15, 50, 90)
AGGREGATES = ("batch_score", "bio_score", "total_score", "graph_batch_score", "graph_bio_score", "graph_total_score")
#: metrics computed from the neighbour graph alone: a graph-only method (BBKNN) is scored on these
GRAPH_METRICS = ("ilisi", "kbet", "graph_connectivity", "clisi", "nmi_leiden", "ari_leiden")


@dataclass(frozen=True)
class MetricInfo:
    """What a metric column means. Higher is better; values lie in [``lowest``, 1].

    ``lowest`` is 0 for every metric but the adjusted Rand indices, which are below 0 for a
    clustering that agrees with the labels less than chance does (at least -0.5; Chacon & Rastrojo
    2023): a random-embedding control can score that.
    """

    name: str
    kind: Literal["batch", "bio"]
    label: str
    description: str
    in_aggregate: bool = True
    lowest: float = 0.0


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("isolated_labels", "bio", "Isolated labels",
                   "ASW of the labels present in the fewest batches vs all other cells"),
        MetricInfo("nmi_kmeans", "bio", "KMeans NMI", "NMI between k-means clusters and labels"),
        MetricInfo("ari_kmeans", "bio", "KMeans ARI", "ARI between k-means clusters and labels", lowest=-0.5),
        MetricInfo("nmi_leiden", "bio", "Leiden NMI",
                   "NMI between Leiden clusters (best resolution) and labels", in_aggregate=False),
        MetricInfo("ari_leiden", "bio", "Leiden ARI",
                   "ARI between Leiden clusters (best resolution) and labels", in_aggregate=False,
                   lowest=-0.5),
        MetricInfo("silhouette_label", "bio", "Silhouette label", "cell-type ASW, rescaled (asw + 1) / 2"),
        MetricInfo("clisi", "bio", "cLISI", "cell-type LISI on 90 neighbours, scaled so 1 = pure neighbourhoods"),
        MetricInfo("bras", "batch", "BRAS", "batch-removal adapted silhouette within labels (cosine)"),
        MetricInfo("silhouette_batch", "batch", "Silhouette batch",
                   "classic scIB batch ASW within labels, 1 - |asw|", in_aggregate=False),
        MetricInfo("ilisi", "batch", "iLISI", "batch LISI on 90 neighbours, scaled so 1 = all batches mixed"),
        MetricInfo("kbet", "batch", "kBET", "kBET acceptance rate per label on 50 neighbours"),
        MetricInfo("graph_connectivity", "batch", "Graph connectivity",
                   "largest connected fraction of each label's 15-NN subgraph"),
        MetricInfo("pcr_comparison", "batch", "PCR comparison",
                   "reduction of variance explained by batch vs the unintegrated PCA"),
    )
}


# --- individual metrics (thin, documented wrappers over scib-metrics) -------------------------

EXACT_KNN_MAX_CELLS = 50_000
#: metrics whose cost is quadratic in cells (silhouettes): scored on a stratified subsample above
#: :data:`SUBSAMPLE_MAX_CELLS` cells
QUADRATIC_METRICS = ("isolated_labels", "silhouette_label", "silhouette_batch", "bras")
#: metrics scored on the same subsample, on the subsample's own neighbour graph (the full graph
#: restricted to a subsample keeps few of each cell's neighbours), because their cost grows faster than
#: the cells (docs/scale.md, 1M cells):
#: - Leiden NMI/ARI (diagnostics, not in the aggregates): the best of ten resolutions, each a Leiden
#:   run on the whole graph; the stage was still in them after 33 minutes;
#: - kBET: scib-metrics builds a 100-component diffusion map (ARPACK) of each label's subgraph; the
#:   first label (143,571 cells, 174 connected components) had not finished after 25 minutes
LEIDEN_METRICS = ("nmi_leiden", "ari_leiden")
SUBSAMPLED_METRICS = (*QUADRATIC_METRICS, *LEIDEN_METRICS, "kbet")
SUBSAMPLE_MAX_CELLS = 50_000


@functools.cache
def _library() -> types.ModuleType:
    """scib_metrics, imported once, late (it loads JAX) and with numba's on-disk cache (core.numba_cache)."""
    return import_with_numba_cache("scib_metrics")


def cells_scored(metric: str, n_cells: int, subsample_max_cells: int | None = SUBSAMPLE_MAX_CELLS) -> int:
    """Cells the value of ``metric`` is computed on: all ``n_cells``, or for :data:`SUBSAMPLED_METRICS`
    at most ``subsample_max_cells`` (None = no subsample)."""
    if metric in SUBSAMPLED_METRICS and subsample_max_cells is not None:
        return min(n_cells, subsample_max_cells)
    return n_cells


def compute_neighbors(embedding: np.ndarray, n_neighbors: int = max(NEIGHBOR_COUNTS), *, seed: int = 0,
                      n_jobs: int = 1):
    """k-NN graph of ``embedding`` as a scib-metrics ``NeighborsResults`` (self included, as in scib-metrics).

    Exact (scikit-learn) up to :data:`EXACT_KNN_MAX_CELLS` cells - cheap there and free of
    approximation error - and approximate (pynndescent, scib-metrics' default) above.
    """
    _library()
    # deferred: imports scib-metrics, sklearn (this module is imported at workflow parse time)
    from scib_metrics.nearest_neighbors import NeighborsResults, pynndescent

    embedding = np.asarray(embedding, dtype=np.float32)
    n_neighbors = min(n_neighbors, embedding.shape[0] - 1)
    if embedding.shape[0] > EXACT_KNN_MAX_CELLS:
        return pynndescent(embedding, n_neighbors=n_neighbors, random_state=seed, n_jobs=n_jobs)
    from sklearn.neighbors import NearestNeighbors

    distances, indices = NearestNeighbors(n_neighbors=n_neighbors, n_jobs=n_jobs).fit(embedding).kneighbors(embedding)
    return NeighborsResults(indices=indices, distances=distances)


def silhouette_label(embedding: np.ndarray, labels: np.ndarray) -> float:
    """Cell-type silhouette. Range [0, 1]; higher = cell types better separated (bio conservation)."""
    scib_metrics = _library()
    return float(scib_metrics.silhouette_label(embedding, labels))


def silhouette_batch(embedding: np.ndarray, labels: np.ndarray, batches: np.ndarray) -> float:
    """Classic scIB batch ASW within each label, 1 - |asw|. Range [0, 1]; higher = batches better mixed."""
    scib_metrics = _library()
    return float(scib_metrics.silhouette_batch(embedding, labels, batches))


def bras(embedding: np.ndarray, labels: np.ndarray, batches: np.ndarray) -> float:
    """Batch removal adapted silhouette (BRAS). Range [0, 1]; higher = batches better mixed."""
    scib_metrics = _library()
    return float(scib_metrics.bras(embedding, labels, batches))


def isolated_labels(embedding: np.ndarray, labels: np.ndarray, batches: np.ndarray) -> float:
    """Isolated-label ASW. Range [0, 1]; higher = rare/batch-specific labels kept apart (bio)."""
    scib_metrics = _library()
    return float(scib_metrics.isolated_labels(embedding, labels, batches))


def nmi_ari_kmeans(embedding: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """NMI and ARI of k-means (k = number of labels) vs labels. NMI in [0, 1], ARI in [-0.5, 1]; higher = better."""
    scib_metrics = _library()
    res = scib_metrics.nmi_ari_cluster_labels_kmeans(embedding, labels)
    return {"nmi_kmeans": float(res["nmi"]), "ari_kmeans": float(res["ari"])}


def nmi_ari_leiden(neighbors, labels: np.ndarray, *, seed: int = 0) -> dict[str, float]:
    """NMI and ARI of Leiden clusters at the best of 10 resolutions. NMI [0, 1], ARI [-0.5, 1]; higher = better."""
    scib_metrics = _library()
    res = scib_metrics.nmi_ari_cluster_labels_leiden(neighbors, labels, optimize_resolution=True, seed=seed)
    return {"nmi_leiden": float(res["nmi"]), "ari_leiden": float(res["ari"])}


def clisi(neighbors, labels: np.ndarray) -> float:
    """Scaled cell-type LISI. Range [0, 1]; higher = neighbourhoods hold one cell type (bio)."""
    scib_metrics = _library()
    return float(scib_metrics.clisi_knn(neighbors, labels))


def ilisi(neighbors, batches: np.ndarray) -> float:
    """Scaled integration LISI. Range [0, 1]; higher = neighbourhoods mix all batches."""
    scib_metrics = _library()
    return float(scib_metrics.ilisi_knn(neighbors, batches))


def kbet(neighbors, batches: np.ndarray, labels: np.ndarray, *, seed: int = 0) -> float:
    """kBET acceptance rate, per label. Range [0, 1]; higher = local batch composition matches global.

    Computed with :func:`seeded_diffusion_neighbours`, so the value depends on the inputs and ``seed``
    alone, not on what the process scored before.
    """
    scib_metrics = _library()
    with seeded_diffusion_neighbours(seed):
        return float(scib_metrics.kbet_per_label(neighbors, batches, labels))


@contextlib.contextmanager
def seeded_diffusion_neighbours(seed: int = 0) -> Iterator[None]:
    """Make scib-metrics' kBET depend on its inputs and ``seed`` alone, and cheap to start.

    kBET compares each label's cells on a diffusion map of its graph. scib-metrics computes that map
    with ARPACK from no given start vector (ARPACK then draws one from a generator that lives for the
    whole process) and looks the map's neighbours up with pynndescent, unseeded, whose numba kernels
    cost about 35 s to compile in every process. While the context is open, ARPACK starts from a
    vector drawn from ``seed`` and the map's neighbours come from :func:`compute_neighbors` (exact up to
    :data:`EXACT_KNN_MAX_CELLS` cells, seeded pynndescent above). Everything else is scib-metrics' code.
    """
    diffusion = importlib.import_module("scib_metrics.utils._diffusion_nn")

    def seeded_eigen(transitions_sym, n_comps: int = 15, sort: str = "decrease"):
        # deferred: imports scipy (this module is imported at workflow parse time)
        import scipy.sparse.linalg

        if n_comps == 0 or sort != "decrease":  # kbet_per_label asks for neither
            raise NotImplementedError("only the leading eigenvectors that kBET uses are seeded")
        matrix = transitions_sym.astype(np.float64)
        n_comps = min(matrix.shape[0] - 1, n_comps)
        start = np.random.default_rng(seed).uniform(-1.0, 1.0, matrix.shape[0])
        evals, evecs = scipy.sparse.linalg.eigsh(matrix, k=n_comps, which="LM", v0=start)
        return evals.astype(np.float32)[::-1], evecs.astype(np.float32)[:, ::-1]

    lookups = types.SimpleNamespace(
        pynndescent=lambda x, n_neighbors, **_: compute_neighbors(x, n_neighbors, seed=seed))
    replaced = {"_compute_eigen": seeded_eigen, "nearest_neighbors": lookups}
    originals = {name: getattr(diffusion, name) for name in replaced}
    for name, value in replaced.items():
        setattr(diffusion, name, value)
    try:
        yield
    finally:
        for name, value in originals.items():
            setattr(diffusion, name, value)


def graph_connectivity(neighbors, labels: np.ndarray) -> float:
    """Mean largest-connected-component fraction per label. Range [0, 1]; higher = labels stay connected."""
    scib_metrics = _library()
    return float(scib_metrics.graph_connectivity(neighbors, labels))


def pcr_comparison(pre_embedding: np.ndarray, embedding: np.ndarray, batches: np.ndarray) -> float:
    """Drop in batch-explained variance vs the unintegrated PCA. Range [0, 1]; higher = more removed."""
    scib_metrics = _library()
    return float(scib_metrics.pcr_comparison(pre_embedding, embedding, batches, categorical=True))


# --- all metrics for one embedding ----------------------------------------------------------

def compute_integration_metrics(
    embedding: np.ndarray,
    *,
    batches: np.ndarray,
    labels: np.ndarray,
    pre_embedding: np.ndarray,
    seed: int = 0,
    n_jobs: int = 1,
    progress: bool = True,
    subsample_max_cells: int | None = SUBSAMPLE_MAX_CELLS,
) -> dict[str, float]:
    """All metrics in :data:`METRICS` for one embedding (cells x dims); returns name -> value.

    ``pre_embedding`` is the unintegrated PCA (for PCR comparison). Checks shapes and finiteness
    before the (slow) neighbour search. Above ``subsample_max_cells`` cells (None: never) the
    :data:`SUBSAMPLED_METRICS` use a stratified subsample of that many cells (label x batch, ``seed``).
    """
    embedding = np.asarray(embedding, dtype=np.float32)
    batches = np.asarray(batches).astype(str)
    labels = np.asarray(labels).astype(str)
    n = embedding.shape[0]
    if embedding.ndim != 2 or len(batches) != n or len(labels) != n or pre_embedding.shape[0] != n:
        raise ValueError(
            f"embedding {embedding.shape}, batches {len(batches)}, labels {len(labels)} and "
            f"pre_embedding {pre_embedding.shape} must all have one row per cell"
        )
    if not np.isfinite(embedding).all():
        raise ValueError("embedding has non-finite values")
    if len(np.unique(batches)) < 2:
        raise ValueError("batch metrics need at least 2 batches")
    return _scib_metrics(embedding, batches, labels, np.asarray(pre_embedding), seed=seed, n_jobs=n_jobs,
                         progress=progress, subsample_max_cells=subsample_max_cells)


def graph_neighbors(graph):
    """A neighbour graph (sparse cells x cells distances, row i's stored entries = cell i's neighbours)
    as a scib-metrics ``NeighborsResults``: each cell first (distance 0, as scib-metrics' own graphs
    hold it), then its neighbours by distance. Every row keeps as many neighbours as the row with the
    fewest (BBKNN gives each cell the same number)."""
    _library()
    # deferred: imports scib-metrics, scipy (this module is imported at workflow parse time)
    import scipy.sparse
    from scib_metrics.nearest_neighbors import NeighborsResults

    graph = scipy.sparse.csr_matrix(graph)
    n = graph.shape[0]
    rows = np.repeat(np.arange(n), np.diff(graph.indptr))
    # the cell itself and stored zeros are no neighbours; each cell is put first below
    keep = (graph.indices != rows) & (graph.data != 0)
    rows, columns, data = rows[keep], graph.indices[keep], graph.data[keep]
    counts = np.bincount(rows, minlength=n)
    k = int(counts.min()) if n else 0
    if k < 1:
        raise ValueError(f"{int((counts == 0).sum())} cells of the neighbour graph have no neighbours")
    order = np.lexsort((data, rows))  # by cell, then by distance (stable: ties keep their stored order)
    nearest = (np.cumsum(counts) - counts)[:, None] + np.arange(k)  # each cell's k nearest, in ``order``
    self_column = np.arange(n)[:, None]
    indices = np.hstack([self_column, columns[order][nearest]]).astype(np.int64)
    distances = np.hstack([np.zeros((n, 1)), data[order][nearest]]).astype(np.float32)
    return NeighborsResults(indices=indices, distances=distances)


def compute_graph_metrics(graph, *, batches: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict[str, float]:
    """The :data:`GRAPH_METRICS` of a neighbour graph (a graph-only method's output); every other metric
    of :data:`METRICS` is NaN (not applicable: it needs an embedding).

    The graph's own neighbours serve every metric (BBKNN's default: 3 per batch), where an embedding's
    are 15 (graph connectivity, Leiden), 50 (kBET) and 90 (LISI); LISI's perplexity follows the
    neighbour count, as in scib-metrics. No subsample: a graph cannot be rebuilt on one.
    """
    batches = np.asarray(batches).astype(str)
    labels = np.asarray(labels).astype(str)
    if graph.shape[0] != len(batches) or len(labels) != len(batches):
        raise ValueError(f"graph {graph.shape}, batches {len(batches)} and labels {len(labels)} must all have one "
                         "row per cell")
    if len(np.unique(batches)) < 2:
        raise ValueError("batch metrics need at least 2 batches")
    neighbors = graph_neighbors(graph)
    values = {name: float("nan") for name in METRICS}
    values.update(ilisi=ilisi(neighbors, batches), clisi=clisi(neighbors, labels),
                  kbet=kbet(neighbors, batches, labels, seed=seed),
                  graph_connectivity=graph_connectivity(neighbors, labels),
                  **nmi_ari_leiden(neighbors, labels, seed=seed))
    return values


def metrics_subsample(labels: np.ndarray, batches: np.ndarray, max_cells: int | None, seed: int) -> np.ndarray:
    """Row positions the :data:`SUBSAMPLED_METRICS` are scored on: all cells up to ``max_cells``, else a
    stratified (label x batch) seeded subsample of exactly ``max_cells`` (sorted)."""
    n = len(labels)
    if max_cells is None or n <= max_cells:
        return np.arange(n)
    # deferred: imports scipy (this module is imported at workflow parse time)
    from scdiva.bench.core.sampling import stratified_indices

    strata = pd.DataFrame({"label": labels, "batch": batches})
    return stratified_indices(strata, max_cells, ["label", "batch"], seed)


def _scib_metrics(embedding: np.ndarray, batches: np.ndarray, labels: np.ndarray, pre_embedding: np.ndarray, *,
                  seed: int, n_jobs: int, progress: bool,
                  subsample_max_cells: int | None = SUBSAMPLE_MAX_CELLS) -> dict[str, float]:
    """Every metric of :data:`METRICS` on checked inputs: the neighbour graph once, each metric its own inputs."""
    # deferred: imports tqdm (this module is imported at workflow parse time)
    from tqdm.auto import tqdm

    neighbors = compute_neighbors(embedding, seed=seed, n_jobs=n_jobs)
    nn = {k: neighbors.subset_neighbors(n=min(k, neighbors.indices.shape[1])) for k in NEIGHBOR_COUNTS}
    sub = metrics_subsample(labels, batches, subsample_max_cells, seed)
    q_emb, q_labels, q_batches = embedding[sub], labels[sub], batches[sub]
    subsample_graph = functools.cache(lambda: compute_neighbors(q_emb, seed=seed, n_jobs=n_jobs))

    def subsample_neighbors(k: int):
        """k-NN graph of the subsample's cells among themselves (the full graph when nothing is left out)."""
        if sub.size == len(labels):
            return nn[k]
        return subsample_graph().subset_neighbors(n=min(k, sub.size - 1))
    steps = {
        "isolated_labels": lambda: isolated_labels(q_emb, q_labels, q_batches),
        "nmi_ari_kmeans": lambda: nmi_ari_kmeans(embedding, labels),
        "nmi_ari_leiden": lambda: nmi_ari_leiden(subsample_neighbors(15), q_labels, seed=seed),
        "silhouette_label": lambda: silhouette_label(q_emb, q_labels),
        "clisi": lambda: clisi(nn[90], labels),
        "bras": lambda: bras(q_emb, q_labels, q_batches),
        "silhouette_batch": lambda: silhouette_batch(q_emb, q_labels, q_batches),
        "ilisi": lambda: ilisi(nn[90], batches),
        "kbet": lambda: kbet(subsample_neighbors(50), q_batches, q_labels, seed=seed),
        "graph_connectivity": lambda: graph_connectivity(nn[15], labels),
        "pcr_comparison": lambda: pcr_comparison(pre_embedding, embedding, batches),
    }
    results: dict[str, float] = {}
    for name, step in tqdm(steps.items(), desc="scIB metrics", disable=not progress):
        value = step()
        results.update(value if isinstance(value, dict) else {name: value})
    return {name: results[name] for name in METRICS}


def aggregate_scores(values: Mapping[str, float], *, batch_weight: float = BATCH_WEIGHT,
                     leave_out: Collection[str] = ()) -> dict[str, float]:
    """batch_score, bio_score and total_score (0.4 batch + 0.6 bio) from raw metric values, and the
    same over the :data:`GRAPH_METRICS` alone (``graph_*``).

    Only metrics with ``in_aggregate=True`` count (for the graph aggregates: the graph metrics);
    NaN metrics (e.g. kBET with too few cells) are skipped in their group's mean. Values without a
    single embedding metric are a graph-only method's: its batch, bio and total scores are NaN (not
    applicable), not a mean of the graph metrics it has. Range [0, 1]; higher = better.

    Parameters
    ----------
    values
        Metric name -> raw value of one embedding.
    batch_weight
        Weight of the batch score in the total (the bio score gets the rest); scIB's 0.4 by default.
    leave_out
        Metrics left out of their group's mean (rank-stability checks; the tables use none).
    """
    def group_mean(kind: str, graph: bool) -> float:
        vals = [values[m.name] for m in METRICS.values()
                if m.kind == kind and (m.name in GRAPH_METRICS if graph else m.in_aggregate)
                and m.name not in leave_out and m.name in values and np.isfinite(values[m.name])]
        return float(np.mean(vals)) if vals else float("nan")

    graph_only = not any(np.isfinite(values.get(name, np.nan)) for name in METRICS if name not in GRAPH_METRICS)
    scores = {}
    for prefix, graph in (("", False), ("graph_", True)):
        batch, bio = group_mean("batch", graph), group_mean("bio", graph)
        if graph_only and not graph:
            batch = bio = float("nan")
        scores |= {f"{prefix}batch_score": batch, f"{prefix}bio_score": bio,
                   f"{prefix}total_score": batch_weight * batch + (1 - batch_weight) * bio}
    return scores


def metrics_frame(values: Mapping[str, float], **ids: Any) -> pd.DataFrame:
    """Long table (``ids`` columns, metric, value) of metric values plus their aggregates."""
    row = {**values, **aggregate_scores(values)}
    return pd.DataFrame({**{k: [v] * len(row) for k, v in ids.items()}, "metric": list(row),
                         "value": list(row.values())})


def metric_kind(name: str) -> str:
    """'batch', 'bio' or 'aggregate' for a metric column name."""
    return "aggregate" if name in AGGREGATES else METRICS[name].kind


def enable_jax_cache(cache_dir: str | Path | None) -> None:
    """Persist JAX compilations in ``cache_dir`` so later metrics jobs skip recompiling.

    ``$SCDIVA_JAX_CACHE_DIR``, when set, replaces ``cache_dir``: several working directories (the
    test suite's runs, CI) then share one cache instead of compiling the same kernels in each.
    """
    if not cache_dir:
        return

    # deferred: imports jax (this module is imported at workflow parse time)
    import jax

    cache_dir = os.environ.get("SCDIVA_JAX_CACHE_DIR") or cache_dir

    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(Path(cache_dir).resolve()))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


def load_embedding_files(runs: Iterable[tuple[str, int, str | Path]], preprocessed_path: str | Path, *,
                         batch_key: str, label_key: str,
                         problems: dict[tuple[str, int], tuple[str, str]] | None = None,
                         ) -> tuple[Any, dict[tuple[str, int], Any]]:
    """The preprocessed AnnData and every embedding file, all checked before any metric runs.

    Each file needs ``obsm["X_emb"]``, unique cell names and exactly the preprocessed cells (in
    any order); the preprocessed file needs the batch and label columns and ``obsm["X_pca"]``.

    Parameters
    ----------
    runs
        (method, seed, embedding file) of every run to load.
    preprocessed_path
        The dataset's preprocessed .h5ad (a problem with it raises: nothing can be scored).
    batch_key, label_key
        Its obs columns.
    problems
        If given, a file that cannot be scored does not raise: ``problems[(method, seed)]`` gets
        (status, one-line reason) and the file is left out of the result. A failure stub of the integrate
        job (``uns["status"]`` not ok) is recorded as ("skipped", "integration run <status>: ...").
    """
    # deferred: imports anndata (this module is imported at workflow parse time)
    import anndata as ad

    ref = ad.read_h5ad(preprocessed_path)
    for key, role in ((batch_key, "batch_key"), (label_key, "label_key")):
        if key not in ref.obs:
            raise KeyError(f"{preprocessed_path}: obs has no {role} column {key!r}")
    if "X_pca" not in ref.obsm:
        raise KeyError(f"{preprocessed_path}: no obsm['X_pca'] (needed for PCR comparison); rerun preprocess")
    ref_cells = set(ref.obs_names)
    embeddings = {}
    for method, seed, path in runs:
        try:
            emb = ad.read_h5ad(path)
            status, reason = embedding_status(emb)
            if status != "ok" and problems is not None:
                problems[(method, seed)] = ("skipped", f"integration run {status}: {reason}")
                continue
            if "X_emb" not in emb.obsm and GRAPH_KEY not in emb.obsp:
                # (a graph-only method's file holds obsp[GRAPH_KEY] instead)
                raise KeyError(f"{path}: no obsm['X_emb']; rerun its integrate job")
            if not emb.obs_names.is_unique:
                dups = emb.obs_names[emb.obs_names.duplicated()].unique()[:5].tolist()
                raise ValueError(f"{path}: duplicate cell names {dups}; rows cannot be matched to cells, "
                                 "rerun integrate")
            if ref_cells != set(emb.obs_names):
                raise ValueError(f"{path} and {preprocessed_path} hold different cells; rerun integrate")
        except Exception as err:  # noqa: BLE001 - recorded for this run only, when asked to
            if problems is None:
                raise
            message = first_line(err.args[0] if isinstance(err, KeyError) and err.args else str(err))
            if str(path) not in message:  # the reason names the file
                message = f"{path}: {type(err).__name__}: {message}"
            problems[(method, seed)] = ("failed", message)
            logging.getLogger(__name__).error("%s seed %s: %s cannot be scored: %s", method, seed, path, err)
            continue
        embeddings[(method, seed)] = emb
    return ref, embeddings


def aligned_cells(ref, obs_names: pd.Index):
    """``ref`` (an AnnData) with its cells in the order of ``obs_names``, so row i of an embedding
    whose cells are ``obs_names`` is scored against the batch, label and PCA of its own cell."""
    return ref if ref.obs_names.equals(obs_names) else ref[obs_names]


def score_embedding_files(
    runs: Iterable[tuple[str, int, str | Path]],
    preprocessed_path: str | Path,
    output_path: str | Path,
    *,
    dataset: str,
    batch_key: str,
    label_key: str,
    jax_cache_dir: str | Path | None = None,
    n_jobs: int = 1,
    status_path: str | Path | None = None,
) -> pd.DataFrame:
    """Score ``obsm["X_emb"]`` of every (method, seed, embedding file) of one dataset.

    All embeddings of a dataset are scored in one process on purpose: at benchmark sizes the
    numba/JAX start-up of scib-metrics costs far more than the metrics themselves (measured here:
    ~100 s for the first embedding of a process, ~6 s for each further one).
    Embedding rows are matched to the preprocessed cells by name (``obs_names``), so a file whose
    cells come in another order is realigned; a file with other cells or duplicate names is refused.
    Writes the by-seed long CSV (dataset, method, seed, metric, kind, value, n_cells) atomically, once
    every embedding is scored, and returns it; ``n_cells`` = the cells a value was computed on.

    Parameters
    ----------
    runs
        (method, seed, embedding file) of every run of the dataset.
    preprocessed_path
        The dataset's preprocessed .h5ad (batch and label columns, ``obsm["X_pca"]``).
    output_path
        Where the long CSV goes.
    dataset, batch_key, label_key
        The dataset's name and obs columns.
    jax_cache_dir
        JAX's persistent compilation cache (:func:`enable_jax_cache`).
    n_jobs
        Threads for the neighbour graphs.
    status_path
        With it, each embedding is scored on its own: one that cannot be loaded or scored is left out of
        the CSV (the others are written) and ``status_path`` gets a row per run (dataset, method, seed,
        status ``ok`` / ``failed`` / ``skipped``, one-line reason; skipped: the integration run itself did
        not produce an embedding). Without it, the first failure raises.
    """
    # deferred: imports tqdm (this module is imported at workflow parse time)
    from tqdm.auto import tqdm

    runs = list(runs)
    isolate = status_path is not None
    problems: dict[tuple[str, int], tuple[str, str]] | None = {} if isolate else None
    ref, embeddings = load_embedding_files(runs, preprocessed_path, batch_key=batch_key, label_key=label_key,
                                           problems=problems)
    enable_jax_cache(jax_cache_dir)
    frames = []
    for method, seed, _ in tqdm(runs, desc=f"scIB metrics ({dataset})", unit="embedding"):
        if (method, seed) not in embeddings:
            continue
        emb = embeddings[(method, seed)]
        try:
            frames.append(_score_one(emb, ref, dataset=dataset, method=method, seed=seed, batch_key=batch_key,
                                     label_key=label_key, n_jobs=n_jobs))
        except Exception as err:  # noqa: BLE001 - one embedding's failure is its own; the others are written
            if not isolate:
                raise
            logging.getLogger(__name__).exception("scIB metrics of %s seed %s failed", method, seed)
            problems[(method, seed)] = ("failed", first_line(f"{type(err).__name__}: {err}"))
    columns = ["dataset", "method", "seed", "metric", "kind", "value", "n_cells"]
    result = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    with atomic_path(output_path) as tmp:
        result.to_csv(tmp, index=False)
    if isolate:
        verdicts = {(method, seed): problems.get((method, seed), ("ok", "")) for method, seed, _ in runs}
        rows = [{"dataset": dataset, "method": method, "seed": seed, "status": status, "reason": reason}
                for (method, seed), (status, reason) in verdicts.items()]
        with atomic_path(status_path) as tmp:
            pd.DataFrame(rows, columns=["dataset", "method", "seed", "status", "reason"]).to_csv(tmp, index=False)
    return result


def _score_one(emb: Any, ref: Any, *, dataset: str, method: str, seed: int, batch_key: str, label_key: str,
               n_jobs: int) -> pd.DataFrame:
    """The long rows of one embedding (see :func:`score_embedding_files`)."""
    cells = aligned_cells(ref, emb.obs_names)
    if GRAPH_KEY in emb.obsp and "X_emb" not in emb.obsm:  # a graph-only method (BBKNN)
        values = compute_graph_metrics(emb.obsp[GRAPH_KEY], batches=cells.obs[batch_key].to_numpy(),
                                       labels=cells.obs[label_key].to_numpy(), seed=seed)
        return _long_rows(values, cells.n_obs, dataset=dataset, method=method, seed=seed, subsampled=False)
    values = compute_integration_metrics(
        emb.obsm["X_emb"],
        batches=cells.obs[batch_key].to_numpy(),
        labels=cells.obs[label_key].to_numpy(),
        pre_embedding=np.asarray(cells.obsm["X_pca"]),
        seed=seed,
        n_jobs=n_jobs,
        progress=False,
    )
    return _long_rows(values, cells.n_obs, dataset=dataset, method=method, seed=seed, subsampled=True)


def _long_rows(values: Mapping[str, float], n_cells: int, *, dataset: str, method: str, seed: int,
               subsampled: bool) -> pd.DataFrame:
    frame = metrics_frame(values, dataset=dataset, method=method, seed=seed)
    frame.insert(frame.columns.get_loc("metric") + 1, "kind", frame["metric"].map(metric_kind))
    # Cells each value was computed on (the subsampled metrics' subsample above SUBSAMPLE_MAX_CELLS).
    frame["n_cells"] = [cells_scored(m, n_cells) if m in METRICS and subsampled else n_cells
                        for m in frame["metric"]]
    return frame


def score_embedding(
    adata: Any,
    obsm_key: str,
    batch_key: str,
    label_key: str,
    pre_embedding_key: str | None = "X_pca",
    *,
    seed: int = 0,
    n_jobs: int = 1,
) -> pd.DataFrame:
    """Score your own embedding ``adata.obsm[obsm_key]`` with the benchmark's scIB metrics.

    The same long table the workflow's metrics stage writes: one row per metric of :data:`METRICS`
    plus the ``batch_score``, ``bio_score`` and ``total_score`` aggregates, columns ``metric``,
    ``kind`` (batch / bio / aggregate) and ``value``. Every value lies in [0, 1], higher = better.
    ``pre_embedding_key`` names the unintegrated embedding PCR comparison measures against
    (``obsm["X_pca"]`` by default); ``None`` computes a 50-component PCA of ``adata.X`` (which
    should then be log-normalised expression). Missing keys are refused before any metric runs.
    """
    if obsm_key not in adata.obsm:
        raise KeyError(f"adata.obsm has no {obsm_key!r} (has {sorted(adata.obsm)}); pass the key of your embedding")
    for key, role in ((batch_key, "batch_key"), (label_key, "label_key")):
        if key not in adata.obs:
            raise KeyError(f"adata.obs has no {role} column {key!r} (has {list(adata.obs.columns)})")
    if pre_embedding_key is None:
        # deferred: imports scanpy (this module is imported at workflow parse time)
        import scanpy as sc

        n_comps = min(50, adata.n_obs - 1, adata.n_vars - 1)
        pre_embedding = sc.pp.pca(adata.X, n_comps=n_comps, random_state=seed)
    elif pre_embedding_key not in adata.obsm:
        raise KeyError(f"adata.obsm has no {pre_embedding_key!r} for PCR comparison; pass its key or "
                       "pre_embedding_key=None to compute a PCA of adata.X")
    else:
        pre_embedding = adata.obsm[pre_embedding_key]
    values = compute_integration_metrics(
        np.asarray(adata.obsm[obsm_key]),
        batches=adata.obs[batch_key].to_numpy(),
        labels=adata.obs[label_key].to_numpy(),
        pre_embedding=np.asarray(pre_embedding),
        seed=seed,
        n_jobs=n_jobs,
        progress=False,
    )
    frame = metrics_frame(values)
    frame.insert(1, "kind", frame["metric"].map(metric_kind))
    return frame
