"""End-to-end: the smoke workflow (config/smoke.yaml, 600 real PBMCs, all five methods), run once."""

from __future__ import annotations

import base64
import re

import anndata
import numpy as np
import pandas as pd
import pytest

from scdiva.bench.tasks.integration.metrics import AGGREGATES, METRICS

pytestmark = pytest.mark.slow

DATASET = "pbmc_3chem"
METHODS = ["unintegrated", "harmony", "scanorama", "scvi", "scanvi"]
# Wall time is a performance figure, not a pass/fail criterion here: it is printed by the fixture's
# user (see the README) and measured with `time make smoke`.


def test_every_expected_output_exists(smoke_run):
    res = smoke_run.workdir / "results"
    expected = [f"{DATASET}/preprocessed.h5ad", "tables/integration_scores.csv",
                "tables/integration_scores_by_seed.csv", f"tables/{DATASET}_integration_wide.csv",
                "report/index.html", "report/report.md", f"report/tables/{DATASET}_integration.tex",
                f"report/tables/{DATASET}_integration.csv", "report/tables/benchmark_walltimes.csv",
                "report/tables/versions.csv", f"{DATASET}/integration/metrics.csv"]
    expected += [f"report/figures/{DATASET}_{name}.{ext}" for name in ("scib_results", "umap") for ext in ("png", "pdf")]
    for method in METHODS:
        expected += [f"{DATASET}/integration/{method}/seed0.h5ad",
                     f"benchmarks/integrate/{DATASET}.{method}.seed0.tsv", f"logs/integrate/{DATASET}.{method}.seed0.log"]
    missing = [p for p in expected if not (res / p).is_file() or (res / p).stat().st_size == 0]
    assert not missing
    leftovers = [p for p in res.rglob("*") if ".tmp" in p.name]
    assert not leftovers  # atomic writes leave no temporary files


def test_embedding_files_follow_the_contract(smoke_run):
    res = smoke_run.workdir / "results" / DATASET
    cells = anndata.read_h5ad(res / "preprocessed.h5ad", backed="r").obs_names
    for method in METHODS:
        emb = anndata.read_h5ad(res / "integration" / method / "seed0.h5ad")
        assert emb.obs_names.equals(cells)
        assert np.isfinite(emb.obsm["X_emb"]).all()
        assert emb.uns["runtime_s"] > 0 and emb.uns["seed"] == 0 and emb.uns["method"] == method


def test_tables_have_every_metric_in_unit_interval(smoke_run):
    long = pd.read_csv(smoke_run.workdir / "results/tables/integration_scores.csv")
    assert list(long.columns[:3]) == ["dataset", "method", "metric"]
    assert {"value", "std", "n_seeds"} <= set(long.columns)
    assert set(METHODS) <= set(long["method"])  # plus any methods other parts add (ScDiVa)
    assert set(long["metric"]) == set(METRICS) | set(AGGREGATES)
    assert long["value"].notna().all()
    lowest = long["metric"].map(lambda m: METRICS[m].lowest if m in METRICS else 0.0)
    in_range = long["value"].between(lowest, 1)
    assert in_range.all(), long[~in_range]
    assert (long["n_seeds"] == 1).all()
    by_seed = pd.read_csv(smoke_run.workdir / "results/tables/integration_scores_by_seed.csv")
    assert len(by_seed) == len(long) and (by_seed["seed"] == 0).all()
    wide = pd.read_csv(smoke_run.workdir / f"results/tables/{DATASET}_integration_wide.csv", index_col=0)
    row = wide.loc["harmony"]
    bio = np.mean([row[m] for m, i in METRICS.items() if i.kind == "bio" and i.in_aggregate])
    batch = np.mean([row[m] for m, i in METRICS.items() if i.kind == "batch" and i.in_aggregate])
    assert row["total_score"] == pytest.approx(0.4 * batch + 0.6 * bio)


def test_integration_improves_batch_mixing_over_pca(smoke_run):
    wide = pd.read_csv(smoke_run.workdir / f"results/tables/{DATASET}_integration_wide.csv", index_col=0)
    pca = wide.loc["unintegrated"]
    for method in ("harmony", "scanorama"):
        assert wide.loc[method, "ilisi"] > pca["ilisi"] + 0.05, wide[["ilisi", "kbet", "batch_score"]]
        assert wide.loc[method, "batch_score"] > pca["batch_score"]


def test_report_is_self_contained(smoke_run):
    html = (smoke_run.workdir / "results/report/index.html").read_text()
    srcs = re.findall(r'src="([^"]*)"', html)
    assert len(srcs) >= 2 and all(s.startswith("data:image/") for s in srcs)
    base64.b64decode(srcs[0].split(",", 1)[1], validate=True)
    for title in ("Integration: pbmc_3chem", "Wall time per rule", "Package versions"):
        assert title in html
    assert "<table>" in html and "harmony" in html
    md = (smoke_run.workdir / "results/report/report.md").read_text()
    assert "figures/pbmc_3chem_umap.png" in md


def test_multimodal_and_cross_species_tables(smoke_run):
    """Both issue-17 benchmarks ran on subsampled real data (config/smoke.yaml) and reached the report."""
    results = smoke_run.workdir / "results"
    multimodal = pd.read_csv(results / "tables/multimodal_scores.csv")
    assert set(multimodal["method"]) == {"scdiva", "totalvi", "mean_protein"}
    scdiva = multimodal[multimodal["method"] == "scdiva"].set_index("metric")["value"]
    for metric in ("rna_graph_agreement", "protein_graph_agreement", "hto_ilisi", "protein_cluster_nmi"):
        assert 0.0 <= scdiva[metric] <= 1.0, (metric, scdiva[metric])
    assert np.isfinite(scdiva[["protein_pearson", "protein_spearman", "protein_mse"]]).all()
    assert multimodal.columns[-1] == "run_id"
    cross = pd.read_csv(results / "tables/cross_species_scores.csv")
    annotation = cross[cross["task"] == "annotation"]
    directions = {("pancreas_human", "pancreas_mouse"), ("pancreas_mouse", "pancreas_human")}
    assert set(map(tuple, annotation[["reference", "query"]].drop_duplicates().to_numpy())) == directions
    assert set(annotation["method"]) == {"scdiva", "logreg", "scanvi"}
    for method in ("scdiva", "scanvi"):  # the model and the tool people use, both directions, scored
        rows = annotation[(annotation["method"] == method) & annotation["metric"].isin(["accuracy", "macro_f1"])]
        assert set(map(tuple, rows[["reference", "query"]].drop_duplicates().to_numpy())) == directions, method
        assert len(rows) == 4 and rows["value"].between(0, 1).all(), rows
    # mouse-only types are reported when human is the reference
    assert annotation["metric"].str.startswith("unseen_cells:").any()
    integration = cross[cross["task"] == "integration"]
    assert set(integration["method"]) == {"unintegrated", "scvi"}  # species as the batch
    for method, rows in integration.groupby("method"):
        assert set(rows["metric"]) >= set(METRICS) | set(AGGREGATES), method
        scored = rows[rows["metric"].isin([*METRICS, *AGGREGATES])]
        assert scored["value"].between(0, 1).all() and scored["value"].notna().all(), (method, scored)
    md = (results / "report/report.md").read_text()
    assert "Multi-modal integration (RNA + protein)" in md and "Cross-species annotation and integration" in md
    assert "gives no numbers" in md
    assert (results / "report/figures/cross_species_scdiva_pancreas_human_to_pancreas_mouse_confusion.png").is_file()
    assert (results / "report/figures/multimodal_citeseq_pbmc_protein_prediction.png").is_file()
