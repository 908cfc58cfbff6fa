"""The claims file is an exact transcription and never feeds the measured column."""

from pathlib import Path

import pandas as pd
import pytest
import yaml

from scdiva.bench.report.claims import (
    CLAIMED_LABEL,
    ClaimsError,
    compare,
    display_table,
    hardware_description,
    load_claims,
)

CLAIMS = Path(__file__).resolve().parents[2] / "config" / "paper_claims.yaml"


def test_claims_are_the_papers_numbers():
    claims = load_claims(CLAIMS)
    integration = {r["dataset"]: (r["cells"], r["n_batches"], r["asw"], r["kbet"], r["graph_connectivity"])
                   for r in claims.rows("integration")}
    assert integration == {
        "PBMC": ("150K", 8, 0.82, 0.75, 0.91),
        "Immune Atlas": ("500K", 15, 0.79, 0.71, 0.88),
        "COVID-19": ("200K", 12, 0.81, 0.73, 0.90),
    }
    annotation = {r["dataset"]: (r["n_cell_types"], r["accuracy_percent"], r["f1"], r["seconds_per_1k_cells"])
                  for r in claims.rows("annotation")}
    assert annotation == {
        "PBMC": (18, 95.3, 0.94, 0.08),
        "Brain": (25, 92.7, 0.91, 0.12),
        "Pancreas": (14, 96.1, 0.95, 0.06),
        "Heart": (20, 93.8, 0.93, 0.10),
    }
    assert [(r["n_tasks"], r["accuracy_percent"]) for r in claims.rows("multitask")] == [
        (1, 94.2), (3, 93.5), (5, 92.8)]


def _measured_annotation() -> pd.DataFrame:
    rows = []
    for method, acc, f1, t in [("scdiva", 0.81, 0.62, 0.9), ("logreg", 0.88, 0.70, 0.05)]:
        rows += [("pbmc_3chem", method, "accuracy", acc), ("pbmc_3chem", method, "macro_f1", f1),
                 ("pbmc_3chem", method, "inference_s_per_1k_cells", t)]
    return pd.DataFrame(rows, columns=["dataset", "method", "metric", "value"])


def test_measured_column_ignores_the_claims(tmp_path):
    measured = _measured_annotation()
    before = compare(load_claims(CLAIMS), "annotation", measured, ["scdiva"])
    doctored = yaml.safe_load(CLAIMS.read_text())
    for row in doctored["annotation"]["rows"]:
        row["accuracy_percent"], row["f1"], row["seconds_per_1k_cells"] = 1.0, 0.01, 99.0
    other = tmp_path / "claims.yaml"
    other.write_text(yaml.safe_dump(doctored))
    after = compare(load_claims(other), "annotation", measured, ["scdiva"])

    assert not before["claimed"].equals(after["claimed"])  # the doctored claims did change
    pd.testing.assert_series_equal(before["measured"], after["measured"])
    pbmc = before[(before["paper_row"] == "PBMC") & (before["claim"] == "accuracy_percent")]
    assert pbmc["measured"].item() == pytest.approx(81.0)  # measured fraction shown in the paper's %
    assert pbmc["best_baseline"].item() == "logreg"
    t = before[(before["paper_row"] == "PBMC") & (before["claim"] == "seconds_per_1k_cells")]
    assert t["best_baseline_value"].item() == pytest.approx(0.05)  # lower is better for time


def test_unrun_paper_datasets_say_so():
    comparison = compare(load_claims(CLAIMS), "annotation", _measured_annotation(), ["scdiva"])
    assert set(comparison["paper_row"]) == {"PBMC", "Brain", "Pancreas", "Heart"}
    brain = comparison[comparison["paper_row"] == "Brain"]
    assert brain["status"].str.startswith("not run").all()
    pancreas = comparison[comparison["paper_row"] == "Pancreas"]
    assert pancreas["status"].str.contains("pancreas_baron_human").all()
    shown = display_table(comparison, hardware_description())
    assert CLAIMED_LABEL in shown.columns
    measured_col = [c for c in shown.columns if c.startswith("measured (this run, dataset pbmc_3chem")]
    assert measured_col and "hardware" in measured_col[0]
    assert (shown[measured_col[0]] != "").all()


def test_multitask_rows_use_per_head_count_methods():
    measured = pd.DataFrame(
        [("pbmc_3chem", f"scdiva_tasks{n}", "annotation_accuracy", acc) for n, acc in [(1, 0.9), (3, 0.8), (5, 0.7)]],
        columns=["dataset", "method", "metric", "value"])
    comparison = compare(load_claims(CLAIMS), "multitask", measured, ["scdiva"])
    assert comparison["measured"].round(6).tolist() == [90.0, 80.0, 70.0]


def test_bad_claim_is_named(tmp_path):
    doctored = yaml.safe_load(CLAIMS.read_text())
    doctored["integration"]["rows"][1]["kbet"] = "0.71?"
    bad = tmp_path / "claims.yaml"
    bad.write_text(yaml.safe_dump(doctored))
    with pytest.raises(ClaimsError, match=r"integration.rows\[1\].*kbet"):
        load_claims(bad)
