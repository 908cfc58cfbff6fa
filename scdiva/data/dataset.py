"""Cells of an AnnData (in memory or backed h5ad) as batches of raw counts over the vocabulary.

A batch is read in one vectorised step: the cells' CSR rows are sliced, mapped onto the model's
gene vocabulary with one sparse product, and densified for those cells only (never the whole
matrix). Turning counts into gene tokens happens in torch, inside the network
(:mod:`scdiva.module.tokenizer`), so there is no per-cell Python loop at training or inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch

from scdiva.data.vocab import N_SPECIAL, GeneAlignment, GeneVocab

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
        missing = values.isna().to_numpy()
        as_text = values.astype(str).to_numpy()
        if categories is None:
            categories = sorted(set(as_text[~missing]))
            if not categories:
                raise ValueError(f"{what} {key!r} has no non-missing values")
        lookup = {c: i for i, c in enumerate(categories)}
        codes = np.array([-1 if gone else lookup.get(v, -1) for v, gone in zip(as_text, missing, strict=True)],
                         dtype=np.int64)
        return cls(key, list(categories), codes)


def default_counts_layer(adata: anndata.AnnData) -> str | None:
    """``"counts"`` if the AnnData has that layer (the workflow's convention), else ``None`` (X)."""
    return "counts" if "counts" in adata.layers else None


class _RowReader:
    """Reads rows from ``X`` or a layer, in memory or backed, as CSR, without densifying the matrix.

    Backed CSR files are read straight through h5py: only ``indptr`` (one integer per cell) is
    held in memory; a batch's ``data``/``indices`` slices are read on demand.
    """

    def __init__(self, adata: anndata.AnnData, layer: str | None):
        self.where = "X" if layer is None else f"layers[{layer!r}]"
        self.backed = adata.isbacked
        self.n_vars = adata.n_vars
        if self.backed:
            self._open_backed(adata.filename, "X" if layer is None else f"layers/{layer}")
            # a view of a backed file (adata[300:600], a gene subset) names rows and columns of the file
            # through anndata's index into its root object; without them row 0 of the view is row 0 on disk
            root = adata._adata_ref if adata.is_view else adata
            self._file_rows = np.arange(root.n_obs)[adata._oidx] if adata.is_view else None
            self._file_cols = np.arange(root.n_vars)[adata._vidx] if adata.is_view else None
            self._file_n_vars = root.n_vars
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
        if isinstance(node, h5py.Dataset):  # dense on disk: rows are read one block at a time
            self.matrix = node
            self._indptr = None
        elif encoding == "csr_matrix":
            self.matrix = node
            self._indptr = node["indptr"][:]
            self._data, self._indices = node["data"], node["indices"]
        else:
            raise ValueError(f"{self.where} of {filename} is stored as {encoding}; backed reading needs CSR "
                             "(rows of cells). Convert it (adata.X = scipy.sparse.csr_matrix(adata.X)) and rewrite")

    def rows(self, index: np.ndarray) -> sp.csr_matrix:
        """Rows ``index`` (in that order) as a CSR matrix."""
        index = np.asarray(index, dtype=np.int64)
        if not self.backed:
            m = self.matrix
            return m[index].tocsr() if sp.issparse(m) else sp.csr_matrix(np.asarray(m[index]))
        block = self._file_rows_csr(index if self._file_rows is None else self._file_rows[index])
        return block if self._file_cols is None else block[:, self._file_cols]

    def _file_rows_csr(self, index: np.ndarray) -> sp.csr_matrix:
        """Rows ``index`` of the matrix on disk (all its columns)."""
        n_vars = self._file_n_vars
        if self._indptr is None:
            order = np.argsort(index)  # h5py fancy indexing wants increasing indices
            block = np.asarray(self.matrix[np.sort(index)])
            restored = np.empty_like(block)
            restored[order] = block
            return sp.csr_matrix(restored)
        lo, hi = int(index.min()), int(index.max()) + 1
        if hi - lo <= 4 * index.size:  # a compact range (inference, chunks): one read of the block
            start, end = self._indptr[lo], self._indptr[hi]
            block = sp.csr_matrix((self._data[start:end], self._indices[start:end], self._indptr[lo:hi + 1] - start),
                                  shape=(hi - lo, n_vars))
            return block[index - lo]
        # scattered rows (cells drawn at random for training): one read per row, in file order, assembled
        # with numpy (a scipy matrix per row and a vstack cost 4x the reads themselves)
        order = np.argsort(index, kind="stable")
        starts, ends = self._indptr[index[order]], self._indptr[index[order] + 1]
        data = np.concatenate([self._data[a:b] for a, b in zip(starts, ends, strict=True)])
        indices = np.concatenate([self._indices[a:b] for a, b in zip(starts, ends, strict=True)])
        indptr = np.concatenate([[0], np.cumsum(ends - starts)])
        block = sp.csr_matrix((data, indices, indptr), shape=(index.size, n_vars))
        return block[np.argsort(order)]  # back to the order asked for


@dataclass
class TokenBatch:
    """A batch of cells (tensors on one device).

    ``counts``/``observed``/``library`` are what the data provide; ``gene_ids``, ``values`` and
    ``padding_mask`` are the gene tokens made from them by :func:`scdiva.module.tokenizer.tokenize`
    (filled in by the network when absent).
    """

    counts: torch.Tensor                   # (B, n_genes) raw counts over the vocabulary
    observed: torch.Tensor                 # (B, n_genes) bool, genes the source dataset measures
    library: torch.Tensor                  # (B,) total counts over observed vocabulary genes
    batch: torch.Tensor | None = None      # (B,) int64 batch code (-1 unknown)
    labels: dict[str, torch.Tensor] = field(default_factory=dict)  # task -> (B,) int64 (-1 unknown)
    index: torch.Tensor | None = None      # (B,) cell index within the dataset
    gene_ids: torch.Tensor | None = None   # (B, L) int64 token ids, PAD_ID where padded
    values: torch.Tensor | None = None     # (B, L) float32, log1p(normalised) expression per token
    padding_mask: torch.Tensor | None = None  # (B, L) bool, True where padded
    protein: torch.Tensor | None = None    # (B, n_proteins) raw protein counts (optional modality)

    def to(self, device: torch.device | str) -> TokenBatch:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return TokenBatch(move(self.counts), move(self.observed), move(self.library), move(self.batch),
                          {k: move(v) for k, v in self.labels.items()}, move(self.index), move(self.gene_ids),
                          move(self.values), move(self.padding_mask), move(self.protein))

    def __len__(self) -> int:
        return self.counts.shape[0]


class CellTokenDataset:
    """Cells of an AnnData as batches of vocabulary counts (see the module docstring).

    Parameters
    ----------
    adata
        Cells x genes; ``X`` or ``layers[layer]`` must hold raw integer counts (the negative
        binomial decoder models counts; the network normalises and log-transforms them itself).
    vocab, alignment
        The model's gene vocabulary and this dataset's alignment to it.
    layer
        Layer with the counts (``None``: ``X``).
    batch, labels
        Encoded batch covariate and label columns (:class:`ObsEncoding`), optional.
    """

    def __init__(self, adata: anndata.AnnData, vocab: GeneVocab, alignment: GeneAlignment, *,
                 layer: str | None = None, batch: ObsEncoding | None = None,
                 labels: dict[str, ObsEncoding] | None = None, check_counts: bool = True,
                 protein: np.ndarray | None = None):
        self.reader = _RowReader(adata, layer)
        self.protein = protein  # (n_obs, n_proteins) raw counts of the optional protein modality
        self.vocab = vocab
        self.alignment = alignment
        self.batch = batch
        self.labels = labels or {}
        self.n_obs = adata.n_obs
        self.obs_names = adata.obs_names
        # dataset gene -> vocabulary position (-1: not in the vocabulary)
        self._var_to_column = np.where(alignment.var_to_token >= 0, alignment.var_to_token - N_SPECIAL, -1).astype(np.int32)
        self._all_genes_in_vocab = bool((self._var_to_column >= 0).all())
        self._observed = torch.from_numpy(alignment.observed)
        if check_counts:
            self._check_counts()

    def __len__(self) -> int:
        return self.n_obs

    def _check_counts(self, n_rows: int = 64) -> None:
        rows = np.unique(np.linspace(0, self.n_obs - 1, min(n_rows, self.n_obs)).astype(int))
        sample = self.reader.rows(rows)
        values = sample.data
        wrong = (values < 0) | ~np.isclose(values, np.round(values))
        if wrong.any():
            entry_row = np.repeat(np.arange(rows.size), np.diff(sample.indptr))
            bad = int(rows[entry_row[np.flatnonzero(wrong)[0]]])
            raise CountsError(
                f"{self.reader.where} of cell {self.obs_names[bad]!r} holds non-integer or negative values "
                f"(e.g. {values[:3].tolist()}): ScDiVa needs raw integer UMI counts, which its "
                "negative-binomial decoder models and which it normalises itself. Pass layer= naming the "
                "raw-counts layer (e.g. layer='counts').")

    def batch_of(self, index: Sequence[int] | np.ndarray) -> TokenBatch:
        """The cells ``index`` (dataset positions, in that order) as a :class:`TokenBatch`."""
        index = np.asarray(index, dtype=np.int64)
        counts = self._vocabulary_counts(self.reader.rows(index))
        labels = {task: torch.from_numpy(enc.codes[index]) for task, enc in self.labels.items()}
        return TokenBatch(
            counts=counts,
            observed=self._observed.unsqueeze(0).expand(len(index), -1),
            library=counts.sum(1),
            batch=torch.from_numpy(self.batch.codes[index]) if self.batch is not None
            else torch.full((len(index),), -1, dtype=torch.int64),
            labels=labels,
            index=torch.from_numpy(index),
            protein=None if self.protein is None else torch.from_numpy(self.protein[index]),
        )

    def _vocabulary_counts(self, rows: sp.csr_matrix) -> torch.Tensor:
        """Dense ``(n_rows, n_genes)`` float32 counts over the vocabulary of CSR rows over the dataset's genes.

        The entries' column indices are renumbered to vocabulary positions and the matrix densified, which
        adds up entries that share a position (a gene stored twice in a row). 5x faster than a sparse product
        with a gene-mapping matrix (256 cells of the human pancreas: 0.28 against 1.36 ms).
        """
        columns, data = self._var_to_column.take(rows.indices), rows.data.astype(np.float32, copy=False)
        if not self._all_genes_in_vocab:  # genes outside the vocabulary add 0 to its first position
            outside = columns < 0
            columns, data = np.where(outside, 0, columns), np.where(outside, np.float32(0), data)
        remapped = sp.csr_matrix((data, columns, rows.indptr), shape=(rows.shape[0], len(self.vocab)))
        return torch.from_numpy(remapped.toarray())


class CellCorpus:
    """Several :class:`CellTokenDataset` (e.g. one per AnnData) addressed by one global index."""

    def __init__(self, datasets: Sequence[CellTokenDataset]):
        if not datasets:
            raise ValueError("a corpus needs at least one dataset")
        self.datasets = list(datasets)
        self.offsets = np.cumsum([0] + [len(d) for d in self.datasets])
        label_sets = {tuple(sorted(d.labels)) for d in self.datasets}
        if len(label_sets) > 1:
            raise ValueError(f"datasets of one corpus must carry the same label tasks, got {label_sets}")

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def batch_of(self, index: Sequence[int] | np.ndarray) -> TokenBatch:
        index = np.asarray(index, dtype=np.int64)
        if len(self.datasets) == 1:
            return self.datasets[0].batch_of(index)
        owner = np.searchsorted(self.offsets, index, side="right") - 1
        parts, positions = [], []
        for d in np.unique(owner):
            where = np.flatnonzero(owner == d)
            parts.append(self.datasets[d].batch_of(index[where] - self.offsets[d]))
            positions.append(where)
        order = torch.from_numpy(np.argsort(np.concatenate(positions)))
        merged = concat_batches(parts)
        return _take(merged, order, index)

    def fingerprint(self) -> str:
        """A digest of the cells (names, in order) and the vocabulary: what a resumed run must match."""
        import hashlib

        digest = hashlib.sha256()
        for dataset in self.datasets:
            digest.update("\x1f".join(map(str, dataset.obs_names)).encode())
            digest.update(b"\x1e")
        digest.update("\x1f".join(self.datasets[0].vocab.genes).encode())
        return digest.hexdigest()[:16]

    def label_codes(self, task: str) -> np.ndarray:
        """Label codes of every cell of the corpus for ``task`` (-1: unlabelled)."""
        return np.concatenate([d.labels[task].codes for d in self.datasets])


def thin_counts(batch: TokenBatch, min_fraction: float) -> TokenBatch:
    """``batch`` with each cell's counts binomially thinned to a fraction ``r ~ U(min_fraction, 1)``
    (drawn with the global torch RNG): the counts a shallower sequencing of the same cell would give,
    since each molecule is kept independently with probability ``r``. The library shrinks by the
    fraction of vocabulary counts kept. As a training augmentation (``count_thinning``) it keeps a
    model from reading sequencing depth, which differs between batches (the PBMC query chemistry,
    3' v1, has about half the counts per cell of 3' v2 and 5'); measured in docs/model.md."""
    n_cells = batch.counts.shape[0]
    keep = min_fraction + (1.0 - min_fraction) * torch.rand(n_cells, 1, device=batch.counts.device)
    thinned = torch.binomial(batch.counts, keep.expand_as(batch.counts))
    before = batch.counts.sum(1).clamp(min=1.0)
    library = batch.library * thinned.sum(1) / before
    return replace(batch, counts=thinned, library=library, gene_ids=None, values=None, padding_mask=None)


def concat_batches(parts: Sequence[TokenBatch]) -> TokenBatch:
    """Rows of several batches stacked (tokens are not carried over: they are made per batch)."""
    return TokenBatch(
        counts=torch.cat([p.counts for p in parts]),
        observed=torch.cat([p.observed for p in parts]),
        library=torch.cat([p.library for p in parts]),
        batch=torch.cat([p.batch for p in parts]),
        labels={k: torch.cat([p.labels[k] for p in parts]) for k in parts[0].labels},
        index=torch.cat([p.index for p in parts]),
    )


def _take(batch: TokenBatch, order: torch.Tensor, global_index: np.ndarray) -> TokenBatch:
    return TokenBatch(counts=batch.counts[order], observed=batch.observed[order], library=batch.library[order],
                      batch=batch.batch[order], labels={k: v[order] for k, v in batch.labels.items()},
                      index=torch.from_numpy(global_index))


def gene_statistics(corpus: CellCorpus, n_genes: int, target_sum: float, *, max_cells: int = 20_000,
                    chunk: int = 1_024, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per vocabulary gene: median of the non-zero normalised expression (``count / library *
    target_sum``) and its mean over the cells whose dataset measures the gene.

    Computed on at most ``max_cells`` cells (a seeded random subset), in chunks. Genes no cell
    measures or expresses get a median of 1 and a mean of 0 (the tokenizer then ranks them by
    their plain normalised value and never samples them as unexpressed tokens).
    """
    n = len(corpus)
    cells = np.arange(n) if n <= max_cells else np.sort(np.random.default_rng(seed).choice(n, max_cells, replace=False))
    total = np.zeros(n_genes)
    measured = np.zeros(n_genes)
    genes, values = [], []
    for start in range(0, cells.size, chunk):
        batch = corpus.batch_of(cells[start:start + chunk])
        normalised = (batch.counts / batch.library.clamp(min=1.0).unsqueeze(-1) * target_sum).numpy()
        total += normalised.sum(0)
        measured += batch.observed.numpy().sum(0)
        rows, cols = np.nonzero(normalised)
        genes.append(cols)
        values.append(normalised[rows, cols])
    genes_all, values_all = np.concatenate(genes), np.concatenate(values)
    order = np.lexsort((values_all, genes_all))
    genes_all, values_all = genes_all[order], values_all[order]
    starts = np.searchsorted(genes_all, np.arange(n_genes), side="left")
    ends = np.searchsorted(genes_all, np.arange(n_genes), side="right")
    median = np.ones(n_genes)
    has = ends > starts
    lo, hi = starts[has] + (ends[has] - starts[has] - 1) // 2, starts[has] + (ends[has] - starts[has]) // 2
    median[has] = 0.5 * (values_all[lo] + values_all[hi])
    mean = np.divide(total, measured, out=np.zeros(n_genes), where=measured > 0)
    return torch.from_numpy(median.astype(np.float32)), torch.from_numpy(mean.astype(np.float32))
