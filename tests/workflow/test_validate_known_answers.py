"""Validation on tiny constructed AnnData: boundaries (2 batches pass, 1 fails), the sampled count
check, and the exact messages users read. Fast; part of `make mutation`."""

from __future__ import annotations

import re

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scdiva.bench.core import validate as V


def _adata(n=6, genes=("G1", "G2", "G3"), batches=("x", "y"), x=None):
    obs = pd.DataFrame({"donor": [batches[i % len(batches)] for i in range(n)],
                        "cell_type": ["A", "B"] * (n // 2)}, index=[f"c{i}" for i in range(n)])
    matrix = np.arange(1, n * len(genes) + 1, dtype=np.float32).reshape(n, len(genes)) if x is None else x
    return ad.AnnData(X=matrix, obs=obs, var=pd.DataFrame(index=list(genes)))


def _exact(message: str) -> str:
    return "^" + re.escape(message) + "$"


def test_available_lists_up_to_the_limit():
    assert V._available([]) == "(none)"
    assert V._available(["a", "b"]) == "'a', 'b'"
    assert V._available([str(i) for i in range(20)]).endswith("'19'")
    assert V._available([str(i) for i in range(21)]) == ", ".join(repr(str(i)) for i in range(20)) + ", ... (21 in all)"


def test_two_batches_pass_one_fails_with_the_exact_message():
    V.check_categories(_adata(), "donor", dataset="d", config_key="batch_key", what="batches")
    one = _adata(batches=("x",))
    with pytest.raises(V.DatasetValidationError, match=_exact(
            "dataset 'd': obs column 'donor' (`datasets.d.batch_key`) has 1 batches ('x') after subsampling; at least "
            "2 are needed. Choose another column for `datasets.d.batch_key` or raise `subsample`.")):
        V.check_categories(one, "donor", dataset="d", config_key="batch_key", what="batches")
    with pytest.raises(V.DatasetValidationError, match=_exact(
            "dataset 'd': obs column 'donor' (`datasets.d.label_key`) has 1 labels ('x') after subsampling; at least "
            "2 are needed. Choose another column for `datasets.d.label_key`.")):
        V.check_categories(one, "donor", dataset="d", config_key="label_key", what="labels")


def test_count_check_samples_values_and_names_the_cell_and_gene():
    x = np.ones((6, 3), dtype=np.float32)
    x[4, 2] = 0.5
    for matrix in (x, sp.csr_matrix(x)):
        adata = _adata(x=matrix)
        V.check_counts(_adata(x=np.ones((6, 3), dtype=np.float32)), None, dataset="d", sample_size=5)
        with pytest.raises(V.DatasetValidationError, match=re.escape("non-integer values (np.float32(0.5) for cell 'c4', gene 'G3')")):
            V.check_counts(adata, None, dataset="d")
        # A sample of 17 of the 18 values, drawn without replacement, sorted: found unless it is the one left out.
        found = 0
        for seed in range(20):
            try:
                V.check_counts(adata, None, dataset="d", sample_size=17, seed=seed)
            except V.DatasetValidationError as error:
                found += 1
                assert "np.float32(0.5) for cell 'c4', gene 'G3'" in str(error)
        assert 0 < found < 20


def test_sampled_positions_are_the_values_positions():
    rng_matrix = np.arange(1, 19, dtype=np.float32).reshape(6, 3)
    for matrix in (rng_matrix, sp.csr_matrix(rng_matrix)):
        values, positions = V._sample_values(matrix, np.random.default_rng(0), 7)
        assert len(values) == 7 and len(set(values.tolist())) == 7  # without replacement
        assert list(values) == sorted(values)  # sorted positions
        for value, (row, col) in zip(values, positions, strict=True):
            assert rng_matrix[row, col] == value
        all_values, _ = V._sample_values(matrix, np.random.default_rng(0), 18)
        assert sorted(all_values.tolist()) == list(range(1, 19))


def test_count_messages_exact():
    neg = np.ones((6, 3), dtype=np.float32)
    neg[1, 0] = -1
    with pytest.raises(V.DatasetValidationError, match=_exact(
            "dataset 'd': X has negative values (np.float32(-1.0) for cell 'c1', gene 'G1'), so it is not raw "
            "counts (scaled or centred data?). If raw counts are in a layer, set `datasets.d.counts_layer` "
            "(layers here: (none)).")):
        V.check_counts(_adata(x=neg), None, dataset="d")
    zero_ok = np.ones((6, 3), dtype=np.float32)
    zero_ok[0, 0] = 0
    V.check_counts(_adata(x=zero_ok), None, dataset="d")  # zeros are counts
    adata = _adata(x=sp.csr_matrix((6, 3), dtype=np.float32))
    with pytest.raises(V.DatasetValidationError, match=_exact("dataset 'd': X holds no non-zero values.")):
        V.check_counts(adata, None, dataset="d")
    single = sp.csr_matrix(([2.0], ([0], [0])), shape=(6, 3), dtype=np.float32)
    V.check_counts(_adata(x=single), None, dataset="d")  # one stored value is enough
    inf = np.ones((6, 3), dtype=np.float32)
    inf[2, 1] = np.inf
    layered = _adata()
    layered.layers["counts"] = inf
    with pytest.raises(V.DatasetValidationError, match=_exact(
            "dataset 'd': layers['counts'] has non-finite values (np.float32(inf) for cell 'c2', gene 'G2').")):
        V.check_counts(layered, "counts", dataset="d")
    half = np.ones((6, 3), dtype=np.float32) * 0.5
    layered.layers["counts"] = half
    with pytest.raises(V.DatasetValidationError, match=re.escape(
            "Point `datasets.d.counts_layer` at the layer with raw counts, or remove it to use X.")):
        V.check_counts(layered, "counts", dataset="d")


def test_unique_cells_exact_message():
    V.check_unique_cells(["a", "b"], dataset="d")
    with pytest.raises(V.DatasetValidationError, match=_exact(
            "dataset 'd': 3 duplicated cell names in obs_names (e.g. 'a', 'b', 'c'); every stage joins results on "
            "them. Make them unique (`adata.obs_names_make_unique()` in Python, then `adata.write_h5ad(...)`), save "
            "the file and update `datasets.d.sha256` if set.")):
        V.check_unique_cells(["a", "a", "b", "b", "c", "c", "d", "e"], dataset="d")
    with pytest.raises(V.DatasetValidationError, match=r"4 duplicated cell names in obs_names \(e\.g\. 'a', 'b', 'c'\)"):
        V.check_unique_cells(["a", "a", "b", "b", "c", "c", "d", "d"], dataset="d")


def test_gene_name_messages_exact():
    adata = _adata(genes=("G1", " ", "G3"))
    with pytest.raises(V.DatasetValidationError, match=_exact(
            "dataset 'd': var_names has 1 empty gene names; fix them or choose another `datasets.d.gene_id_column`.")):
        V.check_gene_names(adata, None, dataset="d")
    adata = _adata()
    adata.var["ids"] = ["E1", "", "E3"]
    with pytest.raises(V.DatasetValidationError, match=_exact(
            "dataset 'd': var['ids'] has 1 empty gene names; fix them or choose another `datasets.d.gene_id_column`.")):
        V.check_gene_names(adata, "ids", dataset="d")
    with pytest.raises(V.DatasetValidationError, match=_exact(
            "dataset 'd': var column 'symbols' (config `datasets.d.gene_id_column`) not found. Available var columns: "
            "'ids'; remove `gene_id_column` to use var_names.")):
        V.check_gene_names(adata, "symbols", dataset="d")


def test_ensembl_threshold_is_more_than_ninety_percent():
    ids = [f"ENSG{i:011d}" for i in range(9)]
    assert V.is_ensembl(ids + ["ENSG00000000001.5"])
    assert not V.is_ensembl(ids + ["CD3E"])  # exactly 90%: not "most"
    assert not V.is_ensembl([])


def test_validate_dataset_empty_and_minimal():
    V.validate_dataset(_adata(n=2, genes=("G1",)), dataset="d", batch_key="donor", label_key="cell_type")
    with pytest.raises(V.DatasetValidationError, match=_exact("dataset 'd' is empty (0 cells x 3 genes).")):
        V.validate_dataset(_adata()[:0].copy(), dataset="d", batch_key="donor", label_key="cell_type")
    with pytest.raises(V.DatasetValidationError, match=_exact("dataset 'd' is empty (6 cells x 0 genes).")):
        V.validate_dataset(_adata()[:, :0].copy(), dataset="d", batch_key="donor", label_key="cell_type")
    dup = _adata()
    dup.obs_names = ["c0", "c0", "c2", "c3", "c4", "c5"]
    with pytest.raises(V.DatasetValidationError, match="^dataset 'd': 1 duplicated"):
        V.validate_dataset(dup, dataset="d", batch_key="donor", label_key="cell_type")
    blank = _adata(genes=("G1", "", "G3"))
    with pytest.raises(V.DatasetValidationError, match="^dataset 'd': var_names has 1 empty"):
        V.validate_dataset(blank, dataset="d", batch_key="donor", label_key="cell_type")
