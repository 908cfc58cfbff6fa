"""Snakemake adapter: stage one dataset (see scdiva.bench.core.download.stage_dataset), convert it to .h5ad
when it comes in another format (scdiva.bench.core.formats), then check its keys."""

import os
from pathlib import Path

from scdiva.bench.core.download import DownloadError, stage_dataset
from scdiva.bench.core.formats import stage_as_h5ad
from scdiva.bench.core.io import configure_logging, fail
from scdiva.bench.core.validate import DatasetValidationError, check_source

configure_logging(snakemake.log[0])
dataset = snakemake.wildcards.dataset
entry = snakemake.config["datasets"][dataset]
min_cells = snakemake.config.get("preprocess", {}).get("min_cells_per_batch", 10)
output = Path(snakemake.output[0])
# The source's own bytes (whose sha256 the config or lock file holds) land beside the output first.
raw_dir = output.parent / "raw"
raw = raw_dir / f"{dataset}.source"


def stage_metadata():
    """The 10x formats' obs columns: a CSV/TSV staged beside the source (trust on first use for URLs)."""
    if not entry.get("metadata"):
        return None
    name = entry["metadata"].rstrip("/").rsplit("/", 1)[-1]
    target = raw_dir / f"{dataset}.metadata.{name}"
    stage_dataset(entry["metadata"], target, lock_file=snakemake.params.lock_file,
                  base_dir=snakemake.params.base_dir, dataset=dataset)
    return target


def convert_and_check(path):
    # Runs on the complete download before it is staged or its digest recorded: a file that fails is
    # neither staged nor recorded. An .h5ad is checked where it is; other formats are converted first.
    fmt = stage_as_h5ad(path, output, dataset=dataset, declared=entry.get("format", "auto"),
                        metadata=stage_metadata(), shown=snakemake.params.source) if _not_h5ad(path) else "h5ad"
    try:
        check_source(output if fmt != "h5ad" else path, entry, dataset=dataset, min_cells_per_batch=min_cells,
                     shown=snakemake.params.source)
    except BaseException:
        output.unlink(missing_ok=True)
        raise


def _not_h5ad(path):
    from scdiva.bench.core.formats import detect_format

    # Not strict: a file in no known format goes to the .h5ad reader, whose error says what it is.
    return detect_format(path, dataset=dataset, declared=entry.get("format", "auto"), strict=False) != "h5ad"


try:
    stage_dataset(
        snakemake.params.source,
        raw,
        sha256=snakemake.params.sha256,
        lock_file=snakemake.params.lock_file,
        base_dir=snakemake.params.base_dir,
        dataset=dataset,
        check=convert_and_check,
    )
except (DownloadError, DatasetValidationError) as err:
    fail(str(err))
if not output.exists():  # an .h5ad: the staged bytes are the output (a rename, no second copy)
    os.replace(raw, output)
