"""Which float precision ScDiVa computes in: the one place that resolves ``precision="auto"``.

- CUDA: bf16 autocast, for training and inference.
- CPU, training: float32. Even on CPUs that multiply bf16 matrices in hardware a tiny-model training
  step was 1.3-1.6x *slower* under bf16 autocast (the casts and the element-wise work outweigh the
  faster matmuls), and without that hardware bf16 matmuls run 10-70x slower than float32.
- CPU, inference: bf16 autocast only where the CPU multiplies bf16 matrices in hardware: Intel AMX
  tiles, or the AVX-512 BF16 instructions (Intel Cooper Lake and later, AMD Zen 4 and later). With AMX
  the tiny model's ``get_latent`` ran 1.3x faster, and 1.4x with AVX-512 BF16 on an AMD EPYC (whose
  bf16 matmuls ran 3.5-4.4x faster than float32); both gave the same labels on the PBMC query.
  Elsewhere float32.

``python benchmarks/cpu_matmul_precision.py`` measures all three on the machine at hand.
"""

from __future__ import annotations

import torch

PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_bf16_matmul() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (Intel AMX tiles or AVX-512 BF16)."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private in torch 2.x: absent means no
    return any(bool(getattr(torch.cpu, probe, lambda: False)()) for probe in probes)


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
    return inference and device.type == "cpu" and cpu_has_bf16_matmul()
