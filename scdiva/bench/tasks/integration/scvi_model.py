"""scVI (Lopez et al. 2018) from scvi-tools: a variational autoencoder on raw counts.

The trained model can be saved (:func:`save_scvi_model`) so that scANVI starts from it
(:func:`load_scvi_model`) instead of training the same scVI again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from scdiva.bench.core.io import atomic_dir
from scdiva.bench.core.threads import limit_torch_threads
from scdiva.bench.methods._common import (
    EMBEDDING_KEY,
    check_obs_key,
    hvg_mask,
    raw_counts,
    resolve_params,
    seed_everything,
)

# Model keys are scvi.model.SCVI's own defaults; max_epochs None = scvi-tools' heuristic
# min(round(20000 / n_cells * 400), 400), never shortened here.
SCVI_MODEL_KEYS = ("n_latent", "n_layers", "n_hidden", "dropout_rate", "gene_likelihood")
SCVI_DEFAULTS: dict[str, Any] = {
    "n_latent": 10,
    "n_layers": 1,
    "n_hidden": 128,
    "dropout_rate": 0.1,
    "gene_likelihood": "zinb",
    "max_epochs": None,
    "batch_size": 128,
    "accelerator": "auto",
}


def counts_adata(adata, *, method: str):
    """Copy of the HVG columns with raw counts in ``layers["counts"]`` (what scvi-tools models need)."""
    raw_counts(adata, method=method)
    return adata[:, hvg_mask(adata)].copy()


def _scvi_settings(scvi, *, seed: int, threads: int) -> None:
    """scvi-tools' global settings for one job: the seed and its threads, no data-loader workers."""
    scvi.settings.seed = seed  # seeds python, numpy and torch
    scvi.settings.num_threads = max(1, int(threads))
    scvi.settings.dl_num_workers = 0
    limit_torch_threads(threads)


def train_scvi(sub, *, batch_key: str, seed: int, params: Mapping[str, Any], threads: int):
    """Set up ``sub`` and train an :class:`scvi.model.SCVI`; returns the trained model."""
    # deferred: imports scvi (this module is imported at workflow parse time)
    import scvi

    _scvi_settings(scvi, seed=seed, threads=threads)
    scvi.model.SCVI.setup_anndata(sub, layer="counts", batch_key=batch_key)
    model = scvi.model.SCVI(sub, **{k: params[k] for k in SCVI_MODEL_KEYS})
    model.train(
        max_epochs=params["max_epochs"],
        batch_size=params["batch_size"],
        accelerator=params["accelerator"],
        devices=1 if params["accelerator"] != "cpu" else "auto",
    )
    return model


# Written beside scvi-tools' model.pt: what the model was trained with, checked by load_scvi_model.
SETTINGS_FILE = "scdiva_settings.json"


def scvi_settings(params: Mapping[str, Any], *, batch_key: str, seed: int) -> dict[str, Any]:
    """What makes two scVI trainings the same: the scVI parameters, batch key and seed."""
    return {"params": {k: params[k] for k in SCVI_DEFAULTS}, "batch_key": batch_key, "seed": int(seed)}


def save_scvi_model(model, directory: str | os.PathLike[str], settings: Mapping[str, Any]) -> Path:
    """Save a trained scVI model (scvi-tools' ``model.pt``, no AnnData) and its settings to ``directory``.

    Written into a temporary sibling directory that is renamed at the end, so an interrupted job
    never leaves a complete-looking model behind.
    """
    directory = Path(directory)
    with atomic_dir(directory) as tmp:
        model.save(str(tmp), overwrite=True, save_anndata=False)
        (tmp / SETTINGS_FILE).write_text(json.dumps(dict(settings), indent=2, sort_keys=True))
    return directory


def load_scvi_model(directory: str | os.PathLike[str], sub, *, settings: Mapping[str, Any], threads: int):
    """The scVI model saved by :func:`save_scvi_model`, set up on ``sub`` (same cells and genes).

    Raises ``ValueError`` naming the differing settings when the saved model was trained with other
    scVI parameters, batch key or seed than ``settings`` (see :func:`scvi_settings`).
    """
    # deferred: imports scvi (this module is imported at workflow parse time)
    import scvi

    directory = Path(directory)
    settings_path = directory / SETTINGS_FILE
    if not (directory / "model.pt").is_file() or not settings_path.is_file():
        raise FileNotFoundError(
            f"{directory} is not a saved scVI model (needs model.pt and {SETTINGS_FILE}); rerun the scvi integration job."
        )
    saved = json.loads(settings_path.read_text())
    wanted = json.loads(json.dumps(dict(settings)))  # same JSON types as the saved file
    if saved != wanted:
        diff = {k: (saved.get(k), wanted.get(k)) for k in sorted(set(saved) | set(wanted)) if saved.get(k) != wanted.get(k)}
        raise ValueError(
            f"scVI model {directory} was trained with other settings (saved, wanted): {diff}. Give scvi and "
            "scanvi the same scVI parameters in the config, or let scanvi train its own scVI."
        )
    _scvi_settings(scvi, seed=int(settings["seed"]), threads=threads)
    accelerator = settings["params"]["accelerator"]
    return scvi.model.SCVI.load(str(directory), adata=sub, accelerator=accelerator,
                                device=1 if accelerator != "cpu" else "auto")


def run_scvi(
    adata,
    *,
    batch_key: str,
    label_key: str | None,
    seed: int,
    params: Mapping[str, Any],
    threads: int,
    save_model: str | os.PathLike[str] | None = None,
) -> None:
    """Train scVI on the raw counts of the HVGs with ``batch_key`` as the batch covariate.

    ``save_model``: a directory to save the trained model to (scANVI of the same dataset and
    seed starts from it).
    """
    p = resolve_params("scvi", SCVI_DEFAULTS, params)
    check_obs_key(adata, batch_key, "batch", "scvi")
    seed_everything(seed)
    sub = counts_adata(adata, method="scvi")
    model = train_scvi(sub, batch_key=batch_key, seed=seed, params=p, threads=threads)
    adata.obsm[EMBEDDING_KEY] = np.asarray(model.get_latent_representation(), dtype=np.float32)
    adata.uns["scvi_epochs"] = int(model.history["elbo_train"].shape[0])
    if save_model is not None:
        save_scvi_model(model, save_model, scvi_settings(p, batch_key=batch_key, seed=seed))
