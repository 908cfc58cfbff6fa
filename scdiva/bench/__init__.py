"""Benchmark library the workflow scripts call; :func:`score_embedding` scores your own embedding."""

from typing import Any


def __getattr__(name: str) -> Any:
    # lazy, so ``import scdiva.bench`` stays light (pandas/scib-metrics load on first use)
    if name == "score_embedding":
        # deferred: imports pandas (`import scdiva.bench` stays light)
        from scdiva.bench.tasks.integration.metrics import score_embedding

        return score_embedding
    raise AttributeError(f"module 'scdiva.bench' has no attribute {name!r}")


__all__ = ["score_embedding"]
