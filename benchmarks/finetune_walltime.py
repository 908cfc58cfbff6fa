"""Training cost of integration: ScDiVa's fine-tune beside scVI's training, same cells, same process.

On the embedded PBMCs (1,200 cells, 3 chemistries, the workflow's preprocessing), one after the
other with the same thread count:

- scVI through the workflow's method registry, at its authors' defaults (400 epochs by scvi-tools'
  heuristic, no early stopping);
- ScDiVa's integration fine-tune (``finetune_integration``, the workflow's ``scdiva_finetuned``
  recipe) from a ``tiny`` checkpoint pretrained on the same cells without labels, as the default
  checkpoint recipe does. The pretraining is not timed: it is the checkpoint, made once and shared
  by every dataset and method that uses it.

Wall seconds and CPU seconds of the process are both recorded (CPU seconds are what a loaded
machine distorts least). ``ratio`` = ScDiVa fine-tune CPU seconds / scVI CPU seconds (the target
is at most 2).

    python benchmarks/finetune_walltime.py --threads 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _bench import REPO, record


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=REPO / "results" / "benchmarks" / "finetune_walltime",
                        help="cache of the preprocessed data and the pretrained checkpoint (the layout of "
                             "scdiva_ablation.py's --out, so an ablation run's cache is reused)")
    args = parser.parse_args()
    import scdiva_ablation as ablation
    import torch

    from scdiva.bench.api import integrate
    from scdiva.bench.methods.scdiva import SCDIVA_FINETUNED_DEFAULTS, counts_view, finetune_integration

    torch.set_num_threads(args.threads)
    spec = ablation.DATASETS["pbmc"]
    adata = ablation.preprocessed("pbmc", args.work)
    checkpoint, _ = ablation.pretrained("default", counts_view(adata), spec, args.seed, args.work / "pbmc")

    work = adata.copy()
    scvi_wall, scvi_cpu = timed(lambda: integrate(work, "scvi", batch_key=spec["batch_key"],
                                                  label_key=spec["label_key"], seed=args.seed, threads=args.threads))
    scdiva_wall, scdiva_cpu = timed(lambda: finetune_integration(
        checkpoint, adata, batch_key=spec["batch_key"], seed=args.seed, params=SCDIVA_FINETUNED_DEFAULTS))
    ratio = scdiva_cpu / scvi_cpu
    record("scdiva_finetune_vs_scvi_cpu_seconds", scdiva_cpu, "CPU s", scvi_cpu, ratio,
           summary=(f"ScDiVa fine-tune {scdiva_cpu:,.0f} CPU s ({scdiva_wall:,.0f} s wall) against scVI "
                    f"{scvi_cpu:,.0f} CPU s ({scvi_wall:,.0f} s wall) on the same {adata.n_obs:,} cells = "
                    f"{ratio:.2f}x"),
           cells=adata.n_obs, threads=args.threads, seed=args.seed, scdiva_wall_s=scdiva_wall,
           scvi_wall_s=scvi_wall, scdiva_params=dict(SCDIVA_FINETUNED_DEFAULTS))


if __name__ == "__main__":
    main()
