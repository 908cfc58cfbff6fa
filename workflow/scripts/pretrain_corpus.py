"""Snakemake adapter: the pretraining corpus of a checkpoint recipe (raw counts of chosen batches)."""

import anndata as ad

from scdiva.bench.io import configure_logging, fail, write_h5ad_atomic

configure_logging(snakemake.log[0])
recipe = snakemake.params.recipe
adata = ad.read_h5ad(snakemake.input[0])
batches = snakemake.params.batches
batch_key = snakemake.params.batch_key
if batches is not None:
    keep = adata.obs[batch_key].astype(str).isin([str(b) for b in batches]).to_numpy()
    if not keep.any():
        fail(f"checkpoint recipe: none of batches {batches} in obs['{batch_key}'] of {snakemake.input[0]}")
    adata = adata[keep].copy()
corpus = ad.AnnData(X=adata.layers["counts"], obs=adata.obs[[batch_key]].copy(), var=adata.var[[]].copy())
write_h5ad_atomic(corpus, snakemake.output[0])
