import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scdiva.data.vocab import N_SPECIAL, GeneMismatchError, GeneVocab


def _adata(var_names, var=None):
    return ad.AnnData(sp.csr_matrix(np.ones((2, len(var_names)), dtype=np.float32)),
                      var=pd.DataFrame(var or {}, index=var_names))


def test_alignment_maps_genes_and_reports_coverage():
    vocab = GeneVocab(["CD3E", "LYZ", "MS4A1", "NKG7"])
    alignment = vocab.align(_adata(["NKG7", "OTHER", "CD3E"]), min_coverage=0.5)
    assert alignment.var_to_token.tolist() == [3 + N_SPECIAL, -1, 0 + N_SPECIAL]
    assert alignment.coverage == pytest.approx(2 / 3)  # of the data's genes
    assert alignment.observed.tolist() == [True, False, False, True]


def test_ensembl_ids_with_versions_and_symbol_aliases_both_match():
    vocab = GeneVocab(["ENSG00000198851", "ENSG00000090382"], aliases=["CD3E", "LYZ"])
    by_id = vocab.align(_adata(["ENSG00000090382.12", "ENSG00000198851.9"]))
    by_symbol = vocab.align(_adata(["LYZ", "CD3E"]))
    assert by_id.var_to_token.tolist() == by_symbol.var_to_token.tolist() == [1 + N_SPECIAL, 0 + N_SPECIAL]


def test_a_gene_named_twice_in_the_data_is_matched_once_and_dotted_symbols_keep_their_dot():
    vocab = GeneVocab(["ENSG00000198851", "RP11-34P13.3"], aliases=["CD3E", None])
    alignment = vocab.align(_adata(["cd3e", "RP11-34P13.3", "ENSG00000198851.9", "RP11-34P13"]))
    # the Ensembl id names CD3E again: only its first name (the lower-case symbol) gets the token
    assert alignment.var_to_token.tolist() == [0 + N_SPECIAL, 1 + N_SPECIAL, -1, -1]
    assert alignment.n_matched == 2


def test_alignment_finds_a_var_column_when_var_names_do_not_match():
    vocab = GeneVocab(["CD3E", "LYZ"])
    data = _adata(["ENSG00000198851", "ENSG00000090382"], var={"gene_symbols": ["CD3E", "LYZ"]})
    alignment = vocab.align(data)
    assert alignment.column == "var['gene_symbols']" and alignment.coverage == 1.0


def test_gene_mismatch_error_names_column_and_missing_genes():
    vocab = GeneVocab([f"GENE{i}" for i in range(10)])
    with pytest.raises(GeneMismatchError) as err:
        vocab.align(_adata(["GENE0", "FOO", "BAR"]), min_coverage=0.5)
    message = str(err.value)
    assert "var_names" in message and "GENE0" in message and "33.3%" in message and "FOO" in message


def test_vocab_save_load_round_trip_and_duplicates(tmp_path):
    vocab = GeneVocab(["A", "B"], aliases=["ENSG00000000001", None])
    vocab.save(tmp_path / "vocab.json")
    assert GeneVocab.load(tmp_path / "vocab.json") == vocab
    with pytest.raises(ValueError, match="duplicate"):
        GeneVocab(["A", "B", "A"])
