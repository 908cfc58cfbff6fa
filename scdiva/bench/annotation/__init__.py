"""Cell-type annotation benchmark: reference/query split by batch, methods, metrics, timing."""

from __future__ import annotations

from typing import Any

from .base import AnnotationFitter, FittedAnnotator
from .baselines import (
    MethodUnavailable,
    celltypist_unavailable_reason,
    fit_celltypist,
    fit_knn_pca,
    fit_logreg,
    fit_scanvi,
)
from .metrics import annotation_metrics, confusion_table, plot_confusion
from .run import AnnotationResult, annotate
from .split import split_reference_query, unseen_classes


def _fit_scdiva(reference, **kwargs: Any) -> FittedAnnotator:
    from scdiva.bench.methods.scdiva import fit_scdiva_annotation  # torch: imported on use only

    return fit_scdiva_annotation(reference, **kwargs)


#: Annotation methods by name; every entry has the `AnnotationFitter` signature.
ANNOTATION_METHODS: dict[str, AnnotationFitter] = {
    "scdiva": _fit_scdiva,
    "logreg": fit_logreg,
    "knn_pca": fit_knn_pca,
    "scanvi": fit_scanvi,
    "celltypist": fit_celltypist,
}

__all__ = [
    "ANNOTATION_METHODS",
    "AnnotationFitter",
    "AnnotationResult",
    "FittedAnnotator",
    "MethodUnavailable",
    "celltypist_unavailable_reason",
    "annotate",
    "annotation_metrics",
    "confusion_table",
    "plot_confusion",
    "split_reference_query",
    "unseen_classes",
]
