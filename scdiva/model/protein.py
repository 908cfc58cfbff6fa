"""Reading the protein modality of an AnnData (``obsm[key]``: cells x proteins raw counts)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import anndata


class ProteinDataError(ValueError):
    """The protein counts of an AnnData are missing or unusable (the message names the key and the fix)."""


def protein_names_of(adata: anndata.AnnData, key: str) -> list[str]:
    """Protein names of ``adata.obsm[key]``: the DataFrame's columns, or ``protein_0..`` for an array."""
    matrix = _obsm(adata, key)
    if hasattr(matrix, "columns"):
        return [str(c) for c in matrix.columns]
    return [f"protein_{i}" for i in range(np.asarray(matrix).shape[1])]


def protein_counts(adata: anndata.AnnData, key: str, names: Sequence[str] | None = None) -> np.ndarray:
    """``adata.obsm[key]`` as float32 raw counts (n_obs, n_proteins), columns in the order of ``names``.

    Raises :class:`ProteinDataError` when the key is missing, a named protein is absent, or the
    values are not non-negative integers (totalVI-style raw ADT counts are needed; the model
    log-transforms them itself).
    """
    matrix = _obsm(adata, key)
    if hasattr(matrix, "columns"):
        columns = [str(c) for c in matrix.columns]
        values = np.asarray(matrix.to_numpy(), dtype=np.float32)
    else:
        import scipy.sparse as sp

        values = np.asarray(matrix.toarray() if sp.issparse(matrix) else matrix, dtype=np.float32)
        columns = [f"protein_{i}" for i in range(values.shape[1])]
    if values.ndim != 2 or values.shape[0] != adata.n_obs:
        raise ProteinDataError(f"obsm[{key!r}] has shape {values.shape}; expected (n_cells={adata.n_obs}, n_proteins)")
    if names is not None:
        lookup = {c: i for i, c in enumerate(columns)}
        missing = [n for n in names if n not in lookup]
        if missing:
            raise ProteinDataError(f"obsm[{key!r}] lacks proteins {missing[:5]} the model was trained on "
                                   f"({len(missing)} of {len(names)} missing); its columns: {columns[:10]}")
        values = values[:, [lookup[n] for n in names]]
    bad = ~np.isfinite(values) | (values < 0) | (np.abs(values - np.round(values)) > 1e-6)
    if bad.any():
        row, col = (int(i[0]) for i in np.nonzero(bad))
        raise ProteinDataError(f"obsm[{key!r}] holds a value that is not a non-negative integer count "
                               f"({values[row, col]!r} at cell {adata.obs_names[row]!r}, protein {columns[col]!r}); "
                               "give raw antibody (ADT) counts, not normalised values")
    return values


def _obsm(adata: anndata.AnnData, key: str):
    if key not in adata.obsm:
        raise ProteinDataError(f"protein_obsm_key {key!r} is not in adata.obsm (keys: {list(adata.obsm)}); "
                               "name the obsm entry that holds the surface-protein counts "
                               "(e.g. 'protein_expression', as scvi-tools' totalVI reads it)")
    return adata.obsm[key]
