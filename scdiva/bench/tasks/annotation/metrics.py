"""Annotation metrics: accuracy, macro-F1 over the true classes, per-class F1, the confusion table."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

# The figure lives with the figures (kept importable from here, where callers found it).
from scdiva.bench.tasks.annotation.figures import plot_confusion

__all__ = ["annotation_metrics", "confusion_table", "plot_confusion"]


def annotation_metrics(true: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    """Accuracy, macro-F1 and per-class F1 of predicted against true labels.

    - `accuracy`: fraction of query cells labelled correctly, in [0, 1], higher is better.
    - `macro_f1`: unweighted mean of per-class F1 over the classes present in the *true* query
      labels, in [0, 1], higher is better. A class the reference never saw has F1 = 0, so
      unseen rare classes (e.g. HSC, MK) pull it down honestly instead of being dropped.
    - `f1:<class>`: F1 of each true class, in [0, 1].
    """
    # deferred: imports sklearn (this module is imported at workflow parse time)
    from sklearn.metrics import accuracy_score, f1_score

    true = np.asarray(true, dtype=str)
    predicted = np.asarray(predicted, dtype=str)
    if true.shape != predicted.shape or true.size == 0:
        raise ValueError(f"need equally long, non-empty label vectors, got {true.shape} and {predicted.shape}")
    classes = sorted(set(true))
    per_class = f1_score(true, predicted, labels=classes, average=None, zero_division=0)
    scores = {
        "accuracy": float(accuracy_score(true, predicted)),
        "macro_f1": float(np.mean(per_class)),
    }
    scores.update({f"f1:{label}": float(f) for label, f in zip(classes, per_class, strict=True)})
    return scores


def confusion_table(true: Sequence[str], predicted: Sequence[str]) -> pd.DataFrame:
    """Cell counts, true classes as rows and predicted classes as columns (union of both)."""
    true = pd.Series(np.asarray(true, dtype=str), name="true")
    predicted = pd.Series(np.asarray(predicted, dtype=str), name="predicted")
    labels = sorted(set(true) | set(predicted))
    return pd.crosstab(true, predicted).reindex(index=labels, columns=labels, fill_value=0)
