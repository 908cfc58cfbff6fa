"""The truth stays with the harness (scdiva.bench.api.annotate, scdiva.bench.api.integrate).

Every method - built in, entry point, command, precomputed embedding - is run on real PBMCs twice: once
as they are and once with the query's label columns (``cell_type`` and the coarse ``cell_type_broad``)
replaced by garbage. A spy around each method records what it was given: no label column of the query,
and for integration methods not declared ``needs_labels`` no ``label_key`` and no label column at all.
Garbage labels change no prediction and no embedding; methods that write into the objects they are
given (scanpy's ``sc.tl.ingest`` writing its predictions into the query's label column) change no
score and nothing of the caller's. Last, ``annotate`` itself scores a method with fixed predictions
to hand-computed accuracy and macro-F1.
"""

from __future__ import annotations

import dataclasses
import sys
import textwrap

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from scdiva.bench.api import annotate, integrate
from scdiva.bench.core.sampling import split_reference_query
from scdiva.bench.methods.catalog import get_method
from scdiva.bench.methods.external import record_from_config
from scdiva.bench.tasks.annotation.base import FittedAnnotator
from scdiva.bench.tasks.annotation.metrics import annotation_metrics

LABEL_COLUMNS = ("cell_type", "cell_type_broad")  # both are labels: the fine and the coarse cell type
BATCH = "donor"


def garbage_labels(adata: ad.AnnData, seed: int = 1) -> ad.AnnData:
    """A copy whose label columns are garbage: labels shuffled and renamed, so a method reading them
    would answer differently."""
    out = adata.copy()
    rng = np.random.default_rng(seed)
    for column in LABEL_COLUMNS:
        values = out.obs[column].astype(str).to_numpy()
        out.obs[column] = pd.Categorical([f"garbage_{v}" for v in rng.permutation(values)])
    return out


@pytest.fixture(scope="module")
def split(pbmc_small):
    return split_reference_query(pbmc_small, batch_key=BATCH, label_key="cell_type",
                                 reference_batches=["3pv2", "5p"], query_batches=["3pv1"])


@pytest.fixture(scope="module")
def checkpoint(pbmc_small, tmp_path_factory):
    """A tiny ScDiVa checkpoint trained here for a few steps on the small PBMCs' counts."""
    from scdiva import ScDiVaModel
    from scdiva.bench.methods.scdiva import counts_view

    model = ScDiVaModel.from_config("tiny", genes=pbmc_small.var_names)
    model.fit(counts_view(pbmc_small), tasks=["masked_expression", "integration"], batch_key=BATCH,
              max_steps=3, batch_size=32, progress_bar=False)
    path = tmp_path_factory.mktemp("ckpt") / "scdiva_tiny"
    model.save_pretrained(str(path))
    return str(path)


# --- spies: what a method was given --------------------------------------------------------------


def spy_annotation(record, seen: list):
    """The record with its fitter wrapped: every query passed to map_query / predict has its obs
    columns appended to ``seen``."""
    fitter = record.load()

    def fit(reference, **kwargs):
        fitted = fitter(reference, **kwargs)

        def predict(query):
            seen.append(sorted(query.obs.columns))
            return fitted.predict(query)

        def map_query(query):
            seen.append(sorted(query.obs.columns))
            fitted.map_query(query)

        return FittedAnnotator(predict=predict, map_query=map_query if fitted.map_query is not None else None)

    return dataclasses.replace(record, function=fit)


def spy_integration(record, seen: list):
    """The record with its function wrapped: the label_key and obs columns it got go to ``seen``."""
    function = record.load()

    def run(adata, **kwargs):
        seen.append((kwargs["label_key"], sorted(adata.obs.columns)))
        function(adata, **kwargs)

    return dataclasses.replace(record, function=run)


def annotate_twice(record, split, params=None):
    """Predictions on the query and on the query with garbage labels, and what the method saw."""
    reference, query = split
    seen: list = []
    spied = spy_annotation(record, seen)
    runs = [annotate(spied, reference, q, label_key="cell_type", batch_key=BATCH, seed=0, params=params,
                     timing_repeats=1) for q in (query, garbage_labels(query))]
    return runs, seen


