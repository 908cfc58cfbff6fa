"""Annotation benchmark on the real PBMCs: split, baselines, metrics, timing, figure."""

import numpy as np
import pytest

from scdiva.bench.annotation import (
    annotate,
    annotation_metrics,
    confusion_table,
    plot_confusion,
    split_reference_query,
)

REFERENCE = ["3pv1", "3pv2"]


@pytest.fixture(scope="module")
def split(pbmc_preprocessed):
    return split_reference_query(pbmc_preprocessed, batch_key="donor", label_key="cell_type",
                                 reference_batches=REFERENCE)


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


@pytest.mark.parametrize("method", ["logreg", "knn_pca"])
def test_baselines_transfer_labels_across_chemistry(split, method, tmp_path):
    reference, query = split
    result = annotate(method, reference, query, label_key="cell_type", batch_key="donor", seed=0, timing_repeats=2)
    assert result.predictions.index.equals(query.obs_names)
    # PBMC types are easy to separate; a working method is far above the majority class (~29%).
    assert result.scores["accuracy"] > 0.7, result.scores
    assert 0 < result.scores["macro_f1"] <= 1
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
