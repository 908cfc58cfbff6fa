"""Annotation benchmark on the real PBMCs: split, baselines, metrics, timing, figure."""

import numpy as np
import pytest

from scdiva.bench.api import annotate
from scdiva.bench.core.sampling import split_reference_query
from scdiva.bench.tasks.annotation.metrics import annotation_metrics, confusion_table, plot_confusion

REFERENCE = ["3pv1", "3pv2"]


@pytest.fixture(scope="module")
def split(pbmc_preprocessed):
    return split_reference_query(pbmc_preprocessed, batch_key="donor", label_key="cell_type",
                                 reference_batches=REFERENCE)


def broken_scores(result, reference, label_key="cell_type"):
    """Scores, by the benchmark's own metric, of two broken methods on the same query: the method's
    predictions shuffled over the cells, and the reference's majority class for every cell."""
    true = result.predictions["true"].to_numpy()
    shuffled = np.random.default_rng(0).permutation(result.predictions["predicted"].to_numpy())
    majority = np.full(len(true), reference.obs[label_key].astype(str).value_counts().idxmax())
    return {"shuffled": annotation_metrics(true, shuffled), "majority": annotation_metrics(true, majority)}


def assert_beats_broken(result, reference, margin=0.3, f1_margin=None):
    """Accuracy at least ``margin`` and macro-F1 at least ``f1_margin`` (default ``margin``) above each
    broken method's, and the scores are those of the predictions against the query's own labels."""
    assert result.scores == annotation_metrics(result.predictions["true"], result.predictions["predicted"])
    margins = {"accuracy": margin, "macro_f1": margin if f1_margin is None else f1_margin}
    for name, broken in broken_scores(result, reference).items():
        for metric, above in margins.items():
            assert result.scores[metric] > broken[metric] + above, (name, metric, result.scores[metric], broken)


def shuffled_labels(reference, label_key="cell_type"):
    """The reference with its label column shuffled over the cells: a method reading a wrong column."""
    broken = reference.copy()
    broken.obs[label_key] = np.random.default_rng(1).permutation(broken.obs[label_key].to_numpy())
    return broken


def test_split_by_batch_and_bad_batch_is_named(pbmc_preprocessed, split):
    reference, query = split
    assert set(reference.obs["donor"]) == set(REFERENCE) and set(query.obs["donor"]) == {"5p"}
    assert reference.n_obs + query.n_obs == pbmc_preprocessed.n_obs
    with pytest.raises(ValueError, match="'3pv9'.*donor"):
        split_reference_query(pbmc_preprocessed, batch_key="donor", label_key="cell_type",
                              reference_batches=["3pv9"])


def test_metrics_count_unseen_classes_as_errors():
    true = ["A", "A", "B", "RARE"]
    scores = annotation_metrics(true, ["A", "A", "B", "A"])
    assert scores["accuracy"] == pytest.approx(0.75)
    assert scores["f1:RARE"] == 0.0
    assert scores["macro_f1"] == pytest.approx(np.mean([0.8, 1.0, 0.0]))


def test_celltypist_trains_with_this_scikit_learn(split):
    """CellTypist's SGD logistic regression trains with scikit-learn 1.9 (its full-batch solver cannot)."""
    reference, query = split
    result = annotate("celltypist", reference, query, label_key="cell_type", batch_key="donor", seed=0,
                      timing_repeats=1)
    assert result.predictions.index.equals(query.obs_names)
    assert result.scores["accuracy"] > 0.7, result.scores
    assert_beats_broken(result, reference)


@pytest.mark.parametrize("method", ["logreg", "knn_pca"])
def test_baselines_transfer_labels_across_chemistry(split, method, tmp_path):
    reference, query = split
    result = annotate(method, reference, query, label_key="cell_type", batch_key="donor", seed=0, timing_repeats=2)
    assert result.predictions.index.equals(query.obs_names)
    # PBMC types are easy to separate; a working method is far above the majority class (~29%).
    assert result.scores["accuracy"] > 0.7, result.scores
    assert_beats_broken(result, reference)
    # the same method trained on a shuffled label column is scored far lower by the same harness
    broken = annotate(method, shuffled_labels(reference), query, label_key="cell_type", batch_key="donor", seed=0,
                      timing_repeats=1)
    assert result.scores["macro_f1"] > broken.scores["macro_f1"] + 0.3, (result.scores, broken.scores)
    assert list(broken.predictions["true"]) == list(result.predictions["true"])
    assert result.timings["inference_s_per_1k_cells"] > 0 and len(result.inference_repeats_s) == 2
    rows = result.long_form("pbmc_3chem", method, 0)
    assert {"accuracy", "macro_f1", "f1:T_CD4", "inference_s_per_1k_cells"} <= set(rows["metric"])
    figure = tmp_path / "cm.png"
    plot_confusion(confusion_table(result.predictions["true"], result.predictions["predicted"]), str(figure))
    assert figure.stat().st_size > 1000


@pytest.mark.slow  # scVI + scANVI + query training, over a minute on one core
def test_scanvi_maps_query_without_seeing_its_labels(split):
    reference, query = split
    query = query.copy()
    truth = query.obs["cell_type"].copy()
    result = annotate("scanvi", reference, query, label_key="cell_type", batch_key="donor", seed=0,
                      params={"scvi_max_epochs": 10, "scanvi_max_epochs": 2, "query_max_epochs": 5},
                      timing_repeats=1)
    assert (query.obs["cell_type"] == truth).all()  # the caller's query is untouched
    assert result.timings["query_fit_s"] > 0
    assert set(result.predictions["predicted"]) <= set(reference.obs["cell_type"].astype(str))
    assert result.scores["accuracy"] > 0.5, result.scores
    # a few epochs leave the rare classes unlearnt: macro-F1 0.20 against 0.10 shuffled, accuracy 0.5+ against 0.27
    assert_beats_broken(result, reference, margin=0.15, f1_margin=0.05)
