"""Generate a realistic large dataset for scale tests (never commit its output: write it under /tmp).

Cells are resampled with replacement from the embedded PBMC file (``data/pbmc_3chem_symphony.h5ad``,
1,200 cells x 1,767 genes, ~205 detected genes per cell), so every generated cell has the sparsity,
library size and cell type of a real one. Each cell is put in one of ``--batches`` batches; a batch
multiplies each gene's counts by its own factor (log-normal, sd ``--batch-effect``) and redraws them
as Poisson counts on the cell's detected genes only, so batches differ as technologies do while the
sparsity pattern stays that of the real cell. Labels are the real cells' ``cell_type`` (9 types);
``cell_type_broad`` and the source ``donor`` are kept too.

Written in chunks of ``--chunk`` cells (memory ~ 2 x the output's sparse matrix at most).

    python benchmarks/generate_dataset.py --cells 100000 --batches 8 --out /tmp/me/pbmc_100k.h5ad
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "data" / "pbmc_3chem_symphony.h5ad"


def generate(n_cells: int, n_batches: int = 8, *, seed: int = 0, batch_effect: float = 0.3,
             chunk: int = 100_000, source: Path = SOURCE):
    """An AnnData of ``n_cells`` resampled cells in ``n_batches`` batches (obs ``batch``, ``cell_type``)."""
    import anndata as ad
    import pandas as pd

    ref = ad.read_h5ad(source)
    x = sp.csr_matrix(ref.X, dtype=np.float32)
    rng = np.random.default_rng(seed)
    factors = np.exp(rng.normal(0.0, batch_effect, size=(n_batches, ref.n_vars))).astype(np.float32)
    picks = rng.integers(0, ref.n_obs, size=n_cells)
    batches = rng.integers(0, n_batches, size=n_cells)
    blocks = []
    for start in range(0, n_cells, chunk):
        rows, b = picks[start:start + chunk], batches[start:start + chunk]
        block = x[rows].tocsr()
        row_of_value = np.repeat(np.arange(len(rows)), np.diff(block.indptr))
        mean = block.data * factors[b[row_of_value], block.indices]
        block.data = rng.poisson(mean).astype(np.float32)
        block.data[block.data == 0] = 1.0  # keep the real cell's detected genes detected
        blocks.append(block)
    matrix = sp.vstack(blocks, format="csr")
    obs = pd.DataFrame({
        "batch": pd.Categorical([f"batch{i}" for i in batches]),
        "cell_type": ref.obs["cell_type"].to_numpy()[picks],
        "cell_type_broad": ref.obs["cell_type_broad"].to_numpy()[picks],
        "source_donor": ref.obs["donor"].to_numpy()[picks],
    }, index=[f"cell{i}" for i in range(n_cells)])
    for column in ("cell_type", "cell_type_broad", "source_donor"):
        obs[column] = obs[column].astype("category")
    return ad.AnnData(X=matrix, obs=obs, var=ref.var.copy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, required=True)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-effect", type=float, default=0.3, help="sd of the log per-gene batch factor")
    parser.add_argument("--chunk", type=int, default=100_000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    start = time.perf_counter()
    adata = generate(args.cells, args.batches, seed=args.seed, batch_effect=args.batch_effect, chunk=args.chunk)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    adata.write_h5ad(args.out)
    print(f"{args.out}: {adata.n_obs} cells x {adata.n_vars} genes, {args.batches} batches, "
          f"{adata.X.nnz / adata.n_obs:.0f} genes per cell, {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
