"""BBKNN (Polański et al. 2020): a batch-balanced k-nearest-neighbour graph of the PCA.

BBKNN corrects no coordinates: for each cell it takes ``neighbors_within_batch`` nearest neighbours
in every batch, and that graph is its output. The method therefore writes ``obsp["graph_distances"]``
(cells x cells, sparse, the distance to each neighbour) instead of an embedding, and is scored on the
metrics that need only a neighbour graph (scdiva.bench.tasks.integration.metrics.GRAPH_METRICS).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from scdiva.bench.methods._common import GRAPH_KEY, check_obs_key, resolve_params, seed_everything

# None = bbknn's default (3 neighbours within each batch, 50 PCs, annoy, trim 10 x the neighbours).
BBKNN_DEFAULTS: dict[str, Any] = {
    "neighbors_within_batch": None,
    "n_pcs": None,
    "trim": None,
    "computation": None,
}


def run_bbknn(
    adata, *, batch_key: str, label_key: str | None, seed: int, params: Mapping[str, Any], threads: int
) -> None:
    """The batch-balanced neighbour graph of ``obsm["X_pca"]`` for ``batch_key``; labels are not used."""
    # deferred: imports bbknn (this module is imported at workflow parse time)
    import bbknn.matrix

    p = resolve_params("bbknn", BBKNN_DEFAULTS, params)
    check_obs_key(adata, batch_key, "batch", "bbknn")
    if "X_pca" not in adata.obsm:
        raise KeyError("bbknn needs obsm['X_pca'] from preprocessing; rerun the preprocess rule.")
    seed_everything(seed)
    pca = np.asarray(adata.obsm["X_pca"], dtype=np.float32)
    kwargs = {k: v for k, v in p.items() if v is not None}
    # bbknn uses at most as many PCs as the preprocessing made
    kwargs["n_pcs"] = min(int(kwargs.get("n_pcs", 50)), pca.shape[1])
    distances, _connectivities, _ = bbknn.matrix.bbknn(pca, adata.obs[batch_key].astype(str).to_numpy(), **kwargs)
    adata.obsp[GRAPH_KEY] = distances.tocsr().astype(np.float32)
