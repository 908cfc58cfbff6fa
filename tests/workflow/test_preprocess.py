"""Preprocessing the embedded PBMC data: the output contract every method relies on."""

from __future__ import annotations

from pathlib import Path

import anndata
import numpy as np
import pytest
import scipy.sparse as sp

from scdiva.bench.core.io import write_h5ad_atomic
from scdiva.bench.core.preprocess import PreprocessSettings, preprocess, stratified_subsample
from scdiva.bench.core.validate import DatasetValidationError

PBMC = Path(__file__).resolve().parents[2] / "data" / "pbmc_3chem_symphony.h5ad"
ENTRY = {"dataset": "pbmc", "batch_key": "donor", "label_key": "cell_type"}


@pytest.fixture(scope="module")
def raw() -> anndata.AnnData:
    return anndata.read_h5ad(PBMC)


@pytest.fixture(scope="module")
def processed(raw) -> anndata.AnnData:
    return preprocess(raw.copy(), settings=PreprocessSettings(n_top_genes=800, n_pcs=30), **ENTRY)


def test_counts_layer_holds_the_original_counts(raw, processed):
    original = raw[processed.obs_names, processed.var_names].X
    assert (sp.csr_matrix(processed.layers["counts"]) != sp.csr_matrix(original)).nnz == 0


def test_x_is_log1p_of_normalised_counts(processed):
    cell = 7
    counts = processed.layers["counts"][cell].toarray().ravel()
    expected = np.log1p(counts / counts.sum() * 1e4)
    np.testing.assert_allclose(processed.X[cell].toarray().ravel(), expected, rtol=1e-5)


def test_qc_keeps_every_cell_of_the_embedded_data(raw, processed):
    # Median ~1,075 counts / ~200 genes per cell: the defaults must not throw cells away.
    assert processed.n_obs == raw.n_obs
    qc = processed.uns["preprocess"]
    assert qc["cells_removed"] == 0 and qc["cells_kept"] == raw.n_obs
    detected = np.asarray((raw.X > 0).sum(axis=0)).ravel()
    assert qc["genes_removed"] == int((detected < 3).sum()) == raw.n_vars - processed.n_vars
    assert qc["genes_removed"] > 0


def test_batch_aware_hvgs_and_pca(processed):
    assert processed.var["highly_variable"].sum() == 800
    assert "highly_variable_nbatches" in processed.var  # ranked across the three chemistries
    assert processed.obsm["X_pca"].shape == (processed.n_obs, 30)
    assert processed.varm["PCs"][~processed.var["highly_variable"].to_numpy()].any() == 0  # PCA on HVGs only
    assert processed.var["gene_symbol"].tolist() == processed.var_names.tolist()


def test_all_genes_are_variable_when_fewer_than_n_top_genes(raw):
    out = preprocess(raw.copy(), settings=PreprocessSettings(n_top_genes=5000, n_pcs=10), **ENTRY)
    assert out.var["highly_variable"].all()
    assert out.uns["preprocess"]["n_highly_variable"] == out.n_vars


def test_cell_ranger_flavor(raw):
    out = preprocess(raw.copy(), settings=PreprocessSettings(hvg_flavor="cell_ranger", n_top_genes=500, n_pcs=10),
                     **ENTRY)
    assert 400 <= out.var["highly_variable"].sum() <= 500  # cell_ranger ties may give slightly fewer


def test_qc_thresholds_remove_cells_and_report_it(raw):
    out = preprocess(raw.copy(), settings=PreprocessSettings(min_counts=1000, n_top_genes=5000, n_pcs=10), **ENTRY)
    totals = np.asarray(raw.X.sum(axis=1)).ravel()
    assert out.n_obs == int((totals >= 1000).sum()) < raw.n_obs
    assert out.uns["preprocess"]["cells_removed"] == raw.n_obs - out.n_obs


def test_qc_that_removes_everything_says_which_setting(raw):
    with pytest.raises(DatasetValidationError, match="min_genes"):
        preprocess(raw.copy(), settings=PreprocessSettings(min_genes=10_000), **ENTRY)


def test_stratified_subsample_is_exact_seeded_and_proportional(raw):
    a = stratified_subsample(raw, 600, ["donor", "cell_type"], seed=0)
    b = stratified_subsample(raw, 600, ["donor", "cell_type"], seed=0)
    c = stratified_subsample(raw, 600, ["donor", "cell_type"], seed=1)
    assert a.n_obs == 600 and list(a.obs_names) == list(b.obs_names) != list(c.obs_names)
    share = a.obs["donor"].value_counts(normalize=True)
    full = raw.obs["donor"].value_counts(normalize=True)
    assert np.abs(share - full).max() < 0.01
    assert set(a.obs["cell_type"]) == set(raw.obs["cell_type"])  # rare MK and HSC kept


def test_counts_layer_and_ensembl_gene_ids(raw):
    adata = raw.copy()
    adata.layers["umi"] = adata.X.copy()
    adata.X = adata.X.log1p()
    ids = [f"ENSG{i:011d}" for i in range(adata.n_vars)]
    adata.var["symbol"] = adata.var_names.to_numpy()
    adata.var_names = ids
    out = preprocess(adata, counts_layer="umi", gene_id_column="symbol",
                     settings=PreprocessSettings(n_top_genes=5000, n_pcs=10), **ENTRY)
    assert out.var_names[0] == raw.var_names[0]  # symbols from the column
    assert out.var["gene_id"].iloc[0] == "ENSG00000000000"  # Ensembl ids kept
    assert out.uns["preprocess"]["counts_source"] == "layers[umi]"
    original = raw[:, out.var_names].X
    assert (sp.csr_matrix(out.layers["counts"]) != sp.csr_matrix(original)).nnz == 0


def test_atomic_write_leaves_no_partial_file(tmp_path, processed):
    target = tmp_path / "out" / "preprocessed.h5ad"
    write_h5ad_atomic(processed, target)
    assert anndata.read_h5ad(target).shape == processed.shape
    assert [p.name for p in target.parent.iterdir()] == ["preprocessed.h5ad"]

    class Unwritable:
        def write_h5ad(self, path):
            Path(path).write_bytes(b"half")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_h5ad_atomic(Unwritable(), tmp_path / "failed.h5ad")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_second_embedded_dataset_with_five_libraries():
    # The commented-out second dataset of config/config.yaml: 2,812 pancreas cells, 5 libraries.
    adata = anndata.read_h5ad(PBMC.with_name("pancreas_baron_human.h5ad"))
    out = preprocess(adata, dataset="pancreas_baron", batch_key="library", label_key="cell_type",
                     settings=PreprocessSettings(n_top_genes=1000, n_pcs=20))
    assert out.obs["library"].nunique() == 5
    assert out.var["highly_variable"].sum() == 1000
    assert out.obsm["X_pca"].shape == (out.n_obs, 20)
    assert out.uns["preprocess"]["cells_kept"] == out.n_obs >= 0.95 * adata.n_obs
