"""The file formats public single-cell datasets come in, read into the workflow's one layout.

Formats (config ``datasets.<name>.format``, ``auto`` tells them apart by their first bytes):

* ``h5ad`` - AnnData; counts in ``X``, a layer (``counts_layer: <layer>``) or, in the CELLxGENE
  layout (normalised ``X``, Ensembl ids as ``var_names``, symbols in ``var["feature_name"]``), in
  ``raw.X`` (``counts_layer: raw.X``, with ``gene_id_column: feature_name`` for symbols);
* ``h5ad.gz`` - a gzipped .h5ad (decompressed while staging);
* ``10x_h5`` - Cell Ranger's filtered_feature_bc_matrix.h5 (v3, or v2 with one genome);
* ``10x_mtx`` - a Matrix Market bundle (``matrix.mtx[.gz]``, ``features.tsv[.gz]`` or ``genes.tsv``,
  ``barcodes.tsv[.gz]``) as a directory or a ``.tar.gz`` / ``.tar``.

The 10x formats carry no batch or cell-type columns: ``datasets.<name>.metadata`` names a CSV/TSV whose
first column is the cell barcode and whose other columns join ``obs``. Every non-h5ad source is
converted to .h5ad once, when it is staged (:func:`stage_as_h5ad`).

:func:`read_counts` reads only the rows a stratified subsample keeps, straight from the file, so a
500K-cell atlas subsampled to 50K never holds more than those 50K rows in memory.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from scdiva.bench.core.io import atomic_path
from scdiva.bench.core.sampling import stratified_indices
from scdiva.bench.core.validate import DatasetValidationError, read_source_tables

if TYPE_CHECKING:
    import anndata
    import pandas as pd

FORMATS = ("h5ad", "h5ad.gz", "10x_h5", "10x_mtx")
RAW_X = "raw.X"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
GZIP_MAGIC = b"\x1f\x8b"
MTX_NAMES = ("matrix.mtx.gz", "matrix.mtx")
ROW_CHUNK = 50_000
logger = logging.getLogger(__name__)
#: what reading a truncated or corrupted gzip stream raises (end of data; bad header, CRC or length; bad deflate data)
GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


def _format_error(dataset: str, path: str | os.PathLike[str], reason: str) -> DatasetValidationError:
    return DatasetValidationError(
        f"dataset {dataset!r}: source {path} (config `datasets.{dataset}.source`) {reason}. Readable formats "
        f"(`datasets.{dataset}.format`): {', '.join(FORMATS)} - an AnnData .h5ad (CELLxGENE layout included), "
        "a gzipped .h5ad, a 10x .h5, or a 10x Matrix Market bundle (directory or .tar.gz of matrix.mtx.gz, "
        "features.tsv.gz, barcodes.tsv.gz). Convert anything else to .h5ad with anndata/scanpy first."
    )


def _damaged_gzip(dataset: str, path: str | os.PathLike[str], err: BaseException) -> DatasetValidationError:
    return DatasetValidationError(
        f"dataset {dataset!r}: source {path} (config `datasets.{dataset}.source`) is a truncated or damaged "
        f"gzip file ({type(err).__name__}: {err}), e.g. an interrupted download or copy. Fetch the complete "
        f"file again (`gzip -t` on it must succeed) and point `datasets.{dataset}.source` at it; with "
        f"`datasets.{dataset}.sha256` set, a complete file also passes the digest check."
    )


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except (OSError, *GZIP_ERRORS):  # a gzip stream cut before its first tar header: not a (readable) tar
        return False


def _is_10x_group(group) -> bool:
    # deferred: imports h5py (this module is imported at workflow parse time)
    import h5py

    return isinstance(group, h5py.Group) and {"barcodes", "data", "indices", "indptr", "shape"} <= set(group.keys())


def detect_format(path: str | os.PathLike[str], *, dataset: str = "dataset", declared: str = "auto",
                  strict: bool = True, shown: str | None = None) -> str:
    """The format of ``path`` (one of :data:`FORMATS`), from its content, not its name.

    ``declared`` (config ``format``) other than ``auto`` must agree with the content; a file in none of
    the formats is a :class:`DatasetValidationError` naming the dataset, the file and the formats, or
    with ``strict=False`` is called ``h5ad``, so that the .h5ad reader says what is wrong with it
    (not HDF5, truncated, another HDF5 layout). ``shown`` names the file in messages instead of ``path``
    (e.g. the configured source of a download being checked under a temporary name).
    """
    path = Path(path)
    named = shown or path
    if declared not in ("auto", *FORMATS):
        raise DatasetValidationError(f"dataset {dataset!r}: `datasets.{dataset}.format` is {declared!r}; "
                                     f"use auto or one of {', '.join(FORMATS)}")
    if path.is_dir():
        found = _find_mtx_dir(path)
        if found is None:
            raise _format_error(dataset, named, f"is a directory without {' or '.join(MTX_NAMES)}")
        fmt = "10x_mtx"
    else:
        with open(path, "rb") as handle:
            head = handle.read(8)
        if head.startswith(HDF5_MAGIC):
            # deferred: imports h5py (this module is imported at workflow parse time)
            import h5py

            try:
                with h5py.File(path, "r") as h5:
                    keys = set(h5.keys())
                    if {"X", "obs", "var"} <= keys:
                        fmt = "h5ad"
                    elif any(_is_10x_group(h5[k]) for k in keys):  # v3: "matrix"; v2: one group per genome
                        fmt = "10x_h5"
                    elif strict:
                        raise _format_error(dataset, named, f"is an HDF5 file of an unknown layout (top-level "
                                                           f"entries: {sorted(keys)[:10]})")
                    else:
                        fmt = "h5ad"
            except OSError as err:
                if strict:
                    raise _format_error(dataset, named, f"is a damaged or truncated HDF5 file ({err})") from None
                fmt = "h5ad"
        elif head.startswith(GZIP_MAGIC) or _is_tar(path):
            fmt = "10x_mtx" if _is_tar(path) else "h5ad.gz"
            if fmt == "h5ad.gz":
                try:
                    with gzip.open(path, "rb") as handle:
                        inner = handle.read(8)
                except GZIP_ERRORS as err:
                    raise _damaged_gzip(dataset, named, err) from None
                if not inner.startswith(HDF5_MAGIC):
                    raise _format_error(dataset, named, "is gzipped but holds neither an .h5ad nor a tar bundle "
                                                       "(a lone matrix.mtx.gz needs its features and barcodes)")
        elif strict:
            raise _format_error(dataset, named, f"is in none of the readable formats (first bytes {head!r})")
        else:
            fmt = "h5ad"
    if declared not in ("auto", fmt):
        raise _format_error(dataset, named, f"is declared `format: {declared}` but its content is {fmt}")
    return fmt


def _find_mtx_dir(root: Path) -> Path | None:
    for name in MTX_NAMES:
        hits = sorted(root.rglob(name))
        if hits:
            return hits[0].parent
    return None


def read_10x(path: str | os.PathLike[str], fmt: str, *, dataset: str = "dataset",
             shown: str | None = None) -> anndata.AnnData:
    """A 10x .h5 or Matrix Market bundle as AnnData: counts in X (CSR), gene symbols as var_names,
    Ensembl ids in ``var["gene_ids"]``, barcodes as obs_names (``shown``: the file's name in messages)."""
    # deferred: imports scanpy (this module is imported at workflow parse time)
    import scanpy as sc

    path = Path(path)
    named = shown or path
    try:
        if fmt == "10x_h5":
            adata = sc.read_10x_h5(path)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                root = path
                if not path.is_dir():
                    with tarfile.open(path) as tar:
                        tar.extractall(tmp, filter="data")
                    root = Path(tmp)
                found = _find_mtx_dir(root)
                if found is None:
                    raise _format_error(dataset, named, f"is a tar bundle without {' or '.join(MTX_NAMES)}")
                if not any((found / n).exists() for n in ("features.tsv.gz", "features.tsv", "genes.tsv",
                                                           "genes.tsv.gz")):
                    raise _format_error(dataset, named, "is a Matrix Market bundle without features.tsv.gz / genes.tsv")
                adata = sc.read_10x_mtx(found, var_names="gene_symbols", make_unique=True, cache=False)
    except DatasetValidationError:
        raise
    except Exception as err:  # scanpy raises many types for damaged or partial bundles
        raise _format_error(dataset, named, f"could not be read as {fmt} ({type(err).__name__}: {err})") from None
    adata.var_names_make_unique()
    adata.X = sp.csr_matrix(adata.X)
    return adata


def join_metadata(adata: anndata.AnnData, metadata: str | os.PathLike[str], *, dataset: str) -> None:
    """Add the columns of a CSV/TSV (first column: cell barcode) to ``adata.obs``.

    Parameters
    ----------
    adata
        The cells read from ``datasets.<dataset>.source``; its ``obs`` gains the table's columns.
    metadata
        The CSV/TSV (optionally gzipped) of ``datasets.<dataset>.metadata``.
    dataset
        The config name, for messages.

    Raises
    ------
    DatasetValidationError
        The file cannot be parsed, a barcode has more than one row (which row belongs to the cell is
        ambiguous) or a cell of ``adata`` has none; the message names the dataset, the keys and the fix.
    """
    # deferred: imports pandas (this module is imported at workflow parse time)
    import pandas as pd

    where = (f"the metadata file {metadata} (config `datasets.{dataset}.metadata`, the cell table of "
             f"`datasets.{dataset}.source`; first column = barcode)")
    sep = "\t" if str(metadata).removesuffix(".gz").endswith((".tsv", ".txt")) else ","
    try:
        table = pd.read_csv(metadata, sep=sep, index_col=0)
    except (*GZIP_ERRORS, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DatasetValidationError(
            f"dataset {dataset!r}: cannot read {where}: {type(err).__name__}: {err}. Write it as a "
            "comma- (.csv) or tab-separated (.tsv) text file, optionally gzipped, with one row per cell."
        ) from None
    table.index = table.index.astype(str)
    repeated = table.index[table.index.duplicated()].unique()
    if len(repeated):
        raise DatasetValidationError(
            f"dataset {dataset!r}: {len(repeated)} barcodes have more than one row in {where} (e.g. "
            f"{list(repeated[:3])}), so which row belongs to the cell is ambiguous. Keep one row per barcode "
            "(pandas: `table[~table.index.duplicated()]`); barcodes shared by several samples or lanes need "
            "the same suffixes the matrix gives them (e.g. AAAC-1, AAAC-2)."
        )
    missing = adata.obs_names.difference(table.index)
    if len(missing):
        raise DatasetValidationError(
            f"dataset {dataset!r}: {len(missing)} of {adata.n_obs} cells (e.g. {list(missing[:3])}) have no row in "
            f"the metadata file {metadata} (config `datasets.{dataset}.metadata`; first column = barcode)."
        )
    for column in table.columns:
        adata.obs[column] = table.loc[adata.obs_names, column].to_numpy()


def stage_as_h5ad(source: str | os.PathLike[str], destination: str | os.PathLike[str], *, dataset: str,
                  declared: str = "auto", metadata: str | os.PathLike[str] | None = None,
                  shown: str | None = None) -> str:
    """Write ``source`` (any of :data:`FORMATS`) to ``destination`` as .h5ad; returns the detected format.

    An .h5ad is copied (or just renamed when both are on one file system: see the download rule),
    a gzipped one decompressed in 1 MiB chunks, a 10x file read and written with ``metadata`` joined.

    Parameters
    ----------
    source
        The file (or Matrix Market directory) to convert.
    destination
        The .h5ad to write (atomically: nothing is left there on failure).
    dataset
        The config name, for messages.
    declared
        ``datasets.<dataset>.format``; other than ``auto`` it must agree with the content.
    metadata
        CSV/TSV of obs columns for the 10x formats (:func:`join_metadata`).
    shown
        The source's name in messages instead of ``source`` (the download rule checks a ``.part`` file).

    Raises
    ------
    DatasetValidationError
        A foreign, truncated or damaged file, or bad metadata: the message names the dataset,
        ``datasets.<dataset>.source`` (or ``.metadata``) and the fix.
    """
    fmt = detect_format(source, dataset=dataset, declared=declared, shown=shown)
    with atomic_path(destination) as tmp:
        if fmt == "h5ad":
            shutil.copyfile(source, tmp)
        elif fmt == "h5ad.gz":
            try:
                with gzip.open(source, "rb") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, length=1 << 20)
            except GZIP_ERRORS as err:
                raise _damaged_gzip(dataset, shown or source, err) from None
        else:
            adata = read_10x(source, fmt, dataset=dataset, shown=shown)
            if metadata is not None:
                join_metadata(adata, metadata, dataset=dataset)
            adata.write_h5ad(tmp)
    return fmt


# --- reading only the cells a subsample keeps -------------------------------------------------------


def _read_rows(element, rows: np.ndarray | None):
    """Rows ``rows`` (sorted; None = all) of an on-disk X / layer as CSR float32, read in chunks."""
    # deferred: imports anndata, h5py (this module is imported at workflow parse time)
    import anndata.io
    import h5py

    if isinstance(element, h5py.Group):
        encoding = element.attrs.get("encoding-type", "")
        if encoding not in ("csr_matrix", "csc_matrix"):
            raise ValueError(f"unsupported matrix encoding {encoding!r}")
        matrix = anndata.io.sparse_dataset(element)
        n = matrix.shape[0]
    else:
        matrix, n = element, element.shape[0]
    rows = np.arange(n) if rows is None else rows
    blocks = []
    for start in range(0, len(rows), ROW_CHUNK):
        chunk = rows[start:start + ROW_CHUNK]
        if len(chunk) and chunk[-1] - chunk[0] + 1 == len(chunk):  # contiguous: one slice
            block = matrix[int(chunk[0]):int(chunk[-1]) + 1]
        else:
            block = matrix[chunk]
        blocks.append(sp.csr_matrix(block, dtype=np.float32))
    if not blocks:
        return sp.csr_matrix((0, matrix.shape[1]), dtype=np.float32)
    return sp.vstack(blocks, format="csr")


def n_obs_of(path: str | os.PathLike[str]) -> int:
    """Cells in an .h5ad from its obs index alone (cheap: no matrix is read)."""
    # deferred: imports h5py (this module is imported at workflow parse time)
    import h5py

    with h5py.File(path, "r") as handle:
        obs = handle["obs"]
        index = obs.attrs.get("_index", "_index")
        return int(obs[index].shape[0])


def open_rows_backed(path: str | os.PathLike[str]) -> anndata.AnnData:
    """An .h5ad's obs and var, backed on the file, with no matrix, layer or obsm loaded; of ``uns``
    only the preprocessing record (``uns["preprocess"]``, which names the dataset), when present.

    Why: ``anndata.read_h5ad(backed="r")`` leaves ``X`` on disk but loads every layer and ``obsm``
    into memory (a 1M-cell counts layer is gigabytes); ScDiVa's row reader streams ``X`` or any
    ``layers/<name>`` of this file itself, so obs + var is all that needs to be in memory.
    """
    # deferred: imports anndata, h5py (this module is imported at workflow parse time)
    import anndata as ad
    import h5py
    from anndata.io import read_elem

    with h5py.File(path, "r") as handle:
        obs, var = read_elem(handle["obs"]), read_elem(handle["var"])
        uns = {"preprocess": read_elem(handle["uns/preprocess"])} if "uns/preprocess" in handle else {}
    return ad.AnnData(obs=obs, var=var, uns=uns, filename=str(path), filemode="r")


def read_counts(path: str | os.PathLike[str], *, dataset: str, counts_layer: str | None = None,
                subsample: int | None = None, strata: Sequence[str] = (), seed: int = 0,
                round_counts: bool = False) -> anndata.AnnData:
    """The raw counts of an .h5ad as a CSR ``X`` with obs and var, reading only the cells kept.

    ``counts_layer``: None = ``X``, a layer name, or ``raw.X`` (CELLxGENE: counts in ``raw``, whose
    ``raw.var`` then gives the genes). With ``subsample`` the stratified cells (:func:`stratified_indices`
    over the ``strata`` columns) are chosen from obs first, and only their rows are read, in chunks.
    ``round_counts`` rounds non-integer values to the nearest integer (logged: how many, in which
    batches), for sources whose "counts" are partly estimates (e.g. the scIB pancreas, whose Smart-seq2
    and Fluidigm C1 batches hold non-integer expected counts); without it such values are refused later
    by :func:`scdiva.bench.core.validate.check_counts`.
    Errors name the dataset, the key and the fix (:class:`DatasetValidationError`).
    """
    # deferred: imports anndata, h5py (this module is imported at workflow parse time)
    import anndata
    import anndata.io
    import h5py

    obs, var, layers = read_source_tables(path, dataset=dataset)
    rows = None
    if subsample is not None and subsample < len(obs) and set(strata) <= set(obs.columns):
        rows = stratified_indices(obs, subsample, list(strata), seed)
        logger.info("dataset %r: reading the %d of %d cells a subsample keeps (stratified by %s, seed %d)",
                    dataset, subsample, len(obs), " x ".join(strata), seed)
    with h5py.File(path, "r") as handle:
        if counts_layer is None:
            element, where = handle["X"], "X"
        elif counts_layer == RAW_X:
            if "raw" not in handle or "X" not in handle["raw"]:
                raise DatasetValidationError(
                    f"dataset {dataset!r}: `datasets.{dataset}.counts_layer: raw.X` but the file has no raw.X; "
                    f"layers: {list(layers) or '(none)'}; remove `counts_layer` to use X."
                )
            element, where = handle["raw"]["X"], "raw.X"
            raw_var = anndata.io.read_elem(handle["raw"]["var"])
            if len(raw_var) != len(var):  # raw keeps genes X dropped: its own var describes its columns
                var = raw_var
        elif counts_layer in layers:
            element, where = handle["layers"][counts_layer], f"layers[{counts_layer!r}]"
        else:
            raise DatasetValidationError(
                f"dataset {dataset!r}: layer {counts_layer!r} (config `datasets.{dataset}.counts_layer`) not found. "
                f"Available layers: {list(layers) or '(none)'} (or `raw.X`); remove `counts_layer` to use X."
            )
        try:
            x = _read_rows(element, rows)
        except Exception as err:
            raise DatasetValidationError(f"dataset {dataset!r}: cannot read {where} of {path}: "
                                         f"{type(err).__name__}: {err}") from None
    if x.shape[1] != len(var):
        raise DatasetValidationError(f"dataset {dataset!r}: {where} has {x.shape[1]} genes but var has {len(var)}")
    obs = obs if rows is None else obs.iloc[rows].copy()
    if round_counts:
        _round_counts(x, obs, strata[0] if strata else None, dataset=dataset)
    return anndata.AnnData(X=x, obs=obs, var=var)


def _round_counts(x: sp.csr_matrix, obs: pd.DataFrame, batch_key: str | None, *, dataset: str) -> None:
    """Round the stored values of ``x`` in place (negative ones stay and are refused later), logging
    how many were not integers, per batch."""
    off = x.data != np.rint(x.data)
    if not off.any():
        return
    where = ""
    if batch_key is not None and batch_key in obs.columns:
        rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))[off]
        counts = obs[batch_key].astype(str).to_numpy()[rows]
        batches, n = np.unique(counts, return_counts=True)
        where = " in batches " + ", ".join(f"{b} ({k})" for b, k in zip(batches, n, strict=True))
    logger.warning(
        "dataset %r: rounded %d of %d stored values that were not integers%s (`datasets.%s.round_counts`)",
        dataset, int(off.sum()), x.data.size, where, dataset)
    x.data = np.rint(x.data)
