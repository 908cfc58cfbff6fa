"""The paper's claimed results beside what this run measured.

`config/paper_claims.yaml` holds the paper's numbers exactly as printed. This module joins
them with the workflow's measured long-form tables (`dataset,method,metric,value[,std,n_seeds]`)
into rows of "claimed (paper)" beside "measured (this run, dataset X, hardware Y)".

Measured values come only from the measured tables; the claims file is read for the claimed
column, for how a claimed column maps to a measured metric, and for which run datasets stand in
for a paper dataset. A test changes a claim and checks the measured column does not move.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from scdiva.bench.methods.catalog import method_role

#: Paper tables and the columns of each row that are claims (the rest describe the dataset).
CLAIM_COLUMNS: dict[str, tuple[str, ...]] = {
    "integration": ("asw", "kbet", "graph_connectivity"),
    "annotation": ("accuracy_percent", "f1", "seconds_per_1k_cells"),
    "multitask": ("accuracy_percent",),
}
#: Display names of the claim columns, as the paper's tables label them.
CLAIM_LABELS: dict[str, str] = {
    "asw": "ASW",
    "kbet": "kBET",
    "graph_connectivity": "Graph connectivity",
    "accuracy_percent": "Accuracy (%)",
    "f1": "F1",
    "seconds_per_1k_cells": "Inference (s per 1K cells)",
}
CLAIMED_LABEL = "claimed (paper)"
NOT_RUN = "not run"


class ClaimsError(ValueError):
    """The claims file is missing a section or holds a non-numeric claim."""


@dataclass(frozen=True)
class PaperClaims:
    """The parsed claims file: paper tables, metric mapping and stand-in datasets."""

    tables: dict[str, dict[str, Any]]
    measured_as: dict[str, dict[str, dict[str, Any]]]
    stand_ins: dict[str, list[str]]
    path: str = ""

    def rows(self, table: str) -> list[dict[str, Any]]:
        return list(self.tables[table]["rows"])

    def caption(self, table: str) -> str:
        return str(self.tables[table].get("caption", table))


def load_claims(path: str | os.PathLike) -> PaperClaims:
    """Read and check `config/paper_claims.yaml`; errors name the file, table and row."""
    path = Path(path)
    if not path.is_file():
        raise ClaimsError(f"claims file {path} not found; it ships as config/paper_claims.yaml")
    raw = yaml.safe_load(path.read_text()) or {}
    tables: dict[str, dict[str, Any]] = {}
    for table, columns in CLAIM_COLUMNS.items():
        section = raw.get(table)
        if not isinstance(section, Mapping) or not section.get("rows"):
            raise ClaimsError(f"{path}: section '{table}' with a non-empty 'rows' list is required")
        for i, row in enumerate(section["rows"]):
            for column in columns:
                value = row.get(column)
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ClaimsError(
                        f"{path}: {table}.rows[{i}] needs a number for '{column}', got {value!r}"
                    )
        tables[table] = dict(section)
    measured_as = raw.get("measured_as") or {}
    for table, columns in CLAIM_COLUMNS.items():
        missing = [c for c in columns if c not in (measured_as.get(table) or {})]
        if missing:
            raise ClaimsError(f"{path}: measured_as.{table} lacks a mapping for {missing}")
    stand_ins = {str(k): [str(d) for d in v] for k, v in (raw.get("stand_ins") or {}).items()}
    return PaperClaims(tables=tables, measured_as=measured_as, stand_ins=stand_ins, path=str(path))


def hardware_description() -> str:
    """One line naming the CPU (model, cores) and the torch device this process would use."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    device = "torch CPU"
    try:
        # deferred: imports torch (optional: the report is built without torch too)
        import torch

        if torch.cuda.is_available():
            device = f"GPU {torch.cuda.get_device_name(0)}"
    except ImportError:  # the report can be built without torch
        device = "no torch"
    return f"{cpu}, {cores} cores, {device}"


def measured_label(datasets: Iterable[str], hardware: str) -> str:
    """Column header of a measured column, naming the run's dataset(s) and hardware."""
    names = ", ".join(dict.fromkeys(datasets)) or "none"
    return f"measured (this run, dataset {names}, hardware {hardware})"


