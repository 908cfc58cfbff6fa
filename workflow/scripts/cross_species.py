"""Snakemake adapter: one cross-species annotation or integration job (scdiva.bench.cross_species)."""

import anndata as ad
import pandas as pd

from scdiva.bench.cross_species import run_cross_species_annotation, run_cross_species_integration
from scdiva.bench.io import atomic_path, configure_logging, write_h5ad_atomic
from scdiva.bench.metrics import enable_jax_cache

configure_logging(snakemake.log[0])
enable_jax_cache("resources/cache/jax")  # the metrics jobs' JAX compilation cache
settings, wc = snakemake.params.settings, snakemake.wildcards
seed, method = int(wc.seed), wc.xs_method
combined = ad.read_h5ad(snakemake.input[0])
pair_reference, pair_query = wc.xs_pair.split("__")
params = settings["params"].get(method)
if snakemake.params.task == "annotation":
    scores, predictions = run_cross_species_annotation(combined, method, reference=wc.xs_ref, seed=seed, params=params,
                                                       threads=snakemake.threads)
    query = pair_query if wc.xs_ref == pair_reference else pair_reference
    scores.insert(0, "task", "annotation")
    scores.insert(1, "reference", wc.xs_ref)
    scores.insert(2, "query", query)
    with atomic_path(snakemake.output.predictions) as tmp:
        predictions.to_csv(tmp, index=False)
else:
    scores, embedding = run_cross_species_integration(combined, method, seed=seed, params=params,
                                                      threads=snakemake.threads)
    scores.insert(0, "task", "integration")
    scores.insert(1, "reference", pair_reference)
    scores.insert(2, "query", pair_query)
    out = ad.AnnData(obs=combined.obs[["species", "cell_type", "dataset"]].copy())
    out.obsm["X_emb"] = embedding
    write_h5ad_atomic(out, snakemake.output.embedding)
with atomic_path(snakemake.output.scores) as tmp:
    pd.DataFrame(scores).to_csv(tmp, index=False)
