"""Snakemake adapter: stage one dataset (see scdiva.bench.download.stage_dataset)."""

from scdiva.bench.download import DownloadError, stage_dataset
from scdiva.bench.io import configure_logging, fail

configure_logging(snakemake.log[0])
try:
    stage_dataset(
        snakemake.params.source,
        snakemake.output[0],
        sha256=snakemake.params.sha256,
        lock_file=snakemake.params.lock_file,
        base_dir=snakemake.params.base_dir,
        dataset=snakemake.wildcards.dataset,
    )
except DownloadError as err:
    fail(str(err))
