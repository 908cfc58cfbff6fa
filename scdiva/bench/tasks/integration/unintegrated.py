"""Unintegrated baseline: the PCA of the log-normalised highly variable genes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from scdiva.bench.methods._common import EMBEDDING_KEY, hvg_mask, resolve_params, seed_everything

UNINTEGRATED_DEFAULTS: dict[str, Any] = {"n_comps": 50}


def run_unintegrated(
    adata, *, batch_key: str, label_key: str | None, seed: int, params: Mapping[str, Any], threads: int
) -> None:
    """Use ``obsm["X_pca"]`` from preprocessing (or compute it on the HVGs) as the embedding.

    ``batch_key`` and ``label_key`` are ignored: this is the reference that every integration
    method should improve on for batch mixing.
    """
    p = resolve_params("unintegrated", UNINTEGRATED_DEFAULTS, params)
    seed_everything(seed)
    if "X_pca" in adata.obsm:
        emb = np.asarray(adata.obsm["X_pca"])[:, : p["n_comps"]]
    else:
        # deferred: imports scanpy (this module is imported at workflow parse time)
        import scanpy as sc

        sub = adata[:, hvg_mask(adata)].copy()
        n_comps = min(p["n_comps"], min(sub.shape) - 1)
        emb = sc.pp.pca(sub.X, n_comps=n_comps, random_state=seed)
    adata.obsm[EMBEDDING_KEY] = np.asarray(emb, dtype=np.float32)
