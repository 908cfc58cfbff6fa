"""Graph-only integration methods (BBKNN): scored on the metrics that need only a neighbour graph,
the embedding metrics not applicable (NaN, shown as such), and a total over the graph metrics that
every method has, so a graph-only method is compared on what it can be scored on."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse

from scdiva.bench.methods._common import GRAPH_KEY
from scdiva.bench.methods.contract import check_graph
from scdiva.bench.methods.record import MethodError
from scdiva.bench.tasks.integration import metrics as M


def test_a_graph_methods_aggregates_cover_the_graph_metrics_only():
    values = {name: float("nan") for name in M.METRICS}
    values |= {"ilisi": 0.2, "kbet": 0.4, "graph_connectivity": 0.9, "clisi": 0.8, "nmi_leiden": 0.6, "ari_leiden": 0.4}
    agg = M.aggregate_scores(values)
    # not a mean of the graph metrics it has: the embedding-based aggregates are not applicable
    assert np.isnan(agg["batch_score"]) and np.isnan(agg["bio_score"]) and np.isnan(agg["total_score"])
    assert agg["graph_batch_score"] == pytest.approx(0.5)
    assert agg["graph_bio_score"] == pytest.approx(0.6)
    assert agg["graph_total_score"] == pytest.approx(0.4 * 0.5 + 0.6 * 0.6)
    # an embedding method has both, the graph total from the same six metrics
    full = {**values, "isolated_labels": 0.5, "nmi_kmeans": 0.5, "ari_kmeans": 0.5, "silhouette_label": 0.5,
            "bras": 0.5, "silhouette_batch": 0.5, "pcr_comparison": 0.5}
    both = M.aggregate_scores(full)
    assert np.isfinite(both["total_score"]) and both["graph_total_score"] == pytest.approx(agg["graph_total_score"])


def test_graph_neighbors_put_each_cell_first_then_its_neighbours_by_distance():
    graph = scipy.sparse.csr_matrix(np.array([[0, 3.0, 1.0, 0], [2.0, 0, 0, 1.0], [0, 5.0, 0, 4.0],
                                              [1.0, 0, 2.0, 0]], dtype=np.float32))
    nn = M.graph_neighbors(graph)
    assert nn.indices.tolist() == [[0, 2, 1], [1, 3, 0], [2, 3, 1], [3, 0, 2]]
    assert nn.distances.tolist() == [[0, 1, 3], [0, 1, 2], [0, 4, 5], [0, 1, 2]]


@pytest.mark.parametrize(("graph", "message"), [
    (np.ones((3, 3)), "is a ndarray; a neighbour graph is a scipy sparse matrix"),
    (scipy.sparse.csr_matrix(np.ones((3, 2))), r"has shape \(3, 2\) for 3 cells"),
    (scipy.sparse.csr_matrix(np.array([[0, -1.0, 0], [1, 0, 0], [1, 0, 0]])), "negative or non-finite"),
    (scipy.sparse.csr_matrix(np.array([[0, 1.0, 0], [1, 0, 0], [0, 0, 0]])), r"1 cells have no neighbours \(first: row 2\)"),
])
def test_the_graph_contract_names_the_method_and_the_problem(graph, message):
    with pytest.raises(MethodError, match=r"integration method 'g': obsp\['graph_distances'\]:? .*" + message):
        check_graph(graph, n_cells=3, method="g", source=f"obsp[{GRAPH_KEY!r}]")


@pytest.mark.jax
def test_bbknn_graph_scores_equal_scib_metrics_on_the_same_graph(pbmc_small):
    """BBKNN through the harness (api.integrate) and the metrics stage's graph path, against
    scib-metrics' functions called here on a NeighborsResults built from the same graph."""
    import scib_metrics
    from scib_metrics.nearest_neighbors import NeighborsResults

    from scdiva.bench.api import integrate

    adata = pbmc_small.copy()
    integrate(adata, "bbknn", batch_key="donor", label_key="cell_type", seed=0, threads=1)
    assert "X_emb" not in adata.obsm
    graph = adata.obsp[GRAPH_KEY]
    batches, labels = adata.obs["donor"].astype(str).to_numpy(), adata.obs["cell_type"].astype(str).to_numpy()
    per_batch = 3  # bbknn's default neighbours within each batch; the cell itself is not stored
    assert set(np.diff(graph.indptr)) == {per_batch * len(set(batches)) - 1}
    ours = M.compute_graph_metrics(graph, batches=batches, labels=labels, seed=0)

    rows = [graph.getrow(i) for i in range(graph.shape[0])]
    order = [np.argsort(r.data, kind="stable") for r in rows]
    nn = NeighborsResults(indices=np.array([[i, *r.indices[o]] for i, (r, o) in enumerate(zip(rows, order, strict=True))]),
                          distances=np.array([[0.0, *r.data[o]] for r, o in zip(rows, order, strict=True)], dtype=np.float32))
    with M.seeded_diffusion_neighbours(0):
        kbet = scib_metrics.kbet_per_label(nn, batches, labels)
    leiden = scib_metrics.nmi_ari_cluster_labels_leiden(nn, labels, optimize_resolution=True, seed=0)
    expected = {"ilisi": scib_metrics.ilisi_knn(nn, batches), "clisi": scib_metrics.clisi_knn(nn, labels),
                "kbet": kbet, "graph_connectivity": scib_metrics.graph_connectivity(nn, labels),
                "nmi_leiden": leiden["nmi"], "ari_leiden": leiden["ari"]}
    assert {k: ours[k] for k in M.GRAPH_METRICS} == pytest.approx({k: float(v) for k, v in expected.items()})
    assert all(np.isnan(ours[name]) for name in M.METRICS if name not in M.GRAPH_METRICS)
    # batch-balanced: every cell has neighbours in every batch, which the unintegrated PCA's graph lacks
    pca = M.compute_neighbors(adata.obsm["X_pca"], 9)
    assert ours["kbet"] > M.kbet(pca, batches, labels)


