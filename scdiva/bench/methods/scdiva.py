"""ScDiVa in the benchmarks: two integration methods and one annotation method.

- `scdiva_zeroshot`: the checkpoint's latent mean, no training on the dataset after pretraining.
- `scdiva_finetuned`: the checkpoint trained further, without labels, on the dataset's cells with
  the integration objective (the batch-conditioned count decoder's ELBO, the KL schedule continuing
  from pretraining), early-stopped on held-out cells; then its latent mean. The same information
  scVI gets, and a training budget of the same order (scVI's epoch heuristic).
- annotation `scdiva`: the checkpoint fine-tuned on the reference with the ELBO beside a classifier
  (class-balanced sampling, a gentler learning rate for the pretrained trunk, early stopping on
  held-out reference cells); then, like scANVI's query mapping, the query cells join the ELBO under
  their own batch, unlabelled, before the query is labelled by a forward pass.

The checkpoint is `resources/checkpoints/<name>/` (made by workflow/rules/checkpoints.smk) or
any directory / Hugging Face repo id `ScDiVaModel.from_pretrained` accepts. The functions that
take a loaded model (`finetune_integration`, `fit_annotation_model`) are what the performance
scripts in benchmarks/ time, so they time the recipe the workflow runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np

from scdiva.bench.checkpoints import scopes
from scdiva.bench.checkpoints.fetch import corpus_batches
from scdiva.bench.core.io import trim_freed_memory
from scdiva.bench.methods._common import (
    EMBEDDING_KEY,
    check_obs_key,
    resolve_params,
    seed_everything,
    set_threads,
)
from scdiva.bench.tasks.annotation.base import FittedAnnotator
from scdiva.config import OBJECTIVE_SETTINGS
from scdiva.model import ScDiVaModel
from scdiva.model.recipes import (
    ANNOTATION_CLASSIFIER,
    ANNOTATION_FINETUNE,
    ANNOTATION_QUERY_EPOCHS,
    INTEGRATION_FINETUNE,
)
from scdiva.model.settings import FitSettings
from scdiva.model.tasks import TaskSpec

CHECKPOINT_ROOT = Path(scopes.CHECKPOINT_ROOT)
#: cells a streamed job embeds between two heap trims (the chunk measured in docs/scale.md: 25,600 cells)
STREAM_CHUNK_CELLS = 25_600

#: the fine-tune settings (scdiva.model.settings.FitSettings fields) a config may set for either ScDiVa
#: method; null keeps the recipe's (scdiva.model.recipes), and for the objective settings
#: (scdiva.config.OBJECTIVE_SETTINGS) the checkpoint's own
CONFIGURABLE_FIT_SETTINGS = ("max_steps", "max_epochs", "batch_size", "lr", "validation_fraction",
                             "early_stopping_patience", "early_stopping_tasks", *OBJECTIVE_SETTINGS,
                             "trunk_lr_factor", "count_thinning", "weight_average_epochs", "dropout")
SCDIVA_ZEROSHOT_DEFAULTS: dict[str, Any] = {"checkpoint": "scdiva_tiny"}
SCDIVA_FINETUNED_DEFAULTS: dict[str, Any] = {
    "checkpoint": "scdiva_tiny",
    **dict.fromkeys(CONFIGURABLE_FIT_SETTINGS),
    # the Python API's integration recipe (scdiva.model.recipes, where each setting's measurement is)
    **INTEGRATION_FINETUNE,
    # masked_expression is left out: its head does not see the batch, so it rewards a latent that
    # encodes it (the fine-tune then mixed batches worse than the zero-shot model)
    "tasks": ["integration"],
    # loss weight per task (a task not named weighs 1)
    "task_weights": {},
}
SCDIVA_ANNOTATION_DEFAULTS: dict[str, Any] = {
    "checkpoint": "scdiva_tiny",
    **dict.fromkeys(CONFIGURABLE_FIT_SETTINGS),
    # the annotation recipe (scdiva.model.recipes, where each setting's measurement is)
    **ANNOTATION_FINETUNE,
    **{f"classifier_{option}": value for option, value in ANNOTATION_CLASSIFIER.items()},
    "query_epochs": ANNOTATION_QUERY_EPOCHS,
}

def checkpoint_location(name_or_path: str) -> str:
    """Where a checkpoint lives: an existing directory, `resources/checkpoints/<name>` for a
    configured checkpoint name, or else the value itself (a Hugging Face repo id `org/repo`)."""
    if Path(name_or_path).is_dir():
        return name_or_path
    if "/" not in name_or_path:
        return str(CHECKPOINT_ROOT / name_or_path)
    return name_or_path


def load_checkpoint(name_or_path: str):
    """`ScDiVaModel.from_pretrained`, with an error naming the config entry when it is missing."""
    location = checkpoint_location(name_or_path)
    if location.startswith(str(CHECKPOINT_ROOT)) and not Path(location).is_dir():
        raise FileNotFoundError(
            f"ScDiVa checkpoint directory {location} not found; the checkpoints rules build it from config "
            f"`checkpoints.{name_or_path}` (snakemake {location}/model.safetensors)"
        )
    return ScDiVaModel.from_pretrained(location)


def counts_view(adata):
    """AnnData with raw counts in X: ScDiVa normalises and tokenises counts itself."""
    if "counts" not in adata.layers:
        raise KeyError("ScDiVa needs raw counts in layers['counts'] of the preprocessed file; rerun preprocess.")
    return ad.AnnData(X=adata.layers["counts"], obs=adata.obs.copy(), var=adata.var[[]].copy())


def fit_settings(params: Mapping[str, Any], seed: int) -> FitSettings:
    """The fine-tune's :class:`~scdiva.model.settings.FitSettings` from a method's resolved ``params``."""
    options = {k: params[k] for k in CONFIGURABLE_FIT_SETTINGS if params.get(k) is not None}
    if "max_steps" in options:  # an explicit step count replaces the default epoch count
        options.pop("max_epochs", None)
    return FitSettings(seed=seed, progress_bar=False).replace(**options)


#: the obs column a fine-tune conditions on when the checkpoint knows the dataset's batches by their
#: corpus names (:func:`checkpoint_batch_key`)
CHECKPOINT_BATCH_COLUMN = "scdiva_checkpoint_batch"


def checkpoint_batch_key(model, data, batch_key: str, dataset: str | None) -> str:
    """The obs column of ``data`` a fine-tune of ``model`` should condition on.

    A recipe checkpoint was pretrained with the batches named ``<dataset>/<batch>``
    (:func:`scdiva.bench.checkpoints.fetch.corpus_batches`). When its decoder knows batches of ``dataset``
    (the name the preprocessed file records), this adds those names to ``data.obs`` as
    :data:`CHECKPOINT_BATCH_COLUMN` and returns that key, so the fine-tune starts from the per-batch
    decoder parameters pretraining learned. Under the bare names every batch would be a new decoder
    category, started from scratch while the pretrained encoder keeps learning: the encoder then
    absorbs the batch effect (PBMC, checkpoint pretrained on PBMC and pancreas, seed 1: scIB batch
    score 0.66 against 0.81, docs/model.md). Batches the corpus left out (held-out query batches)
    still start fresh. Otherwise (no dataset name, or a checkpoint trained elsewhere): ``batch_key``.
    """
    prefix = f"{dataset}/"
    if dataset is None or not any(str(c).startswith(prefix) for c in model.config.batch_categories):
        return batch_key
    data.obs[CHECKPOINT_BATCH_COLUMN] = corpus_batches(dataset, data.obs[batch_key])
    return CHECKPOINT_BATCH_COLUMN


def dataset_name(adata) -> str | None:
    """The dataset name the preprocessed AnnData records (``uns["preprocess"]["dataset"]``), if any."""
    name = adata.uns.get("preprocess", {}).get("dataset")
    return None if name is None else str(name)


def finetune_integration(model, adata, *, batch_key: str, seed: int, params: Mapping[str, Any]) -> np.ndarray:
    """Fine-tune ``model`` on the counts of ``adata`` without labels; returns the latent (cells x dims).

    ``adata`` is the preprocessed AnnData in memory, or backed on its file
    (``scdiva.bench.core.formats.open_rows_backed``): then the counts layer's rows are read from disk a
    batch at a time, in training and in the final embedding alike (and its obs gains the column
    :func:`checkpoint_batch_key` may add)."""
    data, layer = (adata, "counts") if adata.isbacked else (counts_view(adata), None)
    batch_key = checkpoint_batch_key(model, data, batch_key, dataset_name(adata))
    weights = dict(params.get("task_weights") or {})
    unknown = set(weights) - set(params["tasks"])
    if unknown:
        raise ValueError(f"scdiva_finetuned: task_weights names {sorted(unknown)}, which are not among its "
                         f"tasks {list(params['tasks'])}")
    tasks = [TaskSpec(task, kind=task, weight=float(weights.get(task, 1.0))) for task in params["tasks"]]
    model.fit(data, tasks=tasks, batch_key=batch_key, label_key=None, layer=layer,
              settings=fit_settings(params, seed))
    if adata.isbacked:
        return streamed_latent(model, adata)
    return np.asarray(model.get_latent(data), dtype=np.float32)


def run_scdiva_zeroshot(adata, *, batch_key: str, label_key: str | None, seed: int,
                        params: Mapping[str, Any], threads: int) -> None:
    """Embed with the checkpoint as is (no training on this dataset)."""
    model = _zeroshot_model(seed=seed, params=params, threads=threads)
    adata.obsm[EMBEDDING_KEY] = np.asarray(model.get_latent(counts_view(adata)), dtype=np.float32)


def _zeroshot_model(*, seed: int, params: Mapping[str, Any], threads: int):
    """The checkpoint, loaded as is: one body for the in-memory and the streamed job."""
    params = resolve_params("scdiva_zeroshot", SCDIVA_ZEROSHOT_DEFAULTS, params)
    set_threads(threads)
    seed_everything(seed)
    return load_checkpoint(params["checkpoint"])


def _check_backed(adata, method: str) -> None:
    if not adata.isbacked:
        raise ValueError(f"{method}_streamed needs an AnnData backed on the preprocessed .h5ad "
                         f"(scdiva.bench.core.formats.open_rows_backed); use {method} for one in memory")


def streamed_latent(model, adata, *, chunk_cells: int = STREAM_CHUNK_CELLS, layer: str | None = "counts",
                    n_cells: int | None = None, batch_size: int = 256) -> np.ndarray:
    """Latent of the first ``n_cells`` cells (default: all) of an AnnData backed on the preprocessed file,
    ``chunk_cells`` at a time, the heap trimmed after each chunk (:func:`scdiva.bench.core.io.trim_freed_memory`):
    resident memory stays bounded as the cells pass through (docs/scale.md); same values as one
    ``get_latent`` call. ``layer`` holds the counts (None: ``X``)."""
    parts = []
    end = adata.n_obs if n_cells is None else min(n_cells, adata.n_obs)
    for first in range(0, end, chunk_cells):  # anndata makes no view of a backed view: slice the file's own
        rows = adata[first:min(first + chunk_cells, end)]
        parts.append(np.asarray(model.get_latent(rows, batch_size, layer=layer), dtype=np.float32))
        trim_freed_memory()
    return np.concatenate(parts) if parts else np.zeros((0, model.config.n_latent), dtype=np.float32)


def run_scdiva_zeroshot_streamed(adata, *, batch_key: str, label_key: str | None, seed: int,
                                 params: Mapping[str, Any], threads: int) -> None:
    """:func:`run_scdiva_zeroshot` on an AnnData backed on the preprocessed file
    (``scdiva.bench.core.formats.open_rows_backed``): the counts layer's rows are read from disk a batch at a
    time, so memory does not grow with the matrix; same cells, same batches, same embedding."""
    _check_backed(adata, "run_scdiva_zeroshot")
    adata.obsm[EMBEDDING_KEY] = streamed_latent(_zeroshot_model(seed=seed, params=params, threads=threads), adata)


def run_scdiva_finetuned(adata, *, batch_key: str, label_key: str | None, seed: int,
                         params: Mapping[str, Any], threads: int) -> None:
    """Continue the checkpoint's training on this dataset with the integration objective, then embed."""
    params = resolve_params("scdiva_finetuned", SCDIVA_FINETUNED_DEFAULTS, params)
    check_obs_key(adata, batch_key, "batch", "scdiva_finetuned")
    set_threads(threads)
    seed_everything(seed)
    model = load_checkpoint(params["checkpoint"])
    adata.obsm[EMBEDDING_KEY] = finetune_integration(model, adata, batch_key=batch_key, seed=seed, params=params)


