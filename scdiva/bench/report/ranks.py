"""How stable the integration ranking is: under other weights, with each metric left out, seed by seed.

A ranking is worth reporting only as far as it survives reasonable changes to how it was computed.
Per dataset, each ranked method (controls never are) is ranked by its total score (mean over seeds)
under every scenario of :func:`scenario_totals`; an ordering "A above B" holds when A's total is above
B's in every one of them. Across datasets, methods are ranked only among those that completed every
seed on every dataset (runs.csv says which), so a method is never ranked on data it did not run on.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import pandas as pd

from scdiva.bench.core.io import atomic_path
from scdiva.bench.methods.record import is_control
from scdiva.bench.report.document import Section
from scdiva.bench.tasks.integration.metrics import BATCH_WEIGHT, BIO_WEIGHT, METRICS, aggregate_scores

#: (batch, bio) weights of the total: scIB's 0.4/0.6 and one step either side
WEIGHTINGS = ((0.3, 0.7), (BATCH_WEIGHT, BIO_WEIGHT), (0.5, 0.5))


def scenario_totals(by_seed: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """Total score of each of ``methods`` (rows) under each scenario (columns) on one dataset.

    Scenarios: the batch/bio :data:`WEIGHTINGS`; scIB's weights with each aggregate metric left out
    in turn (``without <metric>``); scIB's weights on each seed alone (``seed <n>``). Totals of the
    first two kinds are means over seeds.

    Parameters
    ----------
    by_seed
        One dataset's per-run metric values (completed runs): ``method``, ``seed``, ``metric``, ``value``.
    methods
        The methods to rank.
    """
    raw = by_seed[by_seed["method"].isin(list(methods)) & by_seed["metric"].isin(list(METRICS))]
    runs = raw.pivot_table(index=["method", "seed"], columns="metric", values="value", aggfunc="first")
    if runs.empty:  # no per-metric values (e.g. a table of totals only): nothing to re-weigh
        return pd.DataFrame(index=list(methods))

    def totals(**kwargs) -> pd.Series:
        return runs.apply(lambda row: aggregate_scores(row.dropna().to_dict(), **kwargs)["total_score"], axis=1)

    columns: dict[str, pd.Series] = {}
    for batch, bio in WEIGHTINGS:
        columns[f"weights {batch}/{bio}"] = totals(batch_weight=batch).groupby(level="method").mean()
    for metric in (m for m in METRICS.values() if m.in_aggregate):
        columns[f"without {metric.label}"] = (totals(batch_weight=BATCH_WEIGHT, leave_out=[metric.name])
                                             .groupby(level="method").mean())
    default = totals(batch_weight=BATCH_WEIGHT)
    for seed in sorted(default.index.get_level_values("seed").unique()):
        columns[f"seed {seed}"] = default.xs(seed, level="seed")
    return pd.DataFrame(columns).reindex(list(methods))


def rank_scenarios(totals: pd.DataFrame) -> pd.DataFrame:
    """Ranks (1 = best; ties share the better rank) per scenario column of :func:`scenario_totals`."""
    return totals.rank(ascending=False, method="min").astype("Int64")


def orderings_that_hold(totals: pd.DataFrame) -> list[tuple[str, str]]:
    """Pairs (a, b) with a's total above b's in every scenario where both have one, best pairs first."""
    order = totals.mean(axis=1).sort_values(ascending=False).index
    pairs = []
    for i, a in enumerate(order):
        for b in order[i + 1:]:
            both = totals.loc[a].notna() & totals.loc[b].notna()
            if both.any() and (totals.loc[a, both] > totals.loc[b, both]).all():
                pairs.append((a, b))
    return pairs


def ranks_across_datasets(by_seed: pd.DataFrame, complete: Collection[tuple[str, str]]) -> pd.DataFrame:
    """Rank per dataset (total score, mean over seeds) of the methods that completed every seed on
    every dataset (controls are never ranked), and their mean rank; rows sorted by mean rank.

    Parameters
    ----------
    by_seed
        Per-run values of every dataset (``dataset``, ``method``, ``seed``, ``metric``, ``value``), with
        each run's ``total_score`` (the metrics job's aggregate; not recomputed here).
    complete
        (dataset, method) pairs that completed every scheduled seed (runs.csv).
    """
    datasets = sorted(by_seed["dataset"].unique())
    everywhere = sorted(m for m in by_seed["method"].unique()
                        if not is_control(m) and all((d, m) in complete for d in datasets))
    totals = by_seed[(by_seed["metric"] == "total_score") & by_seed["method"].isin(everywhere)]
    means = totals.pivot_table(index="method", columns="dataset", values="value", aggfunc="mean")
    ranks = rank_scenarios(means.reindex(index=everywhere, columns=datasets))
    if ranks.empty:
        return ranks.assign(mean_rank=pd.Series(dtype=float))
    return ranks.assign(mean_rank=ranks.astype(float).mean(axis=1)).sort_values("mean_rank")


def rank_stability_section(by_seed: pd.DataFrame, ranked: Mapping[str, Sequence[str]], tables: Path,
                           complete: Collection[tuple[str, str]]) -> Section | None:
    """The report section on rank stability; writes ``<dataset>_rank_stability.csv`` (methods x
    scenarios, ranks) and, with several datasets, ``ranks_across_datasets.csv`` under ``tables``.

    Parameters
    ----------
    by_seed
        Per-run metric values (completed runs) of every dataset.
    ranked
        Dataset -> the methods ranked there (completed every seed; controls left out).
    tables
        Where the CSV files go.
    complete
        (dataset, method) pairs that completed every scheduled seed.
    """
    parts = []
    for dataset, methods in ranked.items():
        methods = [m for m in methods if not is_control(m)]
        if len(methods) < 2:
            continue
        totals = scenario_totals(by_seed[by_seed["dataset"] == dataset], methods)
        if totals.columns.empty:
            continue
        ranks = rank_scenarios(totals)
        with atomic_path(tables / f"{dataset}_rank_stability.csv") as tmp:
            ranks.to_csv(tmp)
        holds = orderings_that_hold(totals)
        chains = ", ".join(f"`{a}` > `{b}`" for a, b in holds) or "none"
        parts.append(f"**{dataset}** ({totals.shape[1]} scenarios; `tables/{dataset}_rank_stability.csv`). "
                     f"Orderings that hold in every scenario: {chains}.\n\n"
                     + ranks.to_markdown())
    if len(ranked) > 1:
        across = ranks_across_datasets(by_seed, complete)
        with atomic_path(tables / "ranks_across_datasets.csv") as tmp:
            across.to_csv(tmp)
        if len(across):
            parts.append("**Across datasets** (scIB weights; only the methods that completed every seed on "
                         "every dataset; `tables/ranks_across_datasets.csv`):\n\n" + across.to_markdown())
        else:
            parts.append("**Across datasets**: no method completed every seed on every dataset.")
    if not parts:
        return None
    intro = ("Each ranked method's rank (1 = best total score) under the batch/bio weights "
             + ", ".join(f"{b}/{w}" for b, w in WEIGHTINGS)
             + ", with each metric of the aggregates left out in turn (scIB weights) and on each seed alone. "
             "An ordering that holds in every scenario does not depend on these choices; one that does not "
             "should not be read as a ranking.")
    return Section(title="Integration: rank stability", order=29, markdown="\n\n".join([intro, *parts]))
