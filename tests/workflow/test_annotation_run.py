"""scdiva.bench.tasks.annotation.run on hand-built data and hand-written methods: what ``annotate`` passes a
method, what it scores, how it times, and the one-line errors for methods that break the contract.

Fast (no training, no JAX): these are the tests the mutation run (docs/mutation.md) uses for
``annotation/run.py``.
"""

from __future__ import annotations

import statistics

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from scdiva.bench.api import annotate
from scdiva.bench.methods.record import MethodError, MethodRecord
from scdiva.bench.tasks.annotation.base import FittedAnnotator
from scdiva.bench.tasks.annotation.run import (
    AnnotationResult,
    checked_annotator,
    checked_predictions,
    without_labels,
)

TRUTH = ["A", "A", "A", "B", "B", "C", "D"]  # D is not in the reference
PREDICTED = ["A", "B", "A", "B", "B", "A", "A"]


def _adata(labels: list[str], batch: str) -> ad.AnnData:
    rng = np.random.default_rng(len(labels))
    obs = pd.DataFrame({"cell_type": pd.Categorical(labels), "donor": batch, "broad": "x"},
                       index=[f"{batch}_{i}" for i in range(len(labels))])
    return ad.AnnData(X=rng.poisson(1.0, (len(labels), 3)).astype(np.float32), obs=obs)


REFERENCE, QUERY = _adata(["A", "B", "C", "A"], "ref"), _adata(TRUTH, "query")


def record(fitter, name: str = "fixed") -> MethodRecord:
    return MethodRecord(name=name, task="annotation", function=fitter, check_params=False)


class Recorder:
    """A method that returns fixed predictions and records what it was given; ``map_query`` optional;
    ``clock`` gives the seconds each predict call sleeps on a fake clock (see ``fake_clock``)."""

    def __init__(self, predictions=PREDICTED, *, map_query: bool = False, vandalise: bool = False):
        self.predictions, self.with_map_query, self.vandalise = predictions, map_query, vandalise
        self.fit_calls: list[dict] = []
        self.queries: list[ad.AnnData] = []
        self.mapped: list[ad.AnnData] = []

    def __call__(self, reference, **kwargs):
        self.fit_calls.append({"reference": reference, **kwargs})
        if self.vandalise:  # a method that writes into what it is given
            reference.obs["cell_type"] = "vandalised"

        def predict(query):
            self.queries.append(query)
            if self.vandalise:
                query.obs["cell_type"] = self.predictions
            return self.predictions

        def map_query(query):
            self.mapped.append(query)

        return FittedAnnotator(predict=predict, map_query=map_query if self.with_map_query else None)


@pytest.fixture
def fake_clock(monkeypatch):
    """``time.perf_counter`` of annotation.run advancing by the next value of ``steps`` per call."""
    import scdiva.bench.tasks.annotation.run as run

    steps: list[float] = []
    now = [0.0]

    def perf_counter():
        now[0] += steps.pop(0) if steps else 0.0
        return now[0]

    monkeypatch.setattr(run.time, "perf_counter", perf_counter)
    return steps


def test_truth_and_predictions_are_scored_by_hand():
    """Truth A A A B B C D, predictions A B A B B A A; D is unseen in the reference (an error).
    Accuracy 4/7; F1 over the true classes: A 2/(3+4)*2 = 4/7, B 2*2/(3+2) = 0.8, C 0, D 0; macro 0.342857.
    Truth and predictions swapped give macro-F1 over A and B only: (4/7 + 0.8) / 2 = 0.685714."""
    method = Recorder()
    result = annotate(record(method), REFERENCE, QUERY, label_key="cell_type", batch_key="donor", seed=7,
                      params={"x": 1}, threads=1, timing_repeats=1)
    assert result.scores["accuracy"] == pytest.approx(4 / 7)
    assert result.scores["macro_f1"] == pytest.approx((4 / 7 + 0.8) / 4)
    assert result.scores["f1:A"] == pytest.approx(4 / 7) and result.scores["f1:B"] == pytest.approx(0.8)
    assert result.scores["f1:C"] == 0.0 and result.scores["f1:D"] == 0.0
    assert list(result.predictions.columns) == ["true", "predicted"]
    assert list(result.predictions["true"]) == TRUTH and list(result.predictions["predicted"]) == PREDICTED
    assert list(result.predictions.index) == list(QUERY.obs_names)
    assert result.unseen == {"D": 1}
    # the method got the run's seed, parameters, threads and keys, and a copy of the reference
    call = method.fit_calls[0]
    assert {k: call[k] for k in ("label_key", "batch_key", "seed", "params", "threads")} == {
        "label_key": "cell_type", "batch_key": "donor", "seed": 7, "params": {"x": 1}, "threads": 1}
    assert call["reference"] is not REFERENCE
    assert list(call["reference"].obs["cell_type"]) == ["A", "B", "C", "A"]


