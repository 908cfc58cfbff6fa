"""Multi-task benchmark: ScDiVa trained with 1, 3 and 5 task heads, scored on held-out cells.

The five tasks, in the order heads are added:

1. `annotation` - fine cell types (`label_key`); scored by accuracy and macro-F1.
2. `integration` - batch-invariant latent (`batch_key`); scored by scIB's batch ASW on the
   latent ([0, 1], higher = better mixing) and cell-type ASW rescaled to [0, 1] (higher =
   better separated types). Computed with scikit-learn's silhouette (same definitions as
   scib-metrics) so this job does not pay the JAX / numba start-up of scib-metrics.
3. `masked_expression` - reconstruct hidden expression values; scored on held-out cells by
   hiding a random `mask_ratio` of each cell's gene values (seeded) and comparing the head's
   predictions with the hidden log-normalised values: mean squared error (>= 0, lower is
   better) and Pearson r ([-1, 1], higher is better).
4. `coarse` - broad cell types (`coarse_label_key`, e.g. `cell_type_broad`); accuracy, macro-F1.
5. `cell_cycle` - phase (G1/S/G2M) assigned by `scanpy.tl.score_genes_cell_cycle` with the
   Tirosh et al. (2015) S and G2M gene lists (the copies shipped in scib's resources); accuracy,
   macro-F1. These labels are themselves a score of a few genes, so the task is only as
   meaningful as the number of list genes in the data (recorded in the output).

All models are trained from scratch with the same size, steps, seed and training cells; only
the set of heads differs. The held-out cells (stratified by label) are never trained on.

A task whose data the dataset lacks is skipped, not an error: `coarse` without a
`coarse_label_key`, `cell_cycle` when the data hold no Tirosh S or no G2M gene. A head count then
trains the tasks it has (`n_tasks` is the number actually trained), and a head count whose
remaining tasks equal a smaller one's is not trained again. What was skipped and why is returned
in the info (`skipped_tasks`, `skipped_head_counts`) and shown in the report.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import torch
from sklearn.metrics import silhouette_samples, silhouette_score

from scdiva import ScDiVaModel, TaskSpec
from scdiva.bench.core.sampling import held_out_by_group
from scdiva.bench.core.threads import limit_torch_threads
from scdiva.bench.methods.scdiva import counts_view
from scdiva.bench.tasks.annotation.metrics import annotation_metrics
from scdiva.bench.tasks.multitask.stats import PREDICTION_COLUMNS

#: Task sets by head count, each a prefix of the next.
TASK_ORDER = ("annotation", "integration", "masked_expression", "coarse", "cell_cycle")
HEAD_SETS: dict[int, tuple[str, ...]] = {1: TASK_ORDER[:1], 3: TASK_ORDER[:3], 5: TASK_ORDER[:5]}
PHASE_KEY = "cell_cycle_phase"


def tirosh_cell_cycle_genes() -> tuple[list[str], list[str]]:
    """The Tirosh et al. 2015 S-phase (43) and G2/M (54) human gene symbols, from scib's resources."""
    base = resources.files("scib").joinpath("resources")
    s_genes = base.joinpath("s_genes_tirosh_hm.txt").read_text().split()
    g2m_genes = base.joinpath("g2m_genes_tirosh_hm.txt").read_text().split()
    return s_genes, g2m_genes


def cell_cycle_gene_coverage(var_names: Sequence[str]) -> tuple[list[str], list[str], str | None]:
    """The Tirosh S and G2M genes found in `var_names`, and why the phase is undefined (None if defined)."""
    s_genes, g2m_genes = tirosh_cell_cycle_genes()
    present = set(map(str, var_names))
    s_found = [g for g in s_genes if g in present]
    g2m_found = [g for g in g2m_genes if g in present]
    reason = None
    if not s_found or not g2m_found:
        reason = (f"{len(s_found)} of {len(s_genes)} S genes and {len(g2m_found)} of {len(g2m_genes)} G2M genes "
                  "(Tirosh et al. lists, human symbols) are in the data; the phase needs at least one of each")
    return s_found, g2m_found, reason


