"""Held-out-chemistry check of ScDiVa on the embedded PBMC data (3 chemistries).

Trains on two chemistries (reference) with masked expression + integration (ELBO) + annotation,
then on the held-out chemistry reports annotation accuracy against the majority-class rate and
the silhouette of ``cell_type`` on the ScDiVa latent against a random projection of the
log-normalised expression to the same number of dimensions (silhouette: -1..1, higher = cell
types better separated).

    python benchmarks/pbmc_holdout.py --size tiny --max-steps 300 --holdout 3pv1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def holdout_scores(size: str = "tiny", max_steps: int = 300, holdout: str = "3pv1", seed: int = 0,
                   data: Path = REPO / "data" / "pbmc_3chem_symphony.h5ad", progress_bar: bool = True) -> dict:
    import anndata as ad
    from sklearn.metrics import silhouette_score

    from scdiva import ScDiVaModel

    adata = ad.read_h5ad(data)
    if holdout not in set(adata.obs["donor"]):
        raise ValueError(f"--holdout {holdout!r} is not a chemistry of {data}: {sorted(set(adata.obs['donor']))}")
    is_query = (adata.obs["donor"] == holdout).to_numpy()
    reference, query = adata[~is_query].copy(), adata[is_query].copy()

    model = ScDiVaModel.from_config(size, genes=adata.var_names, seed=seed)
    start = time.perf_counter()
    history = model.fit(reference, tasks=["masked_expression", "integration", "annotation"], batch_key="donor",
                        label_key="cell_type", max_steps=max_steps, seed=seed, progress_bar=progress_bar)
    train_seconds = time.perf_counter() - start

    predicted, _ = model.predict_labels(query)
    truth = query.obs["cell_type"].astype(str).to_numpy()
    accuracy = float(np.mean(predicted == truth))
    majority_rate = float(query.obs["cell_type"].value_counts(normalize=True).iloc[0])

    latent = model.get_latent(query)
    counts = query.X.toarray()
    log_norm = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4)
    rng = np.random.default_rng(seed)
    random_projection = log_norm @ rng.normal(size=(log_norm.shape[1], latent.shape[1]))
    return {
        "size": size, "max_steps": max_steps, "holdout": holdout, "seed": seed,
        "n_reference": int(reference.n_obs), "n_query": int(query.n_obs),
        "train_seconds": round(train_seconds, 1), "final_loss": history[-1]["loss"],
        "accuracy": accuracy, "majority_rate": majority_rate,
        "silhouette_latent": float(silhouette_score(latent, truth)),
        "silhouette_random_projection": float(silhouette_score(random_projection, truth)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--holdout", default="3pv1", help="chemistry held out as the query")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(json.dumps(holdout_scores(args.size, args.max_steps, args.holdout, args.seed), indent=2))


if __name__ == "__main__":
    main()
