"""The numbers the report shows are the per-run score files' mean and sample std over seeds.

A copy of the shared smoke run is rerun with two seeds and a few quick methods (only the second
seed's jobs, the tables and the report run again). Every number in the report's integration,
annotation, multi-modal and cross-species tables is then recomputed here from the files each run
wrote (``results/<dataset>/integration/metrics.csv``, ``.../annotation/<method>/seed<s>.scores.csv``,
the multi-modal and cross-species ``seed<s>.scores.csv``) and from the summary tables in
``results/tables``, and compared as the report formats it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

SEEDS = [0, 1]
OVERLAY = {
    "seeds": SEEDS,
    "integration": {"methods": ["unintegrated", "harmony"]},
    "annotation": {"methods": ["logreg", "knn_pca"]},
    "multimodal": {"methods": ["mean_protein"]},
    "cross_species": {"annotation_methods": ["logreg"], "integration_methods": ["unintegrated"]},
}


def section(report: str, title: str) -> str:
    """The markdown of the report section ``## <title>``."""
    parts = re.split(r"^## ", report, flags=re.MULTILINE)
    found = [p for p in parts if p.startswith(title + "\n")]
    assert len(found) == 1, (title, [p.splitlines()[0] for p in parts[1:]])
    return found[0]


def md_tables(markdown: str) -> list[pd.DataFrame]:
    """Every pipe table of ``markdown`` as strings (header row -> columns; separator row dropped)."""
    tables, block = [], []
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|"):
            block.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif block:
            tables.append(pd.DataFrame(block[2:], columns=block[0]))
            block = []
    return tables


def mean_std(values: pd.Series) -> tuple[float, float, int]:
    """Mean and sample std (ddof 1) over the seeds where the value is defined, and how many."""
    defined = values.dropna().to_numpy(dtype=float)
    mean = float(np.mean(defined)) if len(defined) else float("nan")
    std = float(np.std(defined, ddof=1)) if len(defined) > 1 else float("nan")
    return mean, std, len(defined)


def per_seed(files: list[Path], methods: list[str]) -> pd.DataFrame:
    """The per-run score files of ``methods``. The copied smoke run also holds the files of the
    methods its own config ran; the overlay's run neither reads nor reports those."""
    frames = [pd.read_csv(f) for f in files]
    assert frames, "no per-run score files"
    runs = pd.concat(frames, ignore_index=True)
    assert set(methods) <= set(runs["method"]), (methods, sorted(set(runs["method"])))
    return runs[runs["method"].isin(methods)]


def check_summary(summary: pd.DataFrame, runs: pd.DataFrame, keys: list[str]) -> None:
    """Each row of a summary table (``value``, ``std``, ``n_seeds``) is the mean/std of its per-run rows."""
    for key, rows in runs.groupby(keys):
        match = summary.set_index(keys).loc[key]
        mean, std, n = mean_std(rows["value"])
        assert match["value"] == pytest.approx(mean, nan_ok=True), key
        if "std" in match:
            assert match["std"] == pytest.approx(std, nan_ok=True) and match["n_seeds"] == n, key


