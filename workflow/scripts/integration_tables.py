"""Snakemake adapter: metric files of all runs -> long, by-seed and per-dataset wide tables.

Only runs that completed (status ok in their run records, scoring included) reach the tables; the report
names the others.
"""

from pathlib import Path

import pandas as pd

from scdiva.bench.core.io import atomic_path, configure_logging
from scdiva.bench.core.outcomes import runs_table
from scdiva.bench.core.provenance import with_run_id
from scdiva.bench.report.coverage import only_completed, seed_counts
from scdiva.bench.report.tables import read_metric_files, summarise_seeds, wide_table

configure_logging(snakemake.log[0])
runs = runs_table(snakemake.input.records, snakemake.input.metrics_status)
by_seed = only_completed(read_metric_files(snakemake.input.metrics), runs, "integration")
long = summarise_seeds(by_seed)
for frame, path in [(by_seed, snakemake.output.by_seed),
                    (with_run_id(long, snakemake.params.run_id), snakemake.output.long)]:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
for path in snakemake.output.wide:
    dataset = Path(path).name.removesuffix("_integration_wide.csv")
    counts = seed_counts(runs, "integration", dataset)
    ranked = [method for (_, method), complete in counts["complete"].items() if complete]
    # A dataset where no run completed still gets its (empty) table: the report says why.
    wide = wide_table(long, dataset, ranked) if (long["dataset"] == dataset).any() else pd.DataFrame(
        index=pd.Index([], name="method"))
    with atomic_path(path) as tmp:
        wide.to_csv(tmp)
