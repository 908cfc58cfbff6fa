"""Control embeddings: reference points that anchor every score, as OpenProblems' batch integration does.

Negative controls (a method at or below one integrates nothing useful):

- ``control_random``: independent standard-normal coordinates per cell; no batch, no biology.
- ``control_batch``: the batch one-hot plus noise; batches perfectly apart, biology absent.

Positive control (what an embedding that kept the cell types and mixed every batch scores):

- ``control_celltype``: the cell-type one-hot plus noise; needs the labels, as the truth itself.

The noise (``jitter``, standard deviation, against one-hot coordinates 1 apart) keeps cells of one
group from being exact duplicates, which neighbour graphs cannot rank. Every control is seeded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from scdiva.bench.methods._common import EMBEDDING_KEY, check_obs_key, resolve_params

RANDOM_DEFAULTS: dict[str, Any] = {"n_dims": 10}
BATCH_DEFAULTS: dict[str, Any] = {"jitter": 0.1}
CELLTYPE_DEFAULTS: dict[str, Any] = {"jitter": 0.1}


def _one_hot_with_jitter(values, jitter: float, seed: int) -> np.ndarray:
    """One column per distinct value (sorted), 1 where the cell has it, plus seeded normal noise."""
    codes = np.unique(np.asarray(values).astype(str), return_inverse=True)[1].ravel()
    one_hot = np.eye(int(codes.max()) + 1, dtype=np.float32)[codes]
    rng = np.random.default_rng(seed)
    return one_hot + rng.normal(scale=float(jitter), size=one_hot.shape).astype(np.float32)


def run_control_random(
    adata, *, batch_key: str, label_key: str | None, seed: int, params: Mapping[str, Any], threads: int
) -> None:
    """Negative control: ``n_dims`` independent standard-normal coordinates per cell (seeded)."""
    p = resolve_params("control_random", RANDOM_DEFAULTS, params)
    rng = np.random.default_rng(seed)
    adata.obsm[EMBEDDING_KEY] = rng.standard_normal((adata.n_obs, int(p["n_dims"]))).astype(np.float32)


def run_control_batch(
    adata, *, batch_key: str, label_key: str | None, seed: int, params: Mapping[str, Any], threads: int
) -> None:
    """Negative control: the batch one-hot plus ``jitter`` noise (batches apart, no biology)."""
    p = resolve_params("control_batch", BATCH_DEFAULTS, params)
    check_obs_key(adata, batch_key, "batch", "control_batch")
    adata.obsm[EMBEDDING_KEY] = _one_hot_with_jitter(adata.obs[batch_key], p["jitter"], seed)


def run_control_celltype(
    adata, *, batch_key: str, label_key: str | None, seed: int, params: Mapping[str, Any], threads: int
) -> None:
    """Positive control: the cell-type one-hot plus ``jitter`` noise (the labels themselves)."""
    p = resolve_params("control_celltype", CELLTYPE_DEFAULTS, params)
    check_obs_key(adata, label_key, "label", "control_celltype")
    adata.obsm[EMBEDDING_KEY] = _one_hot_with_jitter(adata.obs[label_key], p["jitter"], seed)
