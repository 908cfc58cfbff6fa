"""runs.csv in the report: the coverage matrix, and aggregate tables / rankings over completed runs only.

Fixtures are hand-written runs.csv rows (the format of results/tables/runs.csv) with real AnnData
files; a failed run's embedding is a failure stub (no obsm["X_emb"], uns["status"] "failed").
"""

from __future__ import annotations

import re

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from scdiva.bench.report import render_html, write_report
from scdiva.bench.report.coverage import (
    RUNS_COLUMNS,
    coverage_matrix,
    coverage_section,
    only_completed,
    read_runs,
    seed_counts,
)
from scdiva.bench.report.tables import summarise_seeds, wide_table

REASON = "MethodError: method 'broken' wrote no obsm['X_emb'] (it wrote: X_pca)"


def run_rows(rows: list[tuple]) -> pd.DataFrame:
    """runs.csv rows from (dataset, task, method, seed, status, reason)."""
    frame = pd.DataFrame(rows, columns=["dataset", "task", "method", "seed", "status", "reason"])
    ok = frame["status"] == "ok"
    return frame.assign(wall_s=np.where(ok, 12.5, 3.0), peak_rss_mb=np.where(ok, 812.0, 300.0),
                        n_cells=200, cells_per_s=np.where(ok, 16.0, np.nan))[list(RUNS_COLUMNS)]


RUNS = run_rows([
    ("pbmc", "integration", "harmony", 0, "ok", ""),
    ("pbmc", "integration", "harmony", 1, "ok", ""),
    ("pbmc", "integration", "broken", 0, "failed", REASON),
    ("pbmc", "integration", "broken", 1, "failed", REASON),
    ("pbmc", "integration", "flaky", 0, "ok", "3 of 10 columns are constant"),
    ("pbmc", "integration", "flaky", 1, "timeout", "timed out after 60 s (runtime 1 min)"),
    ("pbmc", "annotation", "logreg", 0, "ok", ""),
    ("pbmc", "annotation", "logreg", 1, "out_of_memory", "killed by the kernel (out of memory)"),
])


def metric_rows(method: str, seed: int, total: float, kbet: float = 0.5) -> list[dict]:
    return [{"dataset": "pbmc", "method": method, "seed": seed, "metric": metric, "kind": kind, "value": value}
            for metric, kind, value in (("kbet", "batch", kbet), ("total_score", "aggregate", total))]


def test_matrix_counts_each_status_over_seeds():
    matrix = coverage_matrix(RUNS)
    assert list(matrix.columns) == ["harmony", "broken", "flaky", "logreg"]
    assert matrix.loc[("pbmc", "integration"), "harmony"] == "ok 2/2"
    assert matrix.loc[("pbmc", "integration"), "broken"] == "failed 2/2"
    assert matrix.loc[("pbmc", "integration"), "flaky"] == "timeout 1/2 · ok 1/2"
    assert matrix.loc[("pbmc", "annotation"), "logreg"] == "out_of_memory 1/2 · ok 1/2"
    assert matrix.loc[("pbmc", "annotation"), "harmony"] == ""  # not scheduled


def test_coverage_section_colours_cells_and_lists_reasons(tmp_path):
    section = coverage_section(RUNS)
    md = section.markdown
    assert "4 of 8 completed" in md
    assert f"- `broken` (integration, `pbmc`): **failed** on seeds 0, 1: {REASON}" in md
    assert "- `flaky` (integration, `pbmc`): **timeout** on seed 1: timed out after 60 s (runtime 1 min)" in md
    assert "- `logreg` (annotation, `pbmc`): **out_of_memory** on seed 1" in md
    assert "- `flaky` (integration, `pbmc`, seed 0): 3 of 10 columns are constant" in md  # flags of an ok run
    assert "| failed 2/2 " in md  # report.md: the matrix as text
    page = render_html([section], "t")
    assert '<td class="st-failed" title="seed 0: failed, 3.0 s, 300 MB peak RSS' in page
    assert '<td class="st-ok" title="seed 0: ok, 12.5 s, 812 MB peak RSS\nseed 1: ok, 12.5 s' in page
    assert '<td class="st-timeout"' in page and '<td class="st-none" title="not scheduled">' in page
    assert ".st-failed{background:" in page
    assert "<summary>Wall time and peak memory per run</summary>" in page
    folded = page[page.index("<summary>Wall time"):]
    assert ">812</td>" in folded and ">–</td>" in folded  # no cells / s for a failed run: a dash, not 0
    md_path, html_path = write_report([section], tmp_path / "report")
    assert "st-failed" not in md_path.read_text() and "st-failed" in html_path.read_text()


def test_runs_file_is_checked(tmp_path):
    path = tmp_path / "runs.csv"
    RUNS.to_csv(path, index=False)
    back = read_runs(path)
    assert back["reason"].iloc[0] == "" and back["seed"].dtype.kind == "i"
    assert np.isnan(back["cells_per_s"].iloc[2])
    RUNS.drop(columns="peak_rss_mb").to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"runs\.csv: missing columns \['peak_rss_mb'\].*rerun rule runs_table"):
        read_runs(path)
    RUNS.assign(status="crashed").to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"unknown status \['crashed'\]; a run's status is one of"):
        read_runs(path)


