"""Every method against a reference method, seed by seed: paired differences, t intervals, seeds won."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from scdiva.bench.report.integration import ONE_SEED_NOISE, paired_markdown
from scdiva.bench.report.tables import paired_differences


def by_seed(rows: dict[str, list[float]], dataset: str = "d") -> pd.DataFrame:
    return pd.DataFrame([{"dataset": dataset, "method": m, "seed": s, "metric": "total_score", "value": v}
                         for m, values in rows.items() for s, v in enumerate(values) if v is not None])


def test_paired_difference_interval_and_wins_computed_by_hand():
    runs = by_seed({"scvi": [0.70, 0.72, 0.71], "mine": [0.73, 0.71, 0.75], "control_random": [0.3, 0.3, 0.3]})
    row = paired_differences(runs, "scvi").set_index("method").loc["mine"]
    # differences +0.03, -0.01, +0.04: mean 0.02, sd 0.026458, t(0.975, 2) = 4.302653
    half = 4.302653 * 0.0264575 / np.sqrt(3)
    assert row["n_pairs"] == 3 and row["wins"] == 2
    assert row["mean_diff"] == pytest.approx(0.02)
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(0.02 - half, abs=1e-5), pytest.approx(0.02 + half, abs=1e-5))
    assert list(paired_differences(runs, "scvi")["method"]) == ["mine"]  # neither the reference nor a control


def test_pairs_only_over_seeds_both_completed_and_one_seed_says_its_noise():
    runs = by_seed({"scvi": [0.70, None, 0.71], "mine": [0.74, 0.90, None]})
    paired = paired_differences(runs, "scvi")
    assert paired["n_pairs"].tolist() == [1] and paired["mean_diff"].item() == pytest.approx(0.04)
    assert np.isnan(paired["ci_low"].item())
    text = paired_markdown(paired, "scvi")
    assert "(one seed)" in text and f"below about {ONE_SEED_NOISE} cannot be told from seed noise" in text
    assert paired_differences(runs, "harmony").empty and paired_markdown(paired_differences(runs, "harmony"), "x") == ""


def test_annotation_section_pairs_accuracy_and_macro_f1_against_its_reference(tmp_path):
    from scdiva.bench.report.paper import annotation_section

    rows = []
    for seed, (lr, mine, shuffled) in enumerate([(0.80, 0.85, 0.30), (0.82, 0.81, 0.31)]):
        for method, acc in (("logreg", lr), ("mine", mine), ("control_shuffled", shuffled)):
            rows += [{"dataset": "d", "method": method, "seed": seed, "metric": "accuracy", "value": acc},
                     {"dataset": "d", "method": method, "seed": seed, "metric": "macro_f1", "value": acc - 0.1}]
    by_seed = pd.DataFrame(rows)
    summary = by_seed.groupby(["dataset", "method", "metric"], as_index=False)["value"].mean()
    section = annotation_section(summary, {}, str(tmp_path / "bars.png"), [], by_seed=by_seed,
                                 reference="logreg", paired_path=tmp_path / "paired.csv")
    paired = pd.read_csv(tmp_path / "paired.csv")
    assert set(paired["method"]) == {"mine"} and set(paired["metric"]) == {"accuracy", "macro_f1"}
    row = paired.set_index("metric").loc["accuracy"]
    # differences +0.05, -0.01: mean +0.02, one win of two
    assert row["mean_diff"] == pytest.approx(0.02) and row["wins"] == 1 and row["n_pairs"] == 2
    assert "Against `logreg`, seed by seed" in section.markdown
    assert re.search(r"\| mine\s+\| 2\s+\| \+0\.020\s+\| -0\.361 to \+0\.401\s+\| 1 of 2", section.markdown)
    # no reference in the run: a header-only table and no comparison text
    section = annotation_section(summary, {}, str(tmp_path / "bars.png"), [], by_seed=by_seed,
                                 reference="scanvi", paired_path=tmp_path / "none.csv")
    assert pd.read_csv(tmp_path / "none.csv").empty and "seed by seed" not in section.markdown


def test_annotation_section_pairs_against_each_of_several_references(tmp_path):
    """`annotation.reference: [logreg, scanvi]`: one comparison per reference, each row naming its own."""
    from scdiva.bench.report.paper import annotation_section

    accuracy = {"logreg": [0.80, 0.82, 0.81], "scanvi": [0.70, 0.74, 0.72], "mine": [0.85, 0.81, 0.84]}
    by_seed = pd.DataFrame([{"dataset": "d", "method": m, "seed": s, "metric": metric, "value": v - shift}
                            for m, values in accuracy.items() for s, v in enumerate(values)
                            for metric, shift in (("accuracy", 0.0), ("macro_f1", 0.1))])
    summary = by_seed.groupby(["dataset", "method", "metric"], as_index=False)["value"].mean()
    section = annotation_section(summary, {}, str(tmp_path / "bars.png"), [], by_seed=by_seed,
                                 reference=["logreg", "scanvi"], paired_path=tmp_path / "paired.csv")
    paired = pd.read_csv(tmp_path / "paired.csv").set_index(["reference", "method", "metric"])
    # mine - logreg: +0.05, -0.01, +0.03 -> +0.0233, 2 wins; mine - scanvi: +0.15, +0.07, +0.12 -> +0.1133, 3 wins
    assert paired.loc[("logreg", "mine", "accuracy"), "mean_diff"] == pytest.approx(0.07 / 3)
    assert paired.loc[("logreg", "mine", "accuracy"), "wins"] == 2
    assert paired.loc[("scanvi", "mine", "macro_f1"), "mean_diff"] == pytest.approx(0.34 / 3)
    assert paired.loc[("scanvi", "mine", "macro_f1"), "wins"] == 3
    assert paired.loc[("scanvi", "logreg", "accuracy"), "wins"] == 3  # each reference meets the other
    assert "Against `logreg`, seed by seed" in section.markdown and "Against `scanvi`, seed by seed" in section.markdown
    scanvi_part = section.markdown.split("Against `scanvi`")[1]
    assert re.search(r"\| mine\s+\| 3\s+\| \+0\.113\s+\|", scanvi_part)


def test_a_tie_is_no_win_and_every_row_names_its_reference():
    runs = by_seed({"scvi": [0.70, 0.72], "mine": [0.70, 0.73]})
    row = paired_differences(runs, "scvi").iloc[0]
    assert row["wins"] == 1 and row["reference"] == "scvi" and row["metric"] == "total_score"
    # the reference alone: no rows, and the table keeps its columns (the report writes it as it is)
    alone = paired_differences(by_seed({"scvi": [0.7, 0.7]}), "scvi")
    assert alone.empty and list(alone.columns) == ["dataset", "method", "reference", "metric", "n_pairs",
                                                   "mean_diff", "ci_low", "ci_high", "wins"]


def test_comparison_markdown_two_metrics_two_datasets_and_one_seed_exactly():
    from scdiva.bench.report.tables import paired_comparison_markdown

    rows = []
    for dataset, seeds in (("d1", 3), ("d2", 2)):
        for seed, (ref, mine, other) in enumerate([(0.70, 0.73, 0.60), (0.72, 0.71, 0.62), (0.71, 0.75, 0.50)][:seeds]):
            for method, acc, f1 in (("scvi", ref, ref - 0.1), ("mine", mine, mine - 0.05), ("other", other, other - 0.1)):
                rows += [{"dataset": dataset, "method": method, "seed": seed, "metric": "accuracy", "value": acc},
                         {"dataset": dataset, "method": method, "seed": seed, "metric": "macro_f1", "value": f1}]
    runs = pd.DataFrame(rows)
    paired = pd.concat([paired_differences(runs, "scvi", "accuracy"), paired_differences(runs, "scvi", "macro_f1")])
    # d1 mine: accuracy +0.03, -0.01, +0.04 (mean +0.020, half-width 4.3027 * 0.02646 / sqrt(3) = 0.0657, 2 wins);
    # macro-F1 +0.08, +0.04, +0.09 (3 wins). other: -0.10, -0.09, -0.21 on d1 (mean -0.137); -0.10 twice on d2 (sd 0)
    assert paired_comparison_markdown(paired, "scvi", {"accuracy": "acc", "macro_f1": "F1"}) == (
        "\n\n**Against `scvi`, seed by seed** (acc, F1; the mean of the per-seed differences and its 95% t interval "
        "over the seeds both completed):\n\n"
        "| dataset   | method   | seeds   | acc - scvi   | acc: 95% interval   | acc: seeds won   | F1 - scvi   "
        "| F1: 95% interval   | F1: seeds won   |\n"
        "|:----------|:---------|:--------|:-------------|:--------------------|:-----------------|:------------"
        "|:-------------------|:----------------|\n"
        "| d1        | mine     | 3       | +0.020       | -0.046 to +0.086    | 2 of 3           | +0.070      "
        "| +0.004 to +0.136   | 3 of 3          |\n"
        "| d1        | other    | 3       | -0.137       | -0.294 to +0.021    | 0 of 3           | -0.137      "
        "| -0.294 to +0.021   | 0 of 3          |\n"
        "| d2        | mine     | 2       | +0.010       | -0.244 to +0.264    | 1 of 2           | +0.060      "
        "| -0.194 to +0.314   | 2 of 2          |\n"
        "| d2        | other    | 2       | -0.100       | -0.100 to -0.100    | 0 of 2           | -0.100      "
        "| -0.100 to -0.100   | 0 of 2          |")
    # two seeds are enough for an interval: no one-seed note
    two = paired_differences(runs[runs["dataset"] == "d2"], "scvi", "accuracy")
    assert paired_comparison_markdown(two, "scvi", {"accuracy": "acc"}, one_seed_noise=0.035).endswith(
        "| other    | 2       | -0.100       | -0.100 to -0.100    | 0 of 2           |")
    # one dataset, one seed: no dataset column, no interval, and the noise level said when it is known
    one = paired_differences(runs[(runs["seed"] == 0) & (runs["dataset"] == "d1")], "scvi", "accuracy")
    table = ("\n\n**Against `scvi`, seed by seed** (acc; the mean of the per-seed differences and its 95% t interval "
             "over the seeds both completed):\n\n"
             "| method   | seeds   | acc - scvi   | acc: 95% interval   | acc: seeds won   |\n"
             "|:---------|:--------|:-------------|:--------------------|:-----------------|\n"
             "| mine     | 1       | +0.030       | (one seed)          | 1 of 1           |\n"
             "| other    | 1       | -0.100       | (one seed)          | 0 of 1           |\n\n"
             "One seed: no interval; run more `seeds` for one.")
    assert paired_comparison_markdown(one, "scvi", {"accuracy": "acc"}) == table
    assert paired_comparison_markdown(one, "scvi", {"accuracy": "acc"}, one_seed_noise=0.035) == table + (
        " A difference below about 0.035 cannot be told from seed noise (two single runs land that far apart by "
        "seed alone on the embedded PBMCs).")
