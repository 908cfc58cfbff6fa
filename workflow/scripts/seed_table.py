"""Snakemake adapter: concatenate per-seed score files into `*_by_seed.csv` and the summary table.

With a `records` input (the task's .run.json files) and `params.task`, only runs of that task that
completed (status ok) are kept: a failed run is left out of every mean, never counted as 0.
"""

import pandas as pd

from scdiva.bench.io import atomic_path
from scdiva.bench.outcomes import runs_table
from scdiva.bench.provenance import with_run_id
from scdiva.bench.report.coverage import only_completed
from scdiva.bench.seed_tables import summarise_seeds

scores = snakemake.input.get("scores", snakemake.input)
by_seed = pd.concat([pd.read_csv(path) for path in scores], ignore_index=True)
if snakemake.input.get("records"):
    by_seed = only_completed(by_seed, runs_table(snakemake.input.records), snakemake.params.task)
keys = list(snakemake.params.group_by)
with atomic_path(snakemake.output.by_seed) as tmp:
    by_seed.to_csv(tmp, index=False)
with atomic_path(snakemake.output.summary) as tmp:
    with_run_id(summarise_seeds(by_seed, keys), snakemake.params.run_id).to_csv(tmp, index=False)
