"""Exceptions shared by the model package and the benchmark (no heavy imports)."""

from __future__ import annotations


class CheckpointError(ValueError, RuntimeError):
    """A checkpoint is missing, unreachable, fails its sha256 check, lacks files or holds files that are
    refused (pickles). One class for ``scdiva.model`` and ``scdiva.bench``: a ``ValueError`` (what the
    model's loader raised) and a ``RuntimeError`` (what the benchmark's fetch raised) alike."""
