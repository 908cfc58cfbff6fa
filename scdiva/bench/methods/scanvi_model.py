"""scANVI (Xu et al. 2021): semi-supervised scVI, initialised from a trained scVI model.

Follows the scvi-tools authors' tutorial: train scVI, then ``SCANVI.from_scvi_model`` with the
cell-type labels and fine-tune.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from scdiva.bench.methods._common import EMBEDDING_KEY, check_obs_key, resolve_params, seed_everything
from scdiva.bench.methods.scvi_model import SCVI_DEFAULTS, counts_adata, train_scvi

# scanvi_max_epochs None = scvi-tools' default for a pretrained scVI: min(10, max(2, round(h / 3)))
# with h the scVI heuristic; n_samples_per_label 100 as in the authors' tutorial.
SCANVI_DEFAULTS: dict[str, Any] = {
    **SCVI_DEFAULTS,
    "scanvi_max_epochs": None,
    "n_samples_per_label": 100,
}
_LABELS_COLUMN = "_scanvi_labels"


def run_scanvi(
    adata, *, batch_key: str, label_key: str | None, seed: int, params: Mapping[str, Any], threads: int
) -> None:
    """Train scVI, then scANVI with all cells labelled from ``label_key``."""
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
    vae = train_scvi(sub, batch_key=batch_key, seed=seed, params=p, threads=threads)
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
