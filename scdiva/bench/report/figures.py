"""Figures of the integration benchmark: scIB-style results table and the UMAP grid."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from scdiva.bench.core.io import atomic_path
from scdiva.bench.methods.record import is_control
from scdiva.bench.tasks.integration.metrics import AGGREGATES, METRICS


def _save(fig, paths: Sequence[str | os.PathLike[str]]) -> None:
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight", format=Path(path).suffix.lstrip("."))


def results_table_figure(wide: pd.DataFrame, paths: Sequence[str | os.PathLike[str]], *, title: str = "",
                         ranked: Collection[str] | None = None) -> None:
    """scIB-style table: methods as rows; metric circles (colour and size = value) grouped into
    bio conservation and batch correction, then bars for the aggregate scores. Rows sorted by total;
    with ``ranked`` (methods that completed every seed), the others go below them, marked "not ranked"."""
    # deferred: imports matplotlib (this module is imported at workflow parse time)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [("Bio conservation", [m for m, i in METRICS.items() if i.kind == "bio"]),
              ("Batch correction", [m for m, i in METRICS.items() if i.kind == "batch"]),
              ("Aggregate score", list(AGGREGATES))]
    columns = [(g, m) for g, ms in groups for m in ms if m in wide.columns]
    wide = wide.sort_values("total_score", ascending=False)
    controls = wide.index.map(is_control).to_numpy(dtype=bool)  # reference points: below every method
    first = ~controls if ranked is None else wide.index.isin(list(ranked)) & ~controls
    wide = pd.concat([wide[first], wide[~first & ~controls].rename(index=lambda m: f"{m} (not ranked)"),
                      wide[controls]])
    wide = wide.iloc[::-1]  # best at the top of the plot
    n_rows, n_cols = wide.shape[0], len(columns)
    fig, ax = plt.subplots(figsize=(1.0 * n_cols + 2.5, 0.55 * n_rows + 1.8))
    cmap_metric, cmap_agg = plt.get_cmap("PRGn"), plt.get_cmap("YlGnBu")
    for j, (group, metric) in enumerate(columns):
        for i, value in enumerate(wide[metric].to_numpy(dtype=float)):
            if not np.isfinite(value):
                ax.text(j, i, "n/a", ha="center", va="center", fontsize=7)
                continue
            if group == "Aggregate score":
                ax.barh(i, value * 0.9, left=j - 0.45, height=0.6, color=cmap_agg(value))
                ax.text(j - 0.4, i, f"{value:.2f}", va="center", fontsize=7)
            else:
                ax.scatter(j, i, s=100 + 500 * value, color=cmap_metric(value), edgecolor="k", linewidth=0.3)
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if abs(value - 0.5) > 0.3 else "black")
    labels = [METRICS[m].label if m in METRICS else m.replace("_", " ").capitalize() for _, m in columns]
    ax.set_xticks(range(n_cols), labels, rotation=45, ha="left")
    ax.xaxis.tick_top()
    ax.set_yticks(range(n_rows), wide.index)
    ax.set_xlim(-0.6, n_cols - 0.4)
    ax.set_ylim(-0.6, n_rows - 0.4)
    for spine in ax.spines.values():
        spine.set_visible(False)
    start = 0
    for group, _ in groups:
        width = sum(1 for g, _ in columns if g == group)
        if width:
            ax.axvline(start - 0.5, color="grey", linewidth=0.5)
            ax.text(start + width / 2 - 0.5, -1.1, group, ha="center", va="top", fontsize=8, weight="bold")
        start += width
    if title:
        ax.set_title(title, pad=90)
    _save(fig, paths)
    plt.close(fig)


def message_figure(message: str, paths: Sequence[str | os.PathLike[str]]) -> None:
    """A figure that only says ``message``: stands in for a figure with nothing to show (e.g. no run
    completed), so that the report's figure files always exist and say why they are empty."""
    # deferred: imports matplotlib (this module is imported at workflow parse time)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 1.2))
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=10)
    ax.set_axis_off()
    _save(fig, paths)
    plt.close(fig)


def umap_grid(
    obs: pd.DataFrame,
    embeddings: Mapping[str, np.ndarray],
    *,
    batch_key: str,
    label_key: str,
    paths: Sequence[str | os.PathLike[str]],
    seed: int = 0,
) -> None:
    """Grid of UMAPs: one row per method, coloured by batch (left) and label (right)."""
    # deferred: imports anndata, matplotlib, scanpy, tqdm (this module is imported at workflow parse time)
    import anndata as ad
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import scanpy as sc
    from tqdm.auto import tqdm

    keys = [batch_key, label_key]
    fig, axes = plt.subplots(len(embeddings), 2, figsize=(9, 3.6 * len(embeddings)), squeeze=False)
    palettes = {}
    for key in keys:
        cats = sorted(obs[key].astype(str).unique())
        colors = plt.get_cmap("tab10" if len(cats) <= 10 else "tab20")(np.arange(len(cats)) % 20)
        palettes[key] = dict(zip(cats, colors, strict=True))
    for row, (method, emb) in enumerate(tqdm(embeddings.items(), desc="UMAP per method")):
        tmp = ad.AnnData(obs=obs[keys].astype(str).copy())
        tmp.obsm["X_emb"] = np.asarray(emb, dtype=np.float32)
        sc.pp.neighbors(tmp, use_rep="X_emb", n_neighbors=15, random_state=seed)
        sc.tl.umap(tmp, random_state=seed)
        xy = tmp.obsm["X_umap"]
        for col, key in enumerate(keys):
            ax = axes[row, col]
            values = tmp.obs[key].to_numpy()
            order = np.random.default_rng(seed).permutation(len(values))  # no batch drawn on top of another
            ax.scatter(xy[order, 0], xy[order, 1], s=3, c=[palettes[key][v] for v in values[order]],
                       linewidths=0, rasterized=True)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{method} - {key}", fontsize=9)
            if row == 0:
                handles = [plt.Line2D([], [], marker="o", linestyle="", color=c, label=k)
                           for k, c in palettes[key].items()]
                ax.legend(handles=handles, fontsize=6, loc="upper left", bbox_to_anchor=(1, 1), frameon=False)
    fig.tight_layout()
    _save(fig, paths)
    plt.close(fig)


def walltime_figure(walltimes: pd.DataFrame, paths: Sequence[str | os.PathLike[str]], *, title: str = "") -> None:
    """Horizontal bars: summed job wall time (s) per Snakemake rule, longest on top, labelled with
    the seconds and the number of jobs. ``walltimes``: one row per job with ``rule`` and ``wall_s``."""
    # deferred: imports matplotlib (this module is imported at workflow parse time)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_rule = walltimes.groupby("rule")["wall_s"].agg(["sum", "count"]).sort_values("sum")
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(per_rule) + 1.2))
    ax.barh(per_rule.index, per_rule["sum"], color="#4c72b0")
    for i, (total, count) in enumerate(zip(per_rule["sum"], per_rule["count"], strict=True)):
        ax.text(total, i, f" {total:.0f} s ({count} job{'s' if count != 1 else ''})", va="center", fontsize=7)
    ax.set_xlabel("summed job wall time (s)")
    ax.set_xlim(0, per_rule["sum"].max() * 1.3 if len(per_rule) else 1)
    ax.spines[["top", "right"]].set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    _save(fig, paths)
    plt.close(fig)
