"""Pure-torch parts of ScDiVa: layers, likelihoods, task heads, the network."""

from scdiva.module.heads import TASK_REGISTRY, EncoderOutput, TaskHead, register_task
from scdiva.module.scdiva_module import ScDiVaModule

__all__ = ["TASK_REGISTRY", "EncoderOutput", "ScDiVaModule", "TaskHead", "register_task"]
