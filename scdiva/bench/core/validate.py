"""Check a dataset against its config entry before any method sees it.

Every check raises :class:`DatasetValidationError` with a message that names the dataset, the
offending key / layer / value, and the config key to change.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from scdiva.genes import ENSEMBL_ID  # one definition for the model and the benchmark

if TYPE_CHECKING:
    import anndata

COUNT_SAMPLE_SIZE = 1_000_000


class DatasetValidationError(ValueError):
    """The dataset does not match its config entry (missing key, not counts, too few batches...)."""


def _available(values: Sequence[str], limit: int = 20) -> str:
    if not len(values):
        return "(none)"
    shown = ", ".join(repr(v) for v in list(values)[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def check_obs_key(adata: anndata.AnnData, key: str, *, dataset: str, config_key: str) -> None:
    """``key`` must be an obs column; the error lists the columns there are."""
    if key not in adata.obs.columns:
        raise DatasetValidationError(
            f"dataset {dataset!r}: obs column {key!r} (config `datasets.{dataset}.{config_key}`) not found. "
            f"Available obs columns: {_available(list(adata.obs.columns))}. "
            f"Set `datasets.{dataset}.{config_key}` to one of them."
        )
    missing = int(adata.obs[key].isna().sum())
    if missing:
        raise DatasetValidationError(
            f"dataset {dataset!r}: obs column {key!r} (`datasets.{dataset}.{config_key}`) has {missing} "
            "missing values; fill or drop those cells first."
        )


def counts_matrix(adata: anndata.AnnData, counts_layer: str | None, *, dataset: str):
    """The matrix that should hold raw counts: ``layers[counts_layer]`` or ``X``."""
    if counts_layer is None:
        return adata.X
    if counts_layer not in adata.layers:
        raise DatasetValidationError(
            f"dataset {dataset!r}: layer {counts_layer!r} (config `datasets.{dataset}.counts_layer`) not found. "
            f"Available layers: {_available(list(adata.layers.keys()))}; remove `counts_layer` to use X."
        )
    return adata.layers[counts_layer]


def _sample_values(matrix, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``size`` stored values and their flat positions (all of them when there are fewer)."""
    if sp.issparse(matrix):
        csr = sp.csr_matrix(matrix)
        values = csr.data
        n = values.size
        idx = np.arange(n) if n <= size else np.sort(rng.choice(n, size=size, replace=False))
        rows = np.searchsorted(csr.indptr, idx, side="right") - 1
        return values[idx], np.stack([rows, csr.indices[idx]], axis=1)
    dense = np.asarray(matrix)
    n = dense.size
    idx = np.arange(n) if n <= size else np.sort(rng.choice(n, size=size, replace=False))
    return dense.ravel()[idx], np.stack(np.unravel_index(idx, dense.shape), axis=1)


def check_counts(
    adata: anndata.AnnData,
    counts_layer: str | None,
    *,
    dataset: str,
    sample_size: int = COUNT_SAMPLE_SIZE,
    seed: int = 0,
) -> None:
    """X (or ``layers[counts_layer]``) must hold non-negative integer counts.

    Checks up to ``sample_size`` stored values (all when fewer), exactly: a value passes only if it
    equals its rounded value, so log-normalised or scaled data never slips through.
    """
    matrix = counts_matrix(adata, counts_layer, dataset=dataset)
    where = f"layers[{counts_layer!r}]" if counts_layer else "X"
    layers = [name for name in adata.layers.keys() if name != counts_layer]
    hint = (
        f" If raw counts are in a layer, set `datasets.{dataset}.counts_layer` (layers here: {_available(layers)})."
        if counts_layer is None
        else f" Point `datasets.{dataset}.counts_layer` at the layer with raw counts, or remove it to use X."
    )
    values, positions = _sample_values(matrix, np.random.default_rng(seed), sample_size)
    if values.size == 0:
        raise DatasetValidationError(f"dataset {dataset!r}: {where} holds no non-zero values.")

    def example(mask: np.ndarray) -> str:
        i = int(np.flatnonzero(mask)[0])
        row, col = positions[i]
        return f"{values[i]!r} for cell {adata.obs_names[row]!r}, gene {adata.var_names[col]!r}"

    bad = ~np.isfinite(values)
    if bad.any():
        raise DatasetValidationError(f"dataset {dataset!r}: {where} has non-finite values ({example(bad)}).")
    bad = values < 0
    if bad.any():
        raise DatasetValidationError(
            f"dataset {dataset!r}: {where} has negative values ({example(bad)}), so it is not raw counts "
            f"(scaled or centred data?).{hint}"
        )
    bad = values != np.round(values)
    if bad.any():
        raise DatasetValidationError(
            f"dataset {dataset!r}: {where} has non-integer values ({example(bad)}), so it is not raw counts "
            f"({int(bad.sum())} of {values.size} stored values checked are not integers). The workflow "
            "normalises itself and needs raw integer counts. If these are counts that are partly estimates "
            "(Smart-seq2 / Fluidigm C1 expected counts, as in the scIB pancreas), set "
            f"`datasets.{dataset}.round_counts: true` to round them (logged per batch); if the data are "
            f"log-normalised or scaled, use the raw counts.{hint}"
        )


