"""Report section: what each ScDiVa checkpoint was trained on, so "zero-shot" can be read correctly."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from scdiva.bench.report.document import Section

ZERO_SHOT_NOTE = (
    "*Zero-shot* rows embed with the checkpoint as it is, with no training on the evaluated dataset after "
    "pretraining. A checkpoint pretrained by a recipe here has seen the cells listed below **without their "
    "labels** (the default recipe's corpus is every configured dataset, so its vocabulary covers each of "
    "them); a recipe with `held_out: annotation_query` keeps each dataset's annotation query batches out. "
    "No checkpoint ever sees a cell-type label before the annotation fine-tune on the reference batches."
)


def checkpoint_label(config_path: str | os.PathLike) -> str:
    """A checkpoint's name as the run knows it: its directory below ``resources/checkpoints``
    (``<name>``, or ``<name>/<dataset>/seed<k>`` for a recipe pretrained per dataset or seed)."""
    parts = Path(config_path).parent.parts
    if "checkpoints" in parts:
        below = parts[len(parts) - parts[::-1].index("checkpoints"):]
        if below:
            return "/".join(below)
    return Path(config_path).parent.name


def training_table(config_paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """One row per training run recorded in each checkpoint's ``config.json`` (``training_data``)."""
    rows = []
    for path in config_paths:
        config = json.loads(Path(path).read_text())
        runs = config.get("training_data") or [{}]
        for run in runs:
            rows.append({
                "checkpoint": checkpoint_label(path),
                "size": config.get("size", ""),
                "data": run.get("data", "(not recorded)"),
                "cells": run.get("n_cells"),
                "genes matched": run.get("n_genes_matched"),
                "vocabulary": config.get("n_genes"),
                "tasks": ", ".join(run.get("tasks", [])),
                "labels used": ", ".join(run.get("label_keys", [])) or "none",
                "steps": run.get("steps"),
            })
    return pd.DataFrame(rows)


def checkpoint_section(config_paths: Sequence[str | os.PathLike]) -> Section:
    table = training_table(config_paths)
    body = table.to_markdown(index=False) if len(table) else "No ScDiVa checkpoint is used in this run."
    return Section(title="ScDiVa checkpoints: which cells and genes each saw", order=7,
                   markdown=f"{ZERO_SHOT_NOTE}\n\n{body}")
