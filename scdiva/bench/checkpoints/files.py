"""The files of a ScDiVa checkpoint directory, and the error every checkpoint problem raises."""

from __future__ import annotations

from scdiva.errors import CheckpointError
from scdiva.files import MODEL_FILES as CHECKPOINT_FILES

__all__ = ["CHECKPOINT_FILES", "CheckpointError"]
