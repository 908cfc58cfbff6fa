"""Snakemake adapter: PAGA + diffusion pseudotime on ScDiVa's latent beside PCA (scdiva.bench.trajectory)."""

import anndata as ad

from scdiva.bench.io import atomic_path, configure_logging
from scdiva.bench.trajectory import plot_trajectories

configure_logging(snakemake.log[0])
adata = ad.read_h5ad(snakemake.input.h5ad)
embeddings = {"PCA": adata.obsm["X_pca"]}
for method, path in zip(snakemake.params.methods, snakemake.input.embeddings, strict=True):
    emb = ad.read_h5ad(path)
    embeddings[method] = emb[adata.obs_names].obsm["X_emb"]
with atomic_path(snakemake.output.figure) as tmp:
    medians = plot_trajectories(adata, embeddings, str(tmp), label_key=snakemake.params.label_key,
                                root_label=snakemake.params.root_label, seed=snakemake.params.seed,
                                title=f"{snakemake.wildcards.dataset}: PAGA and diffusion pseudotime")
with atomic_path(snakemake.output.medians) as tmp:
    medians.rename_axis("cell_type").to_csv(tmp)
