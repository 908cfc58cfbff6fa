"""Snakemake adapter: one multimodal method on one dataset and seed (scdiva.bench.multimodal.run_multimodal)."""

import anndata as ad
import numpy as np
import pandas as pd

from scdiva.bench.io import atomic_path, configure_logging, write_h5ad_atomic
from scdiva.bench.metrics import enable_jax_cache
from scdiva.bench.multimodal import PROTEIN_KEY, held_out_mask, run_multimodal

configure_logging(snakemake.log[0])
enable_jax_cache("resources/cache/jax")  # the metrics jobs' JAX compilation cache
settings, wc = snakemake.params.settings, snakemake.wildcards
seed = int(wc.seed)
adata = ad.read_h5ad(snakemake.input[0])
scores, per_protein, output = run_multimodal(adata, wc.mm_method, seed=seed,
                                             held_out_fraction=settings["held_out_fraction"],
                                             params=settings["params"].get(wc.mm_method), threads=snakemake.threads)
scores.insert(0, "dataset", wc.mm_dataset)
per_protein.insert(0, "dataset", wc.mm_dataset)
with atomic_path(snakemake.output.scores) as tmp:
    scores.to_csv(tmp, index=False)
with atomic_path(snakemake.output.proteins) as tmp:
    per_protein.to_csv(tmp, index=False)
test = held_out_mask(adata, settings["held_out_fraction"], seed)
with atomic_path(snakemake.output.predicted) as tmp:
    pd.DataFrame(output.predicted, index=adata.obs_names[test],
                 columns=adata.obsm[PROTEIN_KEY].columns).to_csv(tmp, index_label="cell")
embedding = ad.AnnData(obs=pd.DataFrame({"held_out": test}, index=adata.obs_names))
if output.embedding is not None:
    embedding.obsm["X_emb"] = np.asarray(output.embedding, dtype=np.float32)
embedding.uns["runtime_s"] = output.runtime_s
write_h5ad_atomic(embedding, snakemake.output.embedding)
