"""Snakemake adapter: coverage (runs.csv), integration tables and figures + sections from other rules
-> results/report/."""

import contextlib
from pathlib import Path

import pandas as pd

from scdiva.bench.core.io import atomic_path, configure_logging
from scdiva.bench.core.threads import limit_threads
from scdiva.bench.report import load_sections, write_report
from scdiva.bench.report.coverage import coverage_section, read_runs
from scdiva.bench.report.integration import DatasetInputs, integration_sections

configure_logging(snakemake.log[0])
limit_threads(snakemake.threads)
with open(snakemake.log[0], "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
    out_dir = Path(snakemake.output.html).parent
    runs = read_runs(snakemake.input.runs)
    with atomic_path(out_dir / "tables" / "runs.csv") as tmp:  # beside the tables the report links
        runs.to_csv(tmp, index=False)
    sections = [coverage_section(runs)]
    sections += integration_sections(
        pd.read_csv(snakemake.input.long),
        {name: DatasetInputs(**entry) for name, entry in snakemake.params.datasets.items()},
        out_dir,
        runs=runs,
        bench_dir=snakemake.params.bench_dir,
        seed=snakemake.params.seed,
        by_seed=pd.read_csv(snakemake.input.by_seed),
        reference=snakemake.params.reference,
        models=snakemake.params.models,
    )
    sections += load_sections(snakemake.input.sections)
    write_report(sections, out_dir)
