"""The benchmark's methods by name, from Python: the calls the workflow's jobs make.

>>> from scdiva.bench.api import integrate, annotate
>>> integrate(adata, "harmony", batch_key="donor", label_key="cell_type", seed=0)
>>> result = annotate("logreg", reference, query, label_key="cell_type", batch_key="donor")

A name is looked up in :mod:`scdiva.bench.methods.catalog` (built-in methods); a
:class:`~scdiva.bench.methods.record.MethodRecord` (for example a config-defined method from
:func:`scdiva.bench.methods.catalog.get_method`) is run as it is.
"""

from __future__ import annotations

from typing import Any

from scdiva.bench.methods.catalog import get_method
from scdiva.bench.methods.record import MethodRecord
from scdiva.bench.tasks.annotation.run import AnnotationResult
from scdiva.bench.tasks.annotation.run import run as run_annotation
from scdiva.bench.tasks.integration.run import run as run_integration


def _record(task: str, method: str | MethodRecord) -> MethodRecord:
    return method if isinstance(method, MethodRecord) else get_method(task, method)


def integrate(adata, method: str | MethodRecord, **kwargs: Any) -> float:
    """Run integration ``method`` (a built-in name or a record) on ``adata``, writing ``obsm["X_emb"]``.

    Parameters
    ----------
    adata
        The preprocessed AnnData.
    method
        A built-in integration method's name or a :class:`MethodRecord`.
    **kwargs
        ``batch_key``, ``label_key``, ``seed``, ``params``, ``threads`` and model files:
        :func:`scdiva.bench.tasks.integration.run.run`.

    Returns
    -------
    The method's wall time in seconds.
    """
    return run_integration(adata, _record("integration", method), **kwargs)


def annotate(method: str | MethodRecord, reference, query, **kwargs: Any) -> AnnotationResult:
    """Train annotation ``method`` (a built-in name or a record) on ``reference`` and score it on ``query``.

    Parameters
    ----------
    method
        A built-in annotation method's name or a :class:`MethodRecord`.
    reference, query
        The labelled reference and the query (its labels are the truth; the method never sees them).
    **kwargs
        ``label_key``, ``batch_key``, ``seed``, ``params``, ``threads``, ``timing_repeats``:
        :func:`scdiva.bench.tasks.annotation.run.run`.
    """
    return run_annotation(_record("annotation", method), reference, query, **kwargs)