def assert_blind_annotation(record, split, params=None):
    (clean, garbage), seen = annotate_twice(record, split, params)
    assert seen and all(not set(LABEL_COLUMNS) & set(cols) for cols in seen), seen
    np.testing.assert_array_equal(clean.predictions["predicted"], garbage.predictions["predicted"])
    truth = split[1].obs["cell_type"].astype(str).to_numpy()
    np.testing.assert_array_equal(clean.predictions["true"], truth)
    assert clean.scores == annotation_metrics(truth, clean.predictions["predicted"])
    return clean


# --- annotation: every built-in ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["logreg", "knn_pca", "celltypist"])
def test_builtin_annotation_never_sees_the_query_labels(split, method):
    result = assert_blind_annotation(get_method("annotation", method), split)
    assert result.scores["accuracy"] > 0.6, result.scores  # a working method, not a constant one


@pytest.mark.slow  # scVI + scANVI + query training twice (a few epochs each)
def test_builtin_scanvi_annotation_never_sees_the_query_labels(split):
    assert_blind_annotation(get_method("annotation", "scanvi"), split,
                            params={"scvi_max_epochs": 2, "scanvi_max_epochs": 1, "query_max_epochs": 2})


def test_builtin_scdiva_annotation_never_sees_the_query_labels(split, checkpoint):
    assert_blind_annotation(get_method("annotation", "scdiva"), split,
                            params={"checkpoint": checkpoint, "max_steps": 3, "batch_size": 32, "query_epochs": 1})


# --- annotation: configured methods that would cheat if they could ---------------------------------


def peeking_annotator(reference, *, label_key, batch_key, seed, params, threads):
    """A cheat: predicts the query's own labels whenever it can read them, else the nearest centroid."""
    labels = reference.obs[label_key].astype(str)
    centroids = pd.DataFrame(reference.obsm["X_pca"], index=reference.obs_names).groupby(labels.to_numpy()).mean()

    def predict(query):
        for column in (label_key, "cell_type_broad"):
            if column in query.obs:
                return query.obs[column].astype(str).to_numpy()
        dist = ((query.obsm["X_pca"][:, None, :] - centroids.to_numpy()[None]) ** 2).sum(-1)
        return centroids.index.to_numpy()[dist.argmin(1)]

    return FittedAnnotator(predict=predict)


# A command that cheats with whatever label column the query still has (the coarse one, if hidden the fine one).
PEEKING_COMMAND = textwrap.dedent("""
    import sys, anndata, numpy as np, pandas as pd
    ref, query, out, label_key = anndata.read_h5ad(sys.argv[1]), anndata.read_h5ad(sys.argv[2]), sys.argv[3], sys.argv[4]
    for column in (label_key, "cell_type_broad"):
        if column in query.obs:
            labels = query.obs[column].astype(str).to_numpy()
            break
    else:
        labels = np.full(query.n_obs, ref.obs[label_key].astype(str).value_counts().index[0])
    pd.DataFrame({"label": labels}, index=query.obs_names).to_csv(out)
""")


@pytest.mark.parametrize("kind", ["entry_point", "command"])
def test_configured_annotation_methods_never_see_the_query_labels(split, kind, tmp_path):
    if kind == "entry_point":
        entry = {"entry_point": f"{__name__}:peeking_annotator"}
    else:
        (tmp_path / "peek.py").write_text(PEEKING_COMMAND)
        entry = {"command": f"{sys.executable} {tmp_path / 'peek.py'} {{reference}} {{query}} {{output}} {{label_key}}"}
    assert_blind_annotation(record_from_config("peek", {"task": "annotation", **entry}), split)


# --- annotation: a method that writes into what it is given ----------------------------------------


def ingest_annotator(reference, *, label_key, batch_key, seed, params, threads):
    """scanpy's reference mapping as a user would write it: ``sc.tl.ingest(query, reference,
    obs=label_key)`` writes its predictions into the query's label column, and those are returned.
    It also scribbles over the reference's labels and the query's expression afterwards."""
    import scanpy as sc

    sc.pp.neighbors(reference, use_rep="X_pca", random_state=seed)

    def predict(query):
        sc.tl.ingest(query, reference, obs=label_key, embedding_method="pca")
        labels = query.obs[label_key].astype(str).to_numpy()
        reference.obs[label_key] = "scribbled"
        query.X = query.X * 0
        return labels

    return FittedAnnotator(predict=predict)


