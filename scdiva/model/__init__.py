"""User-facing models: AnnData in, AnnData / numpy out."""

from scdiva.model.inference import ScDiVaInference
from scdiva.model.scdiva_model import ScDiVaModel
from scdiva.model.settings import FitSettings
from scdiva.model.tasks import TaskSpec

__all__ = ["FitSettings", "ScDiVaInference", "ScDiVaModel", "TaskSpec"]
