"""scdiva.bench.tasks.cross_species on the real Baron pancreas data (human and mouse)."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scdiva.bench.tasks.cross_species import (
    CrossSpeciesError,
    check_cross_species_config,
    check_species_pair,
    cross_species_annotation_scores,
    prepare_pair,
    run_cross_species_annotation,
    shared_genes,
)

DATA = Path(__file__).resolve().parents[2] / "data"
HUMAN = {"species": "human", "label_key": "cell_type", "batch_key": "donor"}
MOUSE = {"species": "mouse", "label_key": "cell_type", "batch_key": "library"}


@pytest.fixture(scope="module")
def combined() -> ad.AnnData:
    return prepare_pair(ad.read_h5ad(DATA / "pancreas_baron_human.h5ad"), ad.read_h5ad(DATA / "pancreas_baron_mouse.h5ad"),
                        reference_entry=HUMAN, query_entry=MOUSE, reference_name="human", query_name="mouse",
                        subsample=400, seed=0)


def test_upper_cased_symbols_are_the_shared_genes(combined):
    assert shared_genes(["GCG", "INS", "HLA-A"], ["Gcg", "Ins1", "H2-Aa"]) == ["GCG"]
    info = combined.uns["cross_species"]
    assert info["n_shared_genes"] == 1836  # as data/README.md states
    assert info["collisions"] == {"human": 0, "mouse": 1}  # mouse PISD / Pisd
    assert {"GCG", "SST", "NKX6-1"} <= set(combined.var_names)
    # the known limit of symbol matching: human INS has two mouse orthologs, Ins1 and Ins2, neither matches
    assert "INS" not in set(combined.var_names)
    assert set(combined.obs["species"]) == {"human", "mouse"}
    assert combined.obs["xs_batch"].str.startswith(("human:", "mouse:")).all()


def test_collision_keeps_the_gene_with_more_counts():
    adata = ad.AnnData(X=sp.csr_matrix(np.array([[1, 5, 1], [0, 5, 1]], dtype=np.float32)),
                       obs=pd.DataFrame({"t": ["a", "b"], "b": ["x", "x"]}, index=["c1", "c2"]),
                       var=pd.DataFrame(index=["Pisd", "PISD", "Gcg"]))
    from scdiva.bench.tasks.cross_species import _to_symbols

    out = _to_symbols(adata, "m")
    assert list(out.var_names) == ["PISD", "GCG"] and out.uns["collisions"] == 1
    assert out.X[:, 0].toarray().ravel().tolist() == [5, 5]  # the column with 10 counts, not 1


def test_too_few_shared_genes_is_an_error():
    human = [f"GENE{i}" for i in range(300)]
    with pytest.raises(CrossSpeciesError, match=r"only 3 genes are shared.*at least 200"):
        check_species_pair("h", "m", human, ["Gene1", "Gene2", "Gene3"] + [f"ENSMUSG{i:011d}" for i in range(300)])
    assert len(check_species_pair("h", "m", human, [g.lower() for g in human])) == 300


def test_config_check_names_pairs_and_species():
    section = {"datasets": {"h": HUMAN, "m": MOUSE}, "pairs": [{"reference": "h", "query": "x"}]}
    paths = {"h": DATA / "pancreas_baron_human.h5ad", "m": DATA / "pancreas_baron_mouse.h5ad"}
    with pytest.raises(CrossSpeciesError, match=r"pairs\[0\].query` names 'x'"):
        check_cross_species_config(section, paths)
    section["pairs"] = [{"reference": "h", "query": "m"}]
    check_cross_species_config(section, paths)
    with pytest.raises(CrossSpeciesError, match="both 'human'"):
        check_cross_species_config({**section, "datasets": {"h": HUMAN, "m": {**MOUSE, "species": "human"}}}, paths)


def test_unseen_types_are_reported_not_dropped():
    true = ["alpha", "alpha", "beta", "macrophage", "macrophage", "t_cell"]
    pred = ["alpha", "beta", "beta", "alpha", "beta", "beta"]
    scores = cross_species_annotation_scores(true, pred, {"alpha", "beta"})
    assert scores["accuracy"] == pytest.approx(2 / 3)  # shared types only
    assert scores["accuracy_all"] == pytest.approx(2 / 6)
    assert scores["unseen_fraction"] == pytest.approx(3 / 6)
    assert scores["unseen_cells:macrophage"] == 2 and scores["unseen_cells:t_cell"] == 1
    assert "f1:macrophage" not in scores and scores["f1:alpha"] == pytest.approx(2 / 3)


def test_logreg_transfers_across_species_both_ways(combined):
    for reference, floor in (("human", 0.6), ("mouse", 0.4)):
        scores, predictions = run_cross_species_annotation(combined, "logreg", reference=reference, seed=0)
        values = dict(zip(scores["metric"], scores["value"], strict=True))
        assert values["accuracy"] > floor, (reference, values)
        query = "mouse" if reference == "human" else "human"
        assert len(predictions) == (combined.obs["dataset"] == query).sum()
    # mouse-only types (macrophage, stellate, ...) are counted when human is the reference
    scores, _ = run_cross_species_annotation(combined, "logreg", reference="human", seed=0)
    assert scores["metric"].str.startswith("unseen_cells:").any()


@pytest.mark.slow
def test_cross_species_annotation_scores_fall_for_a_broken_method(combined):
    """The same harness and metric score broken methods far lower: logreg trained on a shuffled label
    column (a method reading the wrong column), and the real predictions shuffled over the query cells."""
    from scdiva.bench.tasks.cross_species import LABEL_KEY

    scores, predictions = run_cross_species_annotation(combined, "logreg", reference="human", seed=0)
    real = dict(zip(scores["metric"], scores["value"], strict=True))
    broken_data = combined.copy()
    is_ref = (broken_data.obs["dataset"] == "human").to_numpy()
    labels = broken_data.obs[LABEL_KEY].astype(str).to_numpy().copy()
    labels[is_ref] = np.random.default_rng(0).permutation(labels[is_ref])
    broken_data.obs[LABEL_KEY] = pd.Categorical(labels)
    wrong_column, wrong_predictions = run_cross_species_annotation(broken_data, "logreg", reference="human", seed=0)
    wrong_column = dict(zip(wrong_column["metric"], wrong_column["value"], strict=True))
    assert list(wrong_predictions["true"]) == list(predictions["true"])  # the truth is the same
    reference_types = set(labels[is_ref])
    shuffled = cross_species_annotation_scores(
        predictions["true"], np.random.default_rng(1).permutation(predictions["predicted"].to_numpy()), reference_types)
    assert real == pytest.approx({**cross_species_annotation_scores(predictions["true"], predictions["predicted"],
                                                                    reference_types), "runtime_s": real["runtime_s"]})
    for name, broken in (("shuffled label column", wrong_column), ("shuffled predictions", shuffled)):
        for metric in ("accuracy", "macro_f1", "accuracy_all"):
            assert real[metric] > broken[metric] + 0.3, (name, metric, real[metric], broken[metric])


@pytest.mark.slow
@pytest.mark.jax
def test_cross_species_integration_scores_fall_for_a_broken_embedding(combined):
    """The species-as-batch integration scores of the unintegrated PCA, against the same scoring
    function on its rows shuffled (cells mixed up) and on a constant embedding: bio conservation falls."""
    from scdiva.bench.tasks.cross_species import LABEL_KEY, SPECIES_KEY, run_cross_species_integration
    from scdiva.bench.tasks.integration.metrics import aggregate_scores, compute_integration_metrics

    scores, embedding = run_cross_species_integration(combined, "unintegrated", seed=0)
    real = dict(zip(scores["metric"], scores["value"], strict=True))
    rng = np.random.default_rng(0)
    kwargs = {"batches": combined.obs[SPECIES_KEY].astype(str).to_numpy(),
              "labels": combined.obs[LABEL_KEY].astype(str).to_numpy(), "pre_embedding": combined.obsm["X_pca"],
              "seed": 0, "progress": False}
    same = compute_integration_metrics(embedding, **kwargs)
    assert {m: real[m] for m in same} == pytest.approx(same, nan_ok=True)
    for name, bad in (("shuffled", embedding[rng.permutation(len(embedding))]),
                      ("constant", np.zeros_like(embedding) + rng.normal(scale=1e-6, size=embedding.shape))):
        broken = aggregate_scores(compute_integration_metrics(bad, **kwargs))
        assert real["bio_score"] > broken["bio_score"] + 0.15, (name, real["bio_score"], broken)


def test_only_a_pretraining_method_gets_the_corpus_and_never_its_labels(combined, monkeypatch):
    """The record's ``pretrains`` decides whether the fitter gets both species' cells (ScDiVa's
    pretraining corpus); that corpus, like the query, carries no cell-type label."""
    from scdiva.bench.methods.record import MethodRecord
    from scdiva.bench.tasks import cross_species
    from scdiva.bench.tasks.annotation.base import FittedAnnotator

    seen = {}

    def fit(reference, *, label_key, batch_key, seed, params, threads, corpus=None):
        seen["corpus"] = corpus
        majority = reference.obs[label_key].astype(str).mode()[0]
        return FittedAnnotator(predict=lambda query: np.full(query.n_obs, majority))

    for pretrains in (True, False):
        record = MethodRecord("fake", cross_species.ANNOTATION_TASK, fit, needs_labels=True, pretrains=pretrains)
        monkeypatch.setattr(cross_species, "cross_species_record", lambda task, method, record=record: record)
        monkeypatch.setattr(cross_species, "method_params", lambda task, method, params: {})
        scores, _ = run_cross_species_annotation(combined, "fake", reference="human", seed=0)
        assert "accuracy" in set(scores["metric"])
        if pretrains:
            assert seen["corpus"].n_obs == combined.n_obs
            assert list(seen["corpus"].obs.columns) == [cross_species.BATCH_KEY]
        else:
            assert seen["corpus"] is None