@pytest.fixture(scope="module")
def two_seeds(smoke_run, workflow_tools, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("two_seeds")
    workdir = workflow_tools.copy(smoke_run, base / "run")
    overlay = base / "two_seeds.yaml"
    overlay.write_text(yaml.safe_dump(OVERLAY))
    workflow_tools.run(workdir, overlay)
    return workdir


@pytest.mark.slow
def test_integration_table_shows_mean_and_sd_of_the_per_seed_metrics(two_seeds):
    from scdiva.bench.tasks.integration.metrics import METRICS

    results = two_seeds / "results"
    runs = pd.read_csv(results / "pbmc_3chem" / "integration" / "metrics.csv")
    assert set(runs["seed"]) == set(SEEDS) and set(runs["method"]) == set(OVERLAY["integration"]["methods"])
    check_summary(pd.read_csv(results / "tables" / "integration_scores.csv"), runs, ["dataset", "method", "metric"])
    report = (results / "report" / "report.md").read_text()
    # pbmc_3chem is development data (config/config.yaml): its section says so in the title
    tables = md_tables(section(report, "Integration: pbmc_3chem (development data)"))  # aggregates, "All metrics"
    assert len(tables) == 2
    label_of = {name: m.label for name, m in METRICS.items()}
    checked = 0
    for table in tables:
        for method, rows in runs.groupby("method"):
            shown = table[table.iloc[:, 0] == method]
            assert len(shown) == 1, (method, table)
            assert shown["seeds"].item() == f"{len(SEEDS)}/{len(SEEDS)}"
            for metric, values in rows.groupby("metric")["value"]:
                column = label_of.get(metric, metric)
                if column not in table.columns:
                    continue
                mean, std, _ = mean_std(values)
                expected = f"{mean:.3f}" if not np.isfinite(std) else f"{mean:.3f} ± {std:.3f}"
                assert shown[column].item() == expected, (method, metric, list(values))
                checked += 1
    assert checked >= 2 * (10 + 3)  # every metric of both methods, and the aggregates table


@pytest.mark.slow
def test_annotation_table_shows_mean_and_sd_of_the_per_seed_scores(two_seeds):
    from scdiva.bench.report.paper import ANNOTATION_METRICS

    results = two_seeds / "results"
    runs = per_seed(sorted((results / "pbmc_3chem" / "annotation").glob("*/seed*.scores.csv")),
                    OVERLAY["annotation"]["methods"])
    assert set(runs["seed"]) == set(SEEDS) and set(runs["method"]) == set(OVERLAY["annotation"]["methods"])
    check_summary(pd.read_csv(results / "tables" / "annotation_scores.csv"), runs, ["dataset", "method", "metric"])
    table = md_tables(section((results / "report" / "report.md").read_text(), "Cell-type annotation"))[0]
    checked = 0
    for (method, metric), values in runs.groupby(["method", "metric"])["value"]:
        if metric not in ANNOTATION_METRICS:
            continue
        mean, std, n = mean_std(values)
        assert n == len(SEEDS) and np.isfinite(std)
        shown = table.loc[table["method"] == method, ANNOTATION_METRICS[metric]].item()
        assert shown == f"{mean:.3g} ± {std:.2g}", (method, metric, list(values))
        checked += 1
    assert checked == len(OVERLAY["annotation"]["methods"]) * len(ANNOTATION_METRICS)


def assert_shown(table: pd.DataFrame, row: pd.Series, column: str, values: pd.Series) -> None:
    """The cell of a multi-modal or cross-species table is the mean of ``values`` as the report rounds
    it (3 decimals, whole numbers from 100; scdiva.bench.report.modalities). The markdown writer prints
    numbers in their shortest form (0.080 as 0.08), so the cell is compared as a number. An undefined
    mean (NaN on every seed) is an empty cell or no column."""
    mean = mean_std(values)[0]
    if not np.isfinite(mean):
        assert column not in table.columns or table.loc[row, column].item() == "", (column, list(values))
        return
    rounded = float(f"{mean:.3f}" if abs(mean) < 100 else f"{mean:.0f}")
    assert float(table.loc[row, column].item()) == rounded, (column, list(values), table.loc[row, column].item())


@pytest.mark.slow
def test_multimodal_and_cross_species_tables_show_the_mean_of_the_per_seed_scores(two_seeds):
    from scdiva.bench.report.modalities import ANNOTATION_COLUMNS, INTEGRATION_COLUMNS, MULTIMODAL_COLUMNS

    results = two_seeds / "results"
    report = (results / "report" / "report.md").read_text()
    # multi-modal: one table, dataset x method
    runs = per_seed(sorted((results / "multimodal").glob("*/*/seed*.scores.csv")), OVERLAY["multimodal"]["methods"])
    assert set(runs["seed"]) == set(SEEDS)
    table = md_tables(section(report, "Multi-modal integration (RNA + protein)"))[0]
    checked = 0
    for (dataset, method, metric), values in runs.groupby(["dataset", "method", "metric"])["value"]:
        if metric in MULTIMODAL_COLUMNS:
            assert_shown(table, (table["dataset"] == dataset) & (table["method"] == method),
                         MULTIMODAL_COLUMNS[metric], values)
            checked += 1
    assert checked >= 3
    # cross-species: annotation (reference x query x method) and integration (method)
    cross = section(report, "Cross-species annotation and integration")
    tables = md_tables(cross)
    annotation = per_seed(sorted((results / "cross_species").glob("*/annotation/*/ref-*.seed*.scores.csv")),
                          OVERLAY["cross_species"]["annotation_methods"])
    assert set(annotation["seed"]) == set(SEEDS)
    ann_table = tables[0]
    checked = 0
    for (method, reference, metric), values in annotation.groupby(["method", "reference", "metric"])["value"]:
        if metric in ANNOTATION_COLUMNS:
            assert_shown(ann_table, (ann_table["method"] == method) & (ann_table["reference"] == reference),
                         ANNOTATION_COLUMNS[metric], values)
            checked += 1
    assert checked >= 2 * 4  # both directions
    integration = per_seed(sorted((results / "cross_species").glob("*/integration/*/seed*.scores.csv")),
                           OVERLAY["cross_species"]["integration_methods"])
    int_table = tables[-1]
    for (method, metric), values in integration.groupby(["method", "metric"])["value"]:
        if metric in INTEGRATION_COLUMNS:
            assert_shown(int_table, int_table["method"] == method, INTEGRATION_COLUMNS[metric], values)
