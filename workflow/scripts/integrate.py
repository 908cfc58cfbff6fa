"""Snakemake adapter: run one integration method on one dataset with one seed.

The method runs in a supervised child process (scdiva.bench.core.outcomes): its failure, timeout or memory
kill is recorded in ``seed{seed}.run.json`` and the embedding replaced by a stub, so the rest of the run
goes on; only a harness problem (a damaged checkpoint, a bad record) fails the job itself.
"""

import contextlib
import os

from scdiva.bench.checkpoints.files import CheckpointError
from scdiva.bench.checkpoints.inputs import check_checkpoint_inputs
from scdiva.bench.core.io import configure_logging, fail
from scdiva.bench.core.outcomes import supervise, write_stub_h5ad
from scdiva.bench.core.threads import limit_threads
from scdiva.bench.methods.catalog import get_method
from scdiva.bench.methods.record import MethodConfigError

configure_logging(snakemake.log[0])
limit_threads(snakemake.threads)
wc = snakemake.wildcards
# scvi saves its model for scanvi; scanvi starts from it when the workflow passes one (common.smk).
model_files = {}
if snakemake.output.get("scvi_model"):
    model_files["save_model"] = os.path.dirname(snakemake.output.scvi_model)
# An empty model file is the stub of a scvi run that failed: scanvi then trains its own model.
if snakemake.input.get("scvi_model") and os.path.getsize(snakemake.input.scvi_model) > 0:
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


def run_method(report) -> None:
    """In the child: load the cells, run the method, write the embedding (heavy imports happen here)."""
    import dataclasses
    import logging

    import anndata

    from scdiva.bench.api import integrate
    from scdiva.bench.core.formats import open_rows_backed
    from scdiva.bench.methods._common import write_embedding

    global record
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
        report(n_cells=int(adata.n_obs))
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
        report(method_s=runtime)
        print(f"{wc.method} on {wc.dataset} (seed {wc.seed}): {runtime:.1f} s", flush=True)
        write_embedding(adata, snakemake.output.h5ad, method=wc.method, seed=int(wc.seed))
        flags = anndata.read_h5ad(snakemake.output.h5ad, backed="r").uns.get("embedding_flags")
        if flags is not None and len(flags):
            report(flags=[str(f) for f in flags])


outcome = supervise(run_method, dataset=wc.dataset, task="integration", method=wc.method, seed=int(wc.seed),
                    runtime_min=snakemake.resources.get("runtime"), log_path=snakemake.log[0],
                    outputs=list(snakemake.output))
if not outcome.ok:
    write_stub_h5ad(snakemake.output.h5ad, outcome)
    if snakemake.output.get("scvi_model"):  # empty: scanvi then trains its own model
        os.makedirs(os.path.dirname(snakemake.output.scvi_model), exist_ok=True)
        open(snakemake.output.scvi_model, "wb").close()
outcome.write(snakemake.output.run)