def test_means_are_over_completed_seeds_only():
    """A failed run's rows (a 0 or NaN a broken job left behind) never reach a mean."""
    by_seed = pd.DataFrame([*metric_rows("harmony", 0, 0.6), *metric_rows("harmony", 1, 0.8),
                            *metric_rows("broken", 0, 0.0, kbet=np.nan), *metric_rows("broken", 1, np.nan),
                            *metric_rows("flaky", 0, 0.9), *metric_rows("flaky", 1, 0.0)])
    kept = only_completed(by_seed, RUNS, "integration")
    assert set(zip(kept["method"], kept["seed"], strict=True)) == {("harmony", 0), ("harmony", 1), ("flaky", 0)}
    long = summarise_seeds(kept).set_index(["method", "metric"])
    assert long.loc[("harmony", "total_score"), "value"] == pytest.approx(0.7)
    assert long.loc[("flaky", "total_score"), "value"] == pytest.approx(0.9)  # not (0.9 + 0) / 2
    assert long.loc[("flaky", "total_score"), "n_seeds"] == 1
    assert "broken" not in long.index.get_level_values("method")
    counts = seed_counts(RUNS, "integration", "pbmc").droplevel("dataset")
    assert counts.to_dict("index") == {"harmony": {"n_ok": 2, "n_scheduled": 2, "complete": True},
                                       "broken": {"n_ok": 0, "n_scheduled": 2, "complete": False},
                                       "flaky": {"n_ok": 1, "n_scheduled": 2, "complete": False}}
    # flaky has the higher mean but only over 1 of 2 seeds: ranked after harmony
    wide = wide_table(summarise_seeds(kept), "pbmc", ranked=["harmony"])
    assert list(wide.index) == ["harmony", "flaky"]


def test_metric_undefined_by_definition_keeps_its_documented_mean():
    """kBET NaN in a completed run (too few cells) is not a failure: mean over the seeds where it is
    defined, n_seeds counts them."""
    by_seed = pd.DataFrame([*metric_rows("harmony", 0, 0.6, kbet=0.4), *metric_rows("harmony", 1, 0.8, kbet=np.nan)])
    long = summarise_seeds(only_completed(by_seed, RUNS, "integration")).set_index("metric")
    assert long.loc["kbet", "value"] == pytest.approx(0.4) and long.loc["kbet", "n_seeds"] == 1
    assert long.loc["total_score", "n_seeds"] == 2


@pytest.fixture
def dataset_files(tmp_path):
    """A 90-cell preprocessed file and first-seed embeddings: harmony and flaky ok, broken a failure stub."""
    rng = np.random.default_rng(0)
    obs = pd.DataFrame({"batch": np.repeat(["a", "b", "c"], 30), "label": np.tile(["t", "b", "m"], 30)},
                       index=[f"c{i}" for i in range(90)])
    ad.AnnData(X=rng.random((90, 5)).astype(np.float32), obs=obs).write_h5ad(tmp_path / "pre.h5ad")
    paths = {}
    for method in ("harmony", "flaky", "broken"):
        emb = ad.AnnData(obs=obs.iloc[::-1][[]])
        if method == "broken":
            emb.uns["status"] = "failed"
        else:
            emb.obsm["X_emb"] = rng.normal(size=(90, 4)).astype(np.float32)
        paths[method] = str(tmp_path / f"{method}.h5ad")
        emb.write_h5ad(paths[method])
    return tmp_path / "pre.h5ad", paths


def test_integration_section_ranks_complete_methods_and_names_the_left_out(tmp_path, dataset_files, monkeypatch):
    from scdiva.bench.report import integration
    from scdiva.bench.report.integration import DatasetInputs, integration_sections

    umaps = {}  # the UMAP grid itself is tested elsewhere (and takes minutes to compile here): which runs reach it
    monkeypatch.setattr(integration, "umap_grid", lambda obs, embeddings, **kw: umaps.update(
        {m: e.shape for m, e in embeddings.items()}) or integration.message_figure("umaps", kw["paths"]))
    preprocessed, embeddings = dataset_files
    by_seed = pd.DataFrame([*metric_rows("harmony", 0, 0.6), *metric_rows("harmony", 1, 0.8),
                            *metric_rows("flaky", 0, 0.9)])
    long = summarise_seeds(by_seed).assign(kind="batch")
    inputs = {"pbmc": DatasetInputs("batch", "label", str(preprocessed), embeddings)}
    sections = integration_sections(long, inputs, tmp_path / "report", runs=RUNS, bench_dir=tmp_path / "none")
    text = next(s for s in sections if s.title == "Integration: pbmc").markdown
    assert "Best total score: **harmony** (0.700)" in text  # flaky's 0.9 is over 1 of 2 seeds
    rows = [line.replace(" ", "") for line in text.splitlines()]
    assert "|harmony|2/2|0.700±0.141|" in rows and "|flaky|1/2(notranked)|0.900|" in rows
    assert f"- `broken`: **failed** on seeds 0, 1: {REASON}" in text
    assert "- `flaky`: **timeout** on seed 1: timed out after 60 s" in text
    assert "No UMAP of `broken`" not in text  # broken has no score row at all
    assert umaps == {"harmony": (90, 4), "flaky": (90, 4)}  # never the failure stub
    table = pd.read_csv(tmp_path / "report/tables/pbmc_integration.csv", index_col=0)
    assert list(table.index) == ["harmony", "flaky"] and table.loc["flaky", "seeds"] == "1/2 (not ranked)"
    assert (tmp_path / "report/figures/pbmc_umap.png").stat().st_size > 1000


