"""The output contract, checked in the method's own job (integrate(), annotate() and the registry's
readers): an embedding is a dense finite float array, one row per cell, at least one column, not a
collapsed latent; anything else is one line naming the method, what it wrote and what was expected.
Constant columns of an accepted embedding are flagged (log, uns["embedding_flags"], the written file)."""

from __future__ import annotations

import logging
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scdiva.bench.api import annotate, integrate
from scdiva.bench.core.sampling import split_reference_query
from scdiva.bench.methods._common import write_embedding
from scdiva.bench.methods.external import record_from_config
from scdiva.bench.methods.record import MethodError
from scdiva.bench.tasks.annotation.base import FittedAnnotator

BATCH = "donor"


def _bad_embedding(adata, *, batch_key, label_key, seed, params, threads):
    """Writes the embedding named by params["what"]."""
    n = adata.n_obs
    pcs = np.asarray(adata.obsm["X_pca"][:, :4], dtype=np.float32)
    what = params["what"]
    if what == "sparse":
        adata.obsm["X_emb"] = sp.csr_matrix(pcs)
    elif what == "strings":
        adata.obsm["X_emb"] = pcs.astype(str)
    elif what == "objects":
        adata.obsm["X_emb"] = pcs.astype(object)
    elif what == "no_columns":
        adata.obsm["X_emb"] = np.zeros((n, 0), dtype=np.float32)
    elif what == "nan":
        pcs[3, 1] = np.nan
        adata.obsm["X_emb"] = pcs
    elif what == "collapsed":
        adata.obsm["X_emb"] = np.full((n, 8), 0.25, dtype=np.float32) + np.float32(1e-9) * pcs[:, :1]
    elif what == "missing":
        adata.obsm["X_mine"] = pcs
        adata.obsm["X_umap"] = pcs[:, :2]
    elif what == "some_constant":
        adata.obsm["X_emb"] = np.concatenate([pcs, np.zeros((n, 2), np.float32), np.full((n, 1), 3.0, np.float32)], 1)
    elif what == "integers":
        adata.obsm["X_emb"] = np.rint(pcs * 10).astype(np.int64)


def _run(adata, what):
    record = record_from_config("bad_emb", {"entry_point": f"{__name__}:_bad_embedding", "params": {"what": what}})
    data = adata.copy()
    integrate(data, record, batch_key=BATCH, label_key="cell_type", seed=0)
    return data


@pytest.mark.parametrize(("what", "message"), [
    ("sparse", r"integration method 'bad_emb': obsm\['X_emb'\] is a sparse matrix \(csr_matrix\); an embedding must "
               r"be a dense float array"),
    ("strings", r"integration method 'bad_emb': obsm\['X_emb'\] has dtype <U\d+ .*must be a dense array of floats"),
    ("objects", r"integration method 'bad_emb': obsm\['X_emb'\] has dtype object .*must be a dense array of floats"),
    ("no_columns", r"integration method 'bad_emb': obsm\['X_emb'\] has shape \(480, 0\): no columns; an embedding "
                   "needs at least one dimension"),
    ("nan", r"integration method 'bad_emb': obsm\['X_emb'\] has 1 non-finite values \(NaN or infinite\) in 1 of its "
            "4 columns"),
    ("collapsed", r"integration method 'bad_emb': obsm\['X_emb'\] is a collapsed latent: every one of its 8 columns "
                  "is constant or near-constant"),
    ("missing", r"integration method 'bad_emb' did not write obsm\['X_emb'\] \(the obsm keys it wrote: "
                r"\['X_mine', 'X_umap'\]\)"),
])
def test_a_bad_embedding_is_refused_in_one_line_naming_the_method(pbmc_small, what, message):
    with pytest.raises(MethodError, match=message) as err:
        _run(pbmc_small, what)
    assert "\n" not in str(err.value)


def test_integer_embeddings_become_floats(pbmc_small):
    emb = _run(pbmc_small, "integers").obsm["X_emb"]
    assert emb.dtype == np.float32 and emb.shape == (pbmc_small.n_obs, 4)


def test_constant_columns_are_flagged_in_the_log_and_the_file(pbmc_small, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="scdiva.bench.methods"):
        data = _run(pbmc_small, "some_constant")
    flag = ("integration method 'bad_emb': 3 of 7 columns of obsm['X_emb'] are constant or near-constant "
            "(columns 4, 5, 6)")
    assert data.uns["embedding_flags"] == [flag]
    assert flag in caplog.text
    write_embedding(data, tmp_path / "seed0.h5ad", method="bad_emb", seed=0)
    assert list(ad.read_h5ad(tmp_path / "seed0.h5ad").uns["embedding_flags"]) == [flag]
    clean = _run(pbmc_small, "integers")  # no flags: the key is absent, in memory and in the file
    assert "embedding_flags" not in clean.uns
    write_embedding(clean, tmp_path / "clean.h5ad", method="bad_emb", seed=0)
    assert "embedding_flags" not in ad.read_h5ad(tmp_path / "clean.h5ad").uns


# --- files: precomputed embeddings and command outputs ----------------------------------------------


def _from_file(adata, path, **entry):
    record = record_from_config("from_file", {"embedding": str(path), **entry})
    integrate(adata.copy(), record, batch_key=BATCH, label_key="cell_type", seed=0)


