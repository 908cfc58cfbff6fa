"""Snakemake adapter: a CITE-seq dataset -> the AnnData the multimodal methods read (scdiva.bench.tasks.multimodal)."""

import anndata as ad

from scdiva.bench.core.io import configure_logging, fail, sha256_of, write_h5ad_atomic
from scdiva.bench.tasks.multimodal import prepare_multimodal

configure_logging(snakemake.log[0])
entry, name = snakemake.params.entry, snakemake.wildcards.mm_dataset
if entry.get("sha256") and sha256_of(snakemake.input[0]) != entry["sha256"].lower():
    fail(f"dataset {name!r}: {snakemake.input[0]} has sha256 {sha256_of(snakemake.input[0])}, not the "
         f"configured {entry['sha256']} (config `multimodal.datasets.{name}.sha256`)")
prepared = prepare_multimodal(ad.read_h5ad(snakemake.input[0]), protein_obsm_key=entry["protein_obsm_key"],
                              batch_key=entry["batch_key"], n_top_genes=snakemake.params.n_top_genes,
                              subsample=entry.get("subsample"), seed=snakemake.params.seed, dataset=name)
write_h5ad_atomic(prepared, snakemake.output[0])