def test_the_method_sees_a_label_free_copy_of_the_query():
    method = Recorder(map_query=True)
    annotate(record(method), REFERENCE, QUERY, label_key="cell_type", batch_key="donor", timing_repeats=2)
    assert len(method.queries) == 2 and len(method.mapped) == 1
    for seen in (*method.queries, *method.mapped):
        assert list(seen.obs.columns) == ["donor"] and seen is not QUERY
        assert list(seen.obs_names) == list(QUERY.obs_names)
    assert method.mapped[0] is method.queries[0]  # predict runs on the query map_query adapted to


def test_a_method_writing_into_its_inputs_changes_neither_the_truth_nor_the_callers_data():
    reference, query = REFERENCE.copy(), QUERY.copy()
    result = annotate(record(Recorder(vandalise=True)), reference, query, label_key="cell_type",
                      batch_key="donor", timing_repeats=2)
    assert list(result.predictions["true"]) == TRUTH
    assert result.scores["accuracy"] == pytest.approx(4 / 7)
    pd.testing.assert_frame_equal(reference.obs, REFERENCE.obs)
    pd.testing.assert_frame_equal(query.obs, QUERY.obs)


def test_without_labels_keeps_only_the_batch_column():
    hidden = without_labels(QUERY, batch_key="donor")
    assert list(hidden.obs.columns) == ["donor"] and list(hidden.obs["donor"]) == list(QUERY.obs["donor"])
    assert list(without_labels(QUERY, batch_key="absent").obs.columns) == []
    hidden.obs["donor"] = "changed"
    assert (QUERY.obs["donor"] == "query").all()  # a copy
    np.testing.assert_array_equal(hidden.X, QUERY.X)


def test_timings_are_the_median_predict_per_1000_cells_and_the_fit_times(fake_clock):
    """perf_counter pairs: fit 2 s, map_query 0.5 s, predict 0.7, 0.1, 0.4 s (median 0.4)."""
    fake_clock.extend([0.0, 2.0, 0.0, 0.5, 0.0, 0.7, 0.0, 0.1, 0.0, 0.4])
    result = annotate(record(Recorder(map_query=True)), REFERENCE, QUERY, label_key="cell_type",
                      batch_key="donor", timing_repeats=3)
    assert result.inference_repeats_s == pytest.approx([0.7, 0.1, 0.4])
    assert result.timings == pytest.approx({"inference_s_per_1k_cells": 0.4 / 7 * 1000.0, "train_s": 2.0,
                                            "query_fit_s": 0.5})
    fake_clock.extend([0.0, 1.0, 0.0, 0.3])
    no_map = annotate(record(Recorder()), REFERENCE, QUERY, label_key="cell_type", batch_key="donor",
                      timing_repeats=1)
    assert no_map.timings == pytest.approx({"inference_s_per_1k_cells": 0.3 / 7 * 1000.0, "train_s": 1.0,
                                            "query_fit_s": 0.0})
    assert no_map.timings["inference_s_per_1k_cells"] == statistics.median(no_map.inference_repeats_s) / 7 * 1000


def test_the_first_predictions_are_scored():
    answers = iter([PREDICTED, TRUTH, TRUTH])

    def fitter(reference, **kwargs):
        return FittedAnnotator(predict=lambda query: next(answers))

    result = annotate(record(fitter), REFERENCE, QUERY, label_key="cell_type", batch_key="donor", timing_repeats=3)
    assert list(result.predictions["predicted"]) == PREDICTED


def test_long_form_rows():
    result = AnnotationResult(predictions=pd.DataFrame({"true": ["A", "B"], "predicted": ["A", "A"]}),
                              scores={"accuracy": 0.5}, timings={"train_s": 1.5}, unseen={"X": 2, "Y": 1})
    table = result.long_form("pbmc", "logreg", 3)
    assert list(table.columns) == ["dataset", "method", "seed", "metric", "value"]
    assert table.to_dict("list") == {
        "dataset": ["pbmc"] * 4, "method": ["logreg"] * 4, "seed": [3] * 4,
        "metric": ["accuracy", "train_s", "n_query_cells", "n_unseen_query_cells"], "value": [0.5, 1.5, 2.0, 3.0]}