def writing_annotator(reference, *, label_key, batch_key, seed, params, threads):
    """ingest's pattern without its minutes of numba compilation: a kNN vote written into the query's
    label column and read back from there; then the reference's labels and the query's X scribbled over."""
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(15).fit(reference.obsm["X_pca"], reference.obs[label_key].astype(str))

    def predict(query):
        query.obs[label_key] = knn.predict(query.obsm["X_pca"])
        labels = query.obs[label_key].astype(str).to_numpy()
        reference.obs[label_key] = "scribbled"
        query.X = query.X * 0
        return labels

    return FittedAnnotator(predict=predict)


@pytest.mark.parametrize("entry_point", [
    "writing_annotator",
    pytest.param("ingest_annotator", marks=pytest.mark.slow),  # ingest compiles umap's numba code: minutes
])
def test_a_method_writing_into_its_inputs_changes_no_score(split, entry_point):
    """Today's bug: ingest as an entry point scored accuracy 1.000 (its predictions were read back as
    truth). Now the score is that of its predictions against the truth taken before it ran."""
    reference, query = split
    before = (reference.copy(), query.copy())
    record = record_from_config("ingest", {"task": "annotation", "entry_point": f"{__name__}:{entry_point}"})
    result = annotate(record, reference, query, label_key="cell_type", batch_key=BATCH, timing_repeats=2)
    truth = before[1].obs["cell_type"].astype(str).to_numpy()
    np.testing.assert_array_equal(result.predictions["true"], truth)
    assert result.scores == annotation_metrics(truth, result.predictions["predicted"])
    assert 0.5 < result.scores["accuracy"] < 1.0, result.scores  # a real method, no longer a perfect one
    for original, now in zip(before, (reference, query), strict=True):  # the caller's objects are untouched
        pd.testing.assert_frame_equal(original.obs, now.obs)
        assert (original.X != now.X).nnz == 0


# --- integration: every built-in not declared needs_labels, and each configured kind ------------------


def integrate_twice(record, adata, params=None, **files):
    seen: list = []
    spied = spy_integration(record, seen)
    embeddings = []
    for data in (adata.copy(), garbage_labels(adata)):
        integrate(data, spied, batch_key=BATCH, label_key="cell_type", seed=0, params=params, threads=1, **files)
        embeddings.append(np.asarray(data.obsm["X_emb"]))
    return embeddings, seen


def assert_blind_integration(record, adata, params=None, **files):
    (clean, garbage), seen = integrate_twice(record, adata, params, **files)
    assert seen == [(None, [BATCH])] * 2, seen  # no label_key, obs holds the batch column only
    np.testing.assert_array_equal(clean, garbage)


@pytest.mark.parametrize(("method", "params"), [
    ("unintegrated", None),
    ("harmony", None),
    ("scanorama", None),
    ("scvi", {"max_epochs": 2}),
])
def test_builtin_integration_never_sees_labels(pbmc_small, method, params):
    assert_blind_integration(get_method("integration", method), pbmc_small, params)


def test_builtin_scdiva_integration_never_sees_labels(pbmc_small, checkpoint):
    assert_blind_integration(get_method("integration", "scdiva_zeroshot"), pbmc_small, {"checkpoint": checkpoint})
    assert_blind_integration(get_method("integration", "scdiva_finetuned"), pbmc_small,
                             {"checkpoint": checkpoint, "max_steps": 2, "batch_size": 32})


def peeking_embedding(adata, *, batch_key, label_key, seed, params, threads):
    """A cheat: one-hot of every label column it can see, beside the first principal components."""
    parts = [adata.obsm["X_pca"][:, :5]]
    for column in LABEL_COLUMNS:
        if column in adata.obs:
            parts.append(pd.get_dummies(adata.obs[column].astype(str)).to_numpy(dtype=np.float32) * 10)
    adata.obsm["X_emb"] = np.concatenate(parts, axis=1).astype(np.float32)


PEEKING_EMBED_COMMAND = textwrap.dedent("""
    import sys, anndata, numpy as np, pandas as pd
    a = anndata.read_h5ad(sys.argv[1])
    parts = [a.obsm["X_pca"][:, :5]]
    for column in a.obs.columns:
        if column != "donor":
            parts.append(pd.get_dummies(a.obs[column].astype(str)).to_numpy(dtype=np.float32) * 10)
    out = anndata.AnnData(obs=a.obs[[]])
    out.obsm["X_emb"] = np.concatenate(parts, axis=1).astype(np.float32)
    out.write_h5ad(sys.argv[2])
""")


