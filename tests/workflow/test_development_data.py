"""Datasets marked `role: development` (ScDiVa's defaults were chosen on them): every table and text of
the report labels ScDiVa's rows from them in-sample, and no other dataset's."""

from __future__ import annotations

import pandas as pd
import pytest

from scdiva.bench.report.integration import IN_SAMPLE_NOTE, DatasetInputs, integration_sections
from scdiva.bench.report.paper import annotation_section
from scdiva.bench.report.tables import summarise_seeds

TOTALS = {"scdiva_finetuned": 0.66, "scvi": 0.7}


@pytest.fixture
def report_inputs(tmp_path, report_files):
    preprocessed, paths = report_files(TOTALS)
    by_seed = pd.DataFrame([{"dataset": d, "method": m, "seed": 0, "metric": "total_score", "kind": "aggregate",
                             "value": v} for d in ("dev", "heldout") for m, v in TOTALS.items()])
    datasets = {"dev": DatasetInputs("batch", "label", preprocessed, paths, role="development"),
                "heldout": DatasetInputs("batch", "label", preprocessed, paths)}
    return tmp_path, by_seed, datasets


def test_integration_tables_and_sections_mark_scdiva_in_sample_on_development_data_only(report_inputs):
    tmp_path, by_seed, datasets = report_inputs
    sections = {s.title: s.markdown for s in integration_sections(
        summarise_seeds(by_seed), datasets, tmp_path / "report", bench_dir=tmp_path / "none")}
    assert IN_SAMPLE_NOTE in sections["Integration: dev (development data)"]
    assert IN_SAMPLE_NOTE not in sections["Integration: heldout"]
    long = pd.read_csv(tmp_path / "report/tables/integration_scores.csv")
    marked = set(map(tuple, long.loc[long["in_sample"], ["dataset", "method"]].drop_duplicates().to_numpy()))
    assert marked == {("dev", "scdiva_finetuned")}
    dev = pd.read_csv(tmp_path / "report/tables/dev_integration.csv", index_col=0).fillna("")
    assert dev["in-sample"].to_dict() == {"scvi": "", "scdiva_finetuned": "yes"}
    assert "in-sample" not in pd.read_csv(tmp_path / "report/tables/heldout_integration.csv", index_col=0)


def test_annotation_table_marks_scdiva_in_sample_on_development_data(tmp_path):
    summary = pd.DataFrame([{"dataset": d, "method": m, "metric": "accuracy", "value": 0.8}
                            for d in ("dev", "heldout") for m in ("scdiva", "logreg")])
    text = annotation_section(summary, {}, str(tmp_path / "bars.png"), [], development=["dev"]).markdown
    rows = [line for line in text.splitlines() if line.startswith("| dev") or line.startswith("| heldout")]
    assert [("yes" in line) for line in rows] == [True, False, False, False], rows
    assert "Development data (`dev`)" in text
    assert "in-sample" not in annotation_section(summary, {}, str(tmp_path / "bars.png"), []).markdown
