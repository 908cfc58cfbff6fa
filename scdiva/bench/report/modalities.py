"""Report sections of the multi-modal (RNA + protein) and cross-species benchmarks (issue 17).

Every number is read from this run's tables (``results/tables/multimodal_scores.csv``,
``cross_species_scores.csv``); the paper gives no numbers for either capability, which each section says.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc

from scdiva.bench.methods.catalog import model_methods
from scdiva.bench.report.document import Section
from scdiva.bench.tasks.annotation.figures import plot_confusion
from scdiva.bench.tasks.annotation.metrics import confusion_table
from scdiva.bench.tasks.cross_species import ANNOTATION_TASK, INTEGRATION_TASK
from scdiva.bench.tasks.multimodal import clr_normalise

MULTIMODAL_COLUMNS = {"protein_pearson": "protein Pearson (median)", "protein_spearman": "protein Spearman (median)",
                      "protein_r2_vs_mean": "R² vs mean protein", "rna_graph_agreement": "RNA-graph agreement",
                      "protein_graph_agreement": "protein-graph agreement", "hto_ilisi": "hashtag iLISI",
                      "protein_cluster_ari": "ARI vs protein clusters", "runtime_s": "time (s)"}
ANNOTATION_COLUMNS = {"accuracy": "accuracy (shared types)", "macro_f1": "macro-F1 (shared types)",
                      "accuracy_all": "accuracy (all query cells)", "unseen_fraction": "query cells of unseen types",
                      "runtime_s": "time (s)"}
INTEGRATION_COLUMNS = {"bio_score": "bio", "batch_score": "batch (species mixing)", "total_score": "total",
                       "ilisi": "iLISI (species)", "runtime_s": "time (s)"}
#: surface proteins shown in the figures when present (well-separating antibodies of this panel)
MARKERS = ("CD8", "CD4", "CD45RA", "HLA-DR", "CD2", "CD27")
#: metrics where lower is better
LOWER_IS_BETTER = {"runtime_s", "protein_mse", "unseen_fraction"}


def _wide(table: pd.DataFrame, index: Sequence[str], columns: Mapping[str, str]) -> pd.DataFrame:
    sub = table[table["metric"].isin(columns)]
    wide = sub.pivot_table(index=list(index), columns="metric", values="value", aggfunc="first")
    wide = wide[[c for c in columns if c in wide.columns]]
    return wide.rename(columns=columns)


def _fmt(frame: pd.DataFrame) -> str:
    """Markdown table; the index levels (dataset, method, ...) become ordinary columns, so a row
    reads `citeseq_pbmc | scdiva`, not a Python tuple."""
    values = frame.map(lambda v: "" if pd.isna(v) else f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}")
    return values.reset_index().to_markdown(index=False)


def _model(task: str) -> str:
    """The method of ``task`` whose role is "model" (ScDiVa), from the registry."""
    return model_methods(task)[0]


def scdiva_gaps(table: pd.DataFrame, group: Sequence[str], metrics: Sequence[str], *,
                task: str = "multimodal") -> list[str]:
    """One line per (group, metric) where ScDiVa (``task``'s model method) is not the best method: by how
    much, and who wins."""
    model = _model(task)
    lines = []
    for keys, sub in table[table["metric"].isin(metrics)].groupby([*group, "metric"], sort=False):
        values = sub.set_index("method")["value"].dropna()
        if model not in values or len(values) < 2:
            continue
        metric = keys[-1]
        others = values.drop(model)
        best = others.idxmin() if metric in LOWER_IS_BETTER else others.idxmax()
        worse = values[model] > others[best] if metric in LOWER_IS_BETTER else values[model] < others[best]
        if worse:
            where = ", ".join(str(k) for k in keys[:-1])
            lines.append(f"- {where}: `{metric}` ScDiVa {values[model]:.3f} vs {best} {others[best]:.3f} "
                         f"(difference {values[model] - others[best]:+.3f})")
    return lines


# --- multimodal ---------------------------------------------------------------------------------

def plot_protein_scatter(prepared_path: str, predicted_paths: Mapping[str, str], path: str | os.PathLike) -> None:
    """Predicted vs observed log1p protein counts of held-out cells for a few markers, one row per method."""
    # deferred: imports matplotlib (Agg is selected only when a figure is drawn)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    observed = ad.read_h5ad(prepared_path).obsm["protein"]
    markers = [m for m in MARKERS if m in observed.columns][:4] or list(observed.columns[:4])
    methods = list(predicted_paths)
    fig, axes = plt.subplots(len(methods), len(markers), figsize=(2.6 * len(markers), 2.5 * len(methods)),
                             squeeze=False)
    for i, method in enumerate(methods):
        predicted = pd.read_csv(predicted_paths[method], index_col="cell")
        for j, marker in enumerate(markers):
            ax = axes[i, j]
            x, y = np.log1p(observed.loc[predicted.index, marker]), np.log1p(predicted[marker])
            ax.scatter(x, y, s=5, alpha=0.6)
            r = np.corrcoef(x, y)[0, 1] if np.ptp(y) > 0 and np.ptp(x) > 0 else np.nan
            ax.set_title(f"{method}: {marker} (r={r:.2f})", fontsize=8)
            ax.set_xlabel("observed log1p", fontsize=7)
            ax.set_ylabel("predicted log1p", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_joint_umap(prepared_path: str, embedding_path: str, path: str | os.PathLike, *, method: str, seed: int = 0) -> None:
    """UMAP of a joint embedding coloured by the CLR-normalised counts of a few proteins."""
    # deferred: imports matplotlib (Agg is selected only when a figure is drawn)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prepared, embedded = ad.read_h5ad(prepared_path), ad.read_h5ad(embedding_path)
    proteins = prepared.obsm["protein"]
    markers = [m for m in MARKERS if m in proteins.columns][:4] or list(proteins.columns[:4])
    clr = pd.DataFrame(clr_normalise(proteins.to_numpy()), index=proteins.index, columns=proteins.columns)
    tmp = ad.AnnData(obs=pd.DataFrame(index=embedded.obs_names))
    tmp.obsm["X_emb"] = embedded.obsm["X_emb"]
    sc.pp.neighbors(tmp, use_rep="X_emb", random_state=seed)
    sc.tl.umap(tmp, random_state=seed)
    fig, axes = plt.subplots(1, len(markers), figsize=(3.0 * len(markers), 2.9), squeeze=False)
    for ax, marker in zip(axes[0], markers, strict=False):
        points = ax.scatter(*tmp.obsm["X_umap"].T, c=clr.loc[tmp.obs_names, marker], s=5, cmap="viridis")
        ax.set_title(f"{method} joint UMAP: {marker} (CLR)", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(points, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def left_out_text(left_out: Sequence[str]) -> str:
    """The runs a section leaves out (one markdown bullet each, :func:`scdiva.bench.report.coverage.left_out_lines`)
    under a heading; '' when every run completed."""
    if not left_out:
        return ""
    return ("**Runs left out** (they did not complete, so they are in no mean, table or figure above; "
            "see *Coverage*):\n\n" + "\n".join(left_out))


def _section(title: str, parts: list[str], figures: Sequence[str], left_out: Sequence[str], *,
             order: int) -> Section:
    """A modality's section: its paragraphs, then the runs left out; only the figures that exist."""
    if left_out:
        parts = [*parts, left_out_text(left_out)]
    return Section(title=title, markdown="\n\n".join(parts), figures=[str(f) for f in figures if Path(f).is_file()],
                   order=order)


def _gaps_text(gaps: Sequence[str], table: pd.DataFrame, task: str) -> str:
    """The "where ScDiVa is not the best" paragraph; says so when ScDiVa has no completed run to compare."""
    if _model(task) not in set(table.get("method", [])):
        body = "- ScDiVa has no completed run in this table, so there is nothing to compare"
    else:
        body = "\n".join(gaps) if gaps else "- nowhere in this run"
    return "**Where ScDiVa is not the best method:**\n\n" + body


def multimodal_section(table: pd.DataFrame, figures: Sequence[str], left_out: Sequence[str] = ()) -> Section:
    """Claimed (no numbers in the paper) beside measured, per dataset and method.

    Parameters
    ----------
    table
        ``multimodal_scores.csv`` (completed runs only).
    figures
        The figures made of the completed runs (missing files are skipped).
    left_out
        One markdown line per run that did not complete (:func:`scdiva.bench.report.coverage.left_out_lines`).
    """
    parts = ["**Paper's claim:** ScDiVa supports multi-modal integration. The paper gives no numbers for it "
             "(no dataset, metric or table), so there is nothing to compare against; below is what this run measured.",
             "**Measured:** protein prediction from RNA on held-out cells (Pearson / Spearman per protein, median over "
             "proteins, isotype controls excluded; R² vs the training-mean predictor, > 0 = better than the mean), the "
             "joint embedding's agreement with each modality's own 15-NN graph (Jaccard, [0, 1]), mixing of the "
             "hashtag samples (scaled iLISI, [0, 1]) and concordance with protein-only Leiden clusters (ARI). Higher is "
             "better for all but time. `pca`/`scvi` are RNA only (their protein prediction: mean of the 15 nearest "
             "training cells); `mean_protein` predicts the training mean (its correlations are undefined).",
             _fmt(_wide(table, ["dataset", "method"], MULTIMODAL_COLUMNS))]
    gaps = scdiva_gaps(table, ["dataset"], [m for m in MULTIMODAL_COLUMNS if m != "runtime_s"])
    parts.append(_gaps_text(gaps, table, "multimodal"))
    return _section("Multi-modal integration (RNA + protein)", parts, figures, left_out, order=60)


# --- cross-species ------------------------------------------------------------------------------

def plot_cross_species_confusion(predictions_path: str, path: str | os.PathLike, *, title: str) -> None:
    """Confusion matrix (true query type x predicted) of one cross-species annotation run."""
    predictions = pd.read_csv(predictions_path)
    plot_confusion(confusion_table(predictions["true"], predictions["predicted"]), str(path), title=title)


def cross_species_section(table: pd.DataFrame, figures: Sequence[str], left_out: Sequence[str] = ()) -> Section:
    """Annotation across species (both directions) and species-as-batch integration, claim beside measured.

    Parameters
    ----------
    table
        ``cross_species_scores.csv`` (completed runs only).
    figures
        The confusion matrices of the completed runs (missing files are skipped).
    left_out
        One markdown line per run that did not complete (:func:`scdiva.bench.report.coverage.left_out_lines`).
    """
    annotation = table[table["task"] == "annotation"]
    integration = table[table["task"] == "integration"]
    parts = ["**Paper's claim:** ScDiVa generalises across species. The paper gives no numbers for it, so there is "
             "nothing to compare against; below is what this run measured. Genes are matched by upper-cased symbols "
             "(no offline orthology table is available to the workflow).",
             "**Annotation across species** (trained on `reference`, applied to `query`): accuracy and macro-F1 over "
             "the query cells of the types both species have; `accuracy (all query cells)` counts the cells of types "
             "the reference lacks as wrong; their fraction is shown (per type: `unseen_cells:<type>` rows of "
             "the table).",
             _fmt(_wide(annotation, ["reference", "query", "method"], ANNOTATION_COLUMNS))]
    f1 = annotation[annotation["metric"].str.startswith("f1:")]
    if len(f1):
        per_class = f1.assign(type=f1["metric"].str[3:]).pivot_table(index=["reference", "method"], columns="type",
                                                                     values="value", aggfunc="first")
        parts += ["Per-class F1 on the shared types:", _fmt(per_class)]
    if len(integration):
        parts += ["**Both species integrated (species = batch)**, scib-metrics (every value in [0, 1], higher is better):",
                  _fmt(_wide(integration, ["method"], INTEGRATION_COLUMNS))]

    gaps = scdiva_gaps(annotation, ["reference"], ["accuracy", "macro_f1"], task=ANNOTATION_TASK)
    gaps += scdiva_gaps(integration, ["task"], ["bio_score", "batch_score", "total_score"], task=INTEGRATION_TASK)
    parts.append(_gaps_text(gaps, annotation, ANNOTATION_TASK))
    return _section("Cross-species annotation and integration", parts, figures, left_out, order=61)