def _lookup(measured: pd.DataFrame, dataset: str, method: str, candidates: list[str]) -> pd.Series | None:
    """The measured row for the first candidate metric name present, or None."""
    sel = measured[(measured["dataset"] == dataset) & (measured["method"] == method)]
    for name in candidates:
        hit = sel[sel["metric"] == name]
        if len(hit):
            return hit.iloc[0]
    return None


def compare(
    claims: PaperClaims,
    table: str,
    measured: pd.DataFrame,
    methods: list[str],
    *,
    row_key: str = "dataset",
    n_seeds: int | None = None,
) -> pd.DataFrame:
    """Long form of one paper table, claimed beside measured.

    One output row per (paper row, claim column, measured dataset, method). Paper rows with no
    stand-in dataset in `measured` get one row with `status` saying why nothing was measured.

    Columns: `paper_row` (paper dataset or task count), `claim`, `claimed`, `measured_dataset`,
    `method`, `measured` (in the paper's unit), `measured_std`, `n_seeds`, `best_baseline`,
    `best_baseline_value`, `best_baseline_note`, `expected_seeds`, `status` (`measured` | `not run: ...`
    | `metric missing: ...`). `measured` is always read from `measured`, never from `claims`.

    Parameters
    ----------
    claims
        The parsed claims file.
    table
        Which paper table: ``integration``, ``annotation`` or ``multitask``.
    measured
        This run's summary table (completed runs only; ``n_seeds`` = seeds with a value).
    methods
        The methods of the model under test to show.
    row_key
        The claims rows' column naming the paper dataset.
    n_seeds
        Seeds the config runs: the best baseline is chosen among the methods measured on all of them
        (a method that lost a seed is named as left out); None: the most seeds any method has.
    """
    required = {"dataset", "method", "metric", "value"}
    if missing := required - set(measured.columns):
        raise ValueError(f"measured {table} table lacks columns {sorted(missing)}")
    out: list[dict[str, Any]] = []
    run_datasets = list(dict.fromkeys(measured["dataset"].astype(str)))
    for paper_row in claims.rows(table):
        if table == "multitask":
            stand_ins = run_datasets  # the multi-task claim has no dataset: every run dataset counts
            label = f"{paper_row['n_tasks']} task(s)"
        else:
            label = str(paper_row[row_key])
            stand_ins = [d for d in claims.stand_ins.get(label, []) if d in run_datasets]
        for claim in CLAIM_COLUMNS[table]:
            mapping = claims.measured_as[table][claim]
            candidates = [str(m) for m in mapping["metric"]]
            scale = float(mapping.get("scale", 1))
            base = {"paper_row": label, "paper_size": _paper_size(paper_row), "claim": claim,
                    "claimed": paper_row[claim]}
            if not stand_ins:
                wanted = claims.stand_ins.get(label, [])
                why = (
                    f"{NOT_RUN}: stand-in dataset {', '.join(wanted)} not in this run"
                    if wanted
                    else f"{NOT_RUN}: no dataset of this kind in this run"
                )
                out.append({**base, "measured_dataset": "", "method": "", "measured": float("nan"),
                            "status": why})
                continue
            for dataset in stand_ins:
                row_methods = [_multitask_method(m, paper_row) for m in methods] if table == "multitask" else methods
                for method in row_methods:
                    hit = _lookup(measured, dataset, method, candidates)
                    record = {**base, "measured_dataset": dataset, "method": method}
                    if hit is None:
                        record.update(measured=float("nan"),
                                      status=f"metric missing: none of {candidates} for {method}")
                    else:
                        record.update(
                            measured=float(hit["value"]) * scale,
                            measured_std=float(hit["std"]) * scale if "std" in hit and pd.notna(hit["std"]) else float("nan"),
                            n_seeds=int(hit["n_seeds"]) if "n_seeds" in hit and pd.notna(hit["n_seeds"]) else 1,
                            status="measured",
                        )
                    record["expected_seeds"] = n_seeds
                    if table != "multitask":
                        record.update(_best_baseline(measured, dataset, candidates, scale, claim, n_seeds))
                    out.append(record)
    return pd.DataFrame(out)


def _paper_size(paper_row: Mapping[str, Any]) -> str:
    """The paper dataset's size as printed (cells, batches, cell types), for the report."""
    parts = []
    if "cells" in paper_row:
        parts.append(f"{paper_row['cells']} cells")
    if "n_batches" in paper_row:
        parts.append(f"{paper_row['n_batches']} batches")
    if "n_cell_types" in paper_row:
        parts.append(f"{paper_row['n_cell_types']} cell types")
    return ", ".join(parts)


