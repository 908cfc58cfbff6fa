"""Snakemake adapter: multi-task score tables (by seed, mean/std) and the paired head-count comparison."""

import pandas as pd

from scdiva.bench.core.io import atomic_path, configure_logging
from scdiva.bench.core.provenance import with_run_id
from scdiva.bench.report.seed_tables import summarise_seeds
from scdiva.bench.tasks.multitask.stats import compare_head_counts

configure_logging(snakemake.log[0])
by_seed = pd.concat([pd.read_csv(path) for path in snakemake.input.scores], ignore_index=True)
predictions = pd.concat([pd.read_csv(path) for path in snakemake.input.predictions], ignore_index=True)
with atomic_path(snakemake.output.by_seed) as tmp:
    by_seed.to_csv(tmp, index=False)
with atomic_path(snakemake.output.summary) as tmp:
    summary = summarise_seeds(by_seed, list(snakemake.params.group_by))
    with_run_id(summary, snakemake.params.run_id).to_csv(tmp, index=False)
with atomic_path(snakemake.output.comparison) as tmp:
    compare_head_counts(predictions, n_boot=int(snakemake.params.n_boot)).to_csv(tmp, index=False)
