"""Gene vocabulary, AnnData alignment and the tokenising dataset."""

from scdiva.data.dataset import CellCorpus, CellTokenDataset, CountsError, ObsEncoding, TokenBatch
from scdiva.data.vocab import GeneAlignment, GeneMismatchError, GeneVocab

__all__ = ["CellTokenDataset", "CountsError", "GeneAlignment", "GeneMismatchError", "GeneVocab",
           "ObsEncoding", "TokenBatch", "CellCorpus"]
