import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from scdiva.data.dataset import CellCorpus, CellTokenDataset, CountsError, gene_statistics
from scdiva.data.vocab import CLS_ID, N_SPECIAL, PAD_ID, GeneVocab
from scdiva.module.tokenizer import UNEXPRESSED_SEARCH_GENES, tokenize


def _dataset(adata, layer=None, vocab=None):
    vocab = vocab or GeneVocab(adata.var_names)
    return CellTokenDataset(adata, vocab, vocab.align(adata), layer=layer)


def _toy():
    counts = np.array([[5, 0, 1, 9, 0, 2, 0, 0], [0, 3, 0, 0, 0, 0, 0, 1]], dtype=np.float32)
    return ad.AnnData(sp.csr_matrix(counts), var=pd.DataFrame(index=[f"g{i}" for i in range(8)]))


def _tokens(batch, max_tokens=3, n_zero_tokens=2, selection="top_count", median=None, mean=None, training=False):
    n = batch.counts.shape[1]
    return tokenize(batch.counts, batch.observed, batch.library, max_tokens=max_tokens, n_zero_tokens=n_zero_tokens,
                    target_sum=1e4, selection=selection,
                    gene_median=torch.ones(n) if median is None else median,
                    gene_mean=torch.arange(n, dtype=torch.float32) + 1 if mean is None else mean, training=training)


def test_batch_scatters_counts_onto_the_vocabulary_in_its_order():
    data = _toy()
    # the vocabulary lists the genes in another order and knows one gene the data lacks
    vocab = GeneVocab(["g7", "g3", "g0", "gX", "g1"])
    ds = CellTokenDataset(data, vocab, vocab.align(data, min_coverage=0.5))
    batch = ds.batch_of([1, 0])
    np.testing.assert_array_equal(batch.counts.numpy(), [[1, 0, 0, 0, 3], [0, 9, 5, 0, 0]])
    assert batch.observed[0].tolist() == [True, True, True, False, True]
    assert batch.library.tolist() == [4, 14]  # counts of vocabulary genes only
    assert batch.index.tolist() == [1, 0]


def test_a_gene_stored_twice_in_a_row_adds_up():
    # non-canonical CSR (as some writers leave it): cell 0 stores gene 1 twice, plus a gene outside the vocabulary
    matrix = sp.csr_matrix((np.array([2, 3, 4, 7], dtype=np.float32), np.array([1, 1, 0, 2]), np.array([0, 3, 4])),
                           shape=(2, 3))
    data = ad.AnnData(matrix, var=pd.DataFrame(index=["a", "b", "c"]))
    vocab = GeneVocab(["b", "a"])
    batch = CellTokenDataset(data, vocab, vocab.align(data, min_coverage=0.5)).batch_of([0, 1])
    np.testing.assert_array_equal(batch.counts.numpy(), [[5, 4], [0, 0]])
    assert batch.library.tolist() == [9, 0]


def test_tokens_are_top_expressed_genes_plus_unexpressed_zeros():
    batch = _dataset(_toy()).batch_of([0, 1])
    gene_ids, values, padding = _tokens(batch)
    assert gene_ids[0, 0] == CLS_ID
    assert set((gene_ids[0, 1:4] - N_SPECIAL).tolist()) == {3, 0, 5}  # counts 9, 5, 2
    np.testing.assert_allclose(sorted(values[0, 1:4].tolist()), sorted(np.log1p(np.array([9, 5, 2]) / 17 * 1e4)),
                               rtol=1e-6)
    # unexpressed tokens: measured, zero, highest corpus mean first (genes 7 and 6 here), value 0
    assert (gene_ids[0, 4:] - N_SPECIAL).tolist() == [7, 6]
    assert values[0, 4:].tolist() == [0.0, 0.0]
    # cell 1 expresses 2 genes: its third token slot is padding
    assert gene_ids[1, 3] == PAD_ID and padding[1, 3] and not padding[1, :3].any()


