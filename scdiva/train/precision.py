"""Which float precision ScDiVa computes in: the one place that resolves ``precision="auto"``.

- CUDA: bf16 autocast, for training and inference.
- CPU, training: float32. Even on CPUs with bf16 matrix units a tiny-model training step was about
  1.6x *slower* under bf16 autocast (the casts and the element-wise work outweigh the faster
  matmuls), and without them bf16 matmuls run 10-70x slower than float32.
- CPU, inference: bf16 autocast only where the CPU multiplies bf16 matrices in hardware (Intel AMX
  tiles). There the tiny model's ``get_latent`` ran 1.3x faster with the same labels on the PBMC query;
  elsewhere float32.

``python benchmarks/cpu_matmul_precision.py`` measures all three on the machine at hand.
"""

from __future__ import annotations

import torch

PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_bf16_matrix_units() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (Intel AMX tiles)."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private in torch 2.x: absent means no
    return bool(probe is not None and probe())


def check_precision(value: str, setting: str = "precision") -> str:
    """``value`` if it is one of :data:`PRECISIONS`, else a ValueError naming ``setting``."""
    if value not in PRECISIONS:
        raise ValueError(f"{setting} must be one of {PRECISIONS}, got {value!r}")
    return value


def uses_bf16(precision: str, device: torch.device, *, inference: bool) -> bool:
    """Whether work on ``device`` at ``precision`` ("auto", "fp32" or "bf16") runs under bf16 autocast."""
    if check_precision(precision) != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return True
    return inference and device.type == "cpu" and cpu_has_bf16_matrix_units()
