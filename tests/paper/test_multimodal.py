"""scdiva.bench.tasks.multimodal: metric known answers and input checks on the real ECCITE-seq PBMCs."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pytest

from scdiva.bench.tasks.multimodal import (
    MultimodalError,
    check_multimodal_source,
    clr_normalise,
    embedding_metrics,
    held_out_mask,
    method_params,
    neighbour_agreement,
    prepare_multimodal,
    protein_prediction_metrics,
    run_multimodal,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "citeseq_eccite_pbmc.h5ad"
ENTRY = {"protein_obsm_key": "protein_expression", "batch_key": "hto_sample"}


@pytest.fixture(scope="module")
def prepared() -> ad.AnnData:
    return prepare_multimodal(ad.read_h5ad(DATA), n_top_genes=500, subsample=300, seed=0, **ENTRY)


def test_prepared_layout(prepared):
    assert prepared.n_obs == 300 and prepared.n_vars == 500
    assert prepared.obsm["protein"].shape == (300, 49)
    assert prepared.obsm["X_protein"].shape[0] == 300 and "X_pca" in prepared.obsm
    counts = prepared.layers["counts"].data
    assert np.allclose(counts, np.round(counts))
    # every hashtag sample keeps cells (stratified subsample)
    assert prepared.obs["hto_sample"].value_counts().min() >= 50


def test_protein_prediction_known_answers():
    rng = np.random.default_rng(0)
    observed = rng.poisson(rng.uniform(1, 30, size=(1, 4)), size=(80, 4)).astype(float)
    names = ["CD8", "CD4", "IgG1", "CD2"]
    train_mean = np.log1p(observed).mean(0)
    perfect, per_protein = protein_prediction_metrics(observed, observed, train_mean, names)
    assert perfect["protein_pearson"] == pytest.approx(1.0)
    assert perfect["protein_spearman"] == pytest.approx(1.0)
    assert perfect["protein_mse"] == pytest.approx(0.0)
    assert perfect["protein_r2_vs_mean"] == pytest.approx(1.0)
    assert list(per_protein["protein"]) == ["CD8", "CD4", "CD2"]  # the isotype control is not scored
    mean = np.tile(np.expm1(train_mean), (80, 1))
    at_mean, _ = protein_prediction_metrics(observed, mean, train_mean, names)
    assert at_mean["protein_r2_vs_mean"] == pytest.approx(0.0, abs=1e-9)
    assert np.isnan(at_mean["protein_pearson"])  # a constant prediction has no correlation
    reversed_, _ = protein_prediction_metrics(observed, observed.max(0) - observed, train_mean, names)
    assert reversed_["protein_pearson"] < -0.5


def test_neighbour_agreement_known_answers():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 5))
    assert neighbour_agreement(x, x) == pytest.approx(1.0)
    assert neighbour_agreement(x, 3.0 * x + 1.0) == pytest.approx(1.0)  # similarity-invariant
    assert neighbour_agreement(x, rng.normal(size=(200, 5))) < 0.2
    # partial overlap: the Jaccard index |A & B| / |A | B| of each cell's 15-NN sets, averaged
    y = x + rng.normal(scale=0.5, size=x.shape)
    from sklearn.neighbors import NearestNeighbors

    def sets(z):
        return [set(row[1:]) for row in NearestNeighbors(n_neighbors=16).fit(z).kneighbors(z)[1]]

    expected = np.mean([len(a & b) / len(a | b) for a, b in zip(sets(x), sets(y), strict=True)])
    assert 0.1 < expected < 0.9
    assert neighbour_agreement(x, y) == pytest.approx(expected)


def test_clr_and_held_out_split(prepared):
    clr = clr_normalise(np.array([[0, 1, 3], [10, 10, 10]]))
    assert np.allclose(clr.sum(1), 0.0, atol=1e-6) and np.allclose(clr[1], 0.0)
    mask = held_out_mask(prepared, 0.2, seed=0)
    assert mask.sum() == pytest.approx(60, abs=2)
    for _, n in prepared.obs["hto_sample"][mask].value_counts().items():
        assert n >= 10  # every hashtag sample contributes held-out cells
    assert (held_out_mask(prepared, 0.2, seed=0) == mask).all()
    assert not (held_out_mask(prepared, 0.2, seed=1) == mask).all()


def test_missing_protein_key_is_named():
    with pytest.raises(MultimodalError, match=r"obsm\['adt'\].*obsm keys: \['hto', 'protein_expression'\]"):
        check_multimodal_source(DATA, {**ENTRY, "protein_obsm_key": "adt"}, dataset="cite")
    with pytest.raises(MultimodalError, match="protein_obsm_key 'adt' is not in adata.obsm"):
        prepare_multimodal(ad.read_h5ad(DATA), protein_obsm_key="adt", batch_key="hto_sample", dataset="cite")
    with pytest.raises(MultimodalError, match="batch_key` 'sample' is not an obs column"):
        check_multimodal_source(DATA, {**ENTRY, "batch_key": "sample"}, dataset="cite")
    check_multimodal_source(DATA, ENTRY, dataset="cite")  # the right keys pass
    with pytest.raises(MultimodalError, match="no parameters \\['epochs'\\]"):
        method_params("totalvi", {"epochs": 3})


def assert_embedding_beats_broken(values, embedding, prepared, margin=0.05):
    """The table's embedding scores are the scoring function's on the method's embedding, and that
    embedding agrees with both modalities' neighbourhoods and protein clusters measurably better than
    the same embedding with its rows shuffled (cells mixed up) or a constant one."""
    real = embedding_metrics(embedding, prepared, seed=0)
    for metric, value in real.items():
        assert values[metric] == pytest.approx(value, abs=1e-6), (metric, values[metric], value)
    rng = np.random.default_rng(0)
    broken = {"shuffled": embedding[rng.permutation(len(embedding))],
              "constant": np.zeros_like(embedding) + rng.normal(scale=1e-6, size=embedding.shape)}
    for name, bad in broken.items():
        scores = embedding_metrics(bad, prepared, seed=0)
        for metric in ("rna_graph_agreement", "protein_graph_agreement", "protein_cluster_nmi"):
            assert real[metric] > scores[metric] + margin, (name, metric, real[metric], scores[metric])


@pytest.mark.slow
def test_scdiva_beats_the_mean_protein_and_pca_wins_graph_agreement(prepared):
    """ScDiVa's protein prediction from RNA beats the training mean on held-out cells (R² > 0)."""
    scdiva, per_protein, out = run_multimodal(prepared, "scdiva", seed=0, params={"max_steps": 150})
    values = dict(zip(scdiva["metric"], scdiva["value"], strict=True))
    mean, _, _ = run_multimodal(prepared, "mean_protein", seed=0)
    mean_values = dict(zip(mean["metric"], mean["value"], strict=True))
    assert values["protein_mse"] < mean_values["protein_mse"]
    assert values["protein_r2_vs_mean"] > 0.05, values
    assert values["protein_pearson"] > 0.2, values
    assert out.embedding.shape == (prepared.n_obs, 16)
    assert_embedding_beats_broken(values, out.embedding, prepared)
    assert len(per_protein) == 47  # 49 proteins less the two isotype controls


@pytest.mark.slow
def test_totalvi_predicts_held_out_proteins_better_than_the_mean(prepared):
    """totalVI's missing-protein imputation (held-out cells in protein-less batches) beats the training
    mean on held-out cells; scVI, which has no protein decoder, is scored only through its RNA space."""
    totalvi, per_protein, out = run_multimodal(prepared, "totalvi", seed=0, params={"max_epochs": 100})
    values = dict(zip(totalvi["metric"], totalvi["value"], strict=True))
    mean, _, _ = run_multimodal(prepared, "mean_protein", seed=0)
    mean_values = dict(zip(mean["metric"], mean["value"], strict=True))
    assert values["protein_mse"] < mean_values["protein_mse"], (values, mean_values)
    assert values["protein_r2_vs_mean"] > 0.05, values
    assert values["protein_pearson"] > 0.2, values
    assert out.predicted.shape == (held_out_mask(prepared, 0.2, seed=0).sum(), 49)
    assert len(per_protein) == 47
    assert_embedding_beats_broken(values, out.embedding, prepared)
