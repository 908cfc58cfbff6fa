"""scdiva.bench.cross_species on the real Baron pancreas data (human and mouse)."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scdiva.bench.cross_species import (
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
    from scdiva.bench.cross_species import _to_symbols

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
