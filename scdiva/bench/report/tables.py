"""Collect per-(dataset, method, seed) metric files into the benchmark tables.

* by seed: ``dataset, method, seed, metric, kind, value`` (one row per metric and seed)
* long:    ``dataset, method, metric, kind, value, std, n_seeds`` (value = mean over seeds, std = sample
  standard deviation, NaN with one seed)
* wide:    one dataset, methods as rows (best total first), metrics as columns (means)

Only completed runs reach these tables (:func:`scdiva.bench.report.coverage.only_completed` on
``results/tables/runs.csv``): a run that failed has no rows, so its method's mean is over the seeds
that completed (``n_seeds``), never over a 0 or a NaN standing in for the failure.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from scdiva.bench.methods.record import is_control
from scdiva.bench.report.seed_tables import summarise_seeds as summarise
from scdiva.bench.tasks.integration.metrics import AGGREGATES, METRICS

BY_SEED_COLUMNS = ["dataset", "method", "seed", "metric", "kind", "value"]
LONG_COLUMNS = ["dataset", "method", "metric", "kind", "value", "std", "n_seeds"]
METRIC_ORDER = [*METRICS, *AGGREGATES]


def read_metric_files(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Concatenate per-dataset ``metrics.csv`` files; each must have the by-seed columns."""
    frames = []
    for path in paths:
        frame = pd.read_csv(path)
        missing = set(BY_SEED_COLUMNS) - set(frame.columns)
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}; rerun its metrics job")
        frames.append(frame[BY_SEED_COLUMNS])
    if not frames:
        raise ValueError("no metric files given")
    return sort_metrics(pd.concat(frames, ignore_index=True))


def sort_metrics(frame: pd.DataFrame) -> pd.DataFrame:
    order = {m: i for i, m in enumerate(METRIC_ORDER)}
    key = frame["metric"].map(lambda m: order.get(m, len(order)))
    return frame.assign(_k=key).sort_values(["dataset", "method", "_k"], kind="stable").drop(columns="_k")


