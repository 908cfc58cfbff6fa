"""Tokenising dataset over an AnnData (in memory or backed h5ad), one cell at a time.

Each cell becomes a sequence ``<cls>, g_1, ..., g_k`` of gene tokens with an expression value
per token: its ``k <= max_tokens`` most highly expressed genes plus ``n_zero_tokens`` sampled
unexpressed genes (value 0). Rows are read one at a time from the CSR matrix, so memory stays
bounded by the batch, never by the dataset (the whole matrix is never densified).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch

from scdiva.data.vocab import CLS_ID, N_SPECIAL, PAD_ID, GeneAlignment, GeneVocab

if TYPE_CHECKING:
    import anndata


class CountsError(ValueError):
    """The expression matrix is not raw integer counts."""


@dataclass
class ObsEncoding:
    """Integer codes of an obs column against fixed categories (``-1``: unknown or missing)."""

    key: str
    categories: list[str]
    codes: np.ndarray

    @classmethod
    def from_adata(cls, adata: anndata.AnnData, key: str, categories: Sequence[str] | None = None,
                   what: str = "obs column") -> ObsEncoding:
        if key not in adata.obs.columns:
            raise KeyError(f"{what} {key!r} is not in adata.obs; available columns: "
                           f"{list(adata.obs.columns)}")
        values = adata.obs[key]
        if categories is None:
            observed = values.dropna().astype(str)
            categories = sorted(set(observed))
            if not categories:
                raise ValueError(f"{what} {key!r} has no non-missing values")
        lookup = {c: i for i, c in enumerate(categories)}
        codes = np.array([-1 if isinstance(v, float) and np.isnan(v) else lookup.get(str(v), -1)
                          for v in values], dtype=np.int64)
        return cls(key, list(categories), codes)


def default_counts_layer(adata: anndata.AnnData) -> str | None:
    """``"counts"`` if the AnnData has that layer (the workflow's convention), else ``None`` (X)."""
    return "counts" if "counts" in adata.layers else None


class _RowReader:
    """Reads rows from ``X`` or a layer, in memory or backed, without densifying the matrix.

    Backed CSR files are read straight through h5py: only ``indptr`` (one integer per cell) is
    held in memory; each row's ``data``/``indices`` slice is read on demand.
    """

    def __init__(self, adata: anndata.AnnData, layer: str | None):
        self.where = "X" if layer is None else f"layers[{layer!r}]"
        self.backed = adata.isbacked
        if self.backed:
            self._open_backed(adata.filename, "X" if layer is None else f"layers/{layer}")
            return
        if layer is not None and layer not in adata.layers:
            raise KeyError(f"layer {layer!r} not in adata.layers ({list(adata.layers)}); pass layer=None to use X")
        matrix = adata.X if layer is None else adata.layers[layer]
        if matrix is None:
            raise ValueError("adata.X is empty; pass layer= naming the counts layer")
        if sp.issparse(matrix) and matrix.format != "csr":
            matrix = sp.csr_matrix(matrix)  # CSC/COO -> CSR stays sparse
        self.matrix: Any = matrix

    def _open_backed(self, filename, key: str) -> None:
        import h5py

        self._file = h5py.File(filename, "r")
        if key not in self._file:
            raise KeyError(f"{self.where} is not in {filename}; pass layer= naming the counts layer")
        node = self._file[key]
        encoding = node.attrs.get("encoding-type", "array")
        if isinstance(node, h5py.Dataset):  # dense on disk: rows are read one at a time
            self.matrix = node
            self._indptr = None
        elif encoding == "csr_matrix":
            self.matrix = node
            self._indptr = node["indptr"][:]
            self._data, self._indices = node["data"], node["indices"]
        else:
            raise ValueError(f"{self.where} of {filename} is stored as {encoding}; backed reading needs CSR "
                             "(rows of cells). Convert it (adata.X = scipy.sparse.csr_matrix(adata.X)) and rewrite")

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(column indices, values) of the nonzero entries of row ``i``."""
        m = self.matrix
        if self.backed:
            if self._indptr is None:
                values = np.asarray(m[i]).ravel()
                cols = np.flatnonzero(values)
                return cols, values[cols]
            start, end = self._indptr[i], self._indptr[i + 1]
            return self._indices[start:end], self._data[start:end]
        if sp.issparse(m):
            start, end = m.indptr[i], m.indptr[i + 1]
            return m.indices[start:end], m.data[start:end]
        values = np.asarray(m[i]).ravel()
        cols = np.flatnonzero(values)
        return cols, values[cols]


class CellTokenDataset(torch.utils.data.Dataset):
    """Cells of an AnnData as gene-token sequences (see the module docstring).

    Parameters
    ----------
    adata
        Cells x genes; ``X`` or ``layers[layer]`` must hold raw integer counts (the negative
        binomial decoder models counts; values are library-size normalised and log1p-transformed
        here for the value input).
    vocab, alignment
        The model's gene vocabulary and this dataset's alignment to it.
    layer
        Layer with the counts (``None``: ``X``).
    batch, labels
        Encoded batch covariate and label columns (:class:`ObsEncoding`), optional.
    seed
        Token sampling is a pure function of ``(seed, epoch, cell)``, so runs (and resumed runs)
        are reproducible; call :meth:`set_epoch` each epoch.
    """

    def __init__(self, adata: anndata.AnnData, vocab: GeneVocab, alignment: GeneAlignment, *,
                 max_tokens: int, n_zero_tokens: int, target_sum: float, layer: str | None = None,
                 batch: ObsEncoding | None = None, labels: dict[str, ObsEncoding] | None = None,
                 seed: int = 0, check_counts: bool = True):
        self.reader = _RowReader(adata, layer)
        self.vocab = vocab
        self.alignment = alignment
        self.max_tokens = max_tokens
        self.n_zero_tokens = n_zero_tokens
        self.target_sum = target_sum
        self.batch = batch
        self.labels = labels or {}
        self.seed = seed
        self.epoch = -1  # -1: inference (fixed sampling)
        self.n_obs = adata.n_obs
        self.obs_names = adata.obs_names
        self._observed_genes = np.flatnonzero(alignment.observed)  # vocabulary positions
        if check_counts:
            self._check_counts()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n_obs

    def _check_counts(self, n_rows: int = 64) -> None:
        rows = np.linspace(0, self.n_obs - 1, min(n_rows, self.n_obs)).astype(int)
        for i in rows:
            _, values = self.reader.row(int(i))
            if values.size and (np.any(values < 0) or not np.allclose(values, np.round(values))):
                raise CountsError(
                    f"{self.reader.where} of cell {self.obs_names[i]!r} holds non-integer or negative "
                    f"values (e.g. {values[:3].tolist()}): ScDiVa needs raw integer UMI counts, which "
                    "its negative-binomial decoder models and which it normalises itself. Pass "
                    "layer= naming the raw-counts layer (e.g. layer='counts').")

    def __getitem__(self, i: int) -> dict[str, Any]:
        cols, counts = self.reader.row(int(i))
        tokens = self.alignment.var_to_token[cols]
        keep = tokens >= 0
        tokens, counts = tokens[keep], counts[keep].astype(np.float32)
        library = float(counts.sum())
        values = np.log1p(counts / max(library, 1.0) * self.target_sum).astype(np.float32)

        rng = np.random.default_rng([self.seed, self.epoch + 1, int(i)])
        if tokens.size > self.max_tokens:
            # highest counts first; random tie-breaking among equal counts
            order = np.argsort(-(counts + rng.random(counts.size) * 0.5), kind="stable")[: self.max_tokens]
            chosen_tokens, chosen_values = tokens[order], values[order]
        else:
            chosen_tokens, chosen_values = tokens, values
        zeros = self._sample_unexpressed(tokens, rng)
        gene_ids = np.concatenate([[CLS_ID], chosen_tokens, zeros]).astype(np.int64)
        token_values = np.concatenate([[0.0], chosen_values, np.zeros(zeros.size)]).astype(np.float32)

        item: dict[str, Any] = {
            "gene_ids": gene_ids,
            "values": token_values,
            "count_index": (tokens - N_SPECIAL).astype(np.int64),  # vocabulary positions
            "count_values": counts,
            "library": library,
            "observed": self.alignment.observed,
            "index": int(i),
            "batch": -1 if self.batch is None else int(self.batch.codes[i]),
        }
        for task, enc in self.labels.items():
            item[f"label:{task}"] = int(enc.codes[i])
        return item

    def _sample_unexpressed(self, expressed_tokens: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.n_zero_tokens == 0 or self._observed_genes.size == 0:
            return np.empty(0, dtype=np.int64)
        candidates = rng.choice(self._observed_genes, size=min(self.n_zero_tokens * 2, self._observed_genes.size),
                                replace=False) + N_SPECIAL
        candidates = candidates[~np.isin(candidates, expressed_tokens)]
        return candidates[: self.n_zero_tokens].astype(np.int64)


@dataclass
class TokenBatch:
    """A padded batch of tokenised cells (tensors on one device)."""

    gene_ids: torch.Tensor          # (B, L) int64, PAD_ID where padded
    values: torch.Tensor            # (B, L) float32, log1p(normalised) expression
    padding_mask: torch.Tensor      # (B, L) bool, True where padded
    counts: torch.Tensor | None = None     # (B, n_genes) raw counts over the vocabulary
    observed: torch.Tensor | None = None   # (B, n_genes) bool, genes the source dataset measures
    library: torch.Tensor | None = None    # (B,) total counts over observed vocabulary genes
    batch: torch.Tensor | None = None      # (B,) int64 batch code (-1 unknown)
    labels: dict[str, torch.Tensor] = field(default_factory=dict)  # task -> (B,) int64 (-1 unknown)
    index: torch.Tensor | None = None      # (B,) cell index within the dataset

    def to(self, device: torch.device | str) -> TokenBatch:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return TokenBatch(move(self.gene_ids), move(self.values), move(self.padding_mask),
                          move(self.counts), move(self.observed), move(self.library), move(self.batch),
                          {k: move(v) for k, v in self.labels.items()}, move(self.index))

    def __len__(self) -> int:
        return self.gene_ids.shape[0]


def collate_cells(items: list[dict[str, Any]], n_genes: int, with_counts: bool = True) -> TokenBatch:
    """Pad token sequences to the longest in the batch; scatter counts to a (B, n_genes) matrix."""
    n = len(items)
    length = max(item["gene_ids"].size for item in items)
    gene_ids = torch.full((n, length), PAD_ID, dtype=torch.int64)
    values = torch.zeros((n, length), dtype=torch.float32)
    for row, item in enumerate(items):
        k = item["gene_ids"].size
        gene_ids[row, :k] = torch.from_numpy(item["gene_ids"])
        values[row, :k] = torch.from_numpy(item["values"])
    batch = TokenBatch(gene_ids=gene_ids, values=values, padding_mask=gene_ids == PAD_ID)
    batch.index = torch.tensor([item["index"] for item in items], dtype=torch.int64)
    batch.batch = torch.tensor([item["batch"] for item in items], dtype=torch.int64)
    if with_counts:
        counts = torch.zeros((n, n_genes), dtype=torch.float32)
        for row, item in enumerate(items):
            counts[row, torch.from_numpy(item["count_index"])] = torch.from_numpy(item["count_values"])
        batch.counts = counts
        batch.observed = torch.from_numpy(np.stack([item["observed"] for item in items]))
        batch.library = torch.tensor([item["library"] for item in items], dtype=torch.float32)
    label_keys = [k for k in items[0] if k.startswith("label:")]
    batch.labels = {k.removeprefix("label:"): torch.tensor([item[k] for item in items], dtype=torch.int64)
                    for k in label_keys}
    return batch
