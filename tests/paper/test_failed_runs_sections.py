"""Report sections that read method outputs skip runs that did not complete and say so (issue 45 item 3).

A failed method job leaves failure stubs (scdiva.bench.core.outcomes): an .h5ad without an embedding, a JSON
{status, reason}, a "failed" PNG, header-only CSVs. These tests give each consumer such stubs next to real
outputs; the workflow test (tests/workflow/test_failed_runs_consumers.py) does the same through Snakemake.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from scdiva.bench.core.outcomes import (
    RunOutcome,
    runs_table,
    write_stub_h5ad,
    write_stub_json,
    write_stub_png,
)
from scdiva.bench.report import modalities, paper
from scdiva.bench.report.claims import compare, display_table, load_claims
from scdiva.bench.report.coverage import left_out_lines

CLAIMS = Path(__file__).resolve().parents[2] / "config" / "paper_claims.yaml"


def _failed(method: str, task: str = "annotation", dataset: str = "pbmc_3chem", seed: int = 0) -> RunOutcome:
    return RunOutcome(dataset=dataset, task=task, method=method, seed=seed, status="failed",
                      reason=f"ValueError: {method} diverged")


def _annotation_table(rows: list[tuple[str, str, float, int]]) -> pd.DataFrame:
    """A summary table (mean, std, n_seeds) of accuracy / macro-F1 / timing per method."""
    out = []
    for method, metric, value, n_seeds in rows:
        out.append({"dataset": "pbmc_3chem", "method": method, "metric": metric, "value": value,
                    "std": 0.01 if n_seeds > 1 else np.nan, "n_seeds": n_seeds})
    return pd.DataFrame(out)


def test_best_baseline_is_one_measured_on_every_seed():
    # knn_pca is best on its one completed seed of two; logreg completed both: logreg is the best baseline
    measured = _annotation_table([
        ("scdiva", "accuracy", 0.80, 2), ("logreg", "accuracy", 0.85, 2), ("knn_pca", "accuracy", 0.95, 1),
        ("scdiva", "macro_f1", 0.60, 1), ("logreg", "macro_f1", 0.70, 2), ("knn_pca", "macro_f1", 0.90, 1)])
    comparison = compare(load_claims(CLAIMS), "annotation", measured, ["scdiva"], n_seeds=2)
    pbmc = comparison[comparison["measured_dataset"] == "pbmc_3chem"].set_index("claim")
    assert pbmc.loc["accuracy_percent", "best_baseline"] == "logreg"
    assert pbmc.loc["accuracy_percent", "best_baseline_value"] == 85.0
    assert "knn_pca (1 of 2 seeds)" in pbmc.loc["accuracy_percent", "best_baseline_note"]
    shown = display_table(comparison, "cpu").set_index(["paper", "metric"])
    cell = shown.loc[("PBMC", "Accuracy (%)"), "best baseline (this run)"]
    assert cell.startswith("logreg: 85") and "left out" in cell and "knn_pca (1 of 2 seeds)" in cell
    # ScDiVa's own macro-F1 is over one seed of two: the measured cell says so
    measured_col = [c for c in shown.columns if c.startswith("measured")][0]
    assert "(only 1 of 2 seeds)" in shown.loc[("PBMC", "F1"), measured_col]


def test_no_best_baseline_when_none_completed_every_seed():
    measured = _annotation_table([("scdiva", "accuracy", 0.80, 2), ("logreg", "accuracy", 0.85, 1)])
    comparison = compare(load_claims(CLAIMS), "annotation", measured, ["scdiva"], n_seeds=2)
    row = comparison[(comparison["measured_dataset"] == "pbmc_3chem")
                     & (comparison["claim"] == "accuracy_percent")].iloc[0]
    assert row["best_baseline"] == "" and np.isnan(row["best_baseline_value"])
    assert row["best_baseline_note"] == "no baseline measured on all 2 seeds; left out: logreg (1 of 2 seeds)"


def test_annotation_section_names_a_failed_run_and_shows_no_stub(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    job = Path("results/pbmc_3chem/annotation")
    for method in ("logreg", "knn_pca"):
        (job / method).mkdir(parents=True)
    (job / "logreg/seed0.json").write_text(
        '{"reference_batches": ["a"], "query_batches": ["b"], "n_reference": 300, "n_query": 200, '
        '"unseen_query_classes": {}, "hardware": "cpu"}')
    paper.plot_grouped_bars(_annotation_table([("logreg", "accuracy", 0.85, 1)]), {"accuracy": "a"},
                            job / "logreg/seed0.confusion.png", title="stand-in")
    write_stub_json(job / "knn_pca/seed0.json", _failed("knn_pca"))
    write_stub_png(job / "knn_pca/seed0.confusion.png", _failed("knn_pca"))
    infos = paper.load_infos([str(job / "logreg/seed0.json"), str(job / "knn_pca/seed0.json")])
    table = _annotation_table([("logreg", "accuracy", 0.85, 1), ("logreg", "macro_f1", 0.7, 1)])
    section = paper.annotation_section(table, infos, "annotation.png",
                                       [str(job / "logreg/seed0.confusion.png"),
                                        str(job / "knn_pca/seed0.confusion.png")])
    assert "- `pbmc_3chem/annotation/knn_pca/seed0.json`: **failed**: ValueError: knn_pca diverged" in section.markdown
    assert "None cells" not in section.markdown and "reference None" not in section.markdown
    assert "reference ['a'] (300 cells)" in section.markdown
    assert section.figures == ["annotation.png", str(job / "logreg/seed0.confusion.png")]


def test_trajectory_leaves_out_a_stub_embedding_and_the_section_names_it(tmp_path):
    from scdiva.bench.tasks.integration.trajectory import completed_embeddings

    cells = [f"c{i}" for i in range(6)]
    data = ad.AnnData(obs=pd.DataFrame(index=cells))
    good = ad.AnnData(obs=pd.DataFrame(index=cells[::-1]))
    good.obsm["X_emb"] = np.arange(12, dtype=np.float32).reshape(6, 2)[::-1]
    good.write_h5ad(tmp_path / "good.h5ad")
    failed = _failed("scdiva_zeroshot", task="integration")
    write_stub_h5ad(tmp_path / "stub.h5ad", failed)
    done, left_out = completed_embeddings(data, {"scdiva_finetuned": tmp_path / "good.h5ad",
                                                 "scdiva_zeroshot": tmp_path / "stub.h5ad"})
    assert list(done) == ["scdiva_finetuned"]
    np.testing.assert_array_equal(done["scdiva_finetuned"], np.arange(12, dtype=np.float32).reshape(6, 2))
    assert left_out == {"scdiva_zeroshot": "failed: ValueError: scdiva_zeroshot diverged"}

    failed.write(tmp_path / "zeroshot.run.json")
    RunOutcome(dataset="pbmc_3chem", task="integration", method="scdiva_finetuned", seed=0,
               status="ok").write(tmp_path / "finetuned.run.json")
    medians = tmp_path / "pbmc_3chem" / "trajectory_median_pseudotime.csv"
    medians.parent.mkdir()
    pd.DataFrame({"cell_type": ["T"], "PCA": [0.5], "scdiva_finetuned": [0.4]}).to_csv(medians, index=False)
    section = paper.trajectory_section(["t.png"], [str(medians)],
                                       [str(tmp_path / "zeroshot.run.json"), str(tmp_path / "finetuned.run.json")])
    assert ("- `scdiva_zeroshot` on `pbmc_3chem` (seed 0): **failed**: ValueError: scdiva_zeroshot diverged"
            in section.markdown)
    assert "scdiva_finetuned` on" not in section.markdown


def test_modality_sections_name_left_out_runs(tmp_path):
    records = []
    for method, status in (("totalvi", "failed"), ("scdiva", "ok")):
        run = RunOutcome(dataset="citeseq_pbmc", task="multimodal", method=method, seed=0, status=status,
                         reason="MisconfigurationException: max_epochs should be >= -1" if status != "ok" else "")
        run.write(tmp_path / f"{method}.run.json")
        records.append(tmp_path / f"{method}.run.json")
    left_out = left_out_lines(runs_table(records), task="multimodal")
    table = pd.DataFrame({"dataset": ["citeseq_pbmc"], "method": ["scdiva"], "metric": ["protein_pearson"],
                          "value": [0.5]})
    section = modalities.multimodal_section(table, [], left_out)
    assert "**Runs left out**" in section.markdown
    assert ("- `totalvi` (multimodal, `citeseq_pbmc`): **failed** on seed 0: MisconfigurationException: "
            "max_epochs should be >= -1") in section.markdown
    # ScDiVa failed everywhere: nothing to compare, rather than "nowhere" not the best
    without_model = modalities.multimodal_section(table.assign(method="pca"), [], [])
    assert "ScDiVa has no completed run" in without_model.markdown
    assert "nowhere in this run" not in without_model.markdown
