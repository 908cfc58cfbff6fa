"""The Python API's batch correction (``ScDiVaInference.integrate_batches``) against the 200-step recipe
it used before Dec 5: scIB scores and CPU time per seed, from the ablation's cached default checkpoint.

    python benchmarks/api_integration.py --seeds 0 1 2

Both runs start from the same pretrained checkpoint as ``scdiva_ablation.py --variants default`` (made
and cached under ``--out`` if missing) and are scored like it, so the recipe's scores can be compared
with that script's ``default`` row.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import scdiva_ablation as ablation

#: what ``fit_integration`` trained with before it took ``scdiva.model.recipes.INTEGRATION_FINETUNE``
PREVIOUS_API_RECIPE = dict(max_steps=200, batch_size=64, lr=5e-4, validation_fraction=0.0,
                           early_stopping_patience=None, trunk_lr_factor=1.0, weight_average_epochs=None,
                           dropout=None, kl_weight=None)
COLUMNS = ("total_score", "batch_score", "bio_score", "kbet", "ilisi", "cpu_s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="pbmc", choices=sorted(ablation.DATASETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=ablation.REPO / "results" / "ablation")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from scdiva.bench.core.threads import limit_threads

    limit_threads(args.threads)
    import torch

    from scdiva import ScDiVaInference
    from scdiva.bench.methods.scdiva import counts_view

    torch.set_num_threads(args.threads)
    spec = ablation.DATASETS[args.dataset]
    adata = ablation.preprocessed(args.dataset, args.out)
    rows: dict[str, list[dict[str, float]]] = {"recipe": [], "previous 200-step recipe": []}
    for seed in args.seeds:
        for name, settings in (("recipe", {}), ("previous 200-step recipe", PREVIOUS_API_RECIPE)):
            model, _ = ablation.pretrained("default", counts_view(adata), spec, seed, args.out / args.dataset)
            start = time.process_time()
            merged = ScDiVaInference(model=model).integrate_batches([counts_view(adata)], batch_key=spec["batch_key"],
                                                                    seed=seed, **settings)
            cpu_s = time.process_time() - start
            scores = ablation.scib_scores(adata, merged.obsm["X_scdiva"], spec, seed, args.threads)
            rows[name].append({**scores, "cpu_s": cpu_s})
            print(f"seed {seed} {name}: " + ", ".join(f"{k} {rows[name][-1][k]:.3f}" for k in COLUMNS), flush=True)
    print(f"\n{args.dataset}, seeds {args.seeds}, mean ± std")
    for name, values in rows.items():
        summary = ", ".join(f"{k} {np.mean([v[k] for v in values]):.3f} ± {np.std([v[k] for v in values], ddof=1):.3f}"
                            if len(values) > 1 else f"{k} {values[0][k]:.3f}" for k in COLUMNS)
        print(f"  {name}: {summary}")


if __name__ == "__main__":
    main()
