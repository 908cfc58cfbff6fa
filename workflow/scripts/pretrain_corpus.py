"""Snakemake adapter: one dataset's share of a checkpoint recipe's pretraining corpus.

Raw counts only, labels dropped; the batch becomes `<dataset>/<batch>` so batches of different
datasets never share a decoder category. Held-out batches (recipe `held_out`) are left out.
"""

import anndata as ad

from scdiva.bench.checkpoints.fetch import corpus_batches
from scdiva.bench.core.io import configure_logging, fail, write_h5ad_atomic

configure_logging(snakemake.log[0])
dataset = snakemake.wildcards.dataset
batch_key = snakemake.params.batch_key
adata = ad.read_h5ad(snakemake.input[0])
held_out = [str(b) for b in snakemake.params.held_out_batches]
if held_out:
    keep = ~adata.obs[batch_key].astype(str).isin(held_out).to_numpy()
    if not keep.any():
        fail(f"checkpoint {snakemake.wildcards.checkpoint}: every cell of dataset {dataset!r} is in a held-out "
             f"batch ({held_out}); drop the dataset from the recipe's `datasets` or set `held_out: none`")
    adata = adata[keep].copy()
obs = adata.obs[[]].copy()
obs["batch"] = corpus_batches(dataset, adata.obs[batch_key])
corpus = ad.AnnData(X=adata.layers["counts"], obs=obs, var=adata.var[[]].copy())
write_h5ad_atomic(corpus, snakemake.output[0])