@pytest.mark.parametrize("kind", ["entry_point", "command", "embedding"])
def test_configured_integration_methods_never_see_labels(pbmc_small, kind, tmp_path):
    if kind == "entry_point":
        entry = {"entry_point": f"{__name__}:peeking_embedding"}
    elif kind == "command":
        (tmp_path / "embed.py").write_text(PEEKING_EMBED_COMMAND)
        entry = {"command": f"{sys.executable} {tmp_path / 'embed.py'} {{input}} {{output}} {{label_key}}"}
    else:
        pd.DataFrame(pbmc_small.obsm["X_pca"][:, :4], index=pbmc_small.obs_names).to_csv(tmp_path / "emb.csv")
        entry = {"embedding": str(tmp_path / "emb.csv")}
    assert_blind_integration(record_from_config("peek", entry), pbmc_small)


def scribbling_embedding(adata, *, batch_key, label_key, seed, params, threads):
    """Writes its "predictions" into the label column, garbage into the batch column, and drops a column."""
    adata.obs[label_key or "cell_type"] = "scribbled"  # not given the key, it guesses the column's name
    adata.obs[batch_key] = "scribbled"
    adata.obs.drop(columns=[c for c in adata.obs.columns if str(c).startswith("n_")], inplace=True)
    adata.obsm["X_emb"] = np.asarray(adata.obsm["X_pca"][:, :3])


@pytest.mark.parametrize("needs_labels", [False, True])
def test_an_integration_method_writing_into_obs_leaves_the_callers_truth(pbmc_small, needs_labels):
    """A method declared needs_labels gets the labels, but neither kind can change the caller's obs."""
    adata = pbmc_small.copy()
    record = record_from_config("scribble", {"entry_point": f"{__name__}:scribbling_embedding",
                                             "needs_labels": needs_labels})
    integrate(adata, record, batch_key=BATCH, label_key="cell_type", seed=0)
    pd.testing.assert_frame_equal(adata.obs, pbmc_small.obs)
    assert adata.obsm["X_emb"].shape == (adata.n_obs, 3)


# --- annotate() scores what the harness holds: known answers -----------------------------------------

FIXED_TRUTH = ["A", "A", "A", "B", "B", "C"]
FIXED_PREDICTIONS = ["A", "A", "B", "B", "B", "A"]


def fixed_annotator(reference, *, label_key, batch_key, seed, params, threads):
    """Returns the same six predictions whatever it is given."""
    return FittedAnnotator(predict=lambda query: np.array(FIXED_PREDICTIONS))


def _tiny(labels, batch):
    rng = np.random.default_rng(0)
    obs = pd.DataFrame({"cell_type": labels, BATCH: batch}, index=[f"{batch}_{i}" for i in range(len(labels))])
    return ad.AnnData(X=rng.poisson(1.0, (len(labels), 4)).astype(np.float32), obs=obs)


def test_annotate_scores_fixed_predictions_to_hand_computed_values():
    """Truth A A A B B C, predictions A A B B B A. Accuracy 4/6. F1 over the true classes: A: 2 right of
    3 predicted and 3 true = 2/3; B: 2 right of 3 predicted and 2 true = 0.8; C: 0. Macro-F1 0.48889.
    Swapping truth and predictions at the call gives macro-F1 (2/3 + 0.8) / 2 = 0.73333 over classes A, B."""
    record = record_from_config("fixed", {"task": "annotation", "entry_point": f"{__name__}:fixed_annotator"})
    reference, query = _tiny(["A", "B", "C"], "ref"), _tiny(FIXED_TRUTH, "query")
    result = annotate(record, reference, query, label_key="cell_type", batch_key=BATCH, timing_repeats=1)
    assert result.scores["accuracy"] == pytest.approx(4 / 6)
    assert result.scores["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 0.0) / 3)
    assert result.scores["f1:A"] == pytest.approx(2 / 3) and result.scores["f1:B"] == pytest.approx(0.8)
    assert result.scores["f1:C"] == 0.0
    assert list(result.predictions["true"]) == FIXED_TRUTH
    assert list(result.predictions["predicted"]) == FIXED_PREDICTIONS
    assert list(result.predictions.index) == list(query.obs_names)
    assert result.unseen == {}
