"""Snakemake adapter: scIB metrics of every embedding of one dataset, written as a long CSV.

Each embedding is scored on its own: one that cannot be scored is recorded in metrics_status.csv (and in
runs.csv as a failed run) while the others are written; failed integration runs' stubs are skipped.
"""

import contextlib

from scdiva.bench.core.io import configure_logging
from scdiva.bench.core.threads import limit_threads
from scdiva.bench.tasks.integration.metrics import score_embedding_files

configure_logging(snakemake.log[0])
limit_threads(snakemake.threads)
with open(snakemake.log[0], "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
    score_embedding_files(
        [(method, int(seed), path) for method, seed, path in snakemake.params.runs],
        snakemake.input.preprocessed,
        snakemake.output.scores,
        dataset=snakemake.wildcards.dataset,
        batch_key=snakemake.params.batch_key,
        label_key=snakemake.params.label_key,
        jax_cache_dir=snakemake.params.jax_cache,
        n_jobs=snakemake.threads,
        status_path=snakemake.output.status,
    )
