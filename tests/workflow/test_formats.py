"""Source formats of public datasets (scdiva.bench.core.formats): generated small files in each format."""

from __future__ import annotations

import gzip
import shutil
import tarfile
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from scdiva.bench.core.formats import detect_format, read_counts, stage_as_h5ad
from scdiva.bench.core.sampling import stratified_indices
from scdiva.bench.core.validate import DatasetValidationError, check_source

N_CELLS, N_GENES = 120, 40


def _counts(seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = rng.poisson(1.0, size=(N_CELLS, N_GENES)).astype(np.float32)
    dense[rng.random(dense.shape) < 0.5] = 0
    return sp.csr_matrix(dense)


def _obs() -> pd.DataFrame:
    return pd.DataFrame({"donor": [f"d{i % 3}" for i in range(N_CELLS)],
                         "cell_type": [f"t{i % 4}" for i in range(N_CELLS)]},
                        index=[f"AAAC{i:04d}-1" for i in range(N_CELLS)])


def write_cellxgene(path: Path) -> sp.csr_matrix:
    """CELLxGENE layout: normalised X, counts in raw.X, Ensembl var_names, symbols in feature_name."""
    counts = _counts()
    ids = [f"ENSG{i:011d}" for i in range(N_GENES)]
    var = pd.DataFrame({"feature_name": [f"GENE{i}" for i in range(N_GENES)]}, index=ids)
    norm = counts.multiply(1e4 / np.maximum(counts.sum(1), 1)).tocsr()
    norm.data = np.log1p(norm.data)
    adata = ad.AnnData(X=norm.astype(np.float32), obs=_obs(), var=var)
    adata.raw = ad.AnnData(X=counts, obs=adata.obs, var=var)
    adata.write_h5ad(path)
    return counts


def write_10x_h5(path: Path) -> sp.csr_matrix:
    """A Cell Ranger v3 filtered_feature_bc_matrix.h5 (CSC of genes x cells)."""
    counts = _counts()
    csc = sp.csc_matrix(counts.T.astype(np.int32))  # genes x cells, stored column (cell) major
    with h5py.File(path, "w") as f:
        m = f.create_group("matrix")
        m["barcodes"] = np.array(_obs().index, dtype="S")
        m["data"], m["indices"], m["indptr"] = csc.data, csc.indices, csc.indptr
        m["shape"] = np.array(csc.shape, dtype=np.int32)
        feats = m.create_group("features")
        feats["id"] = np.array([f"ENSG{i:011d}" for i in range(N_GENES)], dtype="S")
        feats["name"] = np.array([f"GENE{i}" for i in range(N_GENES)], dtype="S")
        feats["feature_type"] = np.array(["Gene Expression"] * N_GENES, dtype="S")
        feats["genome"] = np.array(["GRCh38"] * N_GENES, dtype="S")
        feats["_all_tag_keys"] = np.array([b"genome"])
    return counts


def write_mtx_bundle(directory: Path) -> sp.csr_matrix:
    counts = _counts()
    directory.mkdir(parents=True)
    with gzip.open(directory / "matrix.mtx.gz", "wb") as handle:
        scipy.io.mmwrite(handle, sp.coo_matrix(counts.T.astype(np.int64)), field="integer")
    with gzip.open(directory / "features.tsv.gz", "wt") as handle:
        handle.writelines(f"ENSG{i:011d}\tGENE{i}\tGene Expression\n" for i in range(N_GENES))
    with gzip.open(directory / "barcodes.tsv.gz", "wt") as handle:
        handle.writelines(f"{b}\n" for b in _obs().index)
    return counts


def write_metadata(path: Path) -> None:
    _obs().rename_axis("barcode").to_csv(path)


ENTRY = {"batch_key": "donor", "label_key": "cell_type"}


def test_cellxgene_counts_come_from_raw_x(tmp_path):
    path = tmp_path / "cxg.h5ad"
    counts = write_cellxgene(path)
    assert detect_format(path) == "h5ad"
    check_source(path, {**ENTRY, "counts_layer": "raw.X", "gene_id_column": "feature_name"}, dataset="cxg")
    adata = read_counts(path, dataset="cxg", counts_layer="raw.X")
    assert (adata.X != counts).nnz == 0
    assert adata.var["feature_name"].iloc[3] == "GENE3"
    # X itself is normalised: reading it as counts must not be mistaken for raw.X
    assert not np.allclose(read_counts(path, dataset="cxg").X.toarray(), counts.toarray())


def test_raw_x_missing_is_a_clear_error(tmp_path):
    path = tmp_path / "plain.h5ad"
    ad.AnnData(X=_counts(), obs=_obs()).write_h5ad(path)
    with pytest.raises(DatasetValidationError, match=r"counts_layer: raw.X` but the file has no raw.X"):
        read_counts(path, dataset="plain", counts_layer="raw.X")
    with pytest.raises(DatasetValidationError, match=r"layer 'spliced'.*Available layers"):
        read_counts(path, dataset="plain", counts_layer="spliced")


def test_subsample_reads_only_kept_rows_stratified(tmp_path):
    path = tmp_path / "cxg.h5ad"
    counts = write_cellxgene(path)
    adata = read_counts(path, dataset="cxg", counts_layer="raw.X", subsample=30,
                        strata=["donor", "cell_type"], seed=1)
    assert adata.n_obs == 30
    rows = [int(name[4:8]) for name in adata.obs_names]
    assert (adata.X != counts[rows]).nnz == 0  # each row is its own cell's counts
    # 12 strata (3 donors x 4 types, 10 cells each): 30 cells = 2 or 3 per stratum
    per = adata.obs.groupby(["donor", "cell_type"], observed=True).size()
    assert set(per) <= {2, 3} and per.sum() == 30


def test_stratified_indices_many_categories_exact_and_proportional():
    rng = np.random.default_rng(0)
    obs = pd.DataFrame({"b": rng.integers(0, 3000, 200_000).astype(str), "l": rng.integers(0, 50, 200_000)})
    keep = stratified_indices(obs, 20_000, ["b", "l"], seed=0)
    assert len(keep) == 20_000 and len(np.unique(keep)) == 20_000 and (np.diff(keep) > 0).all()
    share = obs.iloc[keep]["l"].value_counts(normalize=True).sort_index()
    assert np.abs(share - obs["l"].value_counts(normalize=True).sort_index()).max() < 0.002


def test_10x_h5_with_metadata(tmp_path):
    source = tmp_path / "filtered_feature_bc_matrix.h5"
    counts = write_10x_h5(source)
    meta = tmp_path / "meta.csv"
    write_metadata(meta)
    assert detect_format(source) == "10x_h5"
    out = tmp_path / "staged.h5ad"
    assert stage_as_h5ad(source, out, dataset="tenx", metadata=meta) == "10x_h5"
    check_source(out, ENTRY, dataset="tenx")
    adata = read_counts(out, dataset="tenx")
    assert (adata.X != counts).nnz == 0
    assert list(adata.var_names[:2]) == ["GENE0", "GENE1"] and adata.var["gene_ids"].iloc[0] == "ENSG00000000000"
    assert adata.obs["donor"].iloc[4] == "d1"


def test_10x_without_metadata_names_the_missing_key(tmp_path):
    source = tmp_path / "m.h5"
    write_10x_h5(source)
    out = tmp_path / "staged.h5ad"
    stage_as_h5ad(source, out, dataset="tenx")
    with pytest.raises(DatasetValidationError, match=r"obs column 'donor'.*batch_key"):
        check_source(out, ENTRY, dataset="tenx")


def test_metadata_missing_cells_is_an_error(tmp_path):
    source = tmp_path / "m.h5"
    write_10x_h5(source)
    meta = tmp_path / "meta.tsv"
    _obs().iloc[:-2].to_csv(meta, sep="\t")
    with pytest.raises(DatasetValidationError, match=r"2 of 120 cells .* no row in the metadata file"):
        stage_as_h5ad(source, tmp_path / "o.h5ad", dataset="tenx", metadata=meta)


def test_matrix_market_tarball(tmp_path):
    counts = write_mtx_bundle(tmp_path / "bundle" / "filtered_feature_bc_matrix")
    tarball = tmp_path / "bundle.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tmp_path / "bundle", arcname="bundle")
    meta = tmp_path / "meta.csv"
    write_metadata(meta)
    assert detect_format(tarball) == "10x_mtx"
    assert detect_format(tmp_path / "bundle") == "10x_mtx"
    out = tmp_path / "staged.h5ad"
    stage_as_h5ad(tarball, out, dataset="mtx", metadata=meta)
    adata = read_counts(out, dataset="mtx")
    assert (adata.X != counts).nnz == 0 and adata.obs["cell_type"].iloc[5] == "t1"


def test_gzipped_h5ad(tmp_path):
    plain = tmp_path / "x.h5ad"
    counts = write_cellxgene(plain)
    gz = tmp_path / "x.h5ad.gz"
    with open(plain, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert detect_format(gz) == "h5ad.gz"
    out = tmp_path / "staged.h5ad"
    assert stage_as_h5ad(gz, out, dataset="gz") == "h5ad.gz"
    assert (read_counts(out, dataset="gz", counts_layer="raw.X").X != counts).nnz == 0


@pytest.mark.parametrize("content, message", [
    (b"cell,gene\n1,2\n", "none of the readable formats"),
    (gzip.compress(b"%%MatrixMarket matrix coordinate integer general\n"), "lone matrix.mtx.gz"),
])
def test_foreign_files_are_refused_naming_the_formats(tmp_path, content, message):
    path = tmp_path / "data.bin"
    path.write_bytes(content)
    with pytest.raises(DatasetValidationError, match=rf"dataset 'x': source .*{message}.*Readable formats"):
        detect_format(path, dataset="x")


def test_declared_format_must_match(tmp_path):
    path = tmp_path / "m.h5"
    write_10x_h5(path)
    with pytest.raises(DatasetValidationError, match=r"declared `format: h5ad` but its content is 10x_h5"):
        detect_format(path, dataset="x", declared="h5ad")


def test_round_counts_rounds_and_logs_per_batch(tmp_path, caplog):
    counts = _counts()
    x = counts.copy()
    x.data[:5] += 0.4  # cells 0.. of batch d0 / d1 get non-integer values
    path = tmp_path / "pancreas.h5ad"
    ad.AnnData(X=x, obs=_obs()).write_h5ad(path)
    with caplog.at_level("WARNING"):
        adata = read_counts(path, dataset="p", strata=["donor", "cell_type"], round_counts=True)
    assert (adata.X != counts).nnz == 0
    assert "rounded 5 of" in caplog.text and "in batches d0" in caplog.text
    plain = read_counts(path, dataset="p")  # without the option the values stay (and validation refuses them)
    assert not np.array_equal(plain.X.data, np.rint(plain.X.data))


def test_not_strict_leaves_unknown_files_to_the_h5ad_reader(tmp_path):
    """The workflow detects leniently: a file in no format (text, truncated HDF5, a foreign HDF5 layout)
    is handed to the .h5ad reader, whose error names what is wrong (tests/workflow/test_bad_input.py)."""
    text = tmp_path / "t.h5ad"
    text.write_text("cell,CD3E\nc1,1\n")
    foreign = tmp_path / "f.h5"
    with h5py.File(foreign, "w") as handle:
        handle.create_group("matrix").create_dataset("data", data=np.arange(3))
    for path in (text, foreign):
        assert detect_format(path, strict=False) == "h5ad"
        with pytest.raises(DatasetValidationError):
            detect_format(path)
