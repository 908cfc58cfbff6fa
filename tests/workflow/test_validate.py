"""Each validation error on real data: it names the dataset, the key / layer and what to change."""

from __future__ import annotations

from pathlib import Path

import anndata
import numpy as np
import pytest
import scipy.sparse as sp

from scdiva.bench.core.validate import DatasetValidationError, is_ensembl, validate_dataset

PBMC = Path(__file__).resolve().parents[2] / "data" / "pbmc_3chem_symphony.h5ad"
ENTRY = {"dataset": "pbmc", "batch_key": "donor", "label_key": "cell_type"}


@pytest.fixture(scope="module")
def pbmc_file() -> anndata.AnnData:
    return anndata.read_h5ad(PBMC)


@pytest.fixture
def pbmc(pbmc_file) -> anndata.AnnData:
    return pbmc_file.copy()


def test_embedded_data_passes(pbmc):
    validate_dataset(pbmc, coarse_label_key="cell_type_broad",
                     annotation={"reference_batches": ["3pv2", "5p"], "query_batches": ["3pv1"]}, **ENTRY)


@pytest.mark.parametrize("config_key", ["batch_key", "label_key", "coarse_label_key"])
def test_missing_obs_key_lists_available_columns(pbmc, config_key):
    entry = {**ENTRY, config_key: "celltype"}
    with pytest.raises(DatasetValidationError) as err:
        validate_dataset(pbmc, **entry)
    message = str(err.value)
    assert "'celltype'" in message and f"datasets.pbmc.{config_key}" in message
    assert "'cell_type'" in message and "'donor'" in message  # the columns there are


def test_missing_labels_in_obs_are_reported(pbmc):
    pbmc.obs["cell_type"] = pbmc.obs["cell_type"].astype(object)
    pbmc.obs.iloc[:5, pbmc.obs.columns.get_loc("cell_type")] = None
    with pytest.raises(DatasetValidationError, match="5 missing values"):
        validate_dataset(pbmc, **ENTRY)


def test_log_normalised_x_is_rejected_and_counts_layer_suggested(pbmc):
    pbmc.layers["raw"] = pbmc.X.copy()
    pbmc.X = pbmc.X.log1p()
    with pytest.raises(DatasetValidationError) as err:
        validate_dataset(pbmc, **ENTRY)
    message = str(err.value)
    assert "X has non-integer values" in message
    assert "datasets.pbmc.counts_layer" in message and "'raw'" in message
    validate_dataset(pbmc, counts_layer="raw", **ENTRY)  # the suggested fix works


def test_a_single_non_integer_value_is_found(pbmc):
    x = pbmc.X.tocsr(copy=True)
    x.data[12345] += 0.5
    pbmc.X = x
    row = int(np.searchsorted(x.indptr, 12345, side="right") - 1)
    with pytest.raises(DatasetValidationError) as err:
        validate_dataset(pbmc, **ENTRY)
    assert pbmc.obs_names[row] in str(err.value)  # the example names the cell
    assert pbmc.var_names[x.indices[12345]] in str(err.value)  # and the gene


def test_negative_values_are_rejected(pbmc):
    pbmc.X = np.asarray(pbmc.X.todense()) - 1.0  # dense and centred
    with pytest.raises(DatasetValidationError, match="negative values"):
        validate_dataset(pbmc, **ENTRY)


def test_unknown_counts_layer_lists_layers(pbmc):
    pbmc.layers["counts_raw"] = pbmc.X.copy()
    with pytest.raises(DatasetValidationError, match=r"layer 'counts'.*'counts_raw'"):
        validate_dataset(pbmc, counts_layer="counts", **ENTRY)


def test_single_batch_is_rejected(pbmc):
    one = pbmc[pbmc.obs["donor"] == "5p"].copy()
    with pytest.raises(DatasetValidationError) as err:
        validate_dataset(one, **ENTRY)
    assert "1 batches ('5p')" in str(err.value) and "datasets.pbmc.batch_key" in str(err.value)


def test_single_label_is_rejected(pbmc):
    pbmc.obs["one_type"] = "T"
    with pytest.raises(DatasetValidationError, match=r"1 labels.*datasets\.pbmc\.label_key"):
        validate_dataset(pbmc, **{**ENTRY, "label_key": "one_type"})


def test_annotation_batches_must_exist(pbmc):
    with pytest.raises(DatasetValidationError, match=r"query_batches.*\['3pv3'\].*'3pv1'"):
        validate_dataset(pbmc, annotation={"reference_batches": ["5p"], "query_batches": ["3pv3"]}, **ENTRY)


def test_unknown_gene_id_column_lists_var_columns(pbmc):
    pbmc.var["symbol"] = pbmc.var_names
    with pytest.raises(DatasetValidationError, match=r"var column 'gene_ids'.*'symbol'"):
        validate_dataset(pbmc, gene_id_column="gene_ids", **ENTRY)


def test_empty_gene_names_are_rejected(pbmc):
    pbmc.var["symbol"] = [""] * 3 + list(pbmc.var_names[3:])
    with pytest.raises(DatasetValidationError, match="3 empty gene names"):
        validate_dataset(pbmc, gene_id_column="symbol", **ENTRY)


def test_ensembl_detection():
    assert is_ensembl(["ENSG00000141510", "ENSG00000012048.21", "ENSMUSG00000059552"])
    assert not is_ensembl(["TP53", "BRCA1", "ENSG00000141510"])


def test_count_check_on_a_sample_is_exact(pbmc):
    # Sampling for speed must not tolerate rounding: a value off by 1e-3 still fails.
    x = sp.csr_matrix(pbmc.X, copy=True)
    x.data = x.data + 1e-3
    pbmc.X = x
    with pytest.raises(DatasetValidationError, match="non-integer"):
        validate_dataset(pbmc, **ENTRY)