def summarise_seeds(by_seed: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std (ddof=1) and count over seeds, per dataset, method, metric and kind
    (:func:`scdiva.bench.report.seed_tables.summarise_seeds`), in the report's metric order."""
    long = summarise(by_seed, ("dataset", "method", "metric", "kind"))
    return sort_metrics(long)[LONG_COLUMNS].reset_index(drop=True)


def wide_table(long: pd.DataFrame, dataset: str, ranked: Collection[str] | None = None) -> pd.DataFrame:
    """Methods x metrics (means) for one dataset, sorted by total score (best first).

    Parameters
    ----------
    long
        The long table (:func:`summarise_seeds`).
    dataset
        Which dataset.
    ranked
        The methods that may be ranked (those that completed every seed); they come first, best
        total first, and the others follow, also by total. ``None``: every method is ranked.
        Controls (``control_<kind>``) are never ranked: they follow every method, by total.
    """
    sub = long[long["dataset"] == dataset]
    if sub.empty:
        raise ValueError(f"no metrics for dataset {dataset!r}")
    wide = sub.pivot(index="method", columns="metric", values="value")
    wide = wide[[m for m in METRIC_ORDER if m in wide.columns]]
    wide = wide.sort_values("total_score", ascending=False)
    controls = wide.index.map(is_control).to_numpy(dtype=bool)
    first = ~controls if ranked is None else wide.index.isin(list(ranked)) & ~controls
    return pd.concat([wide[first], wide[~first & ~controls], wide[controls]])




def paired_differences(by_seed: pd.DataFrame, reference: str, metric: str = "total_score",
                       confidence: float = 0.95) -> pd.DataFrame:
    """Each method against ``reference``, seed by seed: the paired difference of ``metric``.

    Over the seeds on which both completed (a pair per seed), per dataset and method: ``n_pairs``,
    the mean difference (method - reference; higher is better for every scIB metric), its
    ``confidence`` t interval (``ci_low``, ``ci_high``; NaN with fewer than 2 pairs) and ``wins``,
    the seeds on which the method scored above the reference. Controls (``control_<kind>``) and
    the reference itself are left out.

    Parameters
    ----------
    by_seed
        Per-run scores: ``dataset``, ``method``, ``seed``, ``metric``, ``value`` (completed runs only).
    reference
        The method compared against (e.g. ``scvi``); a dataset without it gets no rows.
    metric
        Which metric.
    confidence
        Coverage of the interval.
    """
    # deferred: imports scipy.stats (this module is imported at workflow parse time)
    from scipy import stats

    columns = ["dataset", "method", "reference", "metric", "n_pairs", "mean_diff", "ci_low", "ci_high", "wins"]
    values = by_seed[by_seed["metric"] == metric].pivot_table(index=["dataset", "seed"], columns="method",
                                                               values="value", aggfunc="first")
    rows = []
    if reference not in values.columns:
        return pd.DataFrame(columns=columns)
    for method in values.columns:
        if method == reference or is_control(method):
            continue
        for dataset, pairs in values[[method, reference]].dropna().groupby(level="dataset"):
            diff = (pairs[method] - pairs[reference]).to_numpy(dtype=float)
            n = len(diff)
            half = (stats.t.ppf(0.5 + confidence / 2, n - 1) * diff.std(ddof=1) / n ** 0.5) if n > 1 else float("nan")
            rows.append({"dataset": dataset, "method": method, "reference": reference, "metric": metric,
                         "n_pairs": n, "mean_diff": float(diff.mean()), "ci_low": float(diff.mean() - half),
                         "ci_high": float(diff.mean() + half), "wins": int((diff > 0).sum())})
    return pd.DataFrame(rows, columns=columns)


def paired_comparison_markdown(paired: pd.DataFrame, reference: str, metrics: Mapping[str, str], *,
                               one_seed_noise: float | None = None) -> str:
    """Paired differences (:func:`paired_differences`) against ``reference`` as report markdown.

    Parameters
    ----------
    paired
        Rows of :func:`paired_differences` for one or more ``metrics`` (empty: returns "").
    reference
        The method compared against.
    metrics
        Metric -> the label its columns get, in the order shown.
    one_seed_noise
        With one seed only: the difference two single runs reach by seed alone (a stated
        measurement), said beside the table; ``None``: the text says only that one seed gives no interval.
    """
    if paired.empty:
        return ""
    shown = None
    for metric, label in metrics.items():
        rows = paired[paired["metric"] == metric].set_index(["dataset", "method"])
        part = pd.DataFrame({
            f"{label} - {reference}": rows["mean_diff"].map(lambda v: f"{v:+.3f}"),
            f"{label}: 95% interval": [f"{lo:+.3f} to {hi:+.3f}" if np.isfinite(lo) else "(one seed)"
                                       for lo, hi in zip(rows["ci_low"], rows["ci_high"], strict=True)],
            f"{label}: seeds won": [f"{w} of {n}" for w, n in zip(rows["wins"], rows["n_pairs"], strict=True)],
        }, index=rows.index)
        shown = part if shown is None else shown.join(part, how="outer")
    seeds = paired.groupby(["dataset", "method"])["n_pairs"].max()
    shown.insert(0, "seeds", seeds.reindex(shown.index))
    if paired["dataset"].nunique() == 1:
        shown = shown.droplevel("dataset")
    names = ", ".join(metrics.values())
    text = (f"\n\n**Against `{reference}`, seed by seed** ({names}; the mean of the per-seed differences "
            "and its 95% t interval over the seeds both completed):\n\n"
            + shown.reset_index().to_markdown(index=False, disable_numparse=True))
    if int(paired["n_pairs"].max()) < 2:
        text += "\n\nOne seed: no interval; run more `seeds` for one."
        if one_seed_noise is not None:
            text += (f" A difference below about {one_seed_noise} cannot be told from seed noise (two single "
                     "runs land that far apart by seed alone on the embedded PBMCs).")
    return text
