"""ScDiVa in the benchmarks: two integration methods and one annotation method.

- `scdiva_zeroshot`: the checkpoint's latent mean, no training on the dataset.
- `scdiva_finetuned`: the checkpoint trained further, without labels, on the dataset's cells
  (masked expression + batch integration), then its latent mean - the same information scVI gets.
- annotation `scdiva`: the checkpoint fine-tuned with an annotation head on the reference cells.

The checkpoint is `resources/checkpoints/<name>/` (made by workflow/rules/checkpoints.smk) or
any directory / Hugging Face repo id `ScDiVaModel.from_pretrained` accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from scdiva.bench.methods._common import (
    EMBEDDING_KEY,
    check_obs_key,
    resolve_params,
    seed_everything,
    set_threads,
)

CHECKPOINT_ROOT = Path("resources/checkpoints")

SCDIVA_ZEROSHOT_DEFAULTS: dict[str, Any] = {"checkpoint": "scdiva_tiny"}
SCDIVA_FINETUNED_DEFAULTS: dict[str, Any] = {
    "checkpoint": "scdiva_tiny",
    "max_steps": 200,
    "batch_size": 64,
    "tasks": ["masked_expression", "integration"],
}
SCDIVA_ANNOTATION_DEFAULTS: dict[str, Any] = {"checkpoint": "scdiva_tiny", "max_steps": 200, "batch_size": 64}


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
    from scdiva import ScDiVaModel

    location = checkpoint_location(name_or_path)
    if location.startswith(str(CHECKPOINT_ROOT)) and not Path(location).is_dir():
        raise FileNotFoundError(
            f"ScDiVa checkpoint directory {location} not found; the checkpoints rules build it from config "
            f"`checkpoints.{name_or_path}` (snakemake {location}/model.safetensors)"
        )
    return ScDiVaModel.from_pretrained(location)


def counts_view(adata):
    """AnnData with raw counts in X: ScDiVa normalises and tokenises counts itself."""
    import anndata as ad

    if "counts" not in adata.layers:
        raise KeyError("ScDiVa needs raw counts in layers['counts'] of the preprocessed file; rerun preprocess.")
    return ad.AnnData(X=adata.layers["counts"], obs=adata.obs.copy(), var=adata.var[[]].copy())


def run_scdiva_zeroshot(adata, *, batch_key: str, label_key: str | None, seed: int,
                        params: Mapping[str, Any], threads: int) -> None:
    """Embed with the checkpoint as is (no training on this dataset)."""
    params = resolve_params("scdiva_zeroshot", SCDIVA_ZEROSHOT_DEFAULTS, params)
    set_threads(threads)
    seed_everything(seed)
    model = load_checkpoint(params["checkpoint"])
    adata.obsm[EMBEDDING_KEY] = np.asarray(model.get_latent(counts_view(adata)), dtype=np.float32)


def run_scdiva_finetuned(adata, *, batch_key: str, label_key: str | None, seed: int,
                         params: Mapping[str, Any], threads: int) -> None:
    """Continue the checkpoint's self-supervised training on this dataset, then embed (no labels)."""
    params = resolve_params("scdiva_finetuned", SCDIVA_FINETUNED_DEFAULTS, params)
    check_obs_key(adata, batch_key, "batch", "scdiva_finetuned")
    set_threads(threads)
    seed_everything(seed)
    model = load_checkpoint(params["checkpoint"])
    data = counts_view(adata)
    model.fit(data, tasks=list(params["tasks"]), batch_key=batch_key, label_key=None,
              max_steps=int(params["max_steps"]), batch_size=int(params["batch_size"]), seed=seed,
              progress_bar=False)
    adata.obsm[EMBEDDING_KEY] = np.asarray(model.get_latent(data), dtype=np.float32)


def fit_scdiva_annotation(reference, *, label_key: str, batch_key: str, seed: int,
                          params: Mapping[str, Any], threads: int):
    """Fine-tune the checkpoint with an annotation head on the reference; predict = forward pass."""
    from scdiva.bench.annotation.base import FittedAnnotator

    params = resolve_params("scdiva (annotation)", SCDIVA_ANNOTATION_DEFAULTS, params)
    set_threads(threads)
    seed_everything(seed)
    model = load_checkpoint(params["checkpoint"])
    model.fit(counts_view(reference), tasks=["annotation"], label_key=label_key, batch_key=batch_key,
              max_steps=int(params["max_steps"]), batch_size=int(params["batch_size"]), seed=seed,
              progress_bar=False)

    def predict(query) -> np.ndarray:
        labels, _confidence = model.predict_labels(counts_view(query), task="annotation")
        return np.asarray(labels, dtype=str)

    return FittedAnnotator(predict=predict)
