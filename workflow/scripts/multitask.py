"""Snakemake adapter: ScDiVa with 1, 3 and 5 heads on one dataset and seed (scdiva.bench.tasks.multitask.run)."""

import json

import anndata as ad

from scdiva.bench.core.io import atomic_path, configure_logging
from scdiva.bench.tasks.multitask.run import (
    multitask_long_form,
    multitask_predictions_long_form,
    run_multitask,
)

configure_logging(snakemake.log[0])
entry, settings = snakemake.params.entry, snakemake.params.settings
seed = int(snakemake.wildcards.seed)
results, info = run_multitask(
    ad.read_h5ad(snakemake.input[0]), label_key=entry["label_key"], batch_key=entry["batch_key"],
    coarse_label_key=entry.get("coarse_label_key"), head_counts=settings["head_counts"], size=settings["size"],
    max_steps=settings["max_steps"], batch_size=settings["batch_size"],
    held_out_fraction=settings["held_out_fraction"], seed=seed, threads=snakemake.threads)
with atomic_path(snakemake.output.info) as tmp:
    tmp.write_text(json.dumps(info, indent=1))
with atomic_path(snakemake.output.scores) as tmp:
    multitask_long_form(results, snakemake.wildcards.dataset, seed).to_csv(tmp, index=False)
with atomic_path(snakemake.output.predictions) as tmp:
    multitask_predictions_long_form(results, snakemake.wildcards.dataset, seed).to_csv(tmp, index=False)
