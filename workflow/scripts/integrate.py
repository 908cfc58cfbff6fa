"""Snakemake adapter: run one integration method on one dataset with one seed."""

import contextlib
import dataclasses
import logging
import os

import anndata

from scdiva.bench.checkpoint_check import check_checkpoint_inputs
from scdiva.bench.checkpoints import CheckpointError
from scdiva.bench.formats import open_rows_backed
from scdiva.bench.io import configure_logging, fail
from scdiva.bench.methods import MethodConfigError, MethodError, get_method, integrate, write_embedding
from scdiva.bench.threads import limit_threads

configure_logging(snakemake.log[0])
limit_threads(snakemake.threads)
wc = snakemake.wildcards
# scvi saves its model for scanvi; scanvi starts from it when the workflow passes one (common.smk).
model_files = {}
if snakemake.output.get("scvi_model"):
    model_files["save_model"] = os.path.dirname(snakemake.output.scvi_model)
if snakemake.input.get("scvi_model"):
    model_files["scvi_model"] = os.path.dirname(snakemake.input.scvi_model)
if snakemake.input.get("embedding"):  # a precomputed embedding (config `methods.<name>.embedding`)
    model_files["embedding"] = snakemake.input.embedding
try:  # the method's record: built in, or defined in config `methods.<name>` (checked when the workflow was parsed)
    record = get_method("integration", wc.method, snakemake.params.definition)
except (KeyError, MethodConfigError) as err:
    fail(str(err))
try:  # a damaged checkpoint file: a checkpoint error, not a library traceback
    check_checkpoint_inputs(snakemake.input)
except CheckpointError as err:
    fail(str(err))
with open(snakemake.log[0], "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
    if record.streams_from is not None:
        # Always, whatever the size: the same embedding, memory bounded by obs + var + one batch of rows
        # at every size, and the one path that small test runs exercise is the one atlases take.
        adata = open_rows_backed(snakemake.input[0])
        record = dataclasses.replace(record, function=record.streams_from)
        logging.getLogger("integrate").info("%s: counts streamed from %s (backed, a batch of rows at a time)",
                                            wc.method, snakemake.input[0])
    else:
        adata = anndata.read_h5ad(snakemake.input[0])
    try:
        runtime = integrate(
            adata,
            record,
            batch_key=snakemake.params.batch_key,
            label_key=snakemake.params.label_key,
            seed=int(wc.seed),
            params=snakemake.params.method_params,
            threads=snakemake.threads,
            **model_files,
        )
    except MethodError as err:
        fail(str(err))
    print(f"{wc.method} on {wc.dataset} (seed {wc.seed}): {runtime:.1f} s", flush=True)
    write_embedding(adata, snakemake.output.h5ad, method=wc.method, seed=int(wc.seed))
