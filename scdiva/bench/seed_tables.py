"""Per-seed long tables -> the summary tables (mean, std, n_seeds) the report reads."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def summarise_seeds(by_seed: pd.DataFrame, keys: Sequence[str] = ("dataset", "method", "metric")) -> pd.DataFrame:
    """Mean over seeds as `value`, with `std` (sample std, NaN for one seed) and `n_seeds`."""
    missing = {*keys, "value"} - set(by_seed.columns)
    if missing:
        raise ValueError(f"per-seed table lacks columns {sorted(missing)}")
    grouped = by_seed.groupby(list(keys), sort=False, dropna=False)["value"]
    return grouped.agg(value="mean", std="std", n_seeds="count").reset_index()