def check_categories(
    adata: anndata.AnnData, key: str, *, dataset: str, config_key: str, what: str, minimum: int = 2,
    stage: str = "after subsampling",
) -> None:
    """``obs[key]`` must have at least ``minimum`` distinct values (batches to integrate, labels to score)."""
    values = adata.obs[key].astype(str).unique()
    if len(values) < minimum:
        raise DatasetValidationError(
            f"dataset {dataset!r}: obs column {key!r} (`datasets.{dataset}.{config_key}`) has "
            f"{len(values)} {what} ({_available(sorted(values))}) {stage}; at least {minimum} are needed. "
            f"Choose another column for `datasets.{dataset}.{config_key}`"
            + (" or raise `subsample`." if config_key == "batch_key" else ".")
        )


def check_annotation_batches(
    adata: anndata.AnnData,
    batch_key: str,
    reference: Sequence[str],
    query: Sequence[str],
    *,
    dataset: str,
) -> None:
    """Reference and query batches must exist and not overlap."""
    present = set(adata.obs[batch_key].astype(str))
    for role, batches in (("reference_batches", reference), ("query_batches", query)):
        unknown = [b for b in batches if b not in present]
        if unknown:
            raise DatasetValidationError(
                f"dataset {dataset!r}: `datasets.{dataset}.annotation.{role}` names batches {unknown} that are "
                f"not values of obs[{batch_key!r}]; values present: {_available(sorted(present))}."
            )
    check_batch_overlap(reference, query, dataset=dataset)


def check_batch_overlap(reference: Sequence[str], query: Sequence[str], *, dataset: str) -> None:
    """No batch may be both reference and query (the one place this is checked: config parse, data
    validation and the annotation split all call it)."""
    overlap = sorted(set(map(str, reference)) & set(map(str, query)))
    if overlap:
        raise DatasetValidationError(
            f"dataset {dataset!r}: batches {overlap} are both reference and query in "
            f"`datasets.{dataset}.annotation`; a query batch must be unseen by the reference."
        )


def check_unique_cells(obs_names: Sequence[str], *, dataset: str) -> None:
    """Cell names (obs_names) must be unique: embeddings, predictions and metrics are joined on them."""
    # deferred: imports pandas (this module is imported at workflow parse time)
    import pandas as pd

    names = pd.Index(obs_names)
    if not names.is_unique:
        dup = names[names.duplicated()].unique()
        raise DatasetValidationError(
            f"dataset {dataset!r}: {int(names.duplicated().sum())} duplicated cell names in obs_names (e.g. "
            f"{_available(list(dup[:3]))}); every stage joins results on them. Make them unique "
            "(`adata.obs_names_make_unique()` in Python, then `adata.write_h5ad(...)`), save the file and update "
            f"`datasets.{dataset}.sha256` if set."
        )


