"""Snakemake adapter: the multimodal report section and its figures (scdiva.bench.report.modalities)."""

from pathlib import Path

import pandas as pd

from scdiva.bench.io import configure_logging
from scdiva.bench.methods.registry import method_role
from scdiva.bench.multimodal import uses_protein
from scdiva.bench.report import modalities

configure_logging(snakemake.log[0])
params = snakemake.params
out_dir = Path(params.figure_dir)
out_dir.mkdir(parents=True, exist_ok=True)
figures = []
for dataset in params.datasets:
    job = f"results/multimodal/{dataset}/{{}}/seed{params.seed}"
    prepared = f"results/multimodal/{dataset}/prepared.h5ad"
    # every method that predicts proteins from its own model or space (not the training-mean control)
    shown = [m for m in params.methods if method_role(m) != "control"]
    if shown:
        figures.append(out_dir / f"multimodal_{dataset}_protein_prediction.png")
        modalities.plot_protein_scatter(prepared, {m: job.format(m) + ".predicted.csv" for m in shown}, figures[-1])
    for method in [m for m in params.methods if uses_protein(m)]:  # joint RNA + protein embeddings
        figures.append(out_dir / f"multimodal_{dataset}_{method}_umap.png")
        modalities.plot_joint_umap(prepared, job.format(method) + ".h5ad", figures[-1], method=method, seed=params.seed)
modalities.multimodal_section(pd.read_csv(snakemake.input.table), figures).to_json(snakemake.output[0])
