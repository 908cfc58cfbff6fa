"""Cell-type annotation benchmark: reference/query split by batch, methods, metrics, timing.

The methods are records in :mod:`scdiva.bench.methods.registry` (task "annotation").
"""

from __future__ import annotations

from .base import AnnotationFitter, FittedAnnotator
from .metrics import annotation_metrics, confusion_table, plot_confusion
from .run import AnnotationResult, annotate
from .split import split_reference_query, unseen_classes

__all__ = [
    "AnnotationFitter",
    "AnnotationResult",
    "FittedAnnotator",
    "annotate",
    "annotation_metrics",
    "confusion_table",
    "plot_confusion",
    "split_reference_query",
    "unseen_classes",
]
