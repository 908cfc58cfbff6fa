"""Snakemake adapter: PAGA + diffusion pseudotime on ScDiVa's latent beside PCA (scdiva.bench.tasks.integration.trajectory).

A ScDiVa run that did not complete (its job left a failure stub) gets no row: the figure's title and the
log say so, and the report's trajectory section names it with its reason (from the run's .run.json).
"""

import logging

import anndata as ad

from scdiva.bench.core.io import atomic_path, configure_logging
from scdiva.bench.tasks.integration.trajectory import completed_embeddings, plot_trajectories

configure_logging(snakemake.log[0])
adata = ad.read_h5ad(snakemake.input.h5ad)
done, left_out = completed_embeddings(adata, dict(zip(snakemake.params.methods, snakemake.input.embeddings,
                                                      strict=True)))
for method, why in left_out.items():
    logging.getLogger("scdiva.bench.tasks.integration.trajectory").warning("trajectory: %s left out, its run did not complete (%s)",
                                                         method, why)
title = f"{snakemake.wildcards.dataset}: PAGA and diffusion pseudotime"
if left_out:
    title += f" (no row for {', '.join(left_out)}: run did not complete)"
with atomic_path(snakemake.output.figure) as tmp:
    medians = plot_trajectories(adata, {"PCA": adata.obsm["X_pca"], **done}, str(tmp),
                                label_key=snakemake.params.label_key, root_label=snakemake.params.root_label,
                                seed=snakemake.params.seed, title=title)
with atomic_path(snakemake.output.medians) as tmp:
    medians.rename_axis("cell_type").to_csv(tmp)
