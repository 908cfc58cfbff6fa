"""Run one annotation method: train on the reference, label the query, time inference."""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from scdiva.bench.core.memory import keep_freed_memory
from scdiva.bench.core.sampling import unseen_classes
from scdiva.bench.core.threads import limited_threadpools
from scdiva.bench.methods.record import MethodError, MethodRecord
from scdiva.bench.tasks.annotation.base import FittedAnnotator
from scdiva.bench.tasks.annotation.metrics import annotation_metrics


@dataclass
class AnnotationResult:
    """Predictions, scores and timings of one method on one reference/query split."""

    predictions: pd.DataFrame  # index: query cells; columns: true, predicted
    scores: dict[str, float]
    timings: dict[str, float]
    inference_repeats_s: list[float] = field(default_factory=list)
    unseen: dict[str, int] = field(default_factory=dict)

    def long_form(self, dataset: str, method: str, seed: int) -> pd.DataFrame:
        """Rows `dataset, method, seed, metric, value` for the tables."""
        values = {**self.scores, **self.timings, "n_query_cells": float(len(self.predictions)),
                  "n_unseen_query_cells": float(sum(self.unseen.values()))}
        return pd.DataFrame({"dataset": dataset, "method": method, "seed": seed,
                             "metric": list(values), "value": list(values.values())})


def without_labels(query: ad.AnnData, *, batch_key: str) -> ad.AnnData:
    """A copy of ``query`` an annotation method may see: obs holds the batch column only (the label
    column and every other column, a coarse cell type among them, stay with the harness)."""
    hidden = query.copy()
    hidden.obs = query.obs[[batch_key]].copy() if batch_key in query.obs.columns else query.obs[[]].copy()
    return hidden


def checked_annotator(fitted: Any, *, method: str) -> FittedAnnotator:
    """``fitted`` if it is a :class:`FittedAnnotator` with a callable ``predict``, else a one-line
    :class:`MethodError` naming ``method`` and what was expected."""
    if not isinstance(fitted, FittedAnnotator) or not callable(fitted.predict):
        raise MethodError(f"annotation method {method!r}: its fitter returned {type(fitted).__name__}; expected a "
                          "scdiva.bench.tasks.annotation.base.FittedAnnotator(predict=..., map_query=None)")
    if fitted.map_query is not None and not callable(fitted.map_query):
        raise MethodError(f"annotation method {method!r}: FittedAnnotator.map_query is "
                          f"{type(fitted.map_query).__name__}; expected a callable or None")
    return fitted


def checked_predictions(labels: Any, *, n_cells: int, method: str) -> np.ndarray:
    """``labels`` as a 1-D string array of ``n_cells`` predictions, or a one-line :class:`MethodError`."""
    try:
        array = np.asarray(labels)
    except Exception as err:  # ragged sequences
        raise MethodError(f"annotation method {method!r}: predict returned {type(labels).__name__} that is no array "
                          f"({err}); expected a 1-D array of {n_cells} labels, one per query cell") from None
    if array.ndim != 1:
        raise MethodError(f"annotation method {method!r}: predict returned an array of shape {array.shape}; expected a "
                          f"1-D array of {n_cells} labels, one per query cell")
    if array.shape[0] != n_cells:
        raise MethodError(f"annotation method {method!r}: predict returned {array.shape[0]} labels for {n_cells} query "
                          "cells; expected one label per query cell")
    return array.astype(str)


def run(
    record: MethodRecord,
    reference: ad.AnnData,
    query: ad.AnnData,
    *,
    label_key: str,
    batch_key: str,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    threads: int = 1,
    timing_repeats: int = 3,
) -> AnnotationResult:
    """Train the method of `record` on `reference`, predict `query` and score against the query's labels.

    The truth stays with the harness: the query's labels are taken before the method runs, and the
    method gets a copy of the reference and a copy of the query without its labels
    (:func:`without_labels`), so nothing it writes into them reaches the scores or the caller.
    Inference time is the wall time of `predict` on the whole query, repeated
    `timing_repeats` times on this machine, median, per 1,000 cells (`inference_s_per_1k_cells`,
    lower is better). Training (`train_s`) and any query-specific training (`query_fit_s`,
    scANVI's surgery) are reported separately, each timed once.

    Parameters
    ----------
    record
        The method's record (by name: :func:`scdiva.bench.api.annotate`).
    reference, query
        The labelled reference and the query (its labels are the truth; the method never sees them).
    label_key, batch_key
        obs columns of the cell-type labels and the batches.
    seed, params, threads
        The run's seed, the method's parameters and its CPU threads.
    timing_repeats
        How many times `predict` is timed (>= 1).
    """
    method = record.name
    merged = record.params(params)  # unknown parameters fail before training
    fitter = record.load()
    if timing_repeats < 1:
        raise ValueError("timing_repeats must be >= 1")
    if label_key not in query.obs.columns:
        raise KeyError(f"annotation: the query has no label column {label_key!r} to score against; columns: "
                       f"{list(query.obs.columns)}")
    # the truth, taken before any method runs
    true = query.obs[label_key].astype(str).to_numpy().copy()
    cells = query.obs_names.copy()
    unseen = unseen_classes(reference, query, label_key)
    ref_seen, query_seen = reference.copy(), without_labels(query, batch_key=batch_key)
    keep_freed_memory()  # or the timed predict calls page-fault on memory the fit freed
    with limited_threadpools(threads):
        start = time.perf_counter()
        fitted = fitter(ref_seen, label_key=label_key, batch_key=batch_key, seed=seed, params=merged,
                        threads=threads)
        train_s = time.perf_counter() - start
        fitted = checked_annotator(fitted, method=method)
        query_fit_s = 0.0
        if fitted.map_query is not None:
            start = time.perf_counter()
            fitted.map_query(query_seen)
            query_fit_s = time.perf_counter() - start
        repeats, predicted = [], None
        for _ in range(timing_repeats):
            start = time.perf_counter()
            labels = fitted.predict(query_seen)
            repeats.append(time.perf_counter() - start)
            labels = checked_predictions(labels, n_cells=len(true), method=method)
            predicted = labels if predicted is None else predicted
    return AnnotationResult(
        predictions=pd.DataFrame({"true": true, "predicted": predicted}, index=cells),
        scores=annotation_metrics(true, predicted),
        timings={"inference_s_per_1k_cells": statistics.median(repeats) / len(true) * 1000.0,
                 "train_s": train_s, "query_fit_s": query_fit_s},
        inference_repeats_s=repeats,
        unseen=unseen,
    )
