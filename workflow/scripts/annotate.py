"""Snakemake adapter: one annotation method on one dataset and seed (scdiva.bench.annotation)."""

import json

import anndata as ad

from scdiva.bench.annotation import (
    annotate,
    confusion_table,
    plot_confusion,
    split_reference_query,
)
from scdiva.bench.checkpoint_check import check_checkpoint_inputs
from scdiva.bench.checkpoints import CheckpointError
from scdiva.bench.claims import hardware_description
from scdiva.bench.io import atomic_path, configure_logging, fail
from scdiva.bench.methods.registry import MethodConfigError, MethodError, get_method

configure_logging(snakemake.log[0])
wc = snakemake.wildcards
entry = snakemake.params.entry
try:  # a damaged checkpoint file: a checkpoint error, not a library traceback
    check_checkpoint_inputs(snakemake.input)
except CheckpointError as err:
    fail(str(err))
adata = ad.read_h5ad(snakemake.input.h5ad)
reference, query = split_reference_query(
    adata, batch_key=entry["batch_key"], label_key=entry["label_key"],
    reference_batches=entry["annotation"]["reference_batches"],
    query_batches=entry["annotation"]["query_batches"], dataset=wc.dataset)
params = dict(snakemake.params.params)
try:  # the method's record: built in, or defined in config `methods.<name>` (checked when the workflow was parsed)
    record = get_method("annotation", wc.method, snakemake.params.definition)
except (KeyError, MethodConfigError) as err:
    fail(str(err))
if "accelerator" in record.defaults:  # trains on the GPU its job was given (resources.gpu), else on the CPU
    params["accelerator"] = snakemake.params.accelerator
try:
    result = annotate(record, reference, query, label_key=entry["label_key"], batch_key=entry["batch_key"],
                      seed=int(wc.seed), params=params, threads=snakemake.threads,
                      timing_repeats=snakemake.params.timing_repeats)
except MethodError as err:
    fail(str(err))

out = snakemake.output
with atomic_path(out.confusion) as tmp:
    plot_confusion(confusion_table(result.predictions["true"], result.predictions["predicted"]), str(tmp),
                   title=f"{wc.dataset}: {wc.method} (seed {wc.seed}), accuracy {result.scores['accuracy']:.3f}")
with atomic_path(out.info) as tmp:
    tmp.write_text(json.dumps({"unseen_query_classes": result.unseen, "inference_repeats_s": result.inference_repeats_s,
                               "reference_batches": entry["annotation"]["reference_batches"],
                               "query_batches": entry["annotation"]["query_batches"],
                               "n_reference": reference.n_obs, "n_query": query.n_obs,
                               "hardware": hardware_description()}, indent=1))
with atomic_path(out.scores) as tmp:
    result.long_form(wc.dataset, wc.method, int(wc.seed)).to_csv(tmp, index=False)
with atomic_path(out.predictions) as tmp:
    result.predictions.rename_axis("cell").to_csv(tmp)