def test_dataset_without_a_completed_run_gets_a_section_not_a_crash(tmp_path, dataset_files):
    from scdiva.bench.report.integration import DatasetInputs, integration_sections

    preprocessed, embeddings = dataset_files
    runs = RUNS[RUNS["method"] == "broken"]
    long = summarise_seeds(pd.DataFrame(columns=["dataset", "method", "seed", "metric", "kind", "value"]))
    inputs = {"pbmc": DatasetInputs("batch", "label", str(preprocessed), {"broken": embeddings["broken"]})}
    sections = integration_sections(long, inputs, tmp_path / "report", runs=runs, bench_dir=tmp_path / "none")
    text = next(s for s in sections if s.title == "Integration: pbmc").markdown
    assert "No integration run of `pbmc` completed" in text and "**failed** on seeds 0, 1" in text
    for name in ("pbmc_scib_results.png", "pbmc_umap.png"):
        assert (tmp_path / "report/figures" / name).stat().st_size > 1000
    assert (tmp_path / "report/tables/pbmc_integration.tex").read_text() == "% pbmc: no integration run completed\n"


# --- a real run: one method fails on every seed, one on one seed of two ----------------------------------


@pytest.mark.slow
def test_report_of_a_run_with_failed_methods(failing_methods_run):
    assert failing_methods_run.returncode != 0, "failed runs: the workflow exits non-zero"
    results = failing_methods_run.workdir / "results"
    assert (results / "report/index.html").exists(), failing_methods_run.log[-5000:]
    runs = read_runs(results / "tables/runs.csv")
    matrix = coverage_matrix(runs).loc[("pbmc_3chem", "integration")]
    assert dict(matrix[["unintegrated", "first_pcs", "broken", "flaky", "hangs"]]) == {
        "unintegrated": "ok 2/2", "first_pcs": "ok 2/2", "broken": "failed 2/2", "flaky": "failed 1/2 · ok 1/2",
        "hangs": "timeout 2/2"}
    assert coverage_matrix(runs).loc[("pbmc_3chem", "annotation"), "no_labels"] == "failed 2/2"
    # aggregates: completed runs only, a mean over the seeds that completed, never a 0 for a failure
    long = pd.read_csv(results / "tables/integration_scores.csv")
    total = long[long["metric"] == "total_score"].set_index("method")
    assert set(total.index) == {"unintegrated", "first_pcs", "flaky"} and total["value"].notna().all()
    assert total.loc["unintegrated", "n_seeds"] == 2 and total.loc["flaky", "n_seeds"] == 1
    wide = pd.read_csv(results / "tables/pbmc_3chem_integration_wide.csv", index_col=0)
    complete = total.loc[["unintegrated", "first_pcs"], "value"].sort_values(ascending=False)
    assert list(wide.index) == [*complete.index, "flaky"]  # flaky missed a seed: after the complete ones
    annotation = pd.read_csv(results / "tables/annotation_scores.csv")
    assert set(annotation["method"]) == {"logreg"} and (annotation["n_seeds"] == 2).all()
    # the report: the matrix coloured, the reasons, the ranking over complete methods only
    page = (results / "report/index.html").read_text()
    assert '<td class="st-failed" title="seed 0: failed' in page and '<td class="st-ok" title="seed 0: ok' in page
    assert '<td class="st-timeout" title="seed 0: timeout' in page
    md = (results / "report/report.md").read_text()
    assert "- `flaky` (integration, `pbmc_3chem`): **failed** on seed 1: RuntimeError: did not converge on seed 1" in md
    assert "- `broken` (integration, `pbmc_3chem`): **failed** on seeds 0, 1: ValueError: singular matrix" in md
    # the same one-line reason on both seeds (the command line, with its temporary paths, is in the job log)
    assert "- `no_labels` (annotation, `pbmc_3chem`): **failed** on seeds 0, 1: annotation method 'no_labels': " \
           "command failed with exit status 1" in md
    assert f"Best total score: **{complete.index[0]}**" in md
    # pbmc_3chem is development data: an (empty, for a baseline) in-sample column comes first
    assert re.search(r"\| flaky +\| +\| 1/2 \(not ranked\) \|", md), md
    assert "No UMAP of" not in md  # flaky's seed 0 completed: its UMAP is there
