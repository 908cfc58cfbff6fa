"""Training loop, checkpoints and distributed helpers."""

from scdiva.train.trainer import TrainingSettings, lr_factor, train

__all__ = ["TrainingSettings", "lr_factor", "train"]
