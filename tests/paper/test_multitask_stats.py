"""Paired comparison of 1, 3 and 5 heads: McNemar's exact test and the macro-F1 bootstrap, on known inputs."""

import numpy as np
import pandas as pd
import pytest

from scdiva.bench.tasks.multitask.stats import (
    COMPARISON_COLUMNS,
    PREDICTION_COLUMNS,
    compare_head_counts,
    macro_f1,
    mcnemar_exact,
    paired_bootstrap_macro_f1,
    verdict,
)


def test_mcnemar_exact_known_p_values():
    from scipy.stats import binomtest

    a = np.array([True] * 10 + [False] * 4)
    b = np.array([False] * 6 + [True] * 4 + [False] * 3 + [True])  # a-only 6, b-only 1
    result = mcnemar_exact(a, b)
    assert (result["n_only_a"], result["n_only_b"]) == (6, 1)
    assert result["p_value"] == pytest.approx(2 * (1 + 7) / 2 ** 7)  # 0.125
    assert result["p_value"] == pytest.approx(binomtest(1, 7, 0.5).pvalue)
    assert mcnemar_exact(b, a) == {"n_only_a": 1, "n_only_b": 6, "p_value": pytest.approx(0.125)}
    assert mcnemar_exact([True, False], [True, False])["p_value"] == 1.0  # no discordant pair
    assert mcnemar_exact([True] * 3, [False] * 3)["p_value"] == pytest.approx(0.25)
    assert mcnemar_exact([True, False, True, False], [False, True, False, True])["p_value"] == 1.0  # capped
    with pytest.raises(ValueError, match="equal lengths"):
        mcnemar_exact([True], [True, False])


def test_macro_f1_over_given_classes_by_hand():
    true = np.array(["A", "A", "B", "B"])
    pred = np.array(["A", "B", "B", "C"])
    # A: tp 1 fn 1 fp 0 -> 2/3; B: tp 1 fn 1 fp 1 -> 1/2; C not a true class
    assert macro_f1(true, pred, ["A", "B"]) == pytest.approx((2 / 3 + 0.5) / 2)


def test_bootstrap_interval_of_identical_and_of_worse_predictions():
    rng = np.random.default_rng(0)
    true = rng.choice(["A", "B", "C"], size=150)
    same = paired_bootstrap_macro_f1([(true, true, true)], n_boot=200)
    assert same == pytest.approx({"macro_f1_a": 1.0, "macro_f1_b": 1.0, "diff": 0.0, "ci_low": 0.0, "ci_high": 0.0})
    worse = true.copy()
    worse[true == "B"] = "A"  # method loses class B entirely
    result = paired_bootstrap_macro_f1([(true, true, worse)], n_boot=200)
    expected_b = macro_f1(true, worse, ["A", "B", "C"])
    assert result["macro_f1_b"] == pytest.approx(expected_b) and result["diff"] == pytest.approx(expected_b - 1)
    assert result["ci_low"] <= result["diff"] <= result["ci_high"] < 0
    better = paired_bootstrap_macro_f1([(true, worse, true)], n_boot=200)
    assert better["diff"] == pytest.approx(1 - expected_b) and better["ci_low"] > 0
    with pytest.raises(ValueError, match="non-empty"):
        paired_bootstrap_macro_f1([(true, true, true[:-1])])


def test_bootstrap_averages_seeds():
    true = np.array(["A", "B"] * 20)
    wrong = np.where(true == "A", "B", "A")
    half = paired_bootstrap_macro_f1([(true, true, true), (true, true, wrong)], n_boot=50)
    assert half["macro_f1_b"] == pytest.approx(0.5) and half["diff"] == pytest.approx(-0.5)


def test_verdict():
    assert verdict(-0.2, -0.01) == "costs"
    assert verdict(0.01, 0.2) == "gains"
    assert verdict(-0.1, 0.1) == verdict(0.0, 0.0) == "no detectable difference"


