"""Integration methods benchmarked by the workflow.

Every method has one signature::

    def run_<method>(adata, *, batch_key: str, label_key: str | None, seed: int,
                     params: Mapping[str, Any], threads: int) -> None

It reads the preprocessed AnnData (``layers["counts"]`` raw counts, ``X`` log1p-normalised,
``var["highly_variable"]``, ``obsm["X_pca"]``) and writes its embedding to
``adata.obsm["X_emb"]`` (cells x dimensions, float). ``params`` are the method's entries from
config ``methods.<name>``; :data:`DEFAULT_PARAMS` lists the accepted keys and their defaults
(``None`` = the method authors' default). Add a method by registering it in
:data:`INTEGRATION_METHODS` and :data:`DEFAULT_PARAMS` (and :data:`GPU_CAPABLE_METHODS` if it can use
a GPU).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from scdiva.bench.methods._common import EMBEDDING_KEY, resolve_params, write_embedding
from scdiva.bench.methods.harmony import HARMONY_DEFAULTS, run_harmony
from scdiva.bench.methods.scanorama import SCANORAMA_DEFAULTS, run_scanorama
from scdiva.bench.methods.scanvi_model import SCANVI_DEFAULTS, run_scanvi
from scdiva.bench.methods.scdiva import (
    SCDIVA_FINETUNED_DEFAULTS,
    SCDIVA_ZEROSHOT_DEFAULTS,
    run_scdiva_finetuned,
    run_scdiva_zeroshot,
)
from scdiva.bench.methods.scvi_model import SCVI_DEFAULTS, run_scvi
from scdiva.bench.methods.unintegrated import UNINTEGRATED_DEFAULTS, run_unintegrated

IntegrationMethod = Callable[..., None]

INTEGRATION_METHODS: dict[str, IntegrationMethod] = {
    "unintegrated": run_unintegrated,
    "harmony": run_harmony,
    "scanorama": run_scanorama,
    "scvi": run_scvi,
    "scanvi": run_scanvi,
    "scdiva_zeroshot": run_scdiva_zeroshot,
    "scdiva_finetuned": run_scdiva_finetuned,
}

DEFAULT_PARAMS: dict[str, Mapping[str, Any]] = {
    "unintegrated": UNINTEGRATED_DEFAULTS,
    "harmony": HARMONY_DEFAULTS,
    "scanorama": SCANORAMA_DEFAULTS,
    "scvi": SCVI_DEFAULTS,
    "scanvi": SCANVI_DEFAULTS,
    "scdiva_zeroshot": SCDIVA_ZEROSHOT_DEFAULTS,
    "scdiva_finetuned": SCDIVA_FINETUNED_DEFAULTS,
}

# Methods whose Snakemake job requests a GPU (resources.gpu=1) when config `gpu: true`.
GPU_CAPABLE_METHODS: set[str] = {"scvi", "scanvi", "scdiva_zeroshot", "scdiva_finetuned"}

# Methods that need cell-type labels (label_key) to train.
LABEL_AWARE_METHODS: set[str] = {"scanvi"}


def integrate(
    adata,
    method: str,
    *,
    batch_key: str,
    label_key: str | None,
    seed: int,
    params: Mapping[str, Any] | None = None,
    threads: int = 1,
    **model_files: Any,
) -> float:
    """Run ``method`` from :data:`INTEGRATION_METHODS` on ``adata``; returns its wall time in seconds.

    Checks the method name and its parameters before any work, then checks that the method wrote a
    finite ``obsm["X_emb"]`` with one row per cell. The wall time is also stored in
    ``adata.uns["runtime_s"]``. ``model_files`` (those that are not None) go to the method as keyword
    arguments: ``save_model=dir`` for scvi, ``scvi_model=dir`` for scanvi (start from that scVI).
    """
    if method not in INTEGRATION_METHODS:
        raise KeyError(f"unknown integration method {method!r}; registered: {sorted(INTEGRATION_METHODS)}")
    resolve_params(method, DEFAULT_PARAMS[method], params)  # fail on unknown keys before training
    adata.obsm.pop(EMBEDDING_KEY, None)
    start = time.perf_counter()
    files = {k: v for k, v in model_files.items() if v is not None}
    INTEGRATION_METHODS[method](
        adata, batch_key=batch_key, label_key=label_key, seed=seed, params=params or {}, threads=threads, **files
    )
    runtime = time.perf_counter() - start
    emb = adata.obsm.get(EMBEDDING_KEY)
    if emb is None or emb.ndim != 2 or emb.shape[0] != adata.n_obs:
        raise RuntimeError(f"{method} must write obsm[{EMBEDDING_KEY!r}] with {adata.n_obs} rows")
    if not np.isfinite(emb).all():
        raise RuntimeError(f"{method} produced non-finite values in obsm[{EMBEDDING_KEY!r}]")
    adata.uns["runtime_s"] = runtime
    return runtime


__all__ = [
    "DEFAULT_PARAMS",
    "EMBEDDING_KEY",
    "GPU_CAPABLE_METHODS",
    "INTEGRATION_METHODS",
    "LABEL_AWARE_METHODS",
    "IntegrationMethod",
    "integrate",
    "resolve_params",
    "run_harmony",
    "run_scanorama",
    "run_scanvi",
    "run_scvi",
    "run_unintegrated",
    "write_embedding",
]
