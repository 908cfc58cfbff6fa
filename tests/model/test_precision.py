"""Which precision training and inference compute in (scdiva.train.precision), and that the model obeys it."""

import numpy as np
import pytest
import torch

from scdiva.train.precision import cpu_has_bf16_matmul, uses_bf16

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_auto_is_bf16_on_cuda_and_float32_for_cpu_training():
    assert uses_bf16("auto", CUDA, inference=False) and uses_bf16("auto", CUDA, inference=True)
    assert not uses_bf16("auto", CPU, inference=False)  # measured slower on every CPU so far
    # CPU inference follows the hardware: bf16 only where it multiplies bf16 matrices in hardware
    assert uses_bf16("auto", CPU, inference=True) == cpu_has_bf16_matmul()
    for inference in (False, True):
        assert uses_bf16("bf16", CPU, inference=inference)
        assert not uses_bf16("fp32", CUDA, inference=inference)
    with pytest.raises(ValueError, match="precision must be one of"):
        uses_bf16("fp16", CPU, inference=True)


def test_inference_precision_reaches_the_forward_pass(small_pbmc):
    from scdiva import ScDiVaModel

    model = ScDiVaModel.from_config("tiny", genes=list(small_pbmc.var_names), seed=0)
    latents = {}
    for precision in ("fp32", "bf16", "auto"):
        model.inference_precision = precision
        latents[precision] = model.get_latent(small_pbmc)
    # bf16 rounds the activations: close to float32, not equal to it
    relative = np.linalg.norm(latents["bf16"] - latents["fp32"]) / np.linalg.norm(latents["fp32"])
    assert 0 < relative < 0.05, relative
    expected = "bf16" if cpu_has_bf16_matmul() else "fp32"
    np.testing.assert_array_equal(latents["auto"], latents[expected])
    with pytest.raises(ValueError, match="inference_precision must be one of"):
        model.inference_precision = "half"
    assert model.inference_precision == "auto"  # a rejected value leaves the setting as it was