def test_bad_arguments_fail_before_the_method_runs():
    method = Recorder()
    with pytest.raises(ValueError, match="timing_repeats must be >= 1"):
        annotate(record(method), REFERENCE, QUERY, label_key="cell_type", batch_key="donor", timing_repeats=0)
    with pytest.raises(KeyError, match=r"no label column 'label' to score against; columns: \['cell_type', "
                                       r"'donor', 'broad'\]"):
        annotate(record(method), REFERENCE, QUERY, label_key="label", batch_key="donor")
    assert method.fit_calls == []
    annotate(record(method), REFERENCE, QUERY, label_key="cell_type", batch_key="donor", timing_repeats=1)
    assert len(method.fit_calls) == 1


@pytest.mark.parametrize(("predictions", "message"), [
    (["A"] * 6, r"'bad': predict returned 6 labels for 7 query cells; expected one label per query cell"),
    ([["A"]] * 7, r"'bad': predict returned an array of shape \(7, 1\); expected a 1-D array of 7 labels"),
    ([["A"], ["A", "B"]] + [["A"]] * 5, r"'bad': predict returned list that is no array \(.*\); expected a 1-D "
                                        r"array of 7 labels, one per query cell"),
])
def test_bad_predictions_are_one_line_errors(predictions, message):
    with pytest.raises(MethodError, match=message):
        annotate(record(Recorder(predictions), "bad"), REFERENCE, QUERY, label_key="cell_type", batch_key="donor",
                 timing_repeats=1)


def test_checked_predictions_returns_strings():
    out = checked_predictions(np.array([1, 2, 3]), n_cells=3, method="m")
    assert out.dtype.kind == "U" and list(out) == ["1", "2", "3"]
    out = checked_predictions(pd.Series(["a", "b"]), n_cells=2, method="m")
    assert list(out) == ["a", "b"]


def test_a_fitter_returning_no_fitted_annotator_is_named():
    with pytest.raises(MethodError, match=r"annotation method 'bad': its fitter returned dict; expected a "
                                          r"scdiva.bench.tasks.annotation.base.FittedAnnotator\(predict=..., map_query=None\)"):
        annotate(record(lambda reference, **kw: {"predict": None}, "bad"), REFERENCE, QUERY, label_key="cell_type",
                 batch_key="donor")
    with pytest.raises(MethodError, match="its fitter returned FittedAnnotator"):
        checked_annotator(FittedAnnotator(predict="not callable"), method="bad")  # type: ignore[arg-type]
    with pytest.raises(MethodError, match=r"'bad': FittedAnnotator.map_query is int; expected a callable or None"):
        checked_annotator(FittedAnnotator(predict=len, map_query=3), method="bad")  # type: ignore[arg-type]
    fitted = FittedAnnotator(predict=len, map_query=len)
    assert checked_annotator(fitted, method="ok") is fitted


def test_defaults_seed_threads_and_three_timed_predictions():
    method = Recorder()
    result = annotate(record(method), REFERENCE, QUERY, label_key="cell_type", batch_key="donor")
    assert method.fit_calls[0]["seed"] == 0 and method.fit_calls[0]["threads"] == 1
    assert len(method.queries) == 3 and len(result.inference_repeats_s) == 3
    with pytest.raises(ValueError, match=r"^timing_repeats must be >= 1$"):
        annotate(record(method), REFERENCE, QUERY, label_key="cell_type", batch_key="donor", timing_repeats=0)


def test_a_registered_method_is_found_by_name():
    reference = _adata(["A", "B", "A", "B", "A", "B"], "ref")
    reference.X[:, 0] = [5, 0, 5, 0, 5, 0]
    query = _adata(["A", "B"], "query")
    query.X[:, 0] = [5, 0]
    result = annotate("logreg", reference, query, label_key="cell_type", batch_key="donor", timing_repeats=1)
    assert list(result.predictions["true"]) == ["A", "B"] and len(result.predictions["predicted"]) == 2


@pytest.mark.parametrize("threads", [1, 3])
def test_the_method_runs_under_its_thread_limit(threads):
    """BLAS/OpenMP pools are limited to ``threads`` while the method fits and predicts."""
    from threadpoolctl import threadpool_info

    seen = []

    def fitter(reference, **kwargs):
        seen.append({pool["num_threads"] for pool in threadpool_info()})
        return FittedAnnotator(predict=lambda query: PREDICTED)

    annotate(record(fitter), REFERENCE, QUERY, label_key="cell_type", batch_key="donor", threads=threads,
             timing_repeats=1)
    assert seen == [{threads}]
