"""Annotation metrics and the confusion-matrix figure."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def annotation_metrics(true: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    """Accuracy, macro-F1 and per-class F1 of predicted against true labels.

    - `accuracy`: fraction of query cells labelled correctly, in [0, 1], higher is better.
    - `macro_f1`: unweighted mean of per-class F1 over the classes present in the *true* query
      labels, in [0, 1], higher is better. A class the reference never saw has F1 = 0, so
      unseen rare classes (e.g. HSC, MK) pull it down honestly instead of being dropped.
    - `f1:<class>`: F1 of each true class, in [0, 1].
    """
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


def plot_confusion(confusion: pd.DataFrame, path: str, *, title: str = "") -> None:
    """Row-normalised confusion matrix (fraction of each true class), counts written in cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = confusion.to_numpy()
    totals = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)
    size = 1.2 + 0.45 * len(confusion)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(confusion.columns)), confusion.columns, rotation=60, ha="right")
    ax.set_yticks(range(len(confusion.index)), confusion.index)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), n in np.ndenumerate(counts):
        if n:
            ax.text(j, i, str(n), ha="center", va="center", fontsize=7,
                    color="white" if fractions[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of true class")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
