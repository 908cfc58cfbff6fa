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
        # a sample of 17 of the 18 values checks 17 different values, whatever the seed
        for seed in range(5):
            values, _ = V._sample_values(matrix, np.random.default_rng(seed), 17)
            assert len(set(values.tolist())) == 17


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


# --- check_source / read_source_tables: the dataset file, read before any job ------------------------


def _source(path, n=6, batches=("x", "y"), layers=(), raw=False, sparse=False, **obs_columns):
    adata = _adata(n=n, batches=batches)
    if sparse:
        adata.X = sp.csr_matrix(adata.X)
    for column, values in obs_columns.items():
        adata.obs[column] = values
    for name in layers:
        adata.layers[name] = adata.X.copy()
    if raw:
        adata.raw = adata.copy()
    adata.write_h5ad(path)
    return path


def _unreadable(path, reason: str, reason_pattern: str | None = None) -> str:
    """The whole message of an unreadable source (dataset 'd'), with its reason (or a pattern for it)."""
    return _exact(
        f"dataset 'd': source file {path} (config `datasets.d.source`) is not a readable AnnData .h5ad file: {reason}. "
        "Point `datasets.d.source` at an .h5ad written by anndata (`adata.write_h5ad(path)`; a 10x .h5, a Matrix "
        "Market bundle or a gzipped .h5ad: set `datasets.d.format`, see scdiva.bench.core.formats; a .loom file: "
        "read it with scanpy and write it as .h5ad); a truncated download: delete it and run again."
    ).replace(re.escape(reason), reason_pattern or re.escape(reason))


SOURCE_ENTRY = {"batch_key": "donor", "label_key": "cell_type"}


def test_source_summary_counts_cells_genes_layers_and_batch_sizes(tmp_path):
    path = _source(tmp_path / "s.h5ad", n=8, layers=("counts", "spliced"), raw=True, sparse=True,
                   donor=list("xyxyxxyx"))
    summary = V.check_source(path, {**SOURCE_ENTRY, "counts_layer": "raw.X"}, dataset="d")
    # raw.X is offered as a layer (CELLxGENE keeps counts there)
    assert summary == V.SourceSummary(n_obs=8, n_vars=3, layers=("counts", "spliced", "raw.X"),
                                      batch_sizes={"x": 5, "y": 3})
    obs, var, layers = V.read_source_tables(path, dataset="d")
    assert list(obs.index) == [f"c{i}" for i in range(8)] and list(var.index) == ["G1", "G2", "G3"]
    assert layers == ("counts", "spliced", "raw.X")
    plain = V.check_source(_source(tmp_path / "p.h5ad"), SOURCE_ENTRY, dataset="d")  # dense X, no layers
    assert (plain.n_obs, plain.n_vars, plain.layers, plain.batch_sizes) == (6, 3, (), {"x": 3, "y": 3})
    import h5py

    with h5py.File(tmp_path / "p.h5ad", "r+") as handle:  # some writers leave out an empty layers group
        del handle["layers"]
    assert V.read_source_tables(tmp_path / "p.h5ad", dataset="d")[2] == ()


def test_source_that_is_not_hdf5_names_file_key_and_fix(tmp_path):
    path = tmp_path / "s.h5ad"
    path.write_text("cell,CD3E\nc1,1\n")
    with pytest.raises(V.DatasetValidationError, match=_unreadable(path, "?", r"not an HDF5 file or damaged \(.+\)")):
        V.check_source(path, SOURCE_ENTRY, dataset="d")
    # a download is named by its URL, not the temporary file it was saved to
    with pytest.raises(V.DatasetValidationError, match=r"^dataset 'w': source file https://x/y\.h5ad \(config "
                       r"`datasets\.w\.source`\) is not a readable AnnData \.h5ad file: not an HDF5 file"):
        V.check_source(path, SOURCE_ENTRY, dataset="w", shown="https://x/y.h5ad")


def test_source_of_another_hdf5_layout_lists_its_entries(tmp_path):
    import h5py

    path = tmp_path / "tenx.h5"
    with h5py.File(path, "w") as handle:  # a 10x .h5: one group, "matrix"; here with an obs beside it
        handle.create_group("matrix").create_dataset("data", data=np.arange(3))
        handle.create_group("obs")
    with pytest.raises(V.DatasetValidationError, match=_unreadable(
            path, "an HDF5 file without AnnData's ['X', 'var'] (top-level entries: 'matrix', 'obs')")):
        V.read_source_tables(path, dataset="d")


def test_source_with_a_damaged_table_names_the_error(tmp_path):
    import h5py

    path = _source(tmp_path / "s.h5ad")
    with h5py.File(path, "r+") as handle:
        del handle["var"].attrs["_index"]  # a dataframe without its index column
    # the error's type, then its text
    with pytest.raises(V.DatasetValidationError, match=_unreadable(path, "?", "KeyError: .*_index.*")):
        V.read_source_tables(path, dataset="d")


