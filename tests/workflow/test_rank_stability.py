"""Rank stability: ranks under other batch/bio weights, each metric left out and each seed, the
orderings that hold under all of them, and ranks across datasets only over methods that ran on all."""

from __future__ import annotations

import pandas as pd
import pytest

from scdiva.bench.report.ranks import (
    orderings_that_hold,
    rank_scenarios,
    rank_stability_section,
    ranks_across_datasets,
    scenario_totals,
)
from scdiva.bench.tasks.integration.metrics import METRICS, aggregate_scores

# batch-group and bio-group values per method: total = w * batch + (1 - w) * bio
GROUPS = {"a": (0.9, 0.9), "b": (0.8, 0.5), "c": (0.4, 0.7), "control_random": (0.95, 0.95)}


def by_seed(groups=GROUPS, dataset="d", seeds=(0, 1), kbet_of=None) -> pd.DataFrame:
    rows = []
    for method, (batch, bio) in groups.items():
        for seed in seeds:
            values = {m.name: batch if m.kind == "batch" else bio for m in METRICS.values()}
            if kbet_of and method in kbet_of:
                values["kbet"] = kbet_of[method]
            values |= aggregate_scores(values)  # each run's aggregates, as the metrics job writes them
            rows += [{"dataset": dataset, "method": method, "seed": seed, "metric": name, "value": value}
                     for name, value in values.items()]
    return pd.DataFrame(rows)


def test_totals_per_weighting_computed_by_hand_and_the_orderings_that_hold():
    totals = scenario_totals(by_seed(), ["a", "b", "c"])
    # b: 0.3*0.8 + 0.7*0.5 = 0.59, 0.4*0.8 + 0.6*0.5 = 0.62, 0.65; c: 0.61, 0.58, 0.55
    assert totals.loc["b", ["weights 0.3/0.7", "weights 0.4/0.6", "weights 0.5/0.5"]].tolist() == pytest.approx(
        [0.59, 0.62, 0.65])
    assert totals.loc["c", "weights 0.3/0.7"] == pytest.approx(0.61)
    ranks = rank_scenarios(totals)
    assert ranks.loc["b", "weights 0.3/0.7"] == 3 and ranks.loc["b", "weights 0.5/0.5"] == 2
    # b and c swap between weightings: only a's lead holds throughout
    assert orderings_that_hold(totals) == [("a", "b"), ("a", "c")]
    assert {"seed 0", "seed 1", "without kBET", "without KMeans ARI"} <= set(totals.columns)


def test_leaving_a_metric_out_and_a_single_seed_can_break_an_ordering():
    # b's kBET of 0.0 drags its batch mean down; without kBET b is back above c at scIB weights
    runs = by_seed(kbet_of={"b": 0.0})
    totals = scenario_totals(runs, ["b", "c"])
    assert totals.loc["b", "without kBET"] == pytest.approx(0.62)
    assert totals.loc["b", "weights 0.4/0.6"] == pytest.approx(0.4 * 0.64 + 0.6 * 0.5)
    assert totals.loc["b", "without kBET"] > totals.loc["c", "without kBET"]
    assert totals.loc["b", "weights 0.4/0.6"] < totals.loc["c", "weights 0.4/0.6"]
    # one seed where c beats a: "a > c" no longer holds
    flipped = pd.concat([by_seed(seeds=(0,)), by_seed({"a": (0.1, 0.1), "c": (0.4, 0.7)}, seeds=(1,))])
    held = orderings_that_hold(scenario_totals(flipped, ["a", "c"]))
    assert ("a", "c") not in held and ("c", "a") not in held


def test_across_datasets_only_methods_that_ran_everywhere(tmp_path):
    runs = pd.concat([by_seed(dataset="d1"),
                      by_seed({"a": (0.5, 0.5), "b": (0.9, 0.9), "c": (0.1, 0.1)}, dataset="d2")])
    complete = {(d, m) for d in ("d1", "d2") for m in ("a", "b")} | {("d1", "c")}  # c failed a seed on d2
    across = ranks_across_datasets(runs, complete)
    assert list(across.index) == ["a", "b"]  # a: ranks 1 and 2, b: 2 and 1 -> tie on 1.5, a first (stable)
    assert across["mean_rank"].tolist() == [1.5, 1.5]
    section = rank_stability_section(runs, {"d1": ["a", "b", "c", "control_random"], "d2": ["a", "b"]},
                                     tmp_path, complete)
    assert "Orderings that hold in every scenario: `a` > `b`, `a` > `c`." in section.markdown
    written = pd.read_csv(tmp_path / "d1_rank_stability.csv", index_col=0)
    assert list(written.index) == ["a", "b", "c"]  # the control is never ranked
    assert pd.read_csv(tmp_path / "ranks_across_datasets.csv", index_col=0).index.tolist() == ["a", "b"]


def test_ranks_per_dataset_ties_and_methods_left_out_by_hand():
    runs = pd.concat([
        by_seed({"a": (0.9, 0.9), "b": (0.5, 0.5), "c": (0.5, 0.5), "x": (1.0, 1.0), "control_celltype": (1, 1)},
                dataset="d1"),
        # by total b (0.72) > a (0.56) > c; by biology alone a would lead
        by_seed({"a": (0.2, 0.8), "b": (0.9, 0.6), "c": (0.1, 0.1), "control_celltype": (1, 1)}, dataset="d2"),
    ])
    # x ran on d1 only; the control ran everywhere but a control is never ranked
    complete = {(d, m) for d in ("d1", "d2") for m in ("a", "b", "c", "control_celltype")}
    across = ranks_across_datasets(runs, complete)
    # d1: a 1, b and c tied at 2 (ties share the better rank); d2: b 1, a 2, c 3
    assert across.loc["a", "d1"] == 1 and across.loc["b", "d1"] == 2 and across.loc["c", "d1"] == 2
    assert across.loc["b", "d2"] == 1 and across.loc["c", "d2"] == 3
    assert across["mean_rank"].to_dict() == {"a": 1.5, "b": 1.5, "c": 2.5} and "x" not in across.index
    totals = scenario_totals(runs[runs["dataset"] == "d1"], ["a", "b", "c"])
    assert list(totals.index) == ["a", "b", "c"]  # x's rows are in the table but x is not ranked
    assert rank_scenarios(totals).loc[["b", "c"], "weights 0.4/0.6"].tolist() == [2, 2]
    held = orderings_that_hold(totals)
    assert ("a", "b") in held and ("b", "c") not in held and ("c", "b") not in held  # a tie holds neither way
    # a scenario where one of two has no total: the ordering is judged on the others
    gapped = totals.copy()
    gapped.loc["a", "seed 0"] = float("nan")
    assert ("a", "b") in orderings_that_hold(gapped)
