"""Snakemake adapter: two species' datasets on their shared genes, one AnnData (scdiva.bench.tasks.cross_species)."""

import anndata as ad

from scdiva.bench.core.io import configure_logging, fail, sha256_of, write_h5ad_atomic
from scdiva.bench.tasks.cross_species import prepare_pair

configure_logging(snakemake.log[0])
settings = snakemake.params.settings
reference, query = snakemake.wildcards.xs_pair.split("__")
for name, path in ((reference, snakemake.input.reference), (query, snakemake.input.query)):
    expected = settings["datasets"][name].get("sha256")
    if expected and sha256_of(path) != expected.lower():
        fail(f"dataset {name!r}: {path} has sha256 {sha256_of(path)}, not the configured {expected} "
             f"(config `cross_species.datasets.{name}.sha256`)")


def read(name, path):
    adata = ad.read_h5ad(path)
    column = settings["datasets"][name].get("gene_id_column")
    if column:
        adata.var_names = adata.var[column].astype(str).to_numpy()
        adata.var_names_make_unique()
    return adata


combined = prepare_pair(read(reference, snakemake.input.reference), read(query, snakemake.input.query),
                        reference_entry=settings["datasets"][reference], query_entry=settings["datasets"][query],
                        reference_name=reference, query_name=query, min_shared_genes=settings["min_shared_genes"],
                        n_top_genes=settings["n_top_genes"], subsample=settings.get("subsample"),
                        seed=snakemake.params.seed)
write_h5ad_atomic(combined, snakemake.output[0])
