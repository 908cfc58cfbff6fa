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

from scdiva.bench.memory import keep_freed_memory
from scdiva.bench.methods.registry import MethodRecord, get_method

from .metrics import annotation_metrics
from .split import unseen_classes


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


def annotate(
    method: str | MethodRecord,
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
    """Train `method` (a registered name or a record) on `reference`, predict `query` and score against the query's labels.

    Inference time is the wall time of `predict` on the whole query, repeated
    `timing_repeats` times on this machine, median, per 1,000 cells (`inference_s_per_1k_cells`,
    lower is better). Training (`train_s`) and any query-specific training (`query_fit_s`,
    scANVI's surgery) are reported separately, each timed once.
    """
    record = method if isinstance(method, MethodRecord) else get_method("annotation", method)
    method = record.name
    merged = record.params(params)  # unknown parameters fail before training
    fitter = record.load()
    if timing_repeats < 1:
        raise ValueError("timing_repeats must be >= 1")
    from threadpoolctl import threadpool_limits

    keep_freed_memory()  # or the timed predict calls page-fault on memory the fit freed
    with threadpool_limits(limits=threads):
        start = time.perf_counter()
        fitted = fitter(reference, label_key=label_key, batch_key=batch_key, seed=seed, params=merged,
                        threads=threads)
        train_s = time.perf_counter() - start
        query_fit_s = 0.0
        if fitted.map_query is not None:
            start = time.perf_counter()
            fitted.map_query(query)
            query_fit_s = time.perf_counter() - start
        repeats, predicted = [], None
        for _ in range(timing_repeats):
            start = time.perf_counter()
            labels = np.asarray(fitted.predict(query), dtype=str)
            repeats.append(time.perf_counter() - start)
            predicted = labels if predicted is None else predicted
    if predicted.shape != (query.n_obs,):
        raise RuntimeError(f"{method} returned {predicted.shape} predictions for {query.n_obs} query cells")
    true = query.obs[label_key].astype(str).to_numpy()
    return AnnotationResult(
        predictions=pd.DataFrame({"true": true, "predicted": predicted}, index=query.obs_names),
        scores=annotation_metrics(true, predicted),
        timings={"inference_s_per_1k_cells": statistics.median(repeats) / query.n_obs * 1000.0,
                 "train_s": train_s, "query_fit_s": query_fit_s},
        inference_repeats_s=repeats,
        unseen=unseen_classes(reference, query, label_key),
    )
