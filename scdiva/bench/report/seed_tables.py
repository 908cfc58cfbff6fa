"""Per-seed long tables -> the summary tables (mean, std, n_seeds) the report reads."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def summarise_seeds(by_seed: pd.DataFrame, keys: Sequence[str] = ("dataset", "method", "metric")) -> pd.DataFrame:
    """Mean over seeds as `value`, with `std` (sample std, NaN for one seed) and `n_seeds`.

    ``by_seed`` holds completed runs only (failed runs are left out before, by
    :func:`scdiva.bench.report.coverage.only_completed`; nothing stands in for them). A value that is
    NaN in a completed run is a metric undefined by its own definition (e.g. kBET when no label has
    enough cells): the mean is over the seeds where it is defined and ``n_seeds`` counts those seeds;
    a metric undefined on every seed stays NaN.

    Parameters
    ----------
    by_seed
        One row per seed with the ``keys`` columns and ``value``.
    keys
        The columns that identify one summary row.
    """
    missing = {*keys, "value"} - set(by_seed.columns)
    if missing:
        raise ValueError(f"per-seed table lacks columns {sorted(missing)}")
    grouped = by_seed.groupby(list(keys), sort=False, dropna=False)["value"]
    return grouped.agg(value="mean", std="std", n_seeds="count").reset_index()
