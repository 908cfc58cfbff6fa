"""The shared smoke run (tests/conftest.py): ScDiVa in all three tables, claims in the report.

These tests reuse the session's one smoke workflow run instead of running the workflow again.
"""

import base64
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from scdiva.bench.report.claims import CLAIMED_LABEL, compare, load_claims

REPO = Path(__file__).resolve().parents[2]
CLAIMS = REPO / "config" / "paper_claims.yaml"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tables(smoke_run):
    root = smoke_run.workdir / "results" / "tables"
    return {name: pd.read_csv(root / f"{name}_scores.csv") for name in ("integration", "annotation", "multitask")}


def test_scdiva_tiny_is_in_all_three_tables(tables):
    assert {"scdiva_zeroshot", "scdiva_finetuned"} <= set(tables["integration"]["method"])
    annotation = tables["annotation"]
    scdiva_accuracy = annotation[(annotation["method"] == "scdiva") & (annotation["metric"] == "accuracy")]
    assert len(scdiva_accuracy) == 1 and 0 <= scdiva_accuracy["value"].item() <= 1
    assert {"scdiva_tasks1", "scdiva_tasks3", "scdiva_tasks5"} <= set(tables["multitask"]["method"])


def test_every_claimed_row_is_in_the_report(smoke_run):
    page = (smoke_run.workdir / "results" / "report" / "index.html").read_text()
    assert CLAIMED_LABEL in page and "measured (this run, dataset pbmc_3chem, hardware" in page
    claims = load_claims(CLAIMS)
    for table in ("integration", "annotation"):
        for row in claims.rows(table):
            assert f">{row['dataset']}</td>" in page, row
    for row in claims.rows("multitask"):
        assert f"{row['n_tasks']} task(s)" in page and f"{row['accuracy_percent']:g}" in page
    # Paper datasets that were not run say so, naming their stand-in (config/paper.yaml), instead of
    # leaving a gap.
    assert page.count("not run: stand-in dataset") >= 3 * 2 + 3 * 2
    assert "stand-in dataset heart_hca not in this run" in page


def test_measured_values_never_come_from_the_claims(tables, tmp_path):
    doctored = yaml.safe_load(CLAIMS.read_text())
    for section in ("integration", "annotation", "multitask"):
        for row in doctored[section]["rows"]:
            for key, value in row.items():
                if isinstance(value, float):
                    row[key] = value + 7.5
    other = tmp_path / "claims.yaml"
    other.write_text(yaml.safe_dump(doctored))
    for table, methods in (("integration", ["scdiva_finetuned"]), ("annotation", ["scdiva"]), ("multitask", ["scdiva"])):
        real = compare(load_claims(CLAIMS), table, tables[table], methods)
        fake = compare(load_claims(other), table, tables[table], methods)
        assert not real["claimed"].equals(fake["claimed"])
        pd.testing.assert_series_equal(real["measured"], fake["measured"])
    annotation = compare(load_claims(CLAIMS), "annotation", tables["annotation"], ["scdiva"])
    pbmc_acc = annotation[(annotation["paper_row"] == "PBMC") & (annotation["claim"] == "accuracy_percent")]
    measured = tables["annotation"].query("method == 'scdiva' and metric == 'accuracy'")["value"].item()
    assert pbmc_acc["measured"].item() == pytest.approx(100 * measured)


def test_report_images_exist_and_are_not_empty(smoke_run):
    report = smoke_run.workdir / "results" / "report"
    page = (report / "index.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) >= 6
    for data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    for section in (report / "sections").glob("paper_*.json"):
        for figure in json.loads(section.read_text())["figures"]:
            path = Path(figure) if Path(figure).is_absolute() else smoke_run.workdir / figure
            assert path.stat().st_size > 1000, figure


def test_report_says_which_cells_and_genes_each_checkpoint_saw(smoke_run):
    section = json.loads((smoke_run.workdir / "results" / "report" / "sections" / "paper_checkpoints.json").read_text())
    assert section["title"] == "ScDiVa checkpoints: which cells and genes each saw"
    rows = [line for line in section["markdown"].splitlines() if line.startswith("| scdiva_tiny")]
    # the default recipe: every configured dataset (the smoke run has one), no labels, 40 steps
    assert len(rows) == 1, section["markdown"]
    _, name, size, data, cells, genes, vocabulary, tasks, labels, steps, _ = [c.strip() for c in rows[0].split("|")]
    assert (data, labels, steps) == ("pbmc_3chem", "none", "40")
    assert int(cells) == 600  # the smoke run's subsample: every cell of the dataset, labels dropped
    assert int(genes) == int(vocabulary) > 500  # the vocabulary is the corpus's genes
