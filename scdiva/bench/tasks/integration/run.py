"""Run one integration method from its record, with the harness's guards.

Every integration method has one signature::

    def run_<method>(adata, *, batch_key: str, label_key: str | None, seed: int,
                     params: Mapping[str, Any], threads: int) -> None

It reads the preprocessed AnnData (``layers["counts"]`` raw counts, ``X`` log1p-normalised,
``var["highly_variable"]``, ``obsm["X_pca"]``) and writes its embedding to
``adata.obsm["X_emb"]`` (cells x dimensions, float), or, a graph-only method, its neighbour graph to
``adata.obsp["graph_distances"]``. ``params`` are the method's entries from
config ``methods.<name>``. The built-in methods' records are
:func:`scdiva.bench.tasks.integration.records.builtin_records`; users add methods through config
alone (``entry_point``, ``command`` or ``embedding``; docs/methods-and-metrics.md). By name:
:func:`scdiva.bench.api.integrate`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from scdiva.bench.core.memory import keep_freed_memory
from scdiva.bench.methods._common import EMBEDDING_KEY, GRAPH_KEY
from scdiva.bench.methods.contract import check_embedding, check_graph, embedding_flags
from scdiva.bench.methods.record import MethodError, MethodRecord

IntegrationMethod = Callable[..., None]
#: where :func:`run` puts its one-line warnings about an accepted embedding (write_embedding keeps them)
FLAGS_KEY = "embedding_flags"
logger = logging.getLogger("scdiva.bench.methods")


@contextlib.contextmanager
def method_obs(adata, *, batch_key: str, needs_labels: bool, method: str) -> Iterator[None]:
    """While the block runs, ``adata.obs`` is a copy the method may change at will: for a method not
    declared ``needs_labels`` only the batch column (a dataset's other columns, a coarse cell type
    among them, are labels too); for one that needs labels every column. Afterwards the caller's obs,
    the truth included, is back as it was. X, layers and obsm are not copied."""
    obs = adata.obs
    if needs_labels:
        adata.obs = obs.copy()
    else:
        adata.obs = obs[[batch_key]].copy() if batch_key in obs.columns else obs[[]].copy()
    try:
        yield
    finally:
        if adata.n_obs != len(obs):
            raise MethodError(f"integration method {method!r} changed the number of cells from {len(obs)} to "
                              f"{adata.n_obs}; a method writes obsm[{EMBEDDING_KEY!r}] and keeps every cell")
        adata.obs = obs


def run(
    adata,
    record: MethodRecord,
    *,
    batch_key: str,
    label_key: str | None,
    seed: int,
    params: Mapping[str, Any] | None = None,
    threads: int = 1,
    **model_files: Any,
) -> float:
    """Run the integration method of ``record`` on ``adata``; returns its wall time in seconds.

    Checks the method's parameters before any work. A method not declared
    ``needs_labels`` gets ``label_key=None`` and sees obs with the batch column only
    (:func:`method_obs`); ``adata.obs`` is the caller's again when it returns. Then checks the
    embedding contract (:func:`~scdiva.bench.methods.contract.check_embedding`): ``obsm["X_emb"]``
    a dense finite float array with one row per cell, at least one column and not every column
    constant, else a one-line :class:`MethodError` naming the method. Constant columns of an
    accepted embedding are logged as warnings and listed in ``adata.uns["embedding_flags"]``. A
    graph-only method (record ``output="graph"``, BBKNN) writes ``obsp["graph_distances"]`` instead,
    checked by :func:`~scdiva.bench.methods.contract.check_graph`.
    The wall time is also stored in ``adata.uns["runtime_s"]``.

    Parameters
    ----------
    adata
        The preprocessed AnnData (in memory, or backed on its file for a streaming method).
    record
        The method's record (by name: :func:`scdiva.bench.api.integrate`).
    batch_key, label_key
        obs columns of the batches and the cell-type labels (``label_key`` reaches only methods that
        need labels).
    seed, params, threads
        The run's seed, the method's parameters (config ``methods.<name>``) and its CPU threads.
    **model_files
        Those that are not None go to the method as keyword arguments: ``save_model=dir`` for scvi,
        ``scvi_model=dir`` for scanvi (start from that scVI), ``embedding=path`` for a precomputed
        embedding.
    """
    name = record.name
    merged = record.params(params)  # fail on unknown keys before training
    function = record.load()
    if record.needs_labels and label_key is None:
        raise ValueError(f"integration method {name!r} needs cell-type labels; set datasets.<name>.label_key")
    adata.obsm.pop(EMBEDDING_KEY, None)
    if GRAPH_KEY in adata.obsp:
        del adata.obsp[GRAPH_KEY]
    adata.uns.pop(FLAGS_KEY, None)
    obsm_before = set(adata.obsm.keys())
    keep_freed_memory()  # a method's training and embedding reuse what it freed instead of faulting it in again
    files = {k: v for k, v in model_files.items() if v is not None}
    if record.embedding is not None and "embedding" not in files:
        files["embedding"] = record.embedding
    with method_obs(adata, batch_key=batch_key, needs_labels=record.needs_labels, method=name):
        start = time.perf_counter()
        # built-in methods merge their defaults themselves (a derived one's overrides first); config-defined
        # ones get them merged here
        function(adata, batch_key=batch_key, label_key=label_key if record.needs_labels else None, seed=seed,
                 params={**record.overrides, **dict(params or {})} if record.check_params else merged,
                 threads=threads, **files)
        runtime = time.perf_counter() - start
    if record.output == "graph":
        if GRAPH_KEY not in adata.obsp:
            raise MethodError(f"integration method {name!r} is a graph method but did not write obsp[{GRAPH_KEY!r}]")
        adata.obsp[GRAPH_KEY] = check_graph(adata.obsp[GRAPH_KEY], n_cells=adata.n_obs, method=name,
                                            source=f"obsp[{GRAPH_KEY!r}]")
        adata.uns["runtime_s"] = runtime
        return runtime
    if EMBEDDING_KEY not in adata.obsm:
        wrote = sorted(set(adata.obsm.keys()) - obsm_before)
        raise MethodError(f"integration method {name!r} did not write obsm[{EMBEDDING_KEY!r}] (the obsm keys it "
                          f"wrote: {wrote or 'none'}); it must put its embedding, cells x dimensions, there")
    emb = check_embedding(adata.obsm[EMBEDDING_KEY], n_cells=adata.n_obs, method=name,
                          source=f"obsm[{EMBEDDING_KEY!r}]")
    adata.obsm[EMBEDDING_KEY] = emb
    flags = embedding_flags(emb, method=name)
    for flag in flags:
        logger.warning(flag)
    if flags:
        adata.uns[FLAGS_KEY] = flags
    adata.uns["runtime_s"] = runtime
    return runtime
