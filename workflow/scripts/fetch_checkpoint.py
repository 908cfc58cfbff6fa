"""Snakemake adapter: fetch and verify a published ScDiVa checkpoint (scdiva.bench.checkpoints.fetch)."""

from pathlib import Path

from scdiva.bench.checkpoints.fetch import fetch_checkpoint
from scdiva.bench.checkpoints.files import CheckpointError
from scdiva.bench.core.io import configure_logging, fail

configure_logging(snakemake.log[0])
try:
    fetch_checkpoint(snakemake.wildcards.checkpoint, snakemake.params.spec, Path(snakemake.output[0]).parent)
except CheckpointError as err:
    fail(str(err))
