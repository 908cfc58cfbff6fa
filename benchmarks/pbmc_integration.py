"""Unsupervised batch integration of the 3 PBMC chemistries by ScDiVa vs PCA (quick check).

Trains ``masked_expression + integration`` on all cells (no labels), then compares the latent
with a PCA of the log-normalised expression (same dimension): silhouette of cell type (-1..1,
higher = better separated) and of chemistry (lower = better mixed), the fraction of each cell's
15 nearest neighbours from its own chemistry (lower = better mixed; random mixing ~0.35 here)
and kNN label agreement (higher = cell types kept apart). The workflow's scIB metrics are the
full comparison; this is the model engineer's sanity check.

    python benchmarks/pbmc_integration.py --max-steps 200
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _scores(embedding: np.ndarray, labels: np.ndarray, batches: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import silhouette_score
    from sklearn.neighbors import NearestNeighbors

    neighbours = NearestNeighbors(n_neighbors=16).fit(embedding).kneighbors(embedding, return_distance=False)[:, 1:]
    return {"silhouette_cell_type": round(float(silhouette_score(embedding, labels)), 3),
            "silhouette_batch": round(float(silhouette_score(embedding, batches)), 3),
            "same_batch_neighbour_fraction": round(float((batches[neighbours] == batches[:, None]).mean()), 3),
            "knn_label_agreement": round(float((labels[neighbours] == labels[:, None]).mean()), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import anndata as ad
    import torch
    from sklearn.decomposition import PCA

    from scdiva import ScDiVaModel

    torch.set_num_threads(args.threads)
    adata = ad.read_h5ad(REPO / "data" / "pbmc_3chem_symphony.h5ad")
    model = ScDiVaModel.from_config(args.size, genes=adata.var_names, seed=args.seed)
    start = time.perf_counter()
    model.fit(adata, tasks=["masked_expression", "integration"], batch_key="donor", max_steps=args.max_steps,
              seed=args.seed, progress_bar=False)
    train_seconds = time.perf_counter() - start
    latent = model.get_latent(adata)
    counts = adata.X.toarray()
    pca = PCA(latent.shape[1], random_state=args.seed).fit_transform(
        np.log1p(counts / counts.sum(1, keepdims=True) * 1e4))
    labels, batches = adata.obs["cell_type"].astype(str).to_numpy(), adata.obs["donor"].astype(str).to_numpy()
    print(json.dumps({"size": args.size, "max_steps": args.max_steps, "train_seconds": round(train_seconds, 1),
                      "scdiva": _scores(latent, labels, batches), "pca": _scores(pca, labels, batches)}, indent=2))


if __name__ == "__main__":
    main()
