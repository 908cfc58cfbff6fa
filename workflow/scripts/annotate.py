"""Snakemake adapter: one annotation method on one dataset and seed (scdiva.bench.tasks.annotation).

The method runs in a supervised child process (scdiva.bench.core.outcomes): its failure, timeout or memory
kill is recorded in ``seed{seed}.run.json`` and its outputs replaced by stubs (header-only CSVs), so the
rest of the run goes on.
"""

from scdiva.bench.checkpoints.files import CheckpointError
from scdiva.bench.checkpoints.inputs import check_checkpoint_inputs
from scdiva.bench.core.io import configure_logging, fail
from scdiva.bench.core.outcomes import supervise, write_stub_csv, write_stub_json, write_stub_png
from scdiva.bench.methods.catalog import get_method
from scdiva.bench.methods.record import MethodConfigError

configure_logging(snakemake.log[0])
wc = snakemake.wildcards
entry = snakemake.params.entry
out = snakemake.output
try:  # a damaged checkpoint file: a checkpoint error, not a library traceback
    check_checkpoint_inputs(snakemake.input)
except CheckpointError as err:
    fail(str(err))
try:  # the method's record: built in, or defined in config `methods.<name>` (checked when the workflow was parsed)
    record = get_method("annotation", wc.method, snakemake.params.definition)
except (KeyError, MethodConfigError) as err:
    fail(str(err))


def run_method(report) -> None:
    """In the child: split the cells, train and predict, write the scores (heavy imports happen here)."""
    import json

    import anndata as ad

    from scdiva.bench.api import annotate
    from scdiva.bench.core.io import atomic_path
    from scdiva.bench.core.sampling import split_reference_query
    from scdiva.bench.report.claims import hardware_description
    from scdiva.bench.tasks.annotation.metrics import confusion_table, plot_confusion

    adata = ad.read_h5ad(snakemake.input.h5ad)
    reference, query = split_reference_query(
        adata, batch_key=entry["batch_key"], label_key=entry["label_key"],
        reference_batches=entry["annotation"]["reference_batches"],
        query_batches=entry["annotation"]["query_batches"], dataset=wc.dataset)
    report(n_cells=int(reference.n_obs + query.n_obs))
    params = dict(snakemake.params.params)
    if "accelerator" in record.defaults:  # trains on the GPU its job was given (resources.gpu), else on the CPU
        params["accelerator"] = snakemake.params.accelerator
    result = annotate(record, reference, query, label_key=entry["label_key"], batch_key=entry["batch_key"],
                      seed=int(wc.seed), params=params, threads=snakemake.threads,
                      timing_repeats=snakemake.params.timing_repeats)
    timings = result.timings  # the method's own seconds: training, mapping the query, one prediction
    report(method_s=sum(float(timings.get(k, 0.0)) for k in ("train_s", "query_fit_s"))
           + float(timings.get("inference_s_per_1k_cells", 0.0)) * query.n_obs / 1000.0)

    with atomic_path(out.confusion) as tmp:
        plot_confusion(confusion_table(result.predictions["true"], result.predictions["predicted"]), str(tmp),
                       title=f"{wc.dataset}: {wc.method} (seed {wc.seed}), accuracy {result.scores['accuracy']:.3f}")
    with atomic_path(out.info) as tmp:
        tmp.write_text(json.dumps({"unseen_query_classes": result.unseen,
                                   "inference_repeats_s": result.inference_repeats_s,
                                   "reference_batches": entry["annotation"]["reference_batches"],
                                   "query_batches": entry["annotation"]["query_batches"],
                                   "n_reference": reference.n_obs, "n_query": query.n_obs,
                                   "hardware": hardware_description()}, indent=1))
    with atomic_path(out.scores) as tmp:
        result.long_form(wc.dataset, wc.method, int(wc.seed)).to_csv(tmp, index=False)
    with atomic_path(out.predictions) as tmp:
        result.predictions.rename_axis("cell").to_csv(tmp)


outcome = supervise(run_method, dataset=wc.dataset, task="annotation", method=wc.method, seed=int(wc.seed),
                    runtime_min=snakemake.resources.get("runtime"), log_path=snakemake.log[0], outputs=list(out))
if not outcome.ok:
    write_stub_csv(out.scores, ["dataset", "method", "seed", "metric", "value"])
    write_stub_csv(out.predictions, ["cell", "true", "predicted"])
    write_stub_json(out.info, outcome)
    write_stub_png(out.confusion, outcome)
outcome.write(snakemake.output.run)
