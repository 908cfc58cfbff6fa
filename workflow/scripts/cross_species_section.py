"""Snakemake adapter: the cross-species report section and its confusion matrices (scdiva.bench.report.modalities).

A run that did not complete (its .run.json is not ok; its predictions are a header-only stub) gets no
confusion matrix: the section names it with its reason instead.
"""

from pathlib import Path

import pandas as pd

from scdiva.bench.core.io import configure_logging
from scdiva.bench.core.outcomes import RunOutcome, runs_table
from scdiva.bench.methods.catalog import model_methods
from scdiva.bench.report import modalities
from scdiva.bench.report.coverage import left_out_lines
from scdiva.bench.tasks.cross_species import ANNOTATION_TASK

configure_logging(snakemake.log[0])
shown = set(model_methods(ANNOTATION_TASK))  # confusion matrices of the model under test
out_dir = Path(snakemake.params.figure_dir)
out_dir.mkdir(parents=True, exist_ok=True)
records = list(snakemake.input.records)
figures = []
for path in snakemake.input.predictions:
    parts = Path(path).parts  # results/cross_species/{pair}/annotation/{method}/ref-{ref}.seed{s}.predictions.csv
    pair, method, ref = parts[-4], parts[-2], parts[-1].split(".seed")[0][len("ref-"):]
    if method not in shown or not RunOutcome.read(path.removesuffix(".predictions.csv") + ".run.json").ok:
        continue
    query = [d for d in pair.split("__") if d != ref][0]
    figures.append(out_dir / f"cross_species_{method}_{ref}_to_{query}_confusion.png")
    modalities.plot_cross_species_confusion(path, figures[-1], title=f"{method}: trained on {ref}, applied to {query}")
left_out = left_out_lines(runs_table(records), task="cross_species")
modalities.cross_species_section(pd.read_csv(snakemake.input.table), figures, left_out).to_json(snakemake.output[0])
