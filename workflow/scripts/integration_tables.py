"""Snakemake adapter: metric files of all runs -> long, by-seed and per-dataset wide tables."""

from pathlib import Path

from scdiva.bench.io import atomic_path, configure_logging
from scdiva.bench.provenance import with_run_id
from scdiva.bench.tables import read_metric_files, summarise_seeds, wide_table

configure_logging(snakemake.log[0])
by_seed = read_metric_files(snakemake.input)
long = summarise_seeds(by_seed)
for frame, path in [(by_seed, snakemake.output.by_seed),
                    (with_run_id(long, snakemake.params.run_id), snakemake.output.long)]:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
for path in snakemake.output.wide:
    dataset = Path(path).name.removesuffix("_integration_wide.csv")
    with atomic_path(path) as tmp:
        wide_table(long, dataset).to_csv(tmp)
