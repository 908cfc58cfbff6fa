"""The files of a ScDiVa checkpoint directory, and the error every checkpoint problem raises."""

from __future__ import annotations

from scdiva.errors import CheckpointError

CHECKPOINT_FILES = ("config.json", "model.safetensors", "vocab.json")

__all__ = ["CHECKPOINT_FILES", "CheckpointError"]