def run_scdiva_finetuned_streamed(adata, *, batch_key: str, label_key: str | None, seed: int,
                                  params: Mapping[str, Any], threads: int) -> None:
    """:func:`run_scdiva_finetuned` on an AnnData backed on the preprocessed file: each training batch
    (cells drawn at random) and each embedding batch reads its rows of the counts layer from disk, so
    memory does not grow with the matrix; same batches, same weights, same embedding as in memory."""
    _check_backed(adata, "run_scdiva_finetuned")
    run_scdiva_finetuned(adata, batch_key=batch_key, label_key=label_key, seed=seed, params=params,
                         threads=threads)


def fit_annotation_model(model, reference, *, label_key: str, batch_key: str, seed: int,
                         params: Mapping[str, Any]):
    """Fine-tune ``model`` on the labelled ``reference`` (ELBO + classifier); returns a
    :class:`~scdiva.bench.tasks.annotation.base.FittedAnnotator` whose ``map_query`` adds the unlabelled
    query cells to the ELBO (under their own batch) and whose ``predict`` is a forward pass."""


    ref = counts_view(reference)
    dataset, source_batch_key = dataset_name(reference), batch_key
    batch_key = checkpoint_batch_key(model, ref, source_batch_key, dataset)
    tasks = ["integration", TaskSpec("annotation", kind="classifier", obs_key=label_key,
                                     hidden_layers=int(params["classifier_hidden_layers"]),
                                     representation=str(params["classifier_representation"]))]
    settings = fit_settings(params, seed).replace(balance_labels=bool(params["balance_labels"]),
                                                  converge_genes_expert=bool(params["converge_genes_expert"]))
    model.fit(ref, tasks=tasks, label_key=label_key, batch_key=batch_key, settings=settings)

    def map_query(query) -> None:
        if not params["query_epochs"]:
            return
        unlabelled = counts_view(query)
        unlabelled.obs[label_key] = np.nan  # the query's labels are never seen
        checkpoint_batch_key(model, unlabelled, source_batch_key, dataset)  # named as the reference's are
        joint = ad.concat([ref, unlabelled], join="outer", index_unique=None)
        joint.obs[label_key] = joint.obs[label_key].astype(object)
        model.fit(joint, tasks=tasks, label_key=label_key, batch_key=batch_key,
                  settings=settings.replace(max_epochs=params["query_epochs"], max_steps=None))

    def predict(query) -> np.ndarray:
        labels, _confidence = model.predict_labels(counts_view(query), task="annotation")
        return np.asarray(labels, dtype=str)

    return FittedAnnotator(predict=predict, map_query=map_query)


def fit_scdiva_annotation(reference, *, label_key: str, batch_key: str, seed: int,
                          params: Mapping[str, Any], threads: int):
    """The workflow's annotation method: load the checkpoint, then :func:`fit_annotation_model`."""
    params = resolve_params("scdiva (annotation)", SCDIVA_ANNOTATION_DEFAULTS, params)
    set_threads(threads)
    seed_everything(seed)
    model = load_checkpoint(params["checkpoint"])
    return fit_annotation_model(model, reference, label_key=label_key, batch_key=batch_key, seed=seed,
                                params=params)
