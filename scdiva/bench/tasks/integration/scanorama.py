"""Scanorama (Hie et al. 2019): mutual nearest neighbours panoramic stitching."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

from scdiva.bench.methods._common import (
    EMBEDDING_KEY,
    check_obs_key,
    hvg_mask,
    resolve_params,
    seed_everything,
)

# Scanorama's own defaults (scanorama.integrate).
SCANORAMA_DEFAULTS: dict[str, Any] = {"dimred": 100, "knn": 20, "sigma": 15, "alpha": 0.10, "batch_size": 5000}


def run_scanorama(
    adata, *, batch_key: str, label_key: str | None, seed: int, params: Mapping[str, Any], threads: int
) -> None:
    """Integrate the log-normalised HVG expression of each batch with Scanorama.

    Cells are split by ``batch_key``, integrated, and put back in the original order.
    """
    # deferred: imports scanorama (this module is imported at workflow parse time)
    import scanorama

    p = resolve_params("scanorama", SCANORAMA_DEFAULTS, params)
    check_obs_key(adata, batch_key, "batch", "scanorama")
    seed_everything(seed)
    mask = hvg_mask(adata)
    x = adata.X[:, mask]
    x = x.tocsr() if sp.issparse(x) else sp.csr_matrix(x)
    genes = list(adata.var_names[mask])
    batches = adata.obs[batch_key].astype(str).to_numpy()
    order = [np.flatnonzero(batches == b) for b in sorted(set(batches))]
    dimred = min(int(p["dimred"]), len(genes) - 1, *(len(i) - 1 for i in order))
    integrated, _ = scanorama.integrate(
        [x[i] for i in order],
        [genes] * len(order),
        dimred=dimred,
        knn=p["knn"],
        sigma=p["sigma"],
        alpha=p["alpha"],
        batch_size=p["batch_size"],
        seed=seed,
        verbose=0,
    )
    emb = np.empty((adata.n_obs, integrated[0].shape[1]), dtype=np.float32)
    for idx, block in zip(order, integrated, strict=True):
        emb[idx] = block
    adata.obsm[EMBEDDING_KEY] = emb
