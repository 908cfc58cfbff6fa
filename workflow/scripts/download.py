"""Snakemake adapter: stage one dataset (see scdiva.bench.download.stage_dataset), then check its keys."""

from scdiva.bench.download import DownloadError, stage_dataset
from scdiva.bench.io import configure_logging, fail
from scdiva.bench.validate import DatasetValidationError, check_source

configure_logging(snakemake.log[0])
dataset = snakemake.wildcards.dataset
entry = snakemake.config["datasets"][dataset]
min_cells = snakemake.config.get("preprocess", {}).get("min_cells_per_batch", 10)
try:
    stage_dataset(
        snakemake.params.source,
        snakemake.output[0],
        sha256=snakemake.params.sha256,
        lock_file=snakemake.params.lock_file,
        base_dir=snakemake.params.base_dir,
        dataset=dataset,
        # A remote source is first readable here (local ones were checked when the workflow was
        # parsed); a file that fails is neither staged nor has its digest recorded.
        check=lambda path: check_source(path, entry, dataset=dataset, min_cells_per_batch=min_cells,
                                        shown=snakemake.params.source),
    )
except (DownloadError, DatasetValidationError) as err:
    fail(str(err))