def test_median_normalised_selection_demotes_genes_high_in_every_cell():
    # gene 0 is high in every cell (housekeeping); gene 1 is modest but far above its own median
    counts = torch.tensor([[100.0, 10.0, 20.0], [100.0, 1.0, 20.0], [100.0, 1.0, 20.0]])
    batch = type("B", (), {})()
    batch.counts, batch.observed, batch.library = counts, torch.ones_like(counts, dtype=torch.bool), counts.sum(1)
    by_count, _, _ = _tokens(batch, max_tokens=1, n_zero_tokens=0)
    assert (by_count[0, 1] - N_SPECIAL).item() == 0
    vocab = GeneVocab(["a", "b", "c"])
    corpus = CellCorpus([_dataset(ad.AnnData(sp.csr_matrix(counts.numpy()), var=pd.DataFrame(index=["a", "b", "c"])),
                                  vocab=vocab)])
    median, mean = gene_statistics(corpus, 3, 1e4)
    by_rank, _, _ = _tokens(batch, max_tokens=1, n_zero_tokens=0, selection="median_normalised", median=median,
                            mean=mean)
    assert (by_rank[0, 1] - N_SPECIAL).item() == 1


def test_gene_statistics_are_median_of_nonzero_and_mean_over_measured_cells():
    counts = np.array([[1, 0, 3], [3, 0, 1], [0, 0, 4]], dtype=np.float32)
    data = ad.AnnData(sp.csr_matrix(counts), var=pd.DataFrame(index=["a", "b", "c"]))
    corpus = CellCorpus([_dataset(data)])
    median, mean = gene_statistics(corpus, 3, target_sum=4.0)
    normalised = counts / counts.sum(1, keepdims=True) * 4.0  # rows sum to 4: [1,0,3], [3,0,1], [0,0,4]
    assert median.tolist() == pytest.approx([2.0, 1.0, 3.0])  # gene b is never expressed: neutral 1
    assert mean.tolist() == pytest.approx(normalised.mean(0).tolist())


def test_training_mode_samples_but_inference_is_deterministic():
    batch = _dataset(_toy()).batch_of([0, 1])
    first = _tokens(batch)[0]
    assert torch.equal(first, _tokens(batch)[0])
    torch.manual_seed(0)
    draws = {tuple(_tokens(batch, n_zero_tokens=1, training=True)[0][0, 4:].tolist()) for _ in range(30)}
    assert len(draws) > 1  # unexpressed tokens are sampled in training


def test_wide_panels_take_the_highest_keys_exactly():
    # 200 genes, 8 tokens: the panel width at which the top-k runs on zero-padded rows (scdiva.module.tokenizer._top_k)
    generator = torch.Generator().manual_seed(0)
    counts = torch.poisson(torch.rand(64, 200, generator=generator) * 0.3, generator=generator)
    counts[0] = 0.0
    counts[0, [5, 199]] = 3.0  # a cell with fewer expressed genes than tokens
    observed = torch.rand(64, 200, generator=generator) > 0.1
    observed[0, [5, 199]] = True
    counts = counts * observed
    batch = type("B", (), {})()
    batch.counts, batch.observed, batch.library = counts, observed, counts.sum(1)
    mean = torch.rand(200, generator=generator)
    gene_ids, _, padding = _tokens(batch, max_tokens=8, n_zero_tokens=3, mean=mean)
    for cell in range(64):
        top_counts = sorted(counts[cell][counts[cell] > 0].tolist(), reverse=True)[:8]  # genes tie, counts do not
        available = [g for g in range(200) if observed[cell, g] and counts[cell, g] == 0]
        zeros = sorted(available, key=lambda g: -mean[g].item())[:3]
        tokens = gene_ids[cell][~padding[cell]][1:] - N_SPECIAL
        k = len(top_counts)
        assert len(set(tokens[:k].tolist())) == k
        assert sorted(counts[cell, tokens[:k]].tolist(), reverse=True) == top_counts
        assert tokens[k:].tolist() == zeros
    assert padding[0].tolist() == [False] * 3 + [True] * 6 + [False] * 3