def assign_cell_cycle_phase(adata: ad.AnnData, *, seed: int = 0) -> dict[str, Any]:
    """Write `obs['cell_cycle_phase']` from scanpy's scoring on log-normalised X.

    Returns how many of the list genes the data holds and the phase counts. Raises if no S or
    no G2M gene is present, since the phase would then be undefined.
    """
    s_genes, g2m_genes = tirosh_cell_cycle_genes()
    s_found, g2m_found, reason = cell_cycle_gene_coverage(adata.var_names)
    if reason is not None:
        raise ValueError(f"cell-cycle task: {reason}")
    sc.tl.score_genes_cell_cycle(adata, s_genes=s_found, g2m_genes=g2m_found, random_state=seed)
    adata.obs[PHASE_KEY] = adata.obs.pop("phase").astype(str)
    return {"s_genes_found": s_found, "g2m_genes_found": g2m_found, "n_s_genes": len(s_genes),
            "n_g2m_genes": len(g2m_genes),
            "phase_counts": {k: int(v) for k, v in adata.obs[PHASE_KEY].value_counts().items()}}


def held_out_split(adata: ad.AnnData, label_key: str, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of held-out cells: `fraction` of each label, at least one per label of >= 2 cells."""
    if not 0 < fraction < 1:
        raise ValueError(f"multitask.held_out_fraction must be in (0, 1), got {fraction}")
    labels = adata.obs[label_key].astype(str).to_numpy()
    # labels in order of appearance: the order the cells were always drawn in
    return held_out_by_group(labels, fraction, seed, order=pd.unique(labels), at_least_one=True)


def unavailable_tasks(adata: ad.AnnData, coarse_label_key: str | None) -> dict[str, str]:
    """Tasks this dataset cannot train, with the reason (task -> reason); empty when all five can."""
    skipped: dict[str, str] = {}
    if coarse_label_key is None:
        skipped["coarse"] = ("the dataset has no coarse labels (set `datasets.<name>.coarse_label_key` to an obs "
                             "column of broad cell types to add this task)")
    reason = cell_cycle_gene_coverage(adata.var_names)[2]
    if reason is not None:
        skipped["cell_cycle"] = reason
    return skipped


def plan_head_counts(head_counts: Sequence[int], skipped: Mapping[str, str]
                     ) -> tuple[list[tuple[int, tuple[str, ...]]], dict[int, str]]:
    """The task set each requested head count trains once unavailable tasks are removed.

    Returns `[(requested, tasks), ...]` for the models to train and `{requested: reason}` for head
    counts not trained because their tasks equal those of a smaller head count.
    """
    planned: list[tuple[int, tuple[str, ...]]] = []
    dropped: dict[int, str] = {}
    for n in head_counts:
        tasks = tuple(t for t in HEAD_SETS[n] if t not in skipped)
        same = [m for m, t in planned if t == tasks]
        if same:
            missing = [t for t in HEAD_SETS[n] if t in skipped]
            dropped[n] = (f"tasks {', '.join(missing)} unavailable, so its model would equal the {same[0]}-head "
                          "model; not trained again")
        else:
            planned.append((n, tasks))
    return planned, dropped


@dataclass
class MultitaskResult:
    """Scores of one head count on the held-out cells, plus what the training reported."""

    n_tasks: int
    tasks: tuple[str, ...]
    scores: dict[str, float]
    train_s: float
    history: list[dict[str, Any]] = field(default_factory=list)
    #: per held-out cell and classification task: `task, cell, true, predicted` (see :func:`head_predictions`)
    predictions: pd.DataFrame | None = None


def _task_specs(tasks: Sequence[str], coarse_label_key: str | None):
    specs: list[Any] = []
    for task in tasks:
        if task == "coarse":
            if coarse_label_key is None:
                raise ValueError("the 'coarse' task needs the dataset's coarse_label_key in the config")
            specs.append(TaskSpec("coarse", kind="classifier", obs_key=coarse_label_key))
        elif task == "cell_cycle":
            specs.append(TaskSpec("cell_cycle", kind="classifier", obs_key=PHASE_KEY))
        else:
            specs.append(task)
    return specs


def batch_asw(latent: np.ndarray, labels: np.ndarray, batches: np.ndarray) -> float:
    """scIB batch ASW: per cell type, mean of 1 - |silhouette of the batches|; mean over types.

    Types with a single batch or fewer than 3 cells are skipped. [0, 1], higher = better mixed.
    """
    per_label = []
    for label in np.unique(labels):
        idx = labels == label
        if idx.sum() < 3 or len(np.unique(batches[idx])) < 2 or len(np.unique(batches[idx])) >= idx.sum():
            continue
        per_label.append(np.mean(1 - np.abs(silhouette_samples(latent[idx], batches[idx]))))
    return float(np.mean(per_label)) if per_label else float("nan")


def label_asw(latent: np.ndarray, labels: np.ndarray) -> float:
    """Cell-type silhouette rescaled to [0, 1] as (asw + 1) / 2; higher = better separated types."""
    return float((silhouette_score(latent, labels) + 1) / 2)


def masked_expression_scores(model, held: ad.AnnData, *, seed: int = 0) -> dict[str, float]:
    """MSE and Pearson r between predicted and hidden values of randomly masked gene tokens."""
    torch.manual_seed(seed)
    batch = model.tokenize(held).to(model.device)
    model.module.eval()
    with torch.no_grad():
        out = model.module(batch, mask_values=True)
        predicted = model.module.heads["masked_expression"](out, batch)[out.value_mask].float().cpu().numpy()
    truth = batch.values[out.value_mask].float().cpu().numpy()
    return {"masked_expression_mse": float(np.mean((predicted - truth) ** 2)),
            "masked_expression_pearson": float(np.corrcoef(predicted, truth)[0, 1])}


def head_predictions(model, held: ad.AnnData, tasks: Sequence[str], *, label_key: str,
                     coarse_label_key: str | None) -> pd.DataFrame:
    """Per held-out cell and classification task: `task, cell, true, predicted` (cells in `held`'s order)."""
    truth = {"annotation": label_key, "coarse": coarse_label_key, "cell_cycle": PHASE_KEY}
    frames = []
    for task in tasks:
        if task in truth:
            predicted, _ = model.predict_labels(held, task=task)
            frames.append(pd.DataFrame({"task": task, "cell": held.obs_names.astype(str),
                                        "true": held.obs[truth[task]].astype(str).to_numpy(),
                                        "predicted": np.asarray(predicted, dtype=str)}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["task", "cell", "true",
                                                                                    "predicted"])


def score_heads(model, held: ad.AnnData, tasks: Sequence[str], *, label_key: str, batch_key: str,
                coarse_label_key: str | None, seed: int = 0,
                predictions: pd.DataFrame | None = None) -> dict[str, float]:
    """Each trained task's score on held-out cells (see the module docstring for the metrics).

    Classification tasks are scored from ``predictions`` (:func:`head_predictions` of ``held``;
    computed here when not given).
    """
    if predictions is None:
        predictions = head_predictions(model, held, tasks, label_key=label_key, coarse_label_key=coarse_label_key)
    scores: dict[str, float] = {}
    for task in tasks:
        rows = predictions[predictions["task"] == task]
        if len(rows):
            if not rows["cell"].astype(str).equals(pd.Series(held.obs_names.astype(str), index=rows.index)):
                raise ValueError(f"predictions of task {task!r} are not for the held-out cells in their order")
            metrics = annotation_metrics(rows["true"].to_numpy(), rows["predicted"].to_numpy())
            scores[f"{task}_accuracy"] = metrics["accuracy"]
            scores[f"{task}_macro_f1"] = metrics["macro_f1"]
        elif task == "masked_expression":
            scores.update(masked_expression_scores(model, held, seed=seed))
    # Every model has a latent, so batch mixing is scored for all head counts.
    latent = np.asarray(model.get_latent(held), dtype=np.float32)
    labels = held.obs[label_key].astype(str).to_numpy()
    scores["integration_silhouette_batch"] = batch_asw(latent, labels, held.obs[batch_key].astype(str).to_numpy())
    scores["integration_silhouette_label"] = label_asw(latent, labels)
    return scores


def run_multitask(
    adata: ad.AnnData,
    *,
    label_key: str,
    batch_key: str,
    coarse_label_key: str | None,
    head_counts: Sequence[int] = (1, 3, 5),
    size: str = "tiny",
    max_steps: int = 200,
    batch_size: int = 64,
    held_out_fraction: float = 0.2,
    seed: int = 0,
    threads: int = 1,
    fit_kwargs: Mapping[str, Any] | None = None,
) -> tuple[list[MultitaskResult], dict[str, Any]]:
    """Train one ScDiVa per head count on the same cells; score every head on held-out cells.

    `adata` is the preprocessed AnnData (raw counts in `layers['counts']`, log-normalised X).
    Returns the per-head-count results and facts about the setup (held-out size, cell-cycle genes,
    skipped tasks and head counts with the reason). A result's `n_tasks` is the number of heads
    actually trained, which is smaller than the requested count when tasks were skipped.
    """
    unknown = [n for n in head_counts if n not in HEAD_SETS]
    if unknown:
        raise ValueError(f"multitask.head_counts {unknown} not defined; choose from {sorted(HEAD_SETS)}")
    for key in (label_key, batch_key, coarse_label_key):
        if key is not None and key not in adata.obs:
            raise KeyError(f"obs has no column '{key}' (multitask); columns: {list(adata.obs.columns)}")
    limit_torch_threads(threads)
    work = adata.copy()
    requested = {t for n in head_counts for t in HEAD_SETS[n]}
    skipped = {t: r for t, r in unavailable_tasks(work, coarse_label_key).items() if t in requested}
    planned, dropped = plan_head_counts(head_counts, skipped)
    info: dict[str, Any] = {"skipped_tasks": skipped,
                            "skipped_head_counts": {str(n): reason for n, reason in dropped.items()},
                            "trained": {str(n): list(tasks) for n, tasks in planned}}
    if "cell_cycle" in requested and "cell_cycle" not in skipped:
        info["cell_cycle"] = assign_cell_cycle_phase(work, seed=seed)
    held_mask = held_out_split(work, label_key, held_out_fraction, seed)
    data = counts_view(work)
    train, held = data[~held_mask].copy(), data[held_mask].copy()
    info.update(n_train=int(train.n_obs), n_held_out=int(held.n_obs), size=size, max_steps=max_steps,
                batch_size=batch_size, seed=seed)
    if "cell_cycle" in info:
        majority = held.obs[PHASE_KEY].value_counts(normalize=True).iloc[0]
        info["cell_cycle"]["held_out_majority_fraction"] = float(majority)
    results = []
    for _, tasks in planned:
        n_tasks = len(tasks)
        model = ScDiVaModel.from_config(size, genes=train.var_names)
        start = time.perf_counter()
        history = model.fit(train, tasks=_task_specs(tasks, coarse_label_key), batch_key=batch_key,
                            label_key=label_key, max_steps=max_steps, batch_size=batch_size, seed=seed,
                            **{"progress_bar": False, **dict(fit_kwargs or {})})
        train_s = time.perf_counter() - start
        predictions = head_predictions(model, held, tasks, label_key=label_key, coarse_label_key=coarse_label_key)
        scores = score_heads(model, held, tasks, label_key=label_key, batch_key=batch_key,
                             coarse_label_key=coarse_label_key, seed=seed, predictions=predictions)
        results.append(MultitaskResult(n_tasks, tasks, scores, train_s, list(history or []), predictions))
    return results, info


def multitask_long_form(results: Sequence[MultitaskResult], dataset: str, seed: int) -> pd.DataFrame:
    """Rows `dataset, method, seed, n_tasks, metric, value`; method is `scdiva_tasks{n}`."""
    rows = []
    for result in results:
        values = {**result.scores, "train_s": result.train_s}
        rows += [{"dataset": dataset, "method": f"scdiva_tasks{result.n_tasks}", "seed": seed,
                  "n_tasks": result.n_tasks, "metric": k, "value": float(v)} for k, v in values.items()]
    return pd.DataFrame(rows)


def multitask_predictions_long_form(results: Sequence[MultitaskResult], dataset: str, seed: int) -> pd.DataFrame:
    """Per-cell predictions of every head count: `dataset, method, seed, n_tasks, task, cell, true, predicted`.

    The input of :func:`scdiva.bench.tasks.multitask.stats.compare_head_counts` (paired tests across head counts).
    """
    frames = [r.predictions.assign(dataset=dataset, method=f"scdiva_tasks{r.n_tasks}", seed=seed, n_tasks=r.n_tasks)
              for r in results if r.predictions is not None and len(r.predictions)]
    if not frames:
        return pd.DataFrame(columns=PREDICTION_COLUMNS)
    return pd.concat(frames, ignore_index=True)[PREDICTION_COLUMNS]
