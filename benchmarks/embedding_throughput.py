"""Embedding speed: ScDiVa ``get_latent`` cells/s beside scVI ``get_latent_representation`` cells/s.

Both embed the same cells (the embedded PBMC file: raw counts, all genes, ``donor`` as batch) in
this process with the same thread count. Inference speed does not depend on how well a model is
trained, so ScDiVa is freshly initialised and scVI trained for one epoch. ``ratio`` = ScDiVa cells/s
/ scVI cells/s (higher = ScDiVa faster).

    python benchmarks/embedding_throughput.py --size tiny --threads 1 [--precision fp32]

``--precision`` is ScDiVa's ``inference_precision`` ("auto": bf16 on CUDA and on CPUs with bf16 matrix
units, else float32; scdiva.train.precision).
"""

from __future__ import annotations

import argparse

import numpy as np
from _bench import REPO, best_time, record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--copies", type=int, default=2, help="embed this many copies of the 1,200 cells")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    args = parser.parse_args()
    import anndata as ad
    import scvi
    import torch

    from scdiva import ScDiVaModel

    torch.set_num_threads(args.threads)
    scvi.settings.num_threads = args.threads
    scvi.settings.dl_num_workers = 0
    scvi.settings.seed = 0
    one = ad.read_h5ad(REPO / "data" / "pbmc_3chem_symphony.h5ad")
    adata = ad.concat([one] * args.copies, index_unique="-") if args.copies > 1 else one
    adata.layers["counts"] = adata.X.copy()

    model = ScDiVaModel.from_config(args.size, genes=adata.var_names, seed=0, device="cpu")
    model.inference_precision = args.precision
    scdiva_s = best_time(lambda: model.get_latent(adata), args.repeats)

    scvi.model.SCVI.setup_anndata(adata, layer="counts", batch_key="donor")
    vae = scvi.model.SCVI(adata)  # the authors' defaults (n_latent 10, n_hidden 128)
    vae.train(max_epochs=1, accelerator="cpu", enable_progress_bar=False)
    scvi_s = best_time(lambda: vae.get_latent_representation(adata), args.repeats)
    latent = model.get_latent(adata)
    assert latent.shape[0] == adata.n_obs and np.isfinite(latent).all()

    scdiva_rate, scvi_rate = adata.n_obs / scdiva_s, adata.n_obs / scvi_s
    suffix = "" if args.precision == "auto" else f"_{args.precision}"
    record(f"scdiva_{args.size}_embedding_cells_per_s{suffix}", scdiva_rate, "cells/s", scvi_rate,
           scdiva_rate / scvi_rate,
           summary=(f"ScDiVa {args.size} ({args.precision}) {scdiva_rate:,.0f} cells/s vs scVI get_latent_representation "
                    f"{scvi_rate:,.0f} cells/s on the same {adata.n_obs:,} cells = {scdiva_rate / scvi_rate:.3f}x"),
           cells=adata.n_obs, genes=adata.n_vars, scdiva_seconds=scdiva_s, scvi_seconds=scvi_s,
           scdiva_parameters=sum(p.numel() for p in model.module.parameters()),
           scvi_parameters=sum(p.numel() for p in vae.module.parameters()), threads=args.threads,
           precision=args.precision)


if __name__ == "__main__":
    main()