def test_training_samples_unexpressed_tokens_in_proportion_to_the_gene_mean():
    # one cell repeated: genes 1-3 are unexpressed with corpus means 1, 2 and 5
    counts = torch.tensor([[4.0, 0.0, 0.0, 0.0]]).repeat(20_000, 1)
    batch = type("B", (), {})()
    batch.counts, batch.observed, batch.library = counts, torch.ones_like(counts, dtype=torch.bool), counts.sum(1)
    torch.manual_seed(0)
    gene_ids, _, _ = _tokens(batch, max_tokens=1, n_zero_tokens=1, mean=torch.tensor([9.0, 1.0, 2.0, 5.0]),
                             training=True)
    share = torch.bincount(gene_ids[:, 2] - N_SPECIAL, minlength=4).float() / len(counts)
    assert share.tolist() == pytest.approx([0.0, 1 / 8, 2 / 8, 5 / 8], abs=0.01)


def test_backed_file_and_counts_layer_give_the_same_batches(tmp_path):
    data = _toy()
    data.layers["counts"] = data.X.copy()
    data.X = sp.csr_matrix(np.log1p(data.X.toarray()))  # workflow convention: X log-normalised
    data.write_h5ad(tmp_path / "toy.h5ad")
    backed = ad.read_h5ad(tmp_path / "toy.h5ad", backed="r")
    in_memory, on_disk = _dataset(data, layer="counts"), _dataset(backed, layer="counts")
    assert on_disk.reader.backed
    for index in ([0, 1], [1, 0], [1]):
        np.testing.assert_array_equal(in_memory.batch_of(index).counts, on_disk.batch_of(index).counts)


def test_views_of_a_backed_file_read_their_own_rows_and_genes(tmp_path):
    rng = np.random.default_rng(1)
    counts = sp.csr_matrix(rng.poisson(2.0, size=(30, 12)).astype(np.float32))
    full = ad.AnnData(counts, var=pd.DataFrame(index=[f"g{i}" for i in range(12)]))
    full.write_h5ad(tmp_path / "cells.h5ad")
    backed = ad.read_h5ad(tmp_path / "cells.h5ad", backed="r")
    genes = GeneVocab(full.var_names)
    for rows, cols in ((slice(10, 20), slice(None)), ([7, 3, 25], slice(None)), (slice(5, 25), [11, 0, 4, 5])):
        view, in_memory = backed[rows, cols], full[rows, cols].copy()
        expected = _dataset(in_memory, vocab=genes).batch_of([0, 2, 1]).counts
        np.testing.assert_array_equal(_dataset(view, vocab=genes).batch_of([0, 2, 1]).counts, expected)


def test_scattered_rows_of_a_backed_file_come_back_in_the_order_asked(tmp_path):
    """Training draws cells at random (with repeats under class balancing): rows far apart on disk,
    empty rows and repeats come back as asked."""
    rng = np.random.default_rng(2)
    dense = rng.poisson(0.5, size=(400, 9)).astype(np.float32)
    dense[[5, 300]] = 0  # cells with no counts in these genes
    full = ad.AnnData(sp.csr_matrix(dense), var=pd.DataFrame(index=[f"g{i}" for i in range(9)]))
    full.write_h5ad(tmp_path / "cells.h5ad")
    genes = GeneVocab(full.var_names)
    on_disk = _dataset(ad.read_h5ad(tmp_path / "cells.h5ad", backed="r"), vocab=genes)
    for index in ([399, 5, 0, 200, 5, 300], rng.choice(400, 64).tolist()):
        np.testing.assert_array_equal(on_disk.batch_of(index).counts.numpy(), dense[index])


