"""Cluster resources (mem_mb, runtime) that grow with a dataset's cell count.

SLURM kills a job that outgrows its ``mem_mb`` and one that outlives its ``runtime``; a flat request
either wastes the queue on small datasets or fails on atlases. :func:`estimate` gives each stage a
request linear in the cells it processes (``n log n`` for the metrics' neighbour search), from
coefficients measured by ``benchmarks/scale.py`` (docs/scale.md) with about 2x head-room. The workflow
takes the larger of this and the configured ``resources`` unless ``resources.<rule>`` sets a value
itself, which always wins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Scaling:
    """``mem_mb = base_mb + mb_per_1k * cells / 1000``; runtime in minutes likewise (``min_per_1k``)."""

    base_mb: int
    mb_per_1k: float
    base_min: int
    min_per_1k: float
    n_log_n: bool = False  # runtime grows as n log n (neighbour search) rather than n


# From docs/scale.md (generated PBMC-like data, ~205 detected genes per cell): preprocess peak RSS
# 450 MB at 10K and 1,412 MB at 100K cells (~11 MB per 1,000 cells), ScDiVa embedding 518 / 1,193 MB,
# the metrics job ~22 min per embedding at 50K cells on a loaded 2-core machine. Slopes here are ~4x
# the measured memory slope, for atlases with more genes per cell (memory follows stored values);
# `resources.<rule>.mem_mb` overrides.
SCALING: dict[str, Scaling] = {
    "download": Scaling(base_mb=1000, mb_per_1k=0.0, base_min=30, min_per_1k=0.05),
    "preprocess": Scaling(base_mb=2000, mb_per_1k=40.0, base_min=10, min_per_1k=0.05),
    "integrate": Scaling(base_mb=2000, mb_per_1k=40.0, base_min=30, min_per_1k=0.2),
    "scdiva": Scaling(base_mb=3000, mb_per_1k=20.0, base_min=30, min_per_1k=0.5),
    "metrics": Scaling(base_mb=3000, mb_per_1k=20.0, base_min=20, min_per_1k=0.1, n_log_n=True),
    # pretraining (`scdiva train`, tiny): memory from the corpus it holds, runtime per 1,000 cells its steps
    # pass through (:func:`pretrain_estimate`): 300 steps x 128 cells took 477 s, 791 MB peak on a 51K-cell
    # corpus (docs/scale.md, loaded 2-core CPU), ~0.21 min per 1,000 cells seen; 2x head-room
    "pretrain": Scaling(base_mb=3000, mb_per_1k=20.0, base_min=30, min_per_1k=0.4),
}

#: `scdiva train`'s length when a recipe gives neither max_steps nor max_epochs (config/schema.yaml)
DEFAULT_PRETRAIN_EPOCHS = 30


def estimate(stage: str, n_cells: int) -> dict[str, int]:
    """``{"mem_mb", "runtime"}`` (MB, minutes) a ``stage`` of :data:`SCALING` needs for ``n_cells`` cells.

    Both grow monotonically with ``n_cells``; an unknown stage is a ``KeyError`` naming the known ones.
    """
    if stage not in SCALING:
        raise KeyError(f"no resource scaling for stage {stage!r}; known: {', '.join(SCALING)}")
    s = SCALING[stage]
    k = max(int(n_cells), 0) / 1000
    growth = k * max(1.0, math.log10(max(k, 1.0)) + 1.0) if s.n_log_n else k
    return {"mem_mb": int(math.ceil(s.base_mb + s.mb_per_1k * k)),
            "runtime": int(math.ceil(s.base_min + s.min_per_1k * growth))}


def pretrain_estimate(corpus_cells: int, *, max_steps: int | None = None, max_epochs: int | None = None,
                      batch_size: int = 128) -> dict[str, int]:
    """``{"mem_mb", "runtime"}`` of pretraining on ``corpus_cells`` cells.

    Memory grows with the corpus (``scdiva train`` holds it in memory); runtime with the cells the
    training passes through: ``max_steps x batch_size``, else ``max_epochs`` (default 30) x the corpus.
    """
    s = SCALING["pretrain"]
    seen = max_steps * batch_size if max_steps else (max_epochs or DEFAULT_PRETRAIN_EPOCHS) * max(corpus_cells, 0)
    return {"mem_mb": int(math.ceil(s.base_mb + s.mb_per_1k * max(corpus_cells, 0) / 1000)),
            "runtime": int(math.ceil(s.base_min + s.min_per_1k * seen / 1000))}