@pytest.mark.jax
def test_the_metrics_stage_scores_a_graph_file_beside_an_embedding_file(tmp_path, pbmc_small):
    from scdiva.bench.api import integrate
    from scdiva.bench.methods._common import write_embedding

    adata = pbmc_small.copy()
    runs = []
    for method in ("bbknn", "unintegrated"):
        integrate(adata, method, batch_key="donor", label_key="cell_type", seed=0, threads=1)
        write_embedding(adata, tmp_path / f"{method}.h5ad", method=method, seed=0)
        runs.append((method, 0, tmp_path / f"{method}.h5ad"))
        adata.obsm.pop("X_emb", None)
    saved = ad.read_h5ad(tmp_path / "bbknn.h5ad")
    assert GRAPH_KEY in saved.obsp and "X_emb" not in saved.obsm
    pre = tmp_path / "pre.h5ad"
    pbmc_small.write_h5ad(pre)
    long = M.score_embedding_files(runs, pre, tmp_path / "scores.csv", dataset="d", batch_key="donor",
                                   label_key="cell_type", status_path=tmp_path / "status.csv")
    assert (pd.read_csv(tmp_path / "status.csv")["status"] == "ok").all()
    values = long.pivot_table(index="method", columns="metric", values="value", dropna=False)
    graph_only = [name for name in M.METRICS if name not in M.GRAPH_METRICS] + ["batch_score", "bio_score", "total_score"]
    assert values.loc["bbknn", graph_only].isna().all()  # not applicable: not zero, not dropped
    assert values.loc["bbknn", ["graph_total_score", *M.GRAPH_METRICS]].notna().all()
    assert values.loc["unintegrated"].notna().all()
    assert values.loc["bbknn", "graph_batch_score"] > values.loc["unintegrated", "graph_batch_score"]


