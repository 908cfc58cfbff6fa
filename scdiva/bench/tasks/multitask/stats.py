"""Paired comparison of ScDiVa trained with 1, 3 and 5 task heads, from per-cell predictions.

All head counts of one seed are scored on the same held-out cells, so their predictions are
paired cell by cell. Two paired statistics, per dataset and classification task, for each head
count against a baseline head count (1 by default):

* **McNemar's exact test** on correct / wrong per cell, pooled over seeds (each (seed, cell) is
  one pair): ``n_only_a`` = cells only the baseline got right, ``n_only_b`` = cells only the other
  got right; two-sided p = min(1, 2 * P(Binomial(n_only_a + n_only_b, 1/2) <= min(...))),
  1 when no pair disagrees. p in [0, 1]; small p = the two accuracies differ.
* **Paired bootstrap of the macro-F1 difference** (other minus baseline): cells are resampled with
  replacement within each seed (the same resampled cells for both models), macro-F1 is computed
  per seed over the classes of that seed's true labels (as :func:`annotation_metrics` does) and
  averaged over seeds; the interval is the 2.5 / 97.5 percentile of ``n_boot`` resamples.
  Difference in [-1, 1]; negative = the extra heads cost macro-F1.

``verdict``: ``"costs"`` when the whole interval is below 0, ``"gains"`` when above, else
``"no detectable difference"``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import binom

PREDICTION_COLUMNS = ["dataset", "method", "seed", "n_tasks", "task", "cell", "true", "predicted"]
COMPARISON_COLUMNS = [
    "dataset", "task", "baseline", "method", "n_seeds", "n_pairs",
    "accuracy_baseline", "accuracy_method", "n_only_baseline_correct", "n_only_method_correct", "mcnemar_p",
    "macro_f1_baseline", "macro_f1_method", "macro_f1_diff", "macro_f1_diff_ci_low", "macro_f1_diff_ci_high",
    "n_boot", "verdict",
]


def mcnemar_exact(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> dict[str, float]:
    """Exact two-sided McNemar test of paired correct/wrong outcomes.

    Returns ``n_only_a`` (a right, b wrong), ``n_only_b`` (b right, a wrong) and ``p_value`` in
    [0, 1] (1 when no pair disagrees; small = the accuracies differ).
    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes need equal lengths, got {a.shape} and {b.shape}")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    p = 1.0 if n == 0 else float(min(1.0, 2.0 * binom.cdf(min(only_a, only_b), n, 0.5)))
    return {"n_only_a": only_a, "n_only_b": only_b, "p_value": p}


def macro_f1(true: np.ndarray, predicted: np.ndarray, classes: Sequence[str]) -> float:
    """Unweighted mean F1 over ``classes`` (the true classes), in [0, 1]; higher is better."""
    per_class = []
    for c in classes:
        tp = np.sum((true == c) & (predicted == c))
        fp = np.sum((true != c) & (predicted == c))
        fn = np.sum((true == c) & (predicted != c))
        per_class.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(per_class))


def paired_bootstrap_macro_f1(groups: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], *,
                              n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """Macro-F1 of b minus a (mean over groups = seeds) with a 95% paired bootstrap interval.

    ``groups``: one ``(true, predicted_a, predicted_b)`` per seed, aligned cell by cell. Cells are
    resampled within each group; the classes are those of the group's true labels.
    """
    rng = np.random.default_rng(seed)
    groups = [tuple(np.asarray(x, dtype=str) for x in g) for g in groups]
    if not groups or any(len(t) == 0 or len(t) != len(pa) or len(t) != len(pb) for t, pa, pb in groups):
        raise ValueError("need at least one group of equally long, non-empty label vectors")
    classes = [sorted(set(t)) for t, _, _ in groups]
    f1_a = np.mean([macro_f1(t, pa, c) for (t, pa, _), c in zip(groups, classes, strict=True)])
    f1_b = np.mean([macro_f1(t, pb, c) for (t, _, pb), c in zip(groups, classes, strict=True)])
    diffs = np.empty(n_boot)
    for i in range(n_boot):
        per_group = []
        for (t, pa, pb), c in zip(groups, classes, strict=True):
            idx = rng.integers(0, len(t), len(t))
            per_group.append(macro_f1(t[idx], pb[idx], c) - macro_f1(t[idx], pa[idx], c))
        diffs[i] = np.mean(per_group)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return {"macro_f1_a": float(f1_a), "macro_f1_b": float(f1_b), "diff": float(f1_b - f1_a),
            "ci_low": float(low), "ci_high": float(high)}


def verdict(ci_low: float, ci_high: float) -> str:
    """'costs' if the interval lies below 0, 'gains' if above, else 'no detectable difference'."""
    if ci_high < 0:
        return "costs"
    if ci_low > 0:
        return "gains"
    return "no detectable difference"


def compare_head_counts(predictions: pd.DataFrame, *, baseline: int = 1, n_boot: int = 1000,
                        seed: int = 0) -> pd.DataFrame:
    """Every head count against ``baseline``, per dataset and task both trained (see module docstring).

    ``predictions`` has :data:`PREDICTION_COLUMNS`; returns :data:`COMPARISON_COLUMNS`.
    """
    missing = set(PREDICTION_COLUMNS) - set(predictions.columns)
    if missing:
        raise ValueError(f"per-cell predictions lack columns {sorted(missing)}; rerun the multitask jobs")
    rows = []
    preds = predictions.astype({"true": str, "predicted": str, "cell": str})
    for (dataset, task), sub in preds.groupby(["dataset", "task"], sort=False):
        base = sub[sub["n_tasks"] == baseline]
        if base.empty:
            continue
        for n_tasks, other in sub[sub["n_tasks"] != baseline].groupby("n_tasks", sort=True):
            paired = base.merge(other, on=["seed", "cell"], suffixes=("_a", "_b"), validate="one_to_one")
            if paired.empty:
                continue
            if not (paired["true_a"] == paired["true_b"]).all():
                raise ValueError(f"{dataset}/{task}: the true labels of {baseline} and {n_tasks} heads disagree "
                                 "for the same cells; the runs did not share their held-out cells")
            correct_a = (paired["predicted_a"] == paired["true_a"]).to_numpy()
            correct_b = (paired["predicted_b"] == paired["true_b"]).to_numpy()
            test = mcnemar_exact(correct_a, correct_b)
            groups = [(g["true_a"].to_numpy(), g["predicted_a"].to_numpy(), g["predicted_b"].to_numpy())
                      for _, g in paired.groupby("seed", sort=True)]
            boot = paired_bootstrap_macro_f1(groups, n_boot=n_boot, seed=seed)
            rows.append({
                "dataset": dataset, "task": task, "baseline": base["method"].iloc[0],
                "method": other["method"].iloc[0], "n_seeds": len(groups), "n_pairs": len(paired),
                "accuracy_baseline": float(correct_a.mean()), "accuracy_method": float(correct_b.mean()),
                "n_only_baseline_correct": test["n_only_a"], "n_only_method_correct": test["n_only_b"],
                "mcnemar_p": test["p_value"], "macro_f1_baseline": boot["macro_f1_a"],
                "macro_f1_method": boot["macro_f1_b"], "macro_f1_diff": boot["diff"],
                "macro_f1_diff_ci_low": boot["ci_low"], "macro_f1_diff_ci_high": boot["ci_high"],
                "n_boot": n_boot, "verdict": verdict(boot["ci_low"], boot["ci_high"]),
            })
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
