"""scANVI (Xu et al. 2021): semi-supervised scVI, initialised from a trained scVI model.

Follows the scvi-tools authors' recommendation: train scVI, then ``SCANVI.from_scvi_model`` with
the cell-type labels and fine-tune. When the scvi method of the same dataset and seed saved its
model with the same scVI settings (the workflow passes it as ``scvi_model``), scANVI starts from
that model instead of training an identical scVI again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from scdiva.bench.methods._common import EMBEDDING_KEY, check_obs_key, resolve_params, seed_everything
from scdiva.bench.tasks.integration.scvi_model import (
    SCVI_DEFAULTS,
    counts_adata,
    load_scvi_model,
    scvi_settings,
    train_scvi,
)

# scanvi_max_epochs None = scvi-tools' default for a pretrained scVI: min(10, max(2, round(h / 3)))
# with h the scVI heuristic; n_samples_per_label 100 as in the authors' tutorial.
SCANVI_DEFAULTS: dict[str, Any] = {
    **SCVI_DEFAULTS,
    "scanvi_max_epochs": None,
    "n_samples_per_label": 100,
}
_LABELS_COLUMN = "_scanvi_labels"
logger = logging.getLogger(__name__)


def shares_scvi_model(scvi_params: Mapping[str, Any] | None, scanvi_params: Mapping[str, Any] | None) -> bool:
    """True when config ``methods.scvi`` and ``methods.scanvi`` resolve to the same scVI settings,
    so scANVI can start from the scvi job's model (same dataset and seed)."""
    scvi = resolve_params("scvi", SCVI_DEFAULTS, scvi_params)
    scanvi = resolve_params("scanvi", SCANVI_DEFAULTS, scanvi_params)
    return all(scvi[k] == scanvi[k] for k in SCVI_DEFAULTS)


def run_scanvi(
    adata,
    *,
    batch_key: str,
    label_key: str | None,
    seed: int,
    params: Mapping[str, Any],
    threads: int,
    scvi_model: str | os.PathLike[str] | None = None,
) -> None:
    """scANVI with all cells labelled from ``label_key``, initialised from scVI.

    ``scvi_model``: directory of the scVI model saved by ``run_scvi(..., save_model=...)`` on the
    same cells with the same scVI settings, batch key and seed; without it scVI is trained here.
    """
    # deferred: imports scvi (this module is imported at workflow parse time)
    import scvi

    p = resolve_params("scanvi", SCANVI_DEFAULTS, params)
    check_obs_key(adata, batch_key, "batch", "scanvi")
    check_obs_key(adata, label_key, "label", "scanvi")
    seed_everything(seed)
    sub = counts_adata(adata, method="scanvi")
    labels = sub.obs[label_key].astype(str)
    unlabeled = "Unknown"
    while unlabeled in set(labels):  # the marker must not be a real label
        unlabeled = f"_{unlabeled}"
    sub.obs[_LABELS_COLUMN] = labels.to_numpy()
    if scvi_model is None:
        vae = train_scvi(sub, batch_key=batch_key, seed=seed, params=p, threads=threads)
    else:
        settings = scvi_settings({k: p[k] for k in SCVI_DEFAULTS}, batch_key=batch_key, seed=seed)
        vae = load_scvi_model(scvi_model, sub, settings=settings, threads=threads)
        logger.info("scANVI starts from the scVI model saved by the scvi job: %s", scvi_model)
        seed_everything(seed)  # scANVI's own training starts from the seed either way
    model = scvi.model.SCANVI.from_scvi_model(vae, unlabeled_category=unlabeled, labels_key=_LABELS_COLUMN)
    model.train(
        max_epochs=p["scanvi_max_epochs"],
        n_samples_per_label=p["n_samples_per_label"],
        batch_size=p["batch_size"],
        accelerator=p["accelerator"],
        devices=1 if p["accelerator"] != "cpu" else "auto",
    )
    adata.obsm[EMBEDDING_KEY] = np.asarray(model.get_latent_representation(), dtype=np.float32)
    adata.uns["scvi_epochs"] = int(vae.history["elbo_train"].shape[0])
    adata.uns["scanvi_epochs"] = int(model.history["elbo_train"].shape[0])
    adata.uns["scvi_reused"] = scvi_model is not None