def test_a_csv_with_a_text_column_is_refused(pbmc_small, tmp_path):
    table = pd.DataFrame(pbmc_small.obsm["X_pca"][:, :3], index=pbmc_small.obs_names)
    table["cell_type"] = pbmc_small.obs["cell_type"].astype(str).to_numpy()
    table.to_csv(tmp_path / "emb.csv")
    with pytest.raises(MethodError, match=r"method 'from_file': precomputed embedding .*emb.csv has non-numeric "
                                          r"column\(s\) \['cell_type'\] \(e.g. '\w+'\); expected cell names in the "
                                          "first column and one numeric column per dimension") as err:
        _from_file(pbmc_small, tmp_path / "emb.csv")
    assert "\n" not in str(err.value)


def test_a_one_dimensional_embedding_in_a_file_is_refused_with_the_reshape(pbmc_small, tmp_path):
    """anndata reads a 1-D obsm dataset as one column without a word; the harness says what it saw."""
    import h5py

    out = ad.AnnData(obs=pd.DataFrame(index=pbmc_small.obs_names))
    out.obsm["X_emb"] = np.ones((pbmc_small.n_obs, 1))
    out.write_h5ad(tmp_path / "emb.h5ad")
    with h5py.File(tmp_path / "emb.h5ad", "r+") as handle:  # as an R or h5py writer stores a vector
        attrs = dict(handle["obsm/X_emb"].attrs)
        del handle["obsm/X_emb"]
        handle.create_dataset("obsm/X_emb", data=pbmc_small.obsm["X_pca"][:, 0]).attrs.update(attrs)
    with pytest.raises(MethodError, match=r"is a 1-D array of 480 values; an embedding is 2-D \(cells x dimensions\): "
                                          r"if one dimension is meant, reshape it to \(n_cells, 1\)"):
        _from_file(pbmc_small, tmp_path / "emb.h5ad")


def test_a_command_writing_text_where_an_h5ad_was_due(pbmc_small, tmp_path):
    record = record_from_config("texter", {"command": f"{sys.executable} -c "
                                                      "\"import sys; open(sys.argv[2], 'w').write('cell,x\\nc1,1\\n')\""
                                                      " {input} {output}"})
    with pytest.raises(MethodError, match=r"integration method 'texter': the command's \{output\} .*output.h5ad is not "
                                          r"an AnnData .h5ad file \(it starts with 'cell,x\\nc1,1\\n'; .*\); expected "
                                          r"an .h5ad with obsm\['X_emb'\]") as err:
        integrate(pbmc_small.copy(), record, batch_key=BATCH, label_key="cell_type", seed=0)
    assert "\n" not in str(err.value)


def test_a_command_output_with_a_sparse_embedding_is_refused(pbmc_small, tmp_path):
    script = tmp_path / "sparse.py"
    script.write_text("import sys, anndata, scipy.sparse as sp\n"
                      "a = anndata.read_h5ad(sys.argv[1])\n"
                      "out = anndata.AnnData(obs=a.obs[[]])\n"
                      "out.obsm['X_emb'] = sp.csr_matrix(a.obsm['X_pca'][:, :3])\n"
                      "out.write_h5ad(sys.argv[2])\n")
    record = record_from_config("sparse_cli", {"command": f"{sys.executable} {script} {{input}} {{output}}"})
    with pytest.raises(MethodError, match=r"integration method 'sparse_cli': obsm\['X_emb'\] of the command's output "
                                          "h5ad is a sparse matrix"):
        integrate(pbmc_small.copy(), record, batch_key=BATCH, label_key="cell_type", seed=0)


# --- annotation entry points returning the wrong thing ---------------------------------------------------


def _wrong_annotator(reference, *, label_key, batch_key, seed, params, threads):
    what = params["what"]
    if what == "not_fitted":
        return lambda query: np.zeros(query.n_obs)
    if what == "short":
        return FittedAnnotator(predict=lambda query: np.array(["A"] * (query.n_obs - 1)))
    if what == "two_d":
        return FittedAnnotator(predict=lambda query: np.array([["A", "B"]] * query.n_obs))
    return FittedAnnotator(predict=lambda query: None)


@pytest.mark.parametrize(("what", "message"), [
    ("not_fitted", r"annotation method 'wrong': its fitter returned function; expected a "
                   r"scdiva.bench.tasks.annotation.base.FittedAnnotator\(predict=..., map_query=None\)"),
    ("short", r"annotation method 'wrong': predict returned 116 labels for 117 query cells; expected one label per "
              "query cell"),
    ("two_d", r"annotation method 'wrong': predict returned an array of shape \(117, 2\); expected a 1-D array of "
              "117 labels"),
    ("none", r"annotation method 'wrong': predict returned an array of shape \(\); expected a 1-D array of 117 labels"),
])
def test_an_annotation_method_returning_the_wrong_type_is_named(pbmc_small, what, message):
    reference, query = split_reference_query(pbmc_small, batch_key=BATCH, label_key="cell_type",
                                             reference_batches=["3pv2", "5p"], query_batches=["3pv1"])
    assert query.n_obs == 117
    record = record_from_config("wrong", {"task": "annotation", "entry_point": f"{__name__}:_wrong_annotator",
                                          "params": {"what": what}})
    with pytest.raises(MethodError, match=message) as err:
        annotate(record, reference, query, label_key="cell_type", batch_key=BATCH, timing_repeats=1)
    assert "\n" not in str(err.value)
