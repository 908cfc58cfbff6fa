"""Annotation inference: ScDiVa's ``predict`` on the query per 1,000 cells beside scANVI's, one process.

Reads what a workflow run made: ``--data``, a preprocessed dataset (``results/<dataset>/preprocessed.h5ad``,
its batch and label columns named by ``uns["preprocess"]``), split by batch into the labelled reference
(``--reference-batches``) and the query (``--query-batches``) as the workflow's annotation jobs split it
(defaults: the PBMCs' ``3pv2 5p`` and ``3pv1``); and ``--checkpoint``, one or more ScDiVa checkpoint
directories. After ``make run`` the defaults are there (``resources/checkpoints/scdiva_tiny``, pretrained
without labels on the run's datasets); after a run of ``config/ablation.yaml`` (one checkpoint per dataset
and seed) name one: ``--checkpoint resources/checkpoints/scdiva_tiny/pbmc_3chem/seed0``.

The annotators are fitted as the workflow's annotation jobs fit them: the registry's scANVI at its
authors' settings, and ScDiVa's ``scdiva`` method (``load_checkpoint``, then ``fit_annotation_model``
with ``SCDIVA_ANNOTATION_DEFAULTS``) from each checkpoint; each maps the query (without its labels).
Then each labels the whole query ``--repeats`` times, the calls interleaved (scANVI, then each ScDiVa
at its default inference precision and in float32), so all see the same machine load. Timed is what
the workflow's annotation table times: one ``predict`` on the query. ``ratio`` = ScDiVa seconds /
scANVI seconds for the first checkpoint (lower is better; issue 13's target is at most 3); the summary
gives every checkpoint's. Training takes minutes at the defaults; ``--max-epochs N`` caps every
training (scANVI's scVI, scANVI, its query surgery; ScDiVa's reference fit and query mapping) for a
quick check of the script: the timed calls are the same forward passes, the models less trained.

    python benchmarks/annotation_inference.py --threads 1
    python benchmarks/annotation_inference.py --threads 1 --checkpoint resources/checkpoints/scdiva_tiny/pbmc_3chem/seed0
    python benchmarks/annotation_inference.py --threads 1 --data results/pancreas_baron/preprocessed.h5ad \\
        --checkpoint resources/checkpoints/scdiva_tiny/pancreas_baron/seed0 \\
        --reference-batches human2_lib1 human2_lib2 human2_lib3 --query-batches human4_lib1 human4_lib3
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from _bench import (
    DEFAULT_CHECKPOINT,
    DEFAULT_DATA,
    REPO,
    obs_keys,
    record,
    workflow_checkpoint,
    workflow_data,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO / DEFAULT_DATA,
                        help=f"a preprocessed .h5ad written by the workflow (default: {DEFAULT_DATA})")
    parser.add_argument("--checkpoint", type=Path, nargs="+", default=[REPO / DEFAULT_CHECKPOINT],
                        help=f"ScDiVa checkpoint directories (default: {DEFAULT_CHECKPOINT}); the first gives the "
                             "recorded ratio")
    parser.add_argument("--reference-batches", nargs="+", default=["3pv2", "5p"])
    parser.add_argument("--query-batches", nargs="+", default=["3pv1"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--max-epochs", type=int, default=None,
                        help="cap every training at this many epochs (a quick check; default: each method's own)")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.max_epochs is not None and args.max_epochs < 1:
        parser.error("--max-epochs must be >= 1")
    data_path = workflow_data(args.data)
    checkpoints = [workflow_checkpoint(path) for path in args.checkpoint]
    from scdiva.bench.core.threads import limit_threads

    limit_threads(args.threads)
    import anndata as ad

    from scdiva.bench.core.memory import keep_freed_memory
    from scdiva.bench.core.sampling import split_reference_query
    from scdiva.bench.core.threads import limited_threadpools
    from scdiva.bench.methods._common import seed_everything, set_threads
    from scdiva.bench.methods.catalog import get_method
    from scdiva.bench.methods.scdiva import dataset_name, fit_annotation_model, load_checkpoint
    from scdiva.bench.tasks.annotation.metrics import annotation_metrics
    from scdiva.bench.tasks.annotation.run import checked_annotator, without_labels

    adata = ad.read_h5ad(data_path)
    batch_key, label_key = obs_keys(adata, data_path)
    dataset = dataset_name(adata) or data_path.parent.name
    try:
        reference, query = split_reference_query(adata, batch_key=batch_key, label_key=label_key,
                                                 reference_batches=args.reference_batches,
                                                 query_batches=args.query_batches, dataset=dataset)
    except ValueError as err:  # a batch the file does not have, or one on both sides
        raise SystemExit(f"--reference-batches / --query-batches on {data_path}: {err}") from None
    truth = query.obs[label_key].astype(str).to_numpy()
    query = without_labels(query, batch_key=batch_key)  # what a method sees, as in the workflow's annotation job
    keep_freed_memory()  # as the workflow's annotation jobs do
    n = args.max_epochs
    scanvi = get_method("annotation", "scanvi")
    scanvi_cap = {} if n is None else {"scvi_max_epochs": n, "scanvi_max_epochs": n, "query_max_epochs": n}
    scdiva = get_method("annotation", "scdiva")
    scdiva_cap = {} if n is None else {"max_epochs": n, "query_epochs": n}
    with limited_threadpools(args.threads):
        scanvi_fitted = checked_annotator(scanvi.load()(reference.copy(), label_key=label_key, batch_key=batch_key,
                                                        seed=args.seed, params=scanvi.params(scanvi_cap),
                                                        threads=args.threads), method="scanvi")
        scanvi_fitted.map_query(query)
        annotators = []
        for checkpoint in checkpoints:  # as the workflow's scdiva method (fit_scdiva_annotation), model kept
            params = scdiva.params({"checkpoint": str(checkpoint), **scdiva_cap})
            set_threads(args.threads)
            seed_everything(args.seed)
            model = load_checkpoint(params["checkpoint"])
            fitted = fit_annotation_model(model, reference.copy(), label_key=label_key, batch_key=batch_key,
                                          seed=args.seed, params=params)
            fitted.map_query(query)
            annotators.append((model, fitted))

        def scdiva_at(index: int, precision: str):
            model, fitted = annotators[index]

            def predict():
                model.inference_precision = precision
                return fitted.predict(query)
            return predict

        names = ["scdiva"] + [f"scdiva_{i + 1}" for i in range(1, len(checkpoints))]
        calls = {"scanvi": lambda: scanvi_fitted.predict(query)}
        for index, name in enumerate(names):
            calls[name] = scdiva_at(index, "auto")
            calls[f"{name}_fp32"] = scdiva_at(index, "fp32")
        seconds: dict[str, list[float]] = {name: [] for name in calls}
        accuracy: dict[str, float] = {}
        for repeat in range(args.repeats + 1):  # the first round warms up
            for name, call in calls.items():
                start = time.perf_counter()
                labels = call()
                if repeat:
                    seconds[name].append(time.perf_counter() - start)
                else:
                    accuracy[name] = annotation_metrics(truth, labels.astype(str))["accuracy"]
    per_1k = {name: statistics.median(times) / query.n_obs * 1000 for name, times in seconds.items()}
    ratio = per_1k["scdiva"] / per_1k["scanvi"]
    others = "".join(f"; {checkpoints[i]}: {per_1k[name]:.3f} = {per_1k[name] / per_1k['scanvi']:.2f}x"
                     for i, name in enumerate(names) if i)
    capped = "" if n is None else f"; every training capped at {n} epochs"
    record(f"scdiva_annotation_inference_{dataset}", per_1k["scdiva"], "s per 1K cells", per_1k["scanvi"], ratio,
           summary=(f"ScDiVa ({checkpoints[0]}) {per_1k['scdiva']:.3f} s per 1K cells (float32: "
                    f"{per_1k['scdiva_fp32']:.3f}) vs scANVI {per_1k['scanvi']:.3f} on the same {query.n_obs} query "
                    f"cells = {ratio:.2f}x (float32: {per_1k['scdiva_fp32'] / per_1k['scanvi']:.2f}x){others}{capped}"),
           dataset=dataset, data=str(data_path), checkpoints=[str(c) for c in checkpoints],
           reference_batches=args.reference_batches, query_batches=args.query_batches, query_cells=query.n_obs,
           seed=args.seed, threads=args.threads, repeats=args.repeats, max_epochs=n, seconds_per_call=seconds,
           s_per_1k=per_1k, query_accuracy=accuracy)


if __name__ == "__main__":
    main()