@pytest.mark.parametrize("sparse", [False, True])
def test_source_whose_matrix_shape_disagrees_with_obs_and_var(tmp_path, sparse):
    import h5py

    path = _source(tmp_path / "s.h5ad", sparse=sparse)
    with h5py.File(path, "r+") as handle:
        if sparse:
            handle["X"].attrs["shape"] = np.array([5, 3])
        else:
            del handle["X"]
            handle.create_dataset("X", data=np.ones((6, 4), dtype=np.float32))
    shape = "(5, 3)" if sparse else "(6, 4)"
    with pytest.raises(V.DatasetValidationError, match=_unreadable(
            path, f"X has shape {shape} but obs has 6 and var 3 rows")):
        V.check_source(path, SOURCE_ENTRY, dataset="d")


def test_empty_source_says_so_with_its_config_key(tmp_path):
    path = tmp_path / "e.h5ad"
    _adata()[:0].copy().write_h5ad(path)
    with pytest.raises(V.DatasetValidationError, match=_exact(
            f"dataset 'd': source file {path} is empty (0 cells x 3 genes; config `datasets.d.source`).")):
        V.check_source(path, SOURCE_ENTRY, dataset="d")
    path = tmp_path / "g.h5ad"
    _adata()[:, :0].copy().write_h5ad(path)
    with pytest.raises(V.DatasetValidationError, match=_exact(
            "dataset 'd': source file https://h/g.h5ad is empty (6 cells x 0 genes; config `datasets.d.source`).")):
        V.check_source(path, SOURCE_ENTRY, dataset="d", shown="https://h/g.h5ad")


def test_source_checks_each_configured_column_and_layer(tmp_path):
    path = _source(tmp_path / "s.h5ad", layers=("spliced",), raw=True, broad=["T"] * 6, gaps=[None, "a"] * 3)
    V.check_source(path, {**SOURCE_ENTRY, "coarse_label_key": None, "counts_layer": None}, dataset="d")
    for config_key in ("batch_key", "label_key", "coarse_label_key"):
        with pytest.raises(V.DatasetValidationError, match=re.escape(
                f"dataset 'd': obs column 'celltype' (config `datasets.d.{config_key}`) not found. Available obs "
                "columns: 'donor', 'cell_type', 'broad', 'gaps'. Set")):
            V.check_source(path, {**SOURCE_ENTRY, config_key: "celltype"}, dataset="d")
    with pytest.raises(V.DatasetValidationError, match=_exact(
            "dataset 'd': obs column 'gaps' (`datasets.d.coarse_label_key`) has 3 missing values; fill or drop "
            "those cells first.")):
        V.check_source(path, {**SOURCE_ENTRY, "coarse_label_key": "gaps"}, dataset="d")
    with pytest.raises(V.DatasetValidationError, match=_exact(
            "dataset 'd': layer 'counts' (config `datasets.d.counts_layer`) not found. Available layers: 'spliced', "
            "'raw.X'; remove `counts_layer` to use X.")):
        V.check_source(path, {**SOURCE_ENTRY, "counts_layer": "counts"}, dataset="d")
    V.check_source(path, {**SOURCE_ENTRY, "counts_layer": "spliced"}, dataset="d")
    with pytest.raises(V.DatasetValidationError, match=r"^dataset 'd': var column 'symbol' \(config "
                       r"`datasets\.d\.gene_id_column`\) not found"):
        V.check_source(path, {**SOURCE_ENTRY, "gene_id_column": "symbol"}, dataset="d")
    with pytest.raises(V.DatasetValidationError, match=_exact(
            "dataset 'd': obs column 'broad' (`datasets.d.label_key`) has 1 labels ('T') in the source file; at "
            "least 2 are needed. Choose another column for `datasets.d.label_key`.")):
        V.check_source(path, {**SOURCE_ENTRY, "label_key": "broad"}, dataset="d")
    dup = tmp_path / "dup.h5ad"
    adata = _adata()
    adata.obs_names = ["c0", "c0", "c2", "c3", "c4", "c5"]
    adata.write_h5ad(dup)
    with pytest.raises(V.DatasetValidationError, match="^dataset 'd': 1 duplicated cell names"):
        V.check_source(dup, SOURCE_ENTRY, dataset="d")


