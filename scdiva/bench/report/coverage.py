"""What every scheduled run did (``results/tables/runs.csv``): the report's coverage matrix, and the
one filter every aggregate table goes through (only runs with status ``ok`` are averaged or ranked).

``runs.csv`` has one row per (dataset, task, method, seed) the config schedules, with the run's
``status`` (:data:`STATUSES`), a one-line ``reason`` (why it did not complete; flags of an ok run),
``wall_s``, ``peak_rss_mb``, ``n_cells`` and ``cells_per_s``.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from scdiva.bench.core.outcomes import RUNS_COLUMNS, STATUSES
from scdiva.bench.report.document import Section, markdown_to_html

#: A cell of the matrix takes the colour of its worst status (first in this order that occurs).
_WORST_FIRST = ("failed", "timeout", "out_of_memory", "ok", "not_applicable")
RUN_KEYS = ("dataset", "method", "seed")


#: Rows of the matrix: tasks in this order (others after, as they come), datasets as they come.
TASK_ORDER = ("integration", "annotation", "multimodal", "cross_species", "multitask")


def _display_order(runs: pd.DataFrame) -> pd.DataFrame:
    rank = {t: i for i, t in enumerate(TASK_ORDER)}
    key = runs["task"].map(lambda t: rank.get(t, len(rank)))
    return runs.assign(_k=key).sort_values("_k", kind="stable").drop(columns="_k").reset_index(drop=True)


def read_runs(path: str | os.PathLike[str]) -> pd.DataFrame:
    """``runs.csv`` checked: every column of :data:`RUNS_COLUMNS`, every status one of :data:`STATUSES`."""
    runs = pd.read_csv(path, dtype={"dataset": str, "task": str, "method": str, "status": str, "reason": str},
                       keep_default_na=False, na_values={c: [""] for c in ("seed", "wall_s", "peak_rss_mb",
                                                                          "n_cells", "cells_per_s")})
    missing = [c for c in RUNS_COLUMNS if c not in runs.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing} (expected {list(RUNS_COLUMNS)}); "
                         "rerun rule runs_table")
    unknown = sorted(set(runs["status"]) - set(STATUSES))
    if unknown:
        raise ValueError(f"{path}: unknown status {unknown}; a run's status is one of {list(STATUSES)}")
    runs["seed"] = runs["seed"].astype(int)
    return runs[list(RUNS_COLUMNS)]


def only_completed(by_seed: pd.DataFrame, runs: pd.DataFrame, task: str,
                   keys: Sequence[str] = RUN_KEYS) -> pd.DataFrame:
    """Rows of a per-seed score table whose run (``keys``) has status ``ok`` for ``task`` in ``runs``.

    Every aggregate table goes through this, so a run that failed, timed out, ran out of memory or
    does not apply never reaches a mean: it is left out (the report lists it), never filled in.
    """
    ok = runs[(runs["task"] == task) & (runs["status"] == "ok")]
    done = set(ok[list(keys)].astype(str).itertuples(index=False, name=None))
    mask = [tuple(row) in done for row in by_seed[list(keys)].astype(str).itertuples(index=False, name=None)]
    return by_seed[mask].reset_index(drop=True)


def seed_counts(runs: pd.DataFrame, task: str, dataset: str | None = None) -> pd.DataFrame:
    """Per dataset and method of ``task``: ``n_ok`` (seeds that completed), ``n_scheduled`` (seeds the
    config runs, those ``not_applicable`` aside) and ``complete`` (ok on every scheduled seed)."""
    sel = runs[(runs["task"] == task) & (runs["status"] != "not_applicable")]
    if dataset is not None:
        sel = sel[sel["dataset"] == dataset]
    counts = sel.assign(ok=sel["status"] == "ok").groupby(["dataset", "method"], sort=False)["ok"].agg(
        n_ok="sum", n_scheduled="count")
    counts["complete"] = counts["n_ok"] == counts["n_scheduled"]
    return counts


def _seed_list(seeds: Sequence[int]) -> str:
    seeds = sorted(int(s) for s in seeds)
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))


def left_out_lines(runs: pd.DataFrame, task: str | None = None, dataset: str | None = None) -> list[str]:
    """Markdown bullets, one per (dataset, task, method, status, reason): the runs that are not ``ok``
    and so are in no aggregate, with their seeds and one-line reason."""
    sel = runs[runs["status"] != "ok"]
    if task is not None:
        sel = sel[sel["task"] == task]
    if dataset is not None:
        sel = sel[sel["dataset"] == dataset]
    lines = []
    for (d, t, method, status, reason), rows in sel.groupby(["dataset", "task", "method", "status", "reason"],
                                                            sort=False):
        where = "" if dataset is not None and task is not None else f" ({t}, `{d}`)"
        lines.append(f"- `{method}`{where}: **{status}** on {_seed_list(rows['seed'])}"
                     + (f": {reason}" if reason else ""))
    return lines


def _status_counts(rows: pd.DataFrame) -> tuple[str, str]:
    """Cell text (e.g. ``failed 1/3 · ok 2/3``) and the status that colours it."""
    n = len(rows)
    counts = rows["status"].value_counts()
    present = [s for s in _WORST_FIRST if s in counts.index]
    return " · ".join(f"{s} {counts[s]}/{n}" for s in present), present[0]


def _number(value: float, digits: int = 1) -> str:
    return "–" if pd.isna(value) else f"{value:,.{digits}f}"


def _run_title(row: pd.Series) -> str:
    text = (f"seed {row['seed']}: {row['status']}, {_number(row['wall_s'])} s, "
            f"{_number(row['peak_rss_mb'], 0)} MB peak RSS")
    return text + (f" – {row['reason']}" if row["reason"] else "")


def coverage_matrix(runs: pd.DataFrame) -> pd.DataFrame:
    """(dataset, task) rows x methods: the status counts over seeds (``""`` where a method is not
    scheduled for that dataset and task). Tasks in :data:`TASK_ORDER`; datasets and methods as they come."""
    runs = _display_order(runs)
    methods = list(dict.fromkeys(runs["method"]))
    groups = runs.groupby(["dataset", "task"], sort=False)
    matrix = pd.DataFrame("", index=pd.MultiIndex.from_tuples(list(groups.groups), names=["dataset", "task"]),
                          columns=methods)
    for key, rows in groups:
        for method, cell in rows.groupby("method", sort=False):
            matrix.loc[key, method] = _status_counts(cell)[0]
    return matrix


def _matrix_html(runs: pd.DataFrame) -> str:
    runs = _display_order(runs)
    methods = list(dict.fromkeys(runs["method"]))
    head = "".join(f"<th>{html.escape(m)}</th>" for m in ["dataset", "task", *methods])
    body = []
    for (dataset, task), rows in runs.groupby(["dataset", "task"], sort=False):
        cells = [f"<td>{html.escape(dataset)}</td><td>{html.escape(task)}</td>"]
        by_method = dict(list(rows.groupby("method", sort=False)))
        for method in methods:
            if method not in by_method:
                cells.append('<td class="st-none" title="not scheduled">—</td>')
                continue
            cell = by_method[method].sort_values("seed")
            text, status = _status_counts(cell)
            title = "\n".join(_run_title(r) for _, r in cell.iterrows())
            cells.append(f'<td class="st-{status}" title="{html.escape(title)}">{html.escape(text)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    legend = "".join(f'<span class="st-{s}">{s}</span>' for s in STATUSES)
    return (f'<table class="coverage"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
            f'<p class="legend">{legend} (hover a cell for each seed\'s wall time, peak RSS and reason)</p>')


def _resources_table(runs: pd.DataFrame) -> str:
    shown = pd.DataFrame({
        "dataset": runs["dataset"], "task": runs["task"], "method": runs["method"], "seed": runs["seed"],
        "status": runs["status"], "wall s": runs["wall_s"].map(_number),
        "peak RSS MB": runs["peak_rss_mb"].map(lambda v: _number(v, 0)),
        "cells": runs["n_cells"].map(lambda v: _number(v, 0)),
        "cells / s": runs["cells_per_s"].map(_number),
        "reason": runs["reason"],
    })
    return shown.to_markdown(index=False, disable_numparse=True)


def coverage_section(runs: pd.DataFrame, *, runs_path: str = "tables/runs.csv", order: int = 2) -> Section:
    """The coverage matrix of ``runs`` (coloured by status in the HTML), the runs left out of the
    aggregate tables with their reasons, flags of completed runs, and wall time / peak RSS per run."""
    runs = _display_order(runs)
    n_ok = int((runs["status"] == "ok").sum())
    intro = (f"Every scheduled run (dataset x task x method x seed) and what it did: {n_ok} of {len(runs)} "
             f"completed (`{runs_path}`). A cell counts its seeds by status. Aggregate tables and rankings "
             "use only completed (`ok`) runs: a method's mean is over its ok seeds (`n` shown), a method "
             "that did not complete every seed of a dataset is shown but not ranked, and a run that did "
             "not complete is left out, never counted as 0.")
    left_out = left_out_lines(runs)
    flags = runs[(runs["status"] == "ok") & (runs["reason"] != "")]
    parts = ["**Left out of the aggregate tables** (not `ok`):\n\n" + ("\n".join(left_out) or "none")]
    if len(flags):
        parts.append("**Flags on completed runs:**\n\n" + "\n".join(
            f"- `{r['method']}` ({r['task']}, `{r['dataset']}`, seed {r['seed']}): {r['reason']}"
            for _, r in flags.iterrows()))
    parts.append("<details><summary>Wall time and peak memory per run</summary>\n\n" + _resources_table(runs)
                 + "\n\n</details>")
    rest = "\n\n".join(parts)
    matrix_md = coverage_matrix(runs).reset_index().to_markdown(index=False)
    return Section(title="Coverage: what every run did", order=order,
                   markdown=f"{intro}\n\n{matrix_md}\n\n{rest}",
                   html=f"{markdown_to_html(intro)}{_matrix_html(runs)}{markdown_to_html(rest)}")


def coverage_section_from_file(path: str | os.PathLike[str], **kwargs) -> Section:
    """:func:`coverage_section` of a ``runs.csv`` file."""
    return coverage_section(read_runs(path), runs_path=f"tables/{Path(path).name}", **kwargs)
