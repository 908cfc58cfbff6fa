"""scdiva.bench.report.tables.wide_table with ``ranked``: methods that completed every seed come first (best
total first), the others after them (also by total); fast, for the mutation run (docs/mutation.md)."""

from __future__ import annotations

import pandas as pd
import pytest

from scdiva.bench.report.tables import wide_table


def test_ranked_methods_come_first_and_the_rest_follow_by_total():
    totals = {"a": 0.9, "b": 0.7, "c": 0.8, "d": 0.5}
    long = pd.DataFrame({"dataset": "pbmc", "method": list(totals), "metric": "total_score",
                         "value": list(totals.values())})
    assert list(wide_table(long, "pbmc").index) == ["a", "c", "b", "d"]
    ranked = wide_table(long, "pbmc", ranked={"b", "d"})
    assert list(ranked.index) == ["b", "d", "a", "c"]
    assert ranked["total_score"].to_dict() == totals
    assert list(wide_table(long, "pbmc", ranked=iter(["c"])).index) == ["c", "a", "b", "d"]  # any iterable
    with pytest.raises(ValueError, match="no metrics for dataset 'x'"):
        wide_table(long, "x")


def test_controls_follow_every_method_once_even_when_they_score_best():
    totals = {"control_celltype": 0.95, "a": 0.9, "control_random": 0.2, "b": 0.7}
    long = pd.DataFrame({"dataset": "pbmc", "method": list(totals), "metric": "total_score",
                         "value": list(totals.values())})
    # every method ranked (ranked=None): methods by total, then the controls by total, each row once
    assert list(wide_table(long, "pbmc").index) == ["a", "b", "control_celltype", "control_random"]
    # a control named among the ranked methods is still not ranked
    assert list(wide_table(long, "pbmc", ranked={"b", "control_celltype"}).index) == [
        "b", "a", "control_celltype", "control_random"]