def test_non_integer_values_raise_a_clear_error():
    data = _toy()
    data.X = sp.csr_matrix(np.log1p(data.X.toarray()))
    with pytest.raises(CountsError, match=r"cell '0'.*raw integer UMI counts.*layer="):
        _dataset(data)


def test_corpus_of_two_datasets_keeps_the_requested_order():
    a, b = _toy(), _toy()
    b.X = b.X * 2
    vocab = GeneVocab(a.var_names)
    corpus = CellCorpus([_dataset(a, vocab=vocab), _dataset(b, vocab=vocab)])
    batch = corpus.batch_of([3, 0, 2])
    np.testing.assert_array_equal(batch.counts.numpy(), np.vstack([b.X[1].toarray(), a.X[0].toarray(),
                                                                   b.X[0].toarray()]))
    assert batch.index.tolist() == [3, 0, 2]


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
        ds = _dataset(backed)
        for start in range(0, 20_000, 1_000):
            assert ds.batch_of(np.arange(start, start + 100)).counts.sum() > 0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.1 * matrix_bytes, (peak, matrix_bytes)


def test_thinning_keeps_a_binomial_share_of_each_cells_counts():
    from scdiva.data.dataset import TokenBatch, thin_counts

    torch.manual_seed(0)
    counts = torch.poisson(torch.full((400, 300), 3.0))
    batch = TokenBatch(counts, torch.ones_like(counts, dtype=torch.bool), counts.sum(1) * 1.25,
                       gene_ids=torch.zeros(400, 5, dtype=torch.long))
    thinned = thin_counts(batch, 0.3)
    kept = thinned.counts.sum(1) / counts.sum(1)
    assert bool((thinned.counts <= counts).all()) and torch.equal(thinned.counts, thinned.counts.round())
    assert 0.25 < float(kept.min()) and float(kept.max()) <= 1.0
    assert float(kept.mean()) == pytest.approx(0.65, abs=0.03)  # r ~ U(0.3, 1)
    # the library shrinks with the counts kept; tokens are made again from the thinned counts
    assert torch.allclose(thinned.library, batch.library * kept)
    assert thinned.gene_ids is None and batch.gene_ids is not None
    assert torch.equal(thin_counts(batch, 1.0).counts, counts)


def test_inference_takes_the_unexpressed_genes_of_highest_mean_beyond_the_first_candidates():
    # wider than twice the candidate list, so inference searches the genes of highest mean first
    # (scdiva.module.tokenizer._top_unexpressed); cell 1 expresses every candidate but one and cell 2
    # every measured gene but two, so both need the search over the whole panel
    n_genes, n_zero = 3 * UNEXPRESSED_SEARCH_GENES, 4
    generator = torch.Generator().manual_seed(1)
    mean = torch.rand(n_genes, generator=generator)
    by_mean = torch.argsort(mean, descending=True)
    counts = torch.poisson(torch.rand(3, n_genes, generator=generator) * 2.0, generator=generator)
    counts[1, by_mean[:UNEXPRESSED_SEARCH_GENES]] = 1.0
    counts[1, by_mean[7]] = 0.0
    counts[2] = 1.0
    counts[2, by_mean[[100, 600]]] = 0.0
    observed = torch.ones_like(counts, dtype=torch.bool)
    observed[0, by_mean[:3]] = False  # unmeasured genes are never zero tokens
    counts = counts * observed
    batch = type("B", (), {})()
    batch.counts, batch.observed, batch.library = counts, observed, counts.sum(1)
    gene_ids, _, padding = _tokens(batch, max_tokens=2, n_zero_tokens=n_zero, mean=mean)
    for cell in range(3):
        available = [g for g in range(n_genes) if observed[cell, g] and counts[cell, g] == 0]
        expected = sorted(available, key=lambda g: -mean[g].item())[:n_zero]
        tokens = gene_ids[cell][~padding[cell]][3:] - N_SPECIAL
        assert tokens.tolist() == expected
    assert padding[2].tolist() == [False] * 5 + [True] * 2
