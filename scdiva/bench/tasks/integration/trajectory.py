"""Trajectory view: PAGA and diffusion pseudotime on an embedding (ScDiVa's latent beside PCA).

For each embedding: a kNN graph (15 neighbours), a diffusion map, diffusion pseudotime (DPT)
from a reproducible root, and PAGA on the cell-type labels. The root is the first cell (in obs
order) of `root_label` when the data has it (e.g. `HSC`, the progenitors of the blood types);
otherwise the cell with the largest first diffusion component, as scanpy's docs suggest.
"""

from __future__ import annotations

from collections.abc import Mapping

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc

from scdiva.bench.core.outcomes import embedding_status


def choose_root(adata: ad.AnnData, label_key: str, root_label: str | None) -> tuple[int, str]:
    """Index of the DPT root cell and a sentence saying how it was chosen (needs `obsm['X_diffmap']`)."""
    labels = adata.obs[label_key].astype(str).to_numpy()
    if root_label is not None and (labels == root_label).any():
        index = int(np.flatnonzero(labels == root_label)[0])
        return index, f"first {root_label} cell ({adata.obs_names[index]})"
    index = int(np.argmax(adata.obsm["X_diffmap"][:, 1]))  # column 0 is the trivial component
    return index, f"cell with the largest diffusion component 1 ({adata.obs_names[index]}, {labels[index]})"


def trajectory_on(adata: ad.AnnData, embedding: np.ndarray, *, label_key: str, root_label: str | None,
                  seed: int = 0) -> tuple[ad.AnnData, str]:
    """An AnnData holding the graph, DPT (`obs['dpt_pseudotime']`), PAGA and a UMAP of one embedding."""
    work = ad.AnnData(obs=adata.obs[[label_key]].copy())
    work.obs[label_key] = work.obs[label_key].astype(str).astype("category")
    work.obsm["X_use"] = np.asarray(embedding, dtype=np.float32)
    sc.pp.neighbors(work, use_rep="X_use", n_neighbors=15, random_state=seed)
    sc.tl.diffmap(work, random_state=seed)
    root, how = choose_root(work, label_key, root_label)
    work.uns["iroot"] = root
    sc.tl.dpt(work)
    sc.tl.paga(work, groups=label_key)
    sc.tl.umap(work, random_state=seed)
    return work, how


def completed_embeddings(adata: ad.AnnData, runs: Mapping[str, str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The embeddings of the integration jobs that completed, aligned to ``adata``'s cells, and the others.

    Parameters
    ----------
    adata
        The preprocessed dataset (its ``obs_names`` order the rows).
    runs
        Method name -> its integration job's .h5ad (an embedding, or the failure stub a job that did not
        complete leaves: :func:`scdiva.bench.core.outcomes.write_stub_h5ad`).

    Returns
    -------
    tuple
        ``{method: embedding}`` of the completed runs, and ``{method: "<status>: <reason>"}`` of the rest,
        which no figure shows.
    """
    embeddings, left_out = {}, {}
    for method, path in runs.items():
        emb = ad.read_h5ad(path)
        status, reason = embedding_status(emb)
        if status != "ok":
            left_out[method] = f"{status}: {reason}" if reason else status
            continue
        embeddings[method] = np.asarray(emb[adata.obs_names].obsm["X_emb"])
    return embeddings, left_out


def plot_trajectories(adata: ad.AnnData, embeddings: Mapping[str, np.ndarray], path: str, *, label_key: str,
                      root_label: str | None = "HSC", seed: int = 0, title: str = "") -> pd.DataFrame:
    """One row per embedding: PAGA graph, UMAP by cell type, UMAP by DPT. Returns median DPT per label."""
    # deferred: imports matplotlib (Agg is selected only when a figure is drawn)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not embeddings:
        raise ValueError("plot_trajectories needs at least one embedding")
    fig, axes = plt.subplots(len(embeddings), 3, figsize=(14, 4.3 * len(embeddings)), squeeze=False)
    medians = {}
    for row, (name, embedding) in zip(axes, embeddings.items(), strict=True):
        work, how = trajectory_on(adata, embedding, label_key=label_key, root_label=root_label, seed=seed)
        sc.pl.paga(work, ax=row[0], show=False, fontsize=7, node_size_scale=0.8, frameon=False)
        row[0].set_title(f"{name}: PAGA on {label_key}", fontsize=9)
        sc.pl.umap(work, color=label_key, ax=row[1], show=False, frameon=False, size=12)
        row[1].set_title(f"{name}: UMAP", fontsize=9)
        sc.pl.umap(work, color="dpt_pseudotime", ax=row[2], show=False, frameon=False, size=12, cmap="viridis")
        row[2].set_title(f"{name}: diffusion pseudotime (root: {how})", fontsize=8)
        medians[name] = work.obs.groupby(label_key, observed=True)["dpt_pseudotime"].median()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return pd.DataFrame(medians)