def check_gene_names(adata: anndata.AnnData, gene_id_column: str | None, *, dataset: str) -> None:
    """``gene_id_column`` must exist and, like var_names, hold no empty names."""
    if gene_id_column is not None and gene_id_column not in adata.var.columns:
        raise DatasetValidationError(
            f"dataset {dataset!r}: var column {gene_id_column!r} (config `datasets.{dataset}.gene_id_column`) "
            f"not found. Available var columns: {_available(list(adata.var.columns))}; remove `gene_id_column` "
            "to use var_names."
        )
    names = adata.var[gene_id_column] if gene_id_column else adata.var_names.to_series()
    empty = names.isna() | (names.astype(str).str.strip() == "")
    if empty.any():
        where = f"var[{gene_id_column!r}]" if gene_id_column else "var_names"
        raise DatasetValidationError(
            f"dataset {dataset!r}: {where} has {int(empty.sum())} empty gene names; fix them or choose "
            f"another `datasets.{dataset}.gene_id_column`."
        )


def is_ensembl(names: Sequence[str]) -> bool:
    """True if most names look like Ensembl gene ids (ENSG..., ENSMUSG...)."""
    names = [str(n) for n in names]
    return bool(names) and sum(bool(ENSEMBL_ID.match(n)) for n in names) > 0.9 * len(names)


def validate_dataset(
    adata: anndata.AnnData,
    *,
    dataset: str,
    batch_key: str,
    label_key: str,
    coarse_label_key: str | None = None,
    counts_layer: str | None = None,
    gene_id_column: str | None = None,
    annotation: dict | None = None,
) -> None:
    """Run every check for one config entry; the first failure raises :class:`DatasetValidationError`."""
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise DatasetValidationError(f"dataset {dataset!r} is empty ({adata.n_obs} cells x {adata.n_vars} genes).")
    check_unique_cells(adata.obs_names, dataset=dataset)
    check_obs_key(adata, batch_key, dataset=dataset, config_key="batch_key")
    check_obs_key(adata, label_key, dataset=dataset, config_key="label_key")
    if coarse_label_key is not None:
        check_obs_key(adata, coarse_label_key, dataset=dataset, config_key="coarse_label_key")
    check_gene_names(adata, gene_id_column, dataset=dataset)
    check_counts(adata, counts_layer, dataset=dataset)
    check_categories(adata, batch_key, dataset=dataset, config_key="batch_key", what="batches")
    check_categories(adata, label_key, dataset=dataset, config_key="label_key", what="labels")
    if annotation:
        check_annotation_batches(
            adata, batch_key, annotation["reference_batches"], annotation["query_batches"], dataset=dataset
        )


# --- the source file, before any job: obs / var / layer names only ------------------------------


@dataclass(frozen=True)
class SourceSummary:
    """What a cheap read of an .h5ad holds: obs and var tables, layer names and the matrix shape."""

    n_obs: int
    n_vars: int
    layers: tuple[str, ...]
    batch_sizes: dict[str, int]


def _unreadable(dataset: str, path: os.PathLike[str] | str, reason: str) -> DatasetValidationError:
    return DatasetValidationError(
        f"dataset {dataset!r}: source file {path} (config `datasets.{dataset}.source`) is not a readable AnnData "
        f".h5ad file: {reason}. Point `datasets.{dataset}.source` at an .h5ad written by anndata "
        "(`adata.write_h5ad(path)`; a 10x .h5, a Matrix Market bundle or a gzipped .h5ad: set "
        f"`datasets.{dataset}.format`, see scdiva.bench.core.formats; a .loom file: read it with scanpy and write it "
        "as .h5ad); a truncated download: delete it and run again."
    )


def read_source_tables(path: str | os.PathLike[str], *, dataset: str, shown: str | None = None):
    """obs, var, layer names and matrix shape of an .h5ad, without reading the expression matrix.

    Raises :class:`DatasetValidationError` naming the dataset and config key when the file is not an
    HDF5 file (plain text, truncated) or an HDF5 file of another layout (10x .h5, loom). ``shown``
    names the file in messages (e.g. the URL a download came from) instead of ``path``.
    """
    shown = shown or str(path)
    # deferred: imports anndata, h5py (this module is imported at workflow parse time)
    import anndata.io
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise _unreadable(dataset, shown, f"not an HDF5 file or damaged ({err})") from None
    with handle:
        groups = sorted(handle.keys())
        missing = [key for key in ("X", "obs", "var") if key not in handle]
        if missing:
            raise _unreadable(dataset, shown, f"an HDF5 file without AnnData's {missing} (top-level entries: "
                              f"{_available(groups)})")
        try:
            obs = anndata.io.read_elem(handle["obs"])
            var = anndata.io.read_elem(handle["var"])
            x = handle["X"]
            shape = tuple(int(n) for n in (x.attrs["shape"] if isinstance(x, h5py.Group) else x.shape))
            layers = tuple(handle["layers"].keys()) if "layers" in handle else ()
            if "raw" in handle and "X" in handle["raw"]:
                layers += ("raw.X",)  # CELLxGENE: counts in raw.X (`counts_layer: raw.X`)
        except Exception as err:  # h5py / anndata raise many types for damaged or foreign layouts
            raise _unreadable(dataset, shown, f"{type(err).__name__}: {err}") from None
    if shape != (len(obs), len(var)):
        raise _unreadable(dataset, shown, f"X has shape {shape} but obs has {len(obs)} and var {len(var)} rows")
    return obs, var, layers


