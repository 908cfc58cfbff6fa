"""Snakemake adapter: the multimodal report section and its figures (scdiva.bench.report.modalities).

A run that did not complete (its .run.json is not ok; its outputs are failure stubs) is in no figure:
the section names it with its reason instead.
"""

from pathlib import Path

import pandas as pd

from scdiva.bench.core.io import configure_logging
from scdiva.bench.core.outcomes import RunOutcome, runs_table
from scdiva.bench.methods.catalog import method_role
from scdiva.bench.report import modalities
from scdiva.bench.report.coverage import left_out_lines
from scdiva.bench.tasks.multimodal import uses_protein

configure_logging(snakemake.log[0])
params = snakemake.params
out_dir = Path(params.figure_dir)
out_dir.mkdir(parents=True, exist_ok=True)
records = list(snakemake.input.records)
done = {(r.dataset, r.method) for r in map(RunOutcome.read, records) if r.ok and r.seed == int(params.seed)}
figures = []
for dataset in params.datasets:
    job = f"results/multimodal/{dataset}/{{}}/seed{params.seed}"
    prepared = f"results/multimodal/{dataset}/prepared.h5ad"
    completed = [m for m in params.methods if (dataset, m) in done]
    # every method that predicts proteins from its own model or space (not the training-mean control)
    shown = [m for m in completed if method_role(m) != "control"]
    if shown:
        figures.append(out_dir / f"multimodal_{dataset}_protein_prediction.png")
        modalities.plot_protein_scatter(prepared, {m: job.format(m) + ".predicted.csv" for m in shown}, figures[-1])
    for method in [m for m in completed if uses_protein(m)]:  # joint RNA + protein embeddings
        figures.append(out_dir / f"multimodal_{dataset}_{method}_umap.png")
        modalities.plot_joint_umap(prepared, job.format(method) + ".h5ad", figures[-1], method=method, seed=params.seed)
left_out = left_out_lines(runs_table(records), task="multimodal")
modalities.multimodal_section(pd.read_csv(snakemake.input.table), figures, left_out).to_json(snakemake.output[0])
