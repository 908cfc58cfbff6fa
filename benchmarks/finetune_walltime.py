"""Training cost of integration: ScDiVa's fine-tune beside scVI's training, same cells, same process.

Reads what a workflow run made: ``--data``, a preprocessed dataset (``results/<dataset>/preprocessed.h5ad``,
its batch column named by ``uns["preprocess"]``), and ``--checkpoint``, a ScDiVa checkpoint directory.
After ``make run`` the defaults are there: the embedded PBMCs (1,200 cells, 3 chemistries) and
``resources/checkpoints/scdiva_tiny``, the ``tiny`` checkpoint pretrained without labels on the run's
datasets. After a run of ``config/ablation.yaml`` (one checkpoint per dataset and seed, each pretrained
on that dataset's cells alone) name one: ``--checkpoint resources/checkpoints/scdiva_tiny/pbmc_3chem/seed0``
(``--data results/pancreas_baron/preprocessed.h5ad`` with ``.../scdiva_tiny/pancreas_baron/seed0`` for
the human pancreas). One after the other, with the same thread count:

- scVI through the workflow's method registry, at its authors' defaults (400 epochs by scvi-tools'
  heuristic, no early stopping);
- ScDiVa's integration fine-tune as the workflow's ``scdiva_finetuned`` job runs it
  (``load_checkpoint``, then ``finetune_integration`` with ``SCDIVA_FINETUNED_DEFAULTS``). Loading the
  checkpoint is not timed, nor is its pretraining: the checkpoint is made once and shared by every
  dataset and method that uses it.

Wall seconds and CPU seconds of the process are both recorded (CPU seconds are what a loaded
machine distorts least). ``ratio`` = ScDiVa fine-tune CPU seconds / scVI CPU seconds (the target
is at most 2). At the defaults both train for minutes; ``--max-epochs N`` caps both (scVI's
``max_epochs``, the fine-tune's) for a quick check of the script: that ratio is not the benchmark's.

    python benchmarks/finetune_walltime.py --threads 1
    python benchmarks/finetune_walltime.py --threads 1 --checkpoint resources/checkpoints/scdiva_tiny/pbmc_3chem/seed0
"""

from __future__ import annotations

import argparse
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


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO / DEFAULT_DATA,
                        help=f"a preprocessed .h5ad written by the workflow (default: {DEFAULT_DATA})")
    parser.add_argument("--checkpoint", type=Path, default=REPO / DEFAULT_CHECKPOINT,
                        help=f"a ScDiVa checkpoint directory (default: {DEFAULT_CHECKPOINT})")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-epochs", type=int, default=None,
                        help="cap both trainings at this many epochs (a quick check; default: each one's own)")
    args = parser.parse_args()
    if args.max_epochs is not None and args.max_epochs < 1:
        parser.error("--max-epochs must be >= 1")
    data_path, checkpoint = workflow_data(args.data), workflow_checkpoint(args.checkpoint)
    from scdiva.bench.core.threads import limit_threads

    limit_threads(args.threads)
    import anndata as ad

    from scdiva.bench.api import integrate
    from scdiva.bench.methods._common import resolve_params, seed_everything, set_threads
    from scdiva.bench.methods.scdiva import (
        SCDIVA_FINETUNED_DEFAULTS,
        dataset_name,
        finetune_integration,
        load_checkpoint,
    )

    adata = ad.read_h5ad(data_path)
    batch_key, label_key = obs_keys(adata, data_path)
    cap = {} if args.max_epochs is None else {"max_epochs": args.max_epochs}

    work = adata.copy()
    scvi_wall, scvi_cpu = timed(lambda: integrate(work, "scvi", batch_key=batch_key, label_key=label_key,
                                                  seed=args.seed, params=cap, threads=args.threads))
    # as the workflow's scdiva_finetuned job (run_scdiva_finetuned), the checkpoint loaded before the clock starts
    params = resolve_params("scdiva_finetuned", SCDIVA_FINETUNED_DEFAULTS, {"checkpoint": str(checkpoint), **cap})
    set_threads(args.threads)
    seed_everything(args.seed)
    model = load_checkpoint(params["checkpoint"])
    scdiva_wall, scdiva_cpu = timed(lambda: finetune_integration(model, adata, batch_key=batch_key, seed=args.seed,
                                                                 params=params))
    ratio = scdiva_cpu / scvi_cpu
    capped = "" if args.max_epochs is None else f" (both capped at {args.max_epochs} epochs)"
    record("scdiva_finetune_vs_scvi_cpu_seconds", scdiva_cpu, "CPU s", scvi_cpu, ratio,
           summary=(f"ScDiVa fine-tune {scdiva_cpu:,.0f} CPU s ({scdiva_wall:,.0f} s wall) against scVI "
                    f"{scvi_cpu:,.0f} CPU s ({scvi_wall:,.0f} s wall) on the same {adata.n_obs:,} cells = "
                    f"{ratio:.2f}x{capped}"),
           dataset=dataset_name(adata), data=str(data_path), checkpoint=str(checkpoint), cells=adata.n_obs,
           threads=args.threads, seed=args.seed, max_epochs=args.max_epochs, scdiva_wall_s=scdiva_wall,
           scvi_wall_s=scvi_wall, scdiva_params={k: v for k, v in params.items() if k != "checkpoint"})


if __name__ == "__main__":
    main()
