"""The protein modality of ScDiVa (scdiva.module.protein) on the real ECCITE-seq PBMCs."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pytest

from scdiva import ScDiVaInference, ScDiVaModel
from scdiva.model.protein import ProteinDataError

DATA = Path(__file__).resolve().parents[2] / "data" / "citeseq_eccite_pbmc.h5ad"


@pytest.fixture(scope="module")
def cite() -> ad.AnnData:
    adata = ad.read_h5ad(DATA)
    # the 600 genes with most counts keep the test fast; real counts, real proteins
    total = np.asarray(adata.X.sum(0)).ravel()
    return adata[:, np.sort(np.argsort(-total)[:600])].copy()


def test_protein_prediction_beats_the_mean_protein_on_held_out_cells(cite, tmp_path):
    rng = np.random.default_rng(0)
    order = rng.permutation(cite.n_obs)
    train, test = cite[order[:400]].copy(), cite[order[400:]].copy()
    model = ScDiVaModel.from_config("tiny", genes=cite.var_names, seed=0)
    model.fit(train, tasks=["integration"], batch_key="hto_sample", max_steps=150, progress_bar=False,
              protein_obsm_key="protein_expression")
    assert model.config.n_proteins == 49
    predicted = np.log1p(model.predict_protein(test))  # from RNA only
    observed = np.log1p(test.obsm["protein_expression"].to_numpy())
    mean = np.log1p(train.obsm["protein_expression"].to_numpy()).mean(0)
    mse_model = float(((predicted - observed) ** 2).mean())
    mse_mean = float(((mean - observed) ** 2).mean())
    assert mse_model < 0.9 * mse_mean, (mse_model, mse_mean)

    # saved and reloaded: same protein names, same predictions; the joint embedding uses the proteins
    model.save_pretrained(tmp_path / "ckpt")
    inference = ScDiVaInference(model_name=tmp_path / "ckpt", device="cpu")
    assert inference.model.config.protein_names == list(cite.obsm["protein_expression"].columns)
    inference.predict_protein(test)
    np.testing.assert_allclose(np.log1p(test.obsm["scdiva_protein"].to_numpy()), predicted, rtol=1e-4, atol=1e-4)
    joint = inference.embed(test.copy(), protein_obsm_key="protein_expression").obsm["X_scdiva"]
    rna_only = inference.embed(test.copy()).obsm["X_scdiva"]
    assert joint.shape == (test.n_obs, model.config.n_latent)
    assert not np.allclose(joint, rna_only)


def test_bad_protein_input_is_named(cite):
    model = ScDiVaModel.from_config("tiny", genes=cite.var_names)
    with pytest.raises(ProteinDataError, match="'adt'.*not in adata.obsm.*protein_expression"):
        model.fit(cite, tasks=["integration"], max_steps=1, protein_obsm_key="adt", progress_bar=False)
    bad = cite.copy()
    bad.obsm["protein_expression"] = np.log1p(bad.obsm["protein_expression"])
    with pytest.raises(ProteinDataError, match="not a non-negative integer"):
        model.fit(bad, tasks=["integration"], max_steps=1, protein_obsm_key="protein_expression",
                  progress_bar=False)


def test_rna_only_model_refuses_a_protein_key(cite):
    model = ScDiVaModel.from_config("tiny", genes=cite.var_names)
    assert model.module.protein is None and model.config.protein_names == []
    with pytest.raises(ValueError, match="no protein modality"):
        model.get_latent(cite, protein_obsm_key="protein_expression")
