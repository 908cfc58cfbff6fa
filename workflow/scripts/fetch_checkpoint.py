"""Snakemake adapter: fetch and verify a published ScDiVa checkpoint (scdiva.bench.checkpoints)."""

from pathlib import Path

from scdiva.bench.checkpoints import CheckpointError, fetch_checkpoint
from scdiva.bench.io import configure_logging, fail

configure_logging(snakemake.log[0])
try:
    fetch_checkpoint(snakemake.wildcards.checkpoint, snakemake.params.spec, Path(snakemake.output[0]).parent)
except CheckpointError as err:
    fail(str(err))
