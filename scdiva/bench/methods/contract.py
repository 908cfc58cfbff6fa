"""The output contract of an integration method: what an embedding (or, for a graph-only method, a
neighbour graph) must be to be scored.

Checked in the method's own job (:func:`scdiva.bench.tasks.integration.run.run`, the command and
precomputed-embedding readers of :mod:`scdiva.bench.methods.external`), naming the method.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scdiva.bench.methods._common import EMBEDDING_KEY
from scdiva.bench.methods.record import MethodError

#: a column whose values span less than this (relative to their magnitude when that is above 1) is
#: constant: float32 rounding of one value, not a dimension that tells cells apart
CONSTANT_COLUMN_SPAN = 1e-5


def constant_columns(embedding: np.ndarray) -> np.ndarray:
    """Indices of the columns of ``embedding`` (cells x dimensions) that are constant or near-constant
    (value span below :data:`CONSTANT_COLUMN_SPAN` of ``max(1, largest |value|)`` of the column)."""
    if embedding.shape[0] == 0:
        return np.arange(embedding.shape[1])
    span = embedding.max(axis=0).astype(np.float64) - embedding.min(axis=0)
    scale = np.maximum(1.0, np.abs(embedding).max(axis=0).astype(np.float64))
    return np.flatnonzero(span <= CONSTANT_COLUMN_SPAN * scale)


def check_embedding(values: Any, *, n_cells: int, method: str, source: str) -> np.ndarray:
    """``values`` as a dense float array (cells x dimensions), or a one-line :class:`MethodError` naming
    ``method``, what it wrote (``source``, e.g. ``obsm['X_emb']``) and what was expected.

    Refused: a sparse matrix, a non-numeric dtype (object, strings, booleans), a 1-D array, anything
    but ``n_cells`` rows, no columns, NaN or infinite values, and a collapsed latent (every column
    constant). Integer values are converted to float32; float arrays are returned as they are.
    """
    where = f"integration method {method!r}: {source}"
    if values is None:
        raise MethodError(f"{where} is missing")
    if hasattr(values, "toarray") or type(values).__module__.startswith("scipy.sparse"):
        raise MethodError(f"{where} is a sparse matrix ({type(values).__name__}); an embedding must be a dense float "
                          "array (cells x dimensions): write it with .toarray()")
    if hasattr(values, "to_numpy"):  # a DataFrame in obsm
        values = values.to_numpy()
    try:
        array = np.asarray(values)
    except Exception as err:  # ragged lists and other objects numpy cannot hold as one array
        raise MethodError(f"{where} is not an array ({type(values).__name__}: {err}); an embedding must be a dense "
                          "float array (cells x dimensions)") from None
    if array.dtype.kind not in "fiu":
        raise MethodError(f"{where} has dtype {array.dtype} ({type(values).__name__}); an embedding must be a dense "
                          "array of floats (cells x dimensions)")
    if array.ndim == 1:
        raise MethodError(f"{where} is a 1-D array of {array.shape[0]} values; an embedding is 2-D (cells x "
                          f"dimensions): if one dimension is meant, reshape it to (n_cells, 1) with .reshape(-1, 1)")
    if array.ndim != 2:
        raise MethodError(f"{where} has shape {array.shape}; an embedding must be 2-D (cells x dimensions)")
    if array.shape[0] != n_cells:
        raise MethodError(f"{where} has {array.shape[0]} rows for {n_cells} cells; an embedding has one row per cell")
    if array.shape[1] == 0:
        raise MethodError(f"{where} has shape {array.shape}: no columns; an embedding needs at least one dimension")
    if array.dtype.kind != "f":
        array = array.astype(np.float32)
    finite = np.isfinite(array)
    if not finite.all():
        bad_columns = int((~finite).any(axis=0).sum())
        raise MethodError(f"{where} has {int((~finite).sum())} non-finite values (NaN or infinite) in {bad_columns} "
                          f"of its {array.shape[1]} columns; an embedding must be finite")
    constant = constant_columns(array)
    if len(constant) == array.shape[1] and n_cells > 1:
        raise MethodError(f"{where} is a collapsed latent: every one of its {array.shape[1]} columns is constant or "
                          f"near-constant (values span < {CONSTANT_COLUMN_SPAN:g}), so it tells no cells apart")
    return array


def embedding_flags(embedding: np.ndarray, *, method: str) -> list[str]:
    """One-line warnings about an embedding that passed :func:`check_embedding`: its constant columns."""
    constant = constant_columns(embedding)
    if not len(constant) or embedding.shape[0] < 2:
        return []
    shown = ", ".join(str(int(i)) for i in constant[:10]) + (", ..." if len(constant) > 10 else "")
    return [f"integration method {method!r}: {len(constant)} of {embedding.shape[1]} columns of obsm"
            f"[{EMBEDDING_KEY!r}] are constant or near-constant (columns {shown})"]


def check_graph(values: Any, *, n_cells: int, method: str, source: str):
    """``values`` as a CSR matrix of neighbour distances (cells x cells), or a one-line
    :class:`MethodError` naming ``method`` and ``source``.

    Refused: anything but a scipy sparse matrix, another shape than ``n_cells`` x ``n_cells``, negative
    or non-finite distances, and a cell without neighbours (its graph metrics would be undefined).
    """
    # deferred: imports scipy (this module is imported at workflow parse time)
    import scipy.sparse

    where = f"integration method {method!r}: {source}"
    if not scipy.sparse.issparse(values):
        raise MethodError(f"{where} is a {type(values).__name__}; a neighbour graph is a scipy sparse matrix "
                          "(cells x cells) of distances")
    graph = scipy.sparse.csr_matrix(values, dtype=np.float32)
    if graph.shape != (n_cells, n_cells):
        raise MethodError(f"{where} has shape {graph.shape} for {n_cells} cells; a neighbour graph is cells x cells")
    if not np.isfinite(graph.data).all() or (graph.data < 0).any():
        raise MethodError(f"{where} has negative or non-finite distances; they must be finite and >= 0")
    lonely = np.flatnonzero(np.diff(graph.indptr) == 0)
    if len(lonely):
        raise MethodError(f"{where}: {len(lonely)} cells have no neighbours (first: row {int(lonely[0])}); every "
                          "cell needs at least one")
    return graph
