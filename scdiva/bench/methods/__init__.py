"""Integration methods benchmarked by the workflow.

Every method has one signature::

    def run_<method>(adata, *, batch_key: str, label_key: str | None, seed: int,
                     params: Mapping[str, Any], threads: int) -> None

It reads the preprocessed AnnData (``layers["counts"]`` raw counts, ``X`` log1p-normalised,
``var["highly_variable"]``, ``obsm["X_pca"]``) and writes its embedding to
``adata.obsm["X_emb"]`` (cells x dimensions, float). ``params`` are the method's entries from
config ``methods.<name>``. Each method's function, parameter defaults and traits (GPU, labels,
role) are one :class:`~scdiva.bench.methods.registry.MethodRecord` in
:mod:`scdiva.bench.methods.registry`; users add methods through config alone (``entry_point``,
``command`` or ``embedding``; docs/methods-and-metrics.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from scdiva.bench.memory import keep_freed_memory
from scdiva.bench.methods._common import EMBEDDING_KEY, resolve_params, write_embedding
from scdiva.bench.methods.registry import (
    MethodConfigError,
    MethodError,
    MethodRecord,
    get_method,
    method_records,
    register,
)

IntegrationMethod = Callable[..., None]


def integrate(
    adata,
    method: str | MethodRecord,
    *,
    batch_key: str,
    label_key: str | None,
    seed: int,
    params: Mapping[str, Any] | None = None,
    threads: int = 1,
    **model_files: Any,
) -> float:
    """Run integration ``method`` (a registered name or a record) on ``adata``; returns its wall time in seconds.

    Checks the method name and its parameters before any work, then checks that the method wrote a
    finite ``obsm["X_emb"]`` with one row per cell. The wall time is also stored in
    ``adata.uns["runtime_s"]``. ``model_files`` (those that are not None) go to the method as keyword
    arguments: ``save_model=dir`` for scvi, ``scvi_model=dir`` for scanvi (start from that scVI),
    ``embedding=path`` for a precomputed embedding.
    """
    record = method if isinstance(method, MethodRecord) else get_method("integration", method)
    name = record.name
    merged = record.params(params)  # fail on unknown keys before training
    function = record.load()
    if record.needs_labels and label_key is None:
        raise ValueError(f"integration method {name!r} needs cell-type labels; set datasets.<name>.label_key")
    adata.obsm.pop(EMBEDDING_KEY, None)
    keep_freed_memory()  # a method's training and embedding reuse what it freed instead of faulting it in again
    start = time.perf_counter()
    files = {k: v for k, v in model_files.items() if v is not None}
    if record.embedding is not None and "embedding" not in files:
        files["embedding"] = record.embedding
    # built-in methods merge their defaults themselves; config-defined ones get them merged here
    function(adata, batch_key=batch_key, label_key=label_key, seed=seed,
             params=dict(params or {}) if record.check_params else merged, threads=threads, **files)
    runtime = time.perf_counter() - start
    emb = adata.obsm.get(EMBEDDING_KEY)
    if emb is None or emb.ndim != 2 or emb.shape[0] != adata.n_obs:
        raise MethodError(f"integration method {name!r} must write obsm[{EMBEDDING_KEY!r}] with {adata.n_obs} rows "
                          f"(cells x dimensions); got {None if emb is None else getattr(emb, 'shape', type(emb))}")
    emb = np.asarray(emb, dtype=np.float32) if not np.issubdtype(np.asarray(emb).dtype, np.floating) else emb
    if not np.isfinite(emb).all():
        raise MethodError(f"integration method {name!r} produced non-finite values in obsm[{EMBEDDING_KEY!r}]")
    adata.obsm[EMBEDDING_KEY] = emb
    adata.uns["runtime_s"] = runtime
    return runtime


__all__ = [
    "EMBEDDING_KEY",
    "IntegrationMethod",
    "MethodConfigError",
    "MethodError",
    "MethodRecord",
    "get_method",
    "integrate",
    "method_records",
    "register",
    "resolve_params",
    "write_embedding",
]