def _multitask_method(prefix: str, paper_row: Mapping[str, Any]) -> str:
    """Measured method name of a multi-task model: `{prefix}_tasks{n}`, e.g. `scdiva_tasks3`."""
    return f"{prefix}_tasks{int(paper_row['n_tasks'])}"


#: Claims where smaller is better (the best baseline is the minimum).
LOWER_IS_BETTER = {"seconds_per_1k_cells"}


def _best_baseline(measured: pd.DataFrame, dataset: str, candidates: list[str], scale: float,
                   claim: str, n_seeds: int | None = None) -> dict[str, Any]:
    """The best baseline (record role "baseline": not the model under test, not the unintegrated
    control) on this dataset and metric, so a claim is read in context. Only a baseline measured on
    every seed (``n_seeds``; None: the most any baseline has) is eligible: a mean over the seeds that
    happened to complete is not comparable; those left out are named in ``best_baseline_note``."""
    baseline = measured["method"].map(lambda m: method_role(str(m)) == "baseline")
    sel = measured[(measured["dataset"] == dataset) & baseline]
    for name in candidates:
        hit = sel[sel["metric"] == name].dropna(subset=["value"])
        if len(hit):
            counts = hit["n_seeds"].fillna(1).astype(int) if "n_seeds" in hit else pd.Series(1, index=hit.index)
            need = int(n_seeds) if n_seeds else int(counts.max())
            partial = hit[counts < need]
            note = ", ".join(f"{m} ({n} of {need} seeds)" for m, n in zip(partial["method"], counts[partial.index],
                                                                            strict=True))
            complete = hit[counts >= need]
            if not len(complete):
                return {"best_baseline": "", "best_baseline_value": float("nan"),
                        "best_baseline_note": f"no baseline measured on all {need} seeds; left out: {note}"}
            best = complete.loc[complete["value"].idxmin() if claim in LOWER_IS_BETTER else complete["value"].idxmax()]
            return {"best_baseline": best["method"], "best_baseline_value": float(best["value"]) * scale,
                    "best_baseline_note": f"left out, not measured on all {need} seeds: {note}" if note else ""}
    return {"best_baseline": "", "best_baseline_value": float("nan"), "best_baseline_note": ""}


def display_table(comparison: pd.DataFrame, hardware: str) -> pd.DataFrame:
    """Human-readable table: one row per paper row, claim and method.

    Column headers are "claimed (paper)" and "measured (this run, dataset X, hardware Y)";
    unmeasured cells say why instead of staying blank.
    """
    datasets = [d for d in comparison.get("measured_dataset", pd.Series(dtype=str)) if d]
    measured_col = measured_label(datasets, hardware)

    def fmt(row: pd.Series) -> str:
        if row["status"] != "measured":
            return str(row["status"])
        text = f"{row['measured']:.3g}"
        if pd.notna(row.get("measured_std")) and row.get("n_seeds", 1) > 1:
            text += f" ± {row['measured_std']:.2g} (n={int(row['n_seeds'])})"
        expected = row.get("expected_seeds")
        if pd.notna(expected) and row.get("n_seeds", 1) < expected:  # some seeds of this method did not complete
            text += f" (only {int(row['n_seeds'])} of {int(expected)} seeds)"
        return f"{text} [{row['measured_dataset']}]"

    table = pd.DataFrame({
        "paper": comparison["paper_row"],
        "paper dataset": comparison["paper_size"].replace("", "-"),
        "metric": comparison["claim"].map(CLAIM_LABELS),
        "method": comparison["method"].replace("", "-"),
        CLAIMED_LABEL: comparison["claimed"].map(lambda v: f"{v:g}"),
        measured_col: comparison.apply(fmt, axis=1),
    })
    if "best_baseline" in comparison:
        notes = comparison.get("best_baseline_note", pd.Series("", index=comparison.index)).fillna("")
        table["best baseline (this run)"] = [
            (f"{b}: {v:.3g}" if isinstance(b, str) and b else "-") + (f" ({note})" if note else "")
            for b, v, note in zip(comparison["best_baseline"].fillna(""), comparison["best_baseline_value"], notes,
                                  strict=True)
        ]
    return table