def _predictions(seed: int, n_tasks: int, predicted: np.ndarray, true: np.ndarray, task="annotation"):
    return pd.DataFrame({"dataset": "d", "method": f"scdiva_tasks{n_tasks}", "seed": seed, "n_tasks": n_tasks,
                         "task": task, "cell": [f"s{seed}c{i}" for i in range(len(true))], "true": true,
                         "predicted": predicted})[PREDICTION_COLUMNS]


def test_compare_head_counts_pairs_cells_by_name_across_seeds():
    rng = np.random.default_rng(1)
    frames = []
    for seed in (0, 1, 2):
        true = rng.choice(["A", "B", "C"], size=60)
        worse = true.copy()
        worse[:20] = "A"
        frames += [_predictions(seed, 1, true, true), _predictions(seed, 3, true, true),
                   _predictions(seed, 5, worse, true).sample(frac=1, random_state=seed)]  # another row order
    frames.append(_predictions(0, 5, np.array(["A", "B"]), np.array(["A", "B"]), task="coarse"))  # no 1-head pair
    out = compare_head_counts(pd.concat(frames, ignore_index=True), n_boot=200)
    assert list(out.columns) == COMPARISON_COLUMNS
    assert list(out["method"]) == ["scdiva_tasks3", "scdiva_tasks5"] and set(out["task"]) == {"annotation"}
    three, five = out.iloc[0], out.iloc[1]
    assert three["n_pairs"] == 180 and three["n_seeds"] == 3 and three["baseline"] == "scdiva_tasks1"
    assert three["mcnemar_p"] == 1.0 and three["macro_f1_diff"] == 0.0 and three["verdict"] == "no detectable difference"
    n_wrong = int(sum(((f["predicted"] != f["true"]) & (f["n_tasks"] == 5) & (f["task"] == "annotation")).sum()
                      for f in frames))
    assert five["n_only_baseline_correct"] == n_wrong and five["n_only_method_correct"] == 0
    assert five["accuracy_baseline"] == 1.0 and five["accuracy_method"] == pytest.approx(1 - n_wrong / 180)
    assert five["mcnemar_p"] < 1e-6 and five["verdict"] == "costs"
    assert five["macro_f1_diff_ci_high"] < 0


def test_compare_head_counts_refuses_unpaired_truth_and_missing_columns():
    true = np.array(["A", "B", "A"])
    frame = pd.concat([_predictions(0, 1, true, true), _predictions(0, 3, true, np.array(["B", "B", "A"]))])
    with pytest.raises(ValueError, match="true labels of 1 and 3 heads disagree"):
        compare_head_counts(frame, n_boot=10)
    with pytest.raises(ValueError, match=r"\['cell'\]"):
        compare_head_counts(frame.drop(columns="cell"))


def test_report_section_shows_the_comparison(tmp_path):
    from scdiva.bench.report.paper import multitask_section

    rng = np.random.default_rng(2)
    true = rng.choice(["A", "B"], size=40)
    worse = np.where(np.arange(40) < 15, "A", true)
    comparison = compare_head_counts(pd.concat([_predictions(0, 1, true, true), _predictions(0, 5, worse, true)]),
                                     n_boot=100)
    scores = pd.DataFrame({"dataset": "d", "method": ["scdiva_tasks1", "scdiva_tasks5"], "n_tasks": [1, 5],
                           "metric": "annotation_macro_f1", "value": [1.0, 0.8], "std": np.nan, "n_seeds": 1})
    section = multitask_section(scores, {}, str(tmp_path / "mt.png"), comparison)
    assert "McNemar p" in section.markdown and "macro-F1 diff [95% CI]" in section.markdown
    assert "scdiva_tasks5" in section.markdown and comparison["verdict"].iloc[0] in section.markdown
    without = multitask_section(scores, {}, str(tmp_path / "mt2.png"))
    assert "McNemar" not in without.markdown
