"""Snakemake adapter: integration tables and figures + sections from other rules -> results/report/."""

import contextlib
from pathlib import Path

import pandas as pd

from scdiva.bench.io import configure_logging
from scdiva.bench.report import load_sections, write_report
from scdiva.bench.report.integration import DatasetInputs, integration_sections
from scdiva.bench.threads import limit_threads

configure_logging(snakemake.log[0])
limit_threads(snakemake.threads)
with open(snakemake.log[0], "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
    out_dir = Path(snakemake.output.html).parent
    sections = integration_sections(
        pd.read_csv(snakemake.input.long),
        {name: DatasetInputs(**entry) for name, entry in snakemake.params.datasets.items()},
        out_dir,
        bench_dir=snakemake.params.bench_dir,
        seed=snakemake.params.seed,
    )
    sections += load_sections(snakemake.input.sections)
    write_report(sections, out_dir)
