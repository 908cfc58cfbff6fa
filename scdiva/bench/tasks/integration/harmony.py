"""Harmony (Korsunsky et al. 2019) via harmonypy, run on the PCA."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from scdiva.bench.methods._common import EMBEDDING_KEY, check_obs_key, resolve_params, seed_everything

# None = harmonypy's default (theta 2, lambda estimated, nclust min(N/30, 100), ...).
HARMONY_DEFAULTS: dict[str, Any] = {
    "theta": None,
    "lamb": None,
    "nclust": None,
    "max_iter_harmony": 10,
}


def run_harmony(
    adata, *, batch_key: str, label_key: str | None, seed: int, params: Mapping[str, Any], threads: int
) -> None:
    """Correct ``obsm["X_pca"]`` for ``batch_key`` with Harmony; labels are not used."""
    # deferred: imports harmonypy (this module is imported at workflow parse time)
    import harmonypy

    p = resolve_params("harmony", HARMONY_DEFAULTS, params)
    check_obs_key(adata, batch_key, "batch", "harmony")
    if "X_pca" not in adata.obsm:
        raise KeyError("harmony needs obsm['X_pca'] from preprocessing; rerun the preprocess rule.")
    seed_everything(seed)
    meta = adata.obs[[batch_key]].astype(str)
    kwargs = {k: v for k, v in p.items() if v is not None}
    result = harmonypy.run_harmony(
        np.asarray(adata.obsm["X_pca"], dtype=np.float64),
        meta,
        batch_key,
        random_state=seed,
        ncores=max(1, int(threads)),
        verbose=False,
        **kwargs,
    )
    z = np.asarray(result.Z_corr)
    if z.shape[0] != adata.n_obs:  # harmonypy returns dimensions x cells
        z = z.T
    adata.obsm[EMBEDDING_KEY] = z.astype(np.float32)