def test_source_needs_two_batches_of_the_minimum_size(tmp_path):
    path = _source(tmp_path / "s.h5ad", n=10, donor=list("xyxzxyzwxy"))  # x: 4 cells, y: 3, z: 2, w: 1
    assert V.check_source(path, SOURCE_ENTRY, dataset="d").batch_sizes == {"x": 4, "y": 3, "z": 2, "w": 1}
    # at a minimum of 3 cells x and y count (a batch of exactly the minimum counts): two batches, enough
    V.check_source(path, SOURCE_ENTRY, dataset="d", min_cells_per_batch=3)
    with pytest.raises(V.DatasetValidationError, match=_exact(
            "dataset 'd': obs column 'donor' (`datasets.d.batch_key`) has 4 batches but 1 of at least 4 cells "
            "(largest: x (4), y (3), z (2)); at least 2 are needed, smaller batches are dropped. Choose a column of "
            "batches (donors, chemistries) for `datasets.d.batch_key`, or lower `preprocess.min_cells_per_batch`.")):
        V.check_source(path, SOURCE_ENTRY, dataset="d", min_cells_per_batch=4)
    one = _source(tmp_path / "one.h5ad", batches=("x",))
    with pytest.raises(V.DatasetValidationError, match=_exact(
            "dataset 'd': obs column 'donor' (`datasets.d.batch_key`) has 1 batches ('x') in the source file; at "
            "least 2 are needed. Choose another column for `datasets.d.batch_key` or raise `subsample`.")):
        V.check_source(one, SOURCE_ENTRY, dataset="d")


def test_source_annotation_batches_must_be_batches_of_the_file(tmp_path):
    path = _source(tmp_path / "s.h5ad", batches=("x", "y", "z"))
    V.check_source(path, {**SOURCE_ENTRY, "annotation": {"reference_batches": ["x", "y"], "query_batches": ["z"]}},
                   dataset="d")
    with pytest.raises(V.DatasetValidationError, match=_exact(
            "dataset 'd': `datasets.d.annotation.query_batches` names batches ['w'] that are not values of "
            "obs['donor']; values present: 'x', 'y', 'z'.")):
        V.check_source(path, {**SOURCE_ENTRY, "annotation": {"reference_batches": ["x"], "query_batches": ["w"]}},
                       dataset="d")
    with pytest.raises(V.DatasetValidationError, match=r"^dataset 'd': batches \['y'\] are both reference and query"):
        V.check_source(path, {**SOURCE_ENTRY, "annotation": {"reference_batches": ["x", "y"], "query_batches": ["y"]}},
                       dataset="d")


def test_validate_dataset_names_the_dataset_in_layer_and_annotation_errors():
    adata = _adata()
    adata.layers["spliced"] = adata.X.copy()
    with pytest.raises(V.DatasetValidationError, match=_exact(
            "dataset 'd': layer 'counts' (config `datasets.d.counts_layer`) not found. Available layers: 'spliced'; "
            "remove `counts_layer` to use X.")):
        V.validate_dataset(adata, dataset="d", batch_key="donor", label_key="cell_type", counts_layer="counts")
    with pytest.raises(V.DatasetValidationError, match=_exact(
            "dataset 'd': `datasets.d.annotation.reference_batches` names batches ['z'] that are not values of "
            "obs['donor']; values present: 'x', 'y'.")):
        V.validate_dataset(adata, dataset="d", batch_key="donor", label_key="cell_type",
                           annotation={"reference_batches": ["z"], "query_batches": ["y"]})


def test_non_integer_counts_message_exact_with_the_round_counts_fix():
    x = np.ones((6, 3), dtype=np.float32)
    x[4, 2], x[0, 1] = 0.5, 2.5
    adata = _adata(x=x)
    adata.layers["counts"] = x.round()
    # the first bad value in row-major order is the example; both are counted
    with pytest.raises(V.DatasetValidationError, match=_exact(
            "dataset 'd': X has non-integer values (np.float32(2.5) for cell 'c0', gene 'G2'), so it is not raw counts "
            "(2 of 18 stored values checked are not integers). The workflow normalises itself and needs raw integer "
            "counts. If these are counts that are partly estimates (Smart-seq2 / Fluidigm C1 expected counts, as in "
            "the scIB pancreas), set `datasets.d.round_counts: true` to round them (logged per batch); if the data "
            "are log-normalised or scaled, use the raw counts. If raw counts are in a layer, set "
            "`datasets.d.counts_layer` (layers here: 'counts').")):
        V.check_counts(adata, None, dataset="d")


def test_a_sampled_count_check_gives_the_same_verdict_for_the_same_seed():
    x = np.ones((6, 3), dtype=np.float32)
    x[4, 2] = 0.5
    adata = _adata(x=x)

    def verdict(seed):  # 9 of the 18 values: the bad one is in about half the samples
        try:
            V.check_counts(adata, None, dataset="d", sample_size=9, seed=seed)
        except V.DatasetValidationError:
            return "rejected"
        return "passed"

    first = [verdict(seed) for seed in range(20)]
    assert {"rejected", "passed"} == set(first)  # the seed decides which values are looked at
    assert [verdict(seed) for seed in range(20)] == first  # and rerunning the check gives the same answers
