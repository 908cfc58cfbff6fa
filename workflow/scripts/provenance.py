"""Snakemake adapter: write results/provenance.json and its report section."""

import os

from scdiva.bench.core.io import configure_logging
from scdiva.bench.core.provenance import build_provenance, provenance_section, write_provenance

configure_logging(snakemake.log[0])
record = build_provenance(snakemake.config, snakemake.params.datasets, repo=snakemake.params.repo,
                          started=os.environ.get("SCDIVA_RUN_STARTED"), start_commit=snakemake.params.start_commit,
                          inputs=snakemake.params.inputs)
if record["run_id"] != snakemake.params.run_id:
    raise RuntimeError(f"provenance run_id {record['run_id']} differs from the tables' {snakemake.params.run_id}: "
                       "the config changed while the workflow ran; rerun it")
write_provenance(record, snakemake.output.record)
provenance_section(record).to_json(snakemake.output.section)
