import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scdiva.data.dataset import CellTokenDataset, CountsError, collate_cells
from scdiva.data.vocab import CLS_ID, N_SPECIAL, PAD_ID, GeneVocab


def _dataset(adata, layer=None, max_tokens=3, n_zero_tokens=2):
    vocab = GeneVocab(adata.var_names)
    return CellTokenDataset(adata, vocab, vocab.align(adata), max_tokens=max_tokens, n_zero_tokens=n_zero_tokens,
                            target_sum=1e4, layer=layer)


def _toy():
    counts = np.array([[5, 0, 1, 9, 0, 2, 0, 0], [0, 3, 0, 0, 0, 0, 0, 1]], dtype=np.float32)
    return ad.AnnData(sp.csr_matrix(counts), var=pd.DataFrame(index=[f"g{i}" for i in range(8)]))


def test_tokens_are_top_expressed_genes_plus_unexpressed_zeros():
    data = _toy()
    item = _dataset(data)[0]
    assert item["gene_ids"][0] == CLS_ID
    top = set(item["gene_ids"][1:4] - N_SPECIAL)
    assert top == {3, 0, 5}  # the three highest counts of cell 0 (9, 5, 2)
    zeros = item["gene_ids"][4:] - N_SPECIAL
    assert len(zeros) == 2 and not set(zeros) & {0, 2, 3, 5}
    np.testing.assert_allclose(item["values"][4:], 0.0)
    expected = np.log1p(np.array([9, 5, 2]) / 17 * 1e4)
    np.testing.assert_allclose(sorted(item["values"][1:4]), sorted(expected), rtol=1e-6)
    assert item["library"] == 17  # all expressed genes, not only the tokens


def test_collate_pads_and_scatters_counts():
    data = _toy()
    ds = _dataset(data, max_tokens=8, n_zero_tokens=0)
    batch = collate_cells([ds[0], ds[1]], n_genes=8)
    assert batch.gene_ids.shape == (2, 5)  # cls + 4 expressed genes of cell 0
    assert batch.padding_mask[1].tolist() == [False, False, False, True, True]
    assert (batch.gene_ids[batch.padding_mask] == PAD_ID).all()
    np.testing.assert_array_equal(batch.counts.numpy(), data.X.toarray())


def test_backed_file_and_counts_layer_give_the_same_tokens(tmp_path):
    data = _toy()
    data.layers["counts"] = data.X.copy()
    data.X = sp.csr_matrix(np.log1p(data.X.toarray()))  # workflow convention: X log-normalised
    data.write_h5ad(tmp_path / "toy.h5ad")
    backed = ad.read_h5ad(tmp_path / "toy.h5ad", backed="r")
    in_memory, on_disk = _dataset(data, layer="counts"), _dataset(backed, layer="counts")
    assert not isinstance(on_disk.reader.matrix, np.ndarray | sp.spmatrix)  # rows are read from disk
    for i in range(2):
        a, b = in_memory[i], on_disk[i]
        np.testing.assert_array_equal(a["gene_ids"], b["gene_ids"])
        np.testing.assert_array_equal(a["values"], b["values"])


def test_non_integer_values_raise_a_clear_error():
    data = _toy()
    data.X = sp.csr_matrix(np.log1p(data.X.toarray()))
    with pytest.raises(CountsError, match=r"raw integer UMI counts.*layer="):
        _dataset(data)


def test_sampling_is_reproducible_per_epoch():
    ds = _dataset(_toy())
    ds.set_epoch(3)
    first = ds[0]["gene_ids"].copy()
    ds.set_epoch(4)
    ds.set_epoch(3)
    np.testing.assert_array_equal(ds[0]["gene_ids"], first)


def test_backed_reading_keeps_memory_far_below_the_matrix_size(tmp_path):
    import tracemalloc

    rng = np.random.default_rng(0)
    counts = sp.random(20_000, 500, density=0.1, format="csr", random_state=0,
                       data_rvs=lambda k: rng.integers(1, 20, k)).astype(np.float32)
    matrix_bytes = counts.data.nbytes + counts.indices.nbytes + counts.indptr.nbytes  # ~8 MB
    ad.AnnData(counts, var=pd.DataFrame(index=[f"g{i}" for i in range(500)])).write_h5ad(tmp_path / "big.h5ad")
    del counts
    backed = ad.read_h5ad(tmp_path / "big.h5ad", backed="r")
    tracemalloc.start()
    try:
        ds = _dataset(backed, max_tokens=64, n_zero_tokens=8)
        for i in range(0, 20_000, 200):
            assert ds[i]["gene_ids"].size > 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.1 * matrix_bytes, (peak, matrix_bytes)
