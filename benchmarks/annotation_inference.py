"""Annotation inference: ScDiVa's ``predict`` on the query per 1,000 cells beside scANVI's, one process.

The annotators are fitted as the workflow fits them (the registry's scANVI at its authors' settings;
ScDiVa's ``fit_annotation_model`` from the ablation's checkpoint of each of ``--variants``, ``default``
unless named, cached under ``--out``), then each labels the whole query ``--repeats`` times, the calls
interleaved (scANVI, then each ScDiVa variant at its default inference precision and in float32), so
all see the same machine load. Timed is what the workflow's annotation table times: one ``predict`` on
the query. ``ratio`` = ScDiVa seconds / scANVI seconds for the first variant (lower is better; issue
13's target is at most 3); the summary gives every variant's.

    python benchmarks/annotation_inference.py --dataset pbmc --threads 1 --out /tmp/ablation
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from _bench import record
from scdiva_ablation import DATASETS, REPO, VARIANTS, fitted_annotator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="pbmc", choices=list(DATASETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "ablation")
    parser.add_argument("--variants", nargs="+", default=["default"], choices=list(VARIANTS),
                        help="ScDiVa variants of scdiva_ablation.py to time (the first gives the recorded ratio)")
    args = parser.parse_args()
    from scdiva.bench.core.threads import limit_threads

    limit_threads(args.threads)
    import torch

    from scdiva.bench.core.memory import keep_freed_memory
    from scdiva.bench.methods.catalog import get_method

    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the workflow's annotation jobs do
    spec = DATASETS[args.dataset]
    annotators = {variant: fitted_annotator(args.dataset, args.seed, args.out, variant) for variant in args.variants}
    _, _, reference, query = annotators[args.variants[0]]
    scanvi = get_method("annotation", "scanvi")
    scanvi_fitted = scanvi.load()(reference, label_key=spec["label_key"], batch_key=spec["batch_key"],
                                  seed=args.seed, params=scanvi.params(None), threads=args.threads)
    scanvi_fitted.map_query(query)

    def scdiva_at(variant: str, precision: str):
        model, fitted, _, _ = annotators[variant]

        def predict():
            model.inference_precision = precision
            return fitted.predict(query)
        return predict

    calls = {"scanvi": lambda: scanvi_fitted.predict(query)}
    for variant in args.variants:
        suffix = "" if variant == args.variants[0] else f"_{variant}"
        calls[f"scdiva{suffix}"] = scdiva_at(variant, "auto")
        calls[f"scdiva{suffix}_fp32"] = scdiva_at(variant, "fp32")
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    for repeat in range(args.repeats + 1):  # the first round warms up
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            if repeat:
                seconds[name].append(time.perf_counter() - start)
    per_1k = {name: statistics.median(times) / query.n_obs * 1000 for name, times in seconds.items()}
    ratio = per_1k["scdiva"] / per_1k["scanvi"]
    others = "".join(f"; {variant}: {per_1k[f'scdiva_{variant}']:.3f} = {per_1k[f'scdiva_{variant}'] / per_1k['scanvi']:.2f}x"
                     for variant in args.variants[1:])
    record(f"scdiva_annotation_inference_{args.dataset}", per_1k["scdiva"], "s per 1K cells", per_1k["scanvi"], ratio,
           summary=(f"ScDiVa ({args.variants[0]}) {per_1k['scdiva']:.3f} s per 1K cells (float32: "
                    f"{per_1k['scdiva_fp32']:.3f}) vs scANVI {per_1k['scanvi']:.3f} on the same {query.n_obs} query "
                    f"cells = {ratio:.2f}x (float32: {per_1k['scdiva_fp32'] / per_1k['scanvi']:.2f}x){others}"),
           dataset=args.dataset, query_cells=query.n_obs, seed=args.seed, threads=args.threads,
           variants=args.variants, seconds_per_call=seconds, s_per_1k=per_1k)


if __name__ == "__main__":
    main()
