"""ScDiVa: Single-cell Deep Variational Analysis.

Public names are imported lazily so that ``import scdiva`` stays light (no torch, scanpy or jax
until a model class is used).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "ScDiVaConfig": "scdiva.config",
    "ScDiVaModel": "scdiva.model.scdiva_model",
    "ScDiVaInference": "scdiva.model.inference",
    "GeneVocab": "scdiva.data.vocab",
    "TaskSpec": "scdiva.model.tasks",
    "FitSettings": "scdiva.model.settings",
}

__all__ = ["FitSettings", "GeneVocab", "ScDiVaConfig", "ScDiVaInference", "ScDiVaModel", "TaskSpec", "__version__"]

if TYPE_CHECKING:
    from scdiva.config import ScDiVaConfig
    from scdiva.data.vocab import GeneVocab
    from scdiva.model.inference import ScDiVaInference
    from scdiva.model.scdiva_model import ScDiVaModel
    from scdiva.model.settings import FitSettings
    from scdiva.model.tasks import TaskSpec


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'scdiva' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
