"""What an annotation method is: a fitter returning a fitted annotator."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:  # annotations only: the method catalog reads this module when Snakemake parses
    import anndata as ad


@dataclass
class FittedAnnotator:
    """A method trained on the reference.

    `predict(query)` labels query cells; it is what inference time measures. `map_query(query)`
    is the one-time, query-specific training some methods need before predicting (scANVI's
    scArches surgery); it is timed separately as `query_fit_s`. The query either gets is a copy
    without labels (obs holds the batch column only): the truth stays with the harness
    (:func:`scdiva.bench.api.annotate`).
    """

    predict: Callable[[ad.AnnData], np.ndarray]
    map_query: Callable[[ad.AnnData], None] | None = None


class AnnotationFitter(Protocol):
    """Every annotation method has this signature."""

    def __call__(
        self,
        reference: ad.AnnData,
        *,
        label_key: str,
        batch_key: str,
        seed: int,
        params: Mapping[str, Any],
        threads: int,
    ) -> FittedAnnotator: ...


def dense(x) -> np.ndarray:
    """A float32 dense copy of a (possibly sparse) matrix."""
    return np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float32)