def check_source(path: str | os.PathLike[str], entry: Mapping[str, Any], *, dataset: str,
                 min_cells_per_batch: int = 2, shown: str | None = None) -> SourceSummary:
    """Check a dataset file against its config entry from obs / var alone (cheap: no matrix is read).

    Checks: the file is an AnnData .h5ad; cell names are unique; `batch_key`, `label_key` and
    `coarse_label_key` are obs columns without missing values; at least 2 batches and 2 labels;
    `counts_layer` exists; `gene_id_column` exists; the annotation batches are values of the batch
    column; at least 2 batches of `min_cells_per_batch` cells (smaller ones are dropped later, see
    `scdiva.bench.core.preprocess.drop_small_batches`). Raises :class:`DatasetValidationError` naming the
    dataset, the config key and the fix.
    """
    # deferred: imports anndata (this module is imported at workflow parse time)
    import anndata

    obs, var, layers = read_source_tables(path, dataset=dataset, shown=shown)
    shell = anndata.AnnData(obs=obs, var=var)
    if shell.n_obs == 0 or shell.n_vars == 0:
        raise DatasetValidationError(f"dataset {dataset!r}: source file {shown or path} is empty ({shell.n_obs} cells x "
                                     f"{shell.n_vars} genes; config `datasets.{dataset}.source`).")
    check_unique_cells(obs.index, dataset=dataset)
    for config_key in ("batch_key", "label_key", "coarse_label_key"):
        if entry.get(config_key) is not None:
            check_obs_key(shell, entry[config_key], dataset=dataset, config_key=config_key)
    counts_layer = entry.get("counts_layer")
    if counts_layer is not None and counts_layer not in layers:
        raise DatasetValidationError(
            f"dataset {dataset!r}: layer {counts_layer!r} (config `datasets.{dataset}.counts_layer`) not found. "
            f"Available layers: {_available(list(layers))}; remove `counts_layer` to use X."
        )
    check_gene_names(shell, entry.get("gene_id_column"), dataset=dataset)
    for config_key, what in (("batch_key", "batches"), ("label_key", "labels")):
        check_categories(shell, entry[config_key], dataset=dataset, config_key=config_key, what=what,
                         stage="in the source file")
    sizes = shell.obs[entry["batch_key"]].astype(str).value_counts()
    if int((sizes >= min_cells_per_batch).sum()) < 2:
        raise DatasetValidationError(
            f"dataset {dataset!r}: obs column {entry['batch_key']!r} (`datasets.{dataset}.batch_key`) has "
            f"{len(sizes)} batches but {int((sizes >= min_cells_per_batch).sum())} of at least {min_cells_per_batch} "
            f"cells (largest: {', '.join(f'{b} ({n})' for b, n in sizes.head(3).items())}); at least 2 are needed, "
            "smaller batches are dropped. Choose a column of batches (donors, chemistries) for "
            f"`datasets.{dataset}.batch_key`, or lower `preprocess.min_cells_per_batch`."
        )
    annotation = entry.get("annotation")
    if annotation:
        check_annotation_batches(shell, entry["batch_key"], annotation["reference_batches"],
                                 annotation["query_batches"], dataset=dataset)
    return SourceSummary(n_obs=shell.n_obs, n_vars=shell.n_vars, layers=layers,
                         batch_sizes={str(k): int(v) for k, v in sizes.items()})
