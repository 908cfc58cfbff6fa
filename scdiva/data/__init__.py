"""Gene vocabulary, AnnData alignment and the tokenising dataset."""

from scdiva.data.dataset import CellTokenDataset, CountsError, ObsEncoding, TokenBatch, collate_cells
from scdiva.data.vocab import GeneAlignment, GeneMismatchError, GeneVocab

__all__ = ["CellTokenDataset", "CountsError", "GeneAlignment", "GeneMismatchError", "GeneVocab",
           "ObsEncoding", "TokenBatch", "collate_cells"]