def test_the_integration_section_shows_a_graph_method_as_not_applicable(tmp_path, report_files):
    from scdiva.bench.report.integration import DatasetInputs, integration_sections
    from scdiva.bench.report.tables import summarise_seeds

    embedding_methods = {"scvi": 0.6, "unintegrated": 0.3}
    preprocessed, paths = report_files(embedding_methods)
    graph_file = tmp_path / "bbknn.h5ad"
    cells = ad.read_h5ad(preprocessed).obs_names
    graph = ad.AnnData(obs=pd.DataFrame(index=cells))
    graph.obsp[GRAPH_KEY] = scipy.sparse.csr_matrix(np.roll(np.eye(len(cells), dtype=np.float32), 1, axis=1))
    graph.write_h5ad(graph_file)
    paths["bbknn"] = str(graph_file)
    rows = []
    for seed in (0, 1):
        for method, level in {**embedding_methods, "bbknn": None}.items():
            values = {name: (level if level is not None or name in M.GRAPH_METRICS else float("nan"))
                      for name in M.METRICS}
            if level is None:
                values |= dict.fromkeys(M.GRAPH_METRICS, 0.5 + 0.01 * seed)
            rows.append(M.metrics_frame(values, dataset="d", method=method, seed=seed))
    by_seed = pd.concat(rows, ignore_index=True)
    by_seed["kind"] = by_seed["metric"].map(M.metric_kind)
    sections = integration_sections(summarise_seeds(by_seed), {"d": DatasetInputs("batch", "label", preprocessed, paths)},
                                    tmp_path / "report", bench_dir=tmp_path / "none", by_seed=by_seed, reference="scvi")
    text = next(s for s in sections if s.title == "Integration: d").markdown
    assert "Best total score: **scvi** (0.600)" in text
    assert "`bbknn` gives a neighbour graph, not an embedding" in text
    assert "No UMAP of `bbknn`: a graph has no coordinates." in text
    wide = pd.read_csv(tmp_path / "report/tables/d_integration_wide.csv", index_col=0)
    assert np.isnan(wide.loc["bbknn", "total_score"]) and np.isnan(wide.loc["bbknn", "silhouette_label"])
    assert wide.loc["bbknn", "graph_total_score"] == pytest.approx(0.505)
    assert wide.loc["scvi", "graph_total_score"] == pytest.approx(0.6)
    pretty = pd.read_csv(tmp_path / "report/tables/d_integration.csv", index_col=0)
    assert pretty.loc["bbknn", "total_score"] == "n/a (graph)"
    assert pretty.loc["bbknn", "Silhouette label"] == "n/a (graph)"
    assert pretty.loc["bbknn", "graph_total_score"].startswith("0.505") and pretty.loc["bbknn", "seeds"] == 2
    ranks = pd.read_csv(tmp_path / "report/tables/d_rank_stability.csv", index_col=0)
    assert "bbknn" not in ranks.index  # no total, so not ranked on it


@pytest.mark.slow
def test_bbknn_runs_through_the_workflow_into_the_report(smoke_run, workflow_tools, tmp_path):
    """The smoke run with BBKNN added: its job, the metrics stage, the tables and the report."""
    import yaml

    workdir = workflow_tools.copy(smoke_run, tmp_path / "run")
    methods = yaml.safe_load((workflow_tools.repo / "config" / "config.yaml").read_text())["integration"]["methods"]
    overlay = tmp_path / "bbknn.yaml"
    overlay.write_text(yaml.safe_dump({"integration": {"methods": [*methods, "bbknn"]}}))
    workflow_tools.run(workdir, overlay)
    results = workdir / "results"
    runs = pd.read_csv(results / "tables/runs.csv")
    assert runs.loc[runs["method"] == "bbknn", "status"].tolist() == ["ok"]
    long = pd.read_csv(results / "tables/integration_scores.csv")
    bbknn = long[long["method"] == "bbknn"].set_index("metric")["value"]
    embedding_only = [name for name in M.METRICS if name not in M.GRAPH_METRICS]
    assert bbknn[[*embedding_only, "batch_score", "bio_score", "total_score"]].isna().all()
    assert bbknn[[*M.GRAPH_METRICS, "graph_total_score"]].between(0, 1).all()
    harmony = long[long["method"] == "harmony"].set_index("metric")["value"]
    assert np.isfinite(harmony["graph_total_score"]) and np.isfinite(harmony["total_score"])
    report = (results / "report/report.md").read_text()
    assert "`bbknn` gives a neighbour graph, not an embedding" in report and "n/a (graph)" in report
