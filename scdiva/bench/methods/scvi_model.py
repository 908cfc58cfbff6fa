"""scVI (Lopez et al. 2018) from scvi-tools: a variational autoencoder on raw counts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from scdiva.bench.methods._common import (
    EMBEDDING_KEY,
    check_obs_key,
    hvg_mask,
    resolve_params,
    seed_everything,
    set_threads,
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
    if "counts" not in adata.layers:
        raise KeyError(
            f"{method} needs raw counts in layers['counts'] of the preprocessed file; rerun the preprocess rule."
        )
    sub = adata[:, hvg_mask(adata)].copy()
    counts = sub.layers["counts"]
    values = counts.data if hasattr(counts, "data") else np.asarray(counts)
    if values.size and (values.min() < 0 or not np.allclose(values, np.round(values))):
        raise ValueError(f"{method}: layers['counts'] must hold non-negative integer counts.")
    return sub


def train_scvi(sub, *, batch_key: str, seed: int, params: Mapping[str, Any], threads: int):
    """Set up ``sub`` and train an :class:`scvi.model.SCVI`; returns the trained model."""
    import scvi

    scvi.settings.seed = seed  # seeds python, numpy and torch
    scvi.settings.num_threads = max(1, int(threads))
    scvi.settings.dl_num_workers = 0
    set_threads(threads)
    scvi.model.SCVI.setup_anndata(sub, layer="counts", batch_key=batch_key)
    model = scvi.model.SCVI(sub, **{k: params[k] for k in SCVI_MODEL_KEYS})
    model.train(
        max_epochs=params["max_epochs"],
        batch_size=params["batch_size"],
        accelerator=params["accelerator"],
        devices=1 if params["accelerator"] != "cpu" else "auto",
    )
    return model


def run_scvi(
    adata, *, batch_key: str, label_key: str | None, seed: int, params: Mapping[str, Any], threads: int
) -> None:
    """Train scVI on the raw counts of the HVGs with ``batch_key`` as the batch covariate."""
    p = resolve_params("scvi", SCVI_DEFAULTS, params)
    check_obs_key(adata, batch_key, "batch", "scvi")
    seed_everything(seed)
    sub = counts_adata(adata, method="scvi")
    model = train_scvi(sub, batch_key=batch_key, seed=seed, params=p, threads=threads)
    adata.obsm[EMBEDDING_KEY] = np.asarray(model.get_latent_representation(), dtype=np.float32)
    adata.uns["scvi_epochs"] = int(model.history["elbo_train"].shape[0])
