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


def test_section_text_names_scenarios_files_orderings_and_the_ranks_across_datasets(tmp_path):
    runs = pd.concat([by_seed(dataset="d1", seeds=(0,)), by_seed({"a": (0.5, 0.5), "b": (0.9, 0.9)}, dataset="d2",
                                                                  seeds=(0,))])
    complete = {(d, m) for d in ("d1", "d2") for m in ("a", "b")}
    section = rank_stability_section(runs, {"d1": ["a", "b", "c", "control_random"], "d2": ["a", "b"]}, tmp_path,
                                     complete)
    assert (section.title, section.order) == ("Integration: rank stability", 29)
    intro, d1, d1_table, d2, d2_table, across, across_table = section.markdown.split("\n\n")
    assert intro == (
        "Each ranked method's rank (1 = best total score) under the batch/bio weights 0.3/0.7, 0.4/0.6, 0.5/0.5, with "
        "each metric of the aggregates left out in turn (scIB weights) and on each seed alone. An ordering that holds "
        "in every scenario does not depend on these choices; one that does not should not be read as a ranking.")
    # 3 weightings + the 10 metrics of the aggregates left out one at a time + 1 seed = 14 scenarios
    assert d1 == ("**d1** (14 scenarios; `tables/d1_rank_stability.csv`). Orderings that hold in every scenario: "
                  "`a` > `b`, `a` > `c`.")
    assert d2 == "**d2** (14 scenarios; `tables/d2_rank_stability.csv`). Orderings that hold in every scenario: `b` > `a`."
    # the table under each heading is its ranks: b is 3rd at 0.3/0.7 (0.59 < c's 0.61) and 2nd at scIB weights
    assert d1_table.splitlines()[3].startswith("| b        |                 3 |                 2 |                 2 |")
    assert [line.split("|")[1].strip() for line in d2_table.splitlines()[2:]] == ["a", "b"]
    assert across == ("**Across datasets** (scIB weights; only the methods that completed every seed on every dataset; "
                      "`tables/ranks_across_datasets.csv`):")
    assert across_table == ("| method   |   d1 |   d2 |   mean_rank |\n"
                            "|:---------|-----:|-----:|------------:|\n"
                            "| a        |    1 |    2 |         1.5 |\n"
                            "| b        |    2 |    1 |         1.5 |")
    # no method ran everywhere: said in words, and the CSV is still written (empty)
    section = rank_stability_section(runs, {"d1": ["a", "b"], "d2": ["a", "b"]}, tmp_path, set())
    assert section.markdown.endswith("\n\n**Across datasets**: no method completed every seed on every dataset.")
    assert pd.read_csv(tmp_path / "ranks_across_datasets.csv").empty
    # one dataset, and one method besides a control: nothing to rank, no section
    assert rank_stability_section(runs, {"d1": ["a", "control_random"]}, tmp_path / "none", set()) is None
    # one dataset: no ranks across datasets
    single = rank_stability_section(runs, {"d1": ["a", "b"]}, tmp_path / "one", set())
    assert "Across datasets" not in single.markdown and "Orderings that hold in every scenario: `a` > `b`." in single.markdown


def test_ranks_across_datasets_follow_the_total_not_the_diagnostics():
    # a leads b on every metric of the total (0.6 vs 0.5) but trails on the diagnostics that are not in it
    # (Leiden NMI/ARI and the one batch diagnostic): the rank follows the total, on both datasets
    runs = pd.concat([by_seed({"a": (0.6, 0.6), "b": (0.5, 0.5)}, dataset=d) for d in ("d1", "d2")])
    diagnostic = runs["metric"].isin([m.name for m in METRICS.values() if not m.in_aggregate])
    runs.loc[diagnostic, "value"] = runs.loc[diagnostic, "method"].map({"a": 0.0, "b": 1.0})
    across = ranks_across_datasets(runs, {(d, m) for d in ("d1", "d2") for m in ("a", "b")})
    assert across.to_dict("index") == {"a": {"d1": 1, "d2": 1, "mean_rank": 1.0},
                                       "b": {"d1": 2, "d2": 2, "mean_rank": 2.0}}


def test_datasets_with_nothing_to_rank_are_skipped_and_the_others_still_shown(tmp_path):
    runs = by_seed(dataset="d1", seeds=(0,))
    totals_only = by_seed({"a": (0.9, 0.9), "b": (0.5, 0.5)}, dataset="t", seeds=(0,))
    totals_only = totals_only[totals_only["metric"] == "total_score"]  # no per-metric values to re-weigh
    # a table of totals only: the methods as rows and no scenario
    empty = scenario_totals(totals_only, ["b", "a"])
    assert list(empty.index) == ["b", "a"] and empty.columns.empty
    # one method left (the other is a control), then totals only: both skipped, d1 (listed last) still shown
    section = rank_stability_section(pd.concat([runs, totals_only]), {"one": ["a", "control_random"], "t": ["a", "b"],
                                                                      "d1": ["a", "b"]}, tmp_path, set())
    assert "**d1** (14 scenarios" in section.markdown and "**t**" not in section.markdown
    assert not (tmp_path / "t_rank_stability.csv").exists()
    # ranks are whole numbers in the CSV
    assert (tmp_path / "d1_rank_stability.csv").read_text().splitlines()[1] == "a," + ",".join(["1"] * 14)
    # rows keep the order the methods are given in (the results table's, best total first)
    rank_stability_section(runs, {"d1": ["c", "a", "b"]}, tmp_path, set())
    assert pd.read_csv(tmp_path / "d1_rank_stability.csv", index_col=0).index.tolist() == ["c", "a", "b"]
    # two methods with the same scores: no ordering holds, and the text says so
    tied = by_seed({"a": (0.5, 0.5), "b": (0.5, 0.5)}, dataset="d1", seeds=(0,))
    assert "Orderings that hold in every scenario: none." in rank_stability_section(
        tied, {"d1": ["a", "b"]}, tmp_path, set()).markdown
