"""The built-in annotation methods as records (the catalog collects them)."""

from __future__ import annotations

from scdiva.bench.methods.record import MethodRecord
from scdiva.bench.methods.scdiva import SCDIVA_ANNOTATION_DEFAULTS
from scdiva.bench.tasks.annotation.baselines import (
    CELLTYPIST_DEFAULTS,
    KNN_PCA_DEFAULTS,
    LOGREG_DEFAULTS,
    SCANVI_ANNOTATION_DEFAULTS,
    SHUFFLED_DEFAULTS,
)

_BASELINES = "scdiva.bench.tasks.annotation.baselines"


def builtin_records() -> list[MethodRecord]:
    """The annotation methods the workflow knows by name, in the order tables list them."""
    return [
        MethodRecord("scdiva", "annotation", "scdiva.bench.methods.scdiva:fit_scdiva_annotation",
                     SCDIVA_ANNOTATION_DEFAULTS, gpu=True, needs_labels=True, role="model",
                     checkpoint_param="checkpoint"),
        MethodRecord("logreg", "annotation", f"{_BASELINES}:fit_logreg", LOGREG_DEFAULTS, needs_labels=True),
        MethodRecord("knn_pca", "annotation", f"{_BASELINES}:fit_knn_pca", KNN_PCA_DEFAULTS, needs_labels=True),
        MethodRecord("scanvi", "annotation", f"{_BASELINES}:fit_scanvi", SCANVI_ANNOTATION_DEFAULTS, gpu=True,
                     needs_labels=True),
        MethodRecord("celltypist", "annotation", f"{_BASELINES}:fit_celltypist", CELLTYPIST_DEFAULTS,
                     needs_labels=True),
        MethodRecord("control_shuffled", "annotation", f"{_BASELINES}:fit_control_shuffled", SHUFFLED_DEFAULTS,
                     needs_labels=True, role="control", control="negative",
                     description="negative control: the reference's labels shuffled onto the query"),
    ]
