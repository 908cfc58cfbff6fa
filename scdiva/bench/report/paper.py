"""Report sections of the paper comparison: claimed beside measured, annotation, multi-task, trajectory.

Every number in a "measured" column or figure is read from this run's tables; the claims file
only supplies the "claimed (paper)" column (see `scdiva.bench.report.claims`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from scdiva.bench.core.io import atomic_path
from scdiva.bench.core.outcomes import RunOutcome
from scdiva.bench.methods.catalog import model_methods
from scdiva.bench.report.claims import PaperClaims, compare, display_table
from scdiva.bench.report.document import Section
from scdiva.bench.report.integration import IN_SAMPLE_NOTE, in_sample
from scdiva.bench.report.tables import BY_SEED_COLUMNS, paired_comparison_markdown, paired_differences

CLAIMED_INTEGRATION_METRICS = {"silhouette_batch": "batch ASW", "kbet": "kBET",
                               "graph_connectivity": "graph connectivity"}


def _empty(columns: Sequence[str] = ("dataset", "method", "metric", "value")) -> pd.DataFrame:
    return pd.DataFrame(columns=list(columns))


def read_table(path: str | os.PathLike | None) -> pd.DataFrame:
    """A long-form table, or an empty one when the file is not part of this run."""
    return pd.read_csv(path) if path and Path(path).is_file() else _empty()


def claims_section(claims: PaperClaims, integration: pd.DataFrame, annotation: pd.DataFrame,
                   multitask: pd.DataFrame, hardware: str, n_seeds: int | None = None,
                   development: Collection[str] = ()) -> Section:
    """The paper's three tables, each with "claimed (paper)" beside "measured (this run, ...)".

    Parameters
    ----------
    claims
        The parsed claims file.
    integration, annotation, multitask
        This run's summary tables (completed runs only); empty when not part of the run.
    hardware
        The machine the timed jobs ran on.
    n_seeds
        Seeds the config runs: a measured value over fewer says so, and the best baseline is one
        measured on all of them (:func:`scdiva.bench.report.claims.compare`).
    development
        Datasets ScDiVa's defaults were chosen on: the text says its measured values from them are in-sample.
    """
    parts = [
        "The paper's numbers (`config/paper_claims.yaml`, transcribed as printed) beside what this run "
        "measured. The paper's datasets are far larger (150K-500K cells) than the embedded data "
        "(about a thousand cells), so the comparison is of tendencies, not a reproduction. A paper "
        "dataset with no stand-in in this run is marked *not run*. 'ASW' is read as scIB's batch ASW "
        "and 'F1' as macro-F1 (the stricter reading), as `measured_as` in the claims file states. "
        "The best non-ScDiVa method of this run is shown for context.",
    ]
    if development:
        parts.append(f"**In-sample:** ScDiVa's defaults were chosen on {', '.join(f'`{d}`' for d in development)} "
                     "(development data, docs/model.md), so its measured values from them are not an "
                     "independent evaluation.")

    # the model under test: the methods whose record has role "model" (scdiva.bench.methods.catalog);
    # multi-task rows are named after the annotation one (`<name>_tasks<n>`)
    integration_models = model_methods("integration")
    for table, measured, methods in (
        ("integration", integration, [m for m in integration_models if m in set(integration.get("method", []))]
         or integration_models[:1]),
        ("annotation", annotation, model_methods("annotation")),
        ("multitask", multitask, model_methods("annotation")),
    ):
        comparison = compare(claims, table, measured if len(measured) else _empty(), methods,
                             n_seeds=n_seeds if table != "multitask" else None)
        parts.append(f"### {claims.caption(table)}\n\n" + display_table(comparison, hardware).to_markdown(index=False))
    return Section(title="Paper claims vs this run", markdown="\n\n".join(parts), order=5)


def plot_grouped_bars(table: pd.DataFrame, metrics: Mapping[str, str], path: str | os.PathLike, *,
                      title: str, ylabel: str = "score") -> None:
    """Bars of `metrics` (name -> label) per method, one panel per dataset, std as error bars."""
    # deferred: imports matplotlib (Agg is selected only when a figure is drawn)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(table["dataset"]))
    fig, axes = plt.subplots(1, max(1, len(datasets)), figsize=(6.5 * max(1, len(datasets)), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=False):
        sel = table[(table["dataset"] == dataset) & table["metric"].isin(metrics)]
        methods = list(dict.fromkeys(sel["method"]))
        width = 0.8 / max(1, len(metrics))
        for i, (metric, label) in enumerate(metrics.items()):
            rows = sel[sel["metric"] == metric].set_index("method").reindex(methods)
            # one seed has no std: no error bar (NaN), not a bar of 0
            err = rows["std"].to_numpy(dtype=float) if "std" in rows else None
            ax.bar(np.arange(len(methods)) + i * width, rows["value"].to_numpy(dtype=float), width,
                   yerr=err, label=label, capsize=2)
        ax.set_xticks(np.arange(len(methods)) + width * (len(metrics) - 1) / 2, methods, rotation=30, ha="right")
        ax.set_title(dataset, fontsize=10)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub markdown table with the index levels as ordinary columns (never a tuple per row)."""
    frame = frame.copy()
    frame.columns = [" ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in frame.columns]
    return frame.reset_index().to_markdown(index=False)


def _wide(table: pd.DataFrame, metrics: Mapping[str, str], digits: int = 3,
          development: Collection[str] = (), models: Collection[str] | None = None) -> pd.DataFrame:
    """dataset x method rows, one column per metric, 'mean ± std' when several seeds; with
    ``development`` datasets, an ``in-sample`` column marks the model's rows on them."""
    sel = table[table["metric"].isin(metrics)].copy()
    # Tables hold completed runs only: a method with fewer seeds than the most any method of that dataset
    # has (some of its runs did not complete) says over how many seeds its mean is.
    most = sel.groupby(["dataset", "metric"])["n_seeds"].transform("max") if "n_seeds" in sel else None

    def cell(row: pd.Series) -> str:
        text = f"{row['value']:.{digits}g}"
        if "std" in row and pd.notna(row["std"]) and row.get("n_seeds", 1) > 1:
            text += f" ± {row['std']:.2g}"
        if most is not None and row["n_seeds"] < most[row.name]:
            text += f" (n={int(row['n_seeds'])})"
        return text

    sel["cell"] = sel.apply(cell, axis=1)
    wide = sel.pivot_table(index=["dataset", "method"], columns="metric", values="cell", aggfunc="first", sort=False)
    wide = wide.reindex(columns=[m for m in metrics if m in wide.columns]).rename(columns=dict(metrics))
    if development:
        rows = wide.index.to_frame(index=False)
        flags = in_sample(rows["dataset"], rows["method"], development, models).to_numpy()
        wide.insert(0, "in-sample", np.where(flags, "yes", ""))
    return wide


def integration_claims_section(integration: pd.DataFrame, figure: str, development: Collection[str] = (),
                               models: Collection[str] | None = None) -> Section:
    """Bars of the paper's three integration metrics for every method of this run (``development``:
    datasets whose model rows are in-sample)."""
    plot_grouped_bars(integration, CLAIMED_INTEGRATION_METRICS, figure,
                      title="Integration metrics the paper reports, per method (this run; higher is better)")
    return Section(title="Integration: the paper's metrics per method", order=6, figures=[str(figure)],
                   markdown=markdown_table(_wide(integration, CLAIMED_INTEGRATION_METRICS, development=development, models=models)))


ANNOTATION_METRICS = {"accuracy": "accuracy", "macro_f1": "macro-F1",
                      "inference_s_per_1k_cells": "inference s / 1K cells", "train_s": "training s",
                      "query_fit_s": "query fit s"}


#: the annotation scores compared with the reference method seed by seed
PAIRED_ANNOTATION_METRICS = {"accuracy": "accuracy", "macro_f1": "macro-F1"}


def annotation_paired(by_seed: pd.DataFrame, reference: str | Sequence[str]) -> pd.DataFrame:
    """Every annotation method against each ``reference`` method, seed by seed, on
    :data:`PAIRED_ANNOTATION_METRICS` (:func:`scdiva.bench.report.tables.paired_differences`; no rows
    for a reference that did not run)."""
    references = [reference] if isinstance(reference, str) else list(reference)
    return pd.concat([paired_differences(by_seed, ref, metric) for ref in references or [""]
                      for metric in PAIRED_ANNOTATION_METRICS], ignore_index=True)


def write_table(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``table`` as CSV, whole or not at all."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def annotation_section(annotation: pd.DataFrame, infos: Mapping[str, Mapping], figure: str,
                       confusion_figures: Sequence[str], *, by_seed: pd.DataFrame | None = None,
                       reference: str | Sequence[str] | None = None, paired_path: str | os.PathLike | None = None,
                       development: Collection[str] = (), models: Collection[str] | None = None) -> Section:
    """Accuracy / macro-F1 / timing table and bars, unseen classes, per-class F1, confusion matrices.

    With ``by_seed`` (per-run scores of completed runs) and a ``reference`` method (or several) among
    them: every other method's paired differences of accuracy and macro-F1 against each, seed by seed
    (:func:`scdiva.bench.report.tables.paired_differences`), shown in the section and written to
    ``paired_path`` (when given; without a comparison, with the header only). ``development``: the
    datasets whose model rows are in-sample (marked in the table, named in the text); ``models``: the
    run's methods of the model under test (None: the built-in ones).
    """
    plot_grouped_bars(annotation, {"accuracy": "accuracy", "macro_f1": "macro-F1"}, figure,
                      title="Annotation on the query batches (higher is better)")
    lines = ["Methods train on the reference batches and label the query batches "
             "(`datasets.<name>.annotation`). Inference time is the median of repeated `predict` calls on "
             "the whole query on this machine, per 1,000 cells; scANVI's query surgery is reported "
             "separately as *query fit s*. Query classes absent from the reference count as errors."]
    # a job whose run did not complete leaves a stub info ({status, reason}) and a "failed" figure:
    # named here, kept out of the per-job lines and the confusion matrices
    stubs = {key: info for key, info in infos.items() if info.get("status", "ok") != "ok"}
    if stubs:
        lines.append("Runs that did not complete (no scores, no confusion matrix; see *Coverage*):")
        lines += [f"- `{key}`: **{info['status']}**" + (f": {info['reason']}" if info.get("reason") else "")
                  for key, info in sorted(stubs.items())]
    confusion_figures = [f for f in confusion_figures
                         if os.path.relpath(str(f).removesuffix(".confusion.png") + ".json", "results") not in stubs]
    for key, info in sorted((k, i) for k, i in infos.items() if k not in stubs):
        unseen = info.get("unseen_query_classes") or {}
        lines.append(f"- `{key}`: reference {info.get('reference_batches')} ({info.get('n_reference')} cells), "
                     f"query {info.get('query_batches')} ({info.get('n_query')} cells); classes unseen in the "
                     f"reference: {', '.join(f'{k} ({v} cells)' for k, v in unseen.items()) or 'none'}; "
                     f"hardware: {info.get('hardware')}")
    per_class = annotation[annotation["metric"].str.startswith("f1:")].copy()
    per_class["class"] = per_class["metric"].str.removeprefix("f1:")
    per_class_table = per_class.pivot_table(index=["dataset", "class"], columns="method", values="value")
    references = [reference] if isinstance(reference, str) else list(reference or [])
    paired = annotation_paired(by_seed if by_seed is not None else _empty(BY_SEED_COLUMNS), references)
    if paired_path is not None:
        write_table(paired, paired_path)
    paired_md = "".join(paired_comparison_markdown(paired[paired["reference"] == ref], ref, PAIRED_ANNOTATION_METRICS)
                        for ref in references)
    if development:
        lines.append(f"Development data ({', '.join(f'`{d}`' for d in sorted(development))}): "
                     + IN_SAMPLE_NOTE.removeprefix("**Development data**: "))
    markdown = ("\n".join(lines) + "\n\n" + markdown_table(_wide(annotation, ANNOTATION_METRICS,
                                                                  development=development, models=models))
                + paired_md
                + "\n\n<details><summary>Per-class F1</summary>\n\n" + markdown_table(per_class_table.round(3))
                + "\n\n</details>")
    return Section(title="Cell-type annotation", markdown=markdown, order=20,
                   figures=[str(figure), *map(str, confusion_figures)])


def plot_multitask(multitask: pd.DataFrame, path: str | os.PathLike) -> None:
    """Each task's held-out score against the number of heads (one line per metric)."""
    # deferred: imports matplotlib (Agg is selected only when a figure is drawn)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = multitask[~multitask["metric"].isin(["train_s"])]
    fig, ax = plt.subplots(figsize=(7, 4))
    for (dataset, metric), rows in scores.groupby(["dataset", "metric"], sort=False):
        rows = rows.sort_values("n_tasks")
        ax.errorbar(rows["n_tasks"], rows["value"], yerr=rows["std"].to_numpy(dtype=float) if "std" in rows else None,
                    marker="o", capsize=2, label=f"{metric} ({dataset})")
    ax.set_xlabel("number of task heads")
    ax.set_xticks(sorted(scores["n_tasks"].unique()))
    ax.set_ylabel("score on held-out cells")
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1, 0.5))
    ax.set_title("ScDiVa multi-task: held-out score by head count", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def multitask_comparison_markdown(comparison: pd.DataFrame) -> str:
    """The paired head-count comparison (scdiva.bench.tasks.multitask.stats) as a markdown table with a caption."""
    if comparison is None or not len(comparison):
        return ""
    shown = comparison.assign(
        **{"pairs (seeds)": comparison["n_pairs"].astype(int).astype(str) + " ("
           + comparison["n_seeds"].astype(int).astype(str) + ")",
           "accuracy": comparison["accuracy_baseline"].round(3).astype(str) + " -> "
           + comparison["accuracy_method"].round(3).astype(str),
           "only baseline / only method right": comparison["n_only_baseline_correct"].astype(int).astype(str) + " / "
           + comparison["n_only_method_correct"].astype(int).astype(str),
           "McNemar p": comparison["mcnemar_p"].map(lambda p: f"{p:.3g}"),
           "macro-F1 diff [95% CI]": comparison["macro_f1_diff"].map(lambda d: f"{d:+.3f}") + " ["
           + comparison["macro_f1_diff_ci_low"].map(lambda d: f"{d:+.3f}") + ", "
           + comparison["macro_f1_diff_ci_high"].map(lambda d: f"{d:+.3f}") + "]"})
    columns = ["dataset", "task", "baseline", "method", "pairs (seeds)", "accuracy",
               "only baseline / only method right", "McNemar p", "macro-F1 diff [95% CI]", "verdict"]
    return ("Do extra heads cost anything? Each head count against the 1-head model on the same held-out "
            "cells (paired per cell and seed): McNemar's exact test on right/wrong, and a paired bootstrap "
            "interval of the macro-F1 difference (method minus baseline, mean over seeds; negative = the extra "
            "heads cost macro-F1). Verdict 'costs' / 'gains' only when the whole interval lies below / above 0.\n\n"
            + markdown_table(shown[columns].set_index(["dataset", "task"])))


def multitask_section(multitask: pd.DataFrame, infos: Mapping[str, Mapping], figure: str,
                      comparison: pd.DataFrame | None = None) -> Section:
    """Task scores by head count, with what the cell-cycle labels rest on, and the paired comparison."""
    plot_multitask(multitask, figure)
    lines = ["Tasks added in order: 1 = annotation; 3 = + integration, masked expression; 5 = + coarse "
             "labels, cell-cycle phase. Every model is trained from scratch on the same cells, steps and "
             "seed; scores are on held-out cells (stratified by cell type). Accuracy / macro-F1 / ASW / "
             "Pearson: higher is better; masked-expression MSE: lower is better. A task whose data a dataset "
             "lacks is skipped (listed below), so the columns count the heads actually trained."]
    for key, info in sorted(infos.items()):
        line = (f"- `{key}`: {info.get('n_train')} training / {info.get('n_held_out')} held-out cells, "
                f"{info.get('size')} model, {info.get('max_steps')} steps.")
        cc = info.get("cell_cycle")
        if cc:
            line += (f" Cell-cycle phase from {len(cc.get('s_genes_found', []))} of {cc.get('n_s_genes')} S genes "
                     f"and {len(cc.get('g2m_genes_found', []))} of {cc.get('n_g2m_genes')} G2M genes (Tirosh et "
                     f"al.); phases {cc.get('phase_counts')}. The majority phase is "
                     f"{cc.get('held_out_majority_fraction', float('nan')):.1%} of held-out cells, the accuracy a "
                     "constant guess reaches; with so few list genes these labels are weak and the task says little.")
        lines.append(line)
        lines += [f"  - skipped task `{task}`: {reason}" for task, reason in info.get("skipped_tasks", {}).items()]
        lines += [f"  - {n} heads not trained: {reason}" for n, reason in info.get("skipped_head_counts", {}).items()]
    table = multitask.assign(heads=multitask["n_tasks"].astype(int).astype(str) + " heads").pivot_table(
        index=["dataset", "metric"], columns="heads", values="value", sort=False)
    return Section(title="Multi-task learning", order=30, figures=[str(figure)],
                   markdown="\n".join(lines) + "\n\n" + markdown_table(table.round(4))
                   + ("\n\n" + multitask_comparison_markdown(comparison) if comparison is not None and len(comparison)
                      else ""))


def trajectory_section(figures: Sequence[str], medians: Sequence[str], runs: Sequence[str] = ()) -> Section:
    """PAGA + diffusion pseudotime figures and the median pseudotime per cell type.

    Parameters
    ----------
    figures, medians
        Each dataset's trajectory figure and median-pseudotime CSV.
    runs
        The .run.json of the ScDiVa integration runs the figures use: one that did not complete has no
        row in its figure, and is named here with its reason.
    """
    parts = ["Diffusion pseudotime and PAGA on PCA and on ScDiVa's latent, rooted at the first HSC when the "
             "data has one (else the cell with the largest first diffusion component). PBMCs are mostly "
             "mature cells, so this shows how each embedding orders cells, not a validated trajectory."]
    left_out = [RunOutcome.read(path) for path in runs]
    left_out = [r for r in left_out if not r.ok]
    if left_out:
        parts.append("Not shown, the run did not complete (see *Coverage*):\n\n" + "\n".join(
            f"- `{r.method}` on `{r.dataset}` (seed {r.seed}): **{r.status}**" + (f": {r.reason}" if r.reason else "")
            for r in left_out))
    for path in medians:
        parts.append(f"Median pseudotime per cell type (`{Path(path).parent.name}`):\n\n"
                     + pd.read_csv(path, index_col=0).round(3).to_markdown())
    return Section(title="Trajectory: PAGA and diffusion pseudotime", order=40, figures=list(map(str, figures)),
                   markdown="\n\n".join(parts))


def skipped_lines(skipped: Mapping[str, str]) -> str:
    """Markdown naming the datasets a benchmark skipped and why ('' when none was skipped)."""
    if not skipped:
        return ""
    return "\n\n**Skipped datasets:**\n\n" + "\n".join(f"- `{d}`: {why}" for d, why in skipped.items())


def load_infos(paths: Sequence[str]) -> dict[str, dict]:
    """Per-job JSON side files, keyed by their path relative to results/."""
    return {os.path.relpath(p, "results"): json.loads(Path(p).read_text()) for p in paths}
