"""Gene vocabulary: ordered gene identifiers plus special tokens, and AnnData alignment."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from scdiva.genes import ENSEMBL_ID as _ENSEMBL  # one definition for the model and the benchmark

if TYPE_CHECKING:
    import anndata

#: special tokens come first so gene ``i`` of the vocabulary has token id ``i + N_SPECIAL``
SPECIAL_TOKENS = ("<pad>", "<cls>")
PAD_ID, CLS_ID = 0, 1
N_SPECIAL = len(SPECIAL_TOKENS)

#: var columns searched (after ``var_names``) when no ``gene_column`` is given
CANDIDATE_GENE_COLUMNS = ("gene_symbols", "gene_symbol", "symbol", "feature_name", "feature_id",
                          "gene_ids", "gene_id", "ensembl_id", "ensembl_ids")


def union_of_genes(gene_columns: Iterable[Iterable[object]]) -> list[str]:
    """The vocabulary of a corpus of several datasets: every gene of every dataset, in order of first
    appearance (what ``scdiva train`` builds a new model's vocabulary from)."""
    return list(dict.fromkeys(str(g) for column in gene_columns for g in column))


class GeneMismatchError(ValueError):
    """Too few of a dataset's genes are in the model's vocabulary."""


def is_ensembl_id(name: str) -> bool:
    return bool(_ENSEMBL.match(name))


def _strip_version(name: str) -> str:
    """``ENSG00000141510.17`` -> ``ENSG00000141510``; symbols unchanged."""
    return name.split(".", 1)[0] if is_ensembl_id(name) else name


@dataclass(frozen=True)
class GeneAlignment:
    """Where a dataset's genes sit in the vocabulary.

    ``var_to_token[j]`` is the token id of the dataset's gene ``j`` (``-1`` if not in the
    vocabulary); ``observed`` marks the vocabulary genes the dataset measures; ``coverage`` is the
    fraction of the dataset's genes found in the vocabulary.
    """

    var_to_token: np.ndarray
    observed: np.ndarray
    coverage: float
    n_matched: int
    column: str

    def summary(self) -> str:
        return (f"{self.n_matched:,} of the data's {self.var_to_token.size:,} genes are in the vocabulary of "
                f"{self.observed.size:,} ({self.coverage:.1%} coverage) using {self.column}")


class GeneVocab:
    """Ordered gene identifiers plus special tokens (``<pad>``, ``<cls>``).

    Each gene has a primary identifier (a symbol or an Ensembl id) and optionally an alias (the
    other kind), so a dataset indexed by either can be aligned. Ensembl version suffixes are
    ignored when matching.
    """

    def __init__(self, genes: Iterable[str], aliases: Iterable[str | None] | None = None):
        self.genes: list[str] = [str(g) for g in genes]
        if not self.genes:
            raise ValueError("a gene vocabulary needs at least one gene")
        duplicates = _duplicates(self.genes)
        if duplicates:
            raise ValueError(f"gene vocabulary has duplicate identifiers, e.g. {duplicates[:5]}; "
                             "make var_names unique first (adata.var_names_make_unique())")
        self.aliases: list[str | None] = (list(aliases) if aliases is not None
                                          else [None] * len(self.genes))
        if len(self.aliases) != len(self.genes):
            raise ValueError("aliases must have one entry per gene")
        self._index: dict[str, int] = {}
        for i, (gene, alias) in enumerate(zip(self.genes, self.aliases, strict=True)):
            for key in (gene, alias):
                if key is not None and str(key) != "nan":
                    self._index.setdefault(_strip_version(str(key)).upper(), i)
        self._keys = pd.Index(list(self._index))
        self._key_gene = np.fromiter(self._index.values(), dtype=np.int64, count=len(self._index))

    # ---------------------------------------------------------------- basics
    def __len__(self) -> int:
        return len(self.genes)

    @property
    def n_tokens(self) -> int:
        """Vocabulary size including the special tokens."""
        return len(self.genes) + N_SPECIAL

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GeneVocab) and self.genes == other.genes and self.aliases == other.aliases

    def __repr__(self) -> str:
        return f"GeneVocab({len(self):,} genes: {', '.join(self.genes[:3])}, ...)"

    def token_ids(self, names: Sequence[str]) -> np.ndarray:
        """Token id per name (``-1`` where the name is not in the vocabulary)."""
        # one string operation per name, then one indexed lookup: inference aligns the query on every call,
        # and a genome-wide panel has tens of thousands of genes
        keys = [(_strip_version(name) if "." in name else name).upper() for name in map(str, names)]
        position = self._keys.get_indexer(keys)
        return np.where(position >= 0, self._key_gene[position] + N_SPECIAL, -1).astype(np.int64)

    # ---------------------------------------------------------------- AnnData
    def align(self, adata: anndata.AnnData, gene_column: str | None = None,
              min_coverage: float = 0.5) -> GeneAlignment:
        """Map ``adata``'s genes onto the vocabulary.

        Coverage is the fraction of the *dataset's* genes that the vocabulary knows (a genome-wide
        vocabulary is never covered by one panel, but each of a panel's genes should be known).
        Without ``gene_column`` the var names are tried first, then common var columns (symbols or
        Ensembl ids), and the best match is used. Raises :class:`GeneMismatchError` if coverage
        is below ``min_coverage``, naming the column and examples of unknown genes.
        """
        candidates: list[tuple[str, Sequence[str]]]
        if gene_column is not None:
            if gene_column not in adata.var.columns:
                raise KeyError(f"gene_column {gene_column!r} is not a var column; available: "
                               f"{list(adata.var.columns)} (or leave it unset to use var_names)")
            candidates = [(f"var[{gene_column!r}]", adata.var[gene_column].astype(str).tolist())]
        else:
            candidates = [("var_names", adata.var_names.astype(str).tolist())]
            candidates += [(f"var[{c!r}]", adata.var[c].astype(str).tolist())
                           for c in CANDIDATE_GENE_COLUMNS if c in adata.var.columns]
        best: GeneAlignment | None = None
        for column, names in candidates:
            alignment = self._align_names(names, column)
            if best is None or alignment.n_matched > best.n_matched:
                best = alignment
        assert best is not None
        if best.coverage < min_coverage:
            names = dict(candidates)[best.column]
            unknown = [n for n, t in zip(names, best.var_to_token, strict=True) if t < 0][:8]
            raise GeneMismatchError(
                f"only {best.n_matched:,} of the data's {len(names):,} genes are in the model's "
                f"vocabulary of {len(self):,} ({best.coverage:.1%} < min_coverage={min_coverage:.0%}), "
                f"looking at {best.column}. Data genes the model does not know, e.g. {unknown}; its "
                f"vocabulary looks like {self.genes[:5]}. Pass gene_column= to use another var column "
                "(symbols and Ensembl ids are both matched), use a checkpoint pretrained on these genes "
                "(in the workflow: include the dataset in the checkpoint recipe's `datasets`), or lower "
                "min_coverage.")
        return best

    def _align_names(self, names: Sequence[str], column: str) -> GeneAlignment:
        var_to_token = self.token_ids(names)
        # a vocabulary gene named twice in the data (a symbol and its Ensembl id, say) keeps the first name only
        matched = np.flatnonzero(var_to_token >= 0)
        _, first = np.unique(var_to_token[matched], return_index=True)
        repeated = np.ones(matched.size, dtype=bool)
        repeated[first] = False
        var_to_token[matched[repeated]] = -1
        observed = np.zeros(len(self), dtype=bool)
        observed[var_to_token[var_to_token >= 0] - N_SPECIAL] = True
        n_matched = int(observed.sum())
        return GeneAlignment(var_to_token, observed, n_matched / max(len(names), 1), n_matched, column)

    # ---------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        out: dict = {"special_tokens": list(SPECIAL_TOKENS), "genes": self.genes}
        if any(a is not None for a in self.aliases):
            out["aliases"] = self.aliases
        return out

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> GeneVocab:
        values = json.loads(Path(path).read_text())
        if list(values.get("special_tokens", [])) != list(SPECIAL_TOKENS):
            raise ValueError(f"{path}: special tokens {values.get('special_tokens')} differ from "
                             f"this version's {list(SPECIAL_TOKENS)}")
        return cls(values["genes"], values.get("aliases"))


def _duplicates(names: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    dup: list[str] = []
    for n in names:
        if n in seen:
            dup.append(n)
        seen.add(n)
    return dup
