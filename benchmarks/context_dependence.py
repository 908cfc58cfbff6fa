"""What a fine-tuned ScDiVa annotator reads: its gene tokens or its whole-profile projection.

For each seed: the checkpoint of the ablation's ``--variant`` (benchmarks/scdiva_ablation.py, cached
under the same ``--out``; ``long_context`` is the 64 + 8 token model of the table in docs/model.md),
the workflow's annotation fit on the reference and query mapping, then the query labelled again with
the model's input cut at inference only:

- ``tokens_<k>`` for each of ``--contexts``: each cell's ``k`` top-ranked expressed genes (and
  ``k / 8`` unexpressed ones) instead of the trained context; the whole-profile projection into
  ``<cls>`` unchanged;
- ``no_profile``: the full token context, with the whole-profile projection's input zeroed.

Printed per seed and cut: macro-F1, accuracy and the fraction of query cells whose label is unchanged
from the full input. A cut that changes few labels shows what the classifier does not rely on.

    python benchmarks/context_dependence.py --dataset pbmc --seeds 0 1 2 --threads 1 --out /tmp/ablation
    python benchmarks/context_dependence.py --variant long_context --contexts 32 16 4 1 ...   # docs/model.md
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from scdiva_ablation import DATASETS, REPO, VARIANTS, fitted_annotator

#: cuts below the tiny preset's 32 + 4 tokens
CONTEXTS = (16, 8, 4, 1)


@contextlib.contextmanager
def context_cut(model, max_tokens: int) -> Iterator[None]:
    """Tokenise with at most ``max_tokens`` expressed and ``max_tokens // 8`` unexpressed genes a cell."""
    config = model.module.config
    saved = config.max_tokens, config.n_zero_tokens
    config.max_tokens, config.n_zero_tokens = max_tokens, max_tokens // 8
    try:
        yield
    finally:
        config.max_tokens, config.n_zero_tokens = saved


@contextlib.contextmanager
def without_profile(model) -> Iterator[None]:
    """The whole-profile projection fed an all-zero profile (what it adds for a cell is then constant)."""
    projection = model.module.profile_projection
    handle = projection.register_forward_pre_hook(lambda _module, args: (args[0] * 0.0,))
    try:
        yield
    finally:
        handle.remove()


def probe(dataset: str, seed: int, threads: int, out: Path, variant: str = "default",
          contexts: tuple[int, ...] = CONTEXTS) -> dict[str, dict[str, float]]:
    import torch

    from scdiva.bench.tasks.annotation.metrics import annotation_metrics

    torch.set_num_threads(threads)
    annotator, fitted, _reference, query = fitted_annotator(dataset, seed, out, variant)
    truth = query.obs[DATASETS[dataset]["label_key"]].astype(str).to_numpy()
    cuts = {"full": contextlib.nullcontext(),
            **{f"tokens_{k}": context_cut(annotator, k) for k in contexts},
            "no_profile": without_profile(annotator)}
    labels: dict[str, np.ndarray] = {}
    scores: dict[str, dict[str, float]] = {}
    for name, cut in cuts.items():
        with cut:
            labels[name] = np.asarray(fitted.predict(query), dtype=str)
        metrics = annotation_metrics(truth, labels[name])
        scores[name] = {"macro_f1": metrics["macro_f1"], "accuracy": metrics["accuracy"],
                        "labels_unchanged": float(np.mean(labels[name] == labels["full"]))}
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="pbmc", choices=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "ablation")
    parser.add_argument("--variant", default="default", choices=list(VARIANTS))
    parser.add_argument("--contexts", nargs="+", type=int, default=list(CONTEXTS))
    args = parser.parse_args()
    from scdiva.bench.core.threads import limit_threads

    limit_threads(args.threads)
    per_seed = {seed: probe(args.dataset, seed, args.threads, args.out, args.variant, tuple(args.contexts))
                for seed in args.seeds}
    print(json.dumps({str(seed): scores for seed, scores in per_seed.items()}, indent=1))
    print(f"\n{args.dataset}, seeds {args.seeds}: mean over seeds")
    for name in per_seed[args.seeds[0]]:
        means = {key: np.mean([per_seed[s][name][key] for s in args.seeds]) for key in per_seed[args.seeds[0]][name]}
        print(f"  {name:>10}: " + ", ".join(f"{key} {value:.3f}" for key, value in means.items()))


if __name__ == "__main__":
    main()
