"""The `make bench` helpers: FLOP accounting against hand-counted FLOPs, the matmul reference rate,
and the JSON + printed line every benchmark writes."""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import _bench  # noqa: E402
import scdiva_flops  # noqa: E402


def test_linear_forward_and_backward_flops_are_counted_exactly():
    torch.manual_seed(0)
    layer = torch.nn.Linear(16, 32)
    x = torch.randn(4, 8, 16, requires_grad=True)
    flops, shapes = scdiva_flops.counted(lambda: layer(x))
    assert flops == 2 * 4 * 8 * 16 * 32
    assert shapes.calls == Counter({(1, 32, 16, 32): 1})
    flops, _ = scdiva_flops.counted(lambda: layer(x).sum().backward())
    assert flops == 3 * 2 * 4 * 8 * 16 * 32  # forward + grad of input + grad of weight


def test_attention_flops_are_counted_once():
    # torch 2.13's FlopCounterMode misses the CPU attention kernel; counted() adds QK^T and PV.
    q, k, v = (torch.randn(2, 4, 10, 8) for _ in range(3))
    flops, shapes = scdiva_flops.counted(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v))
    assert flops == 4 * 2 * 4 * 10 * 10 * 8
    assert shapes.flops() == flops


def test_matmul_rate_is_a_positive_rate():
    rate = scdiva_flops.matmul_rate(Counter({(1, 64, 64, 64): 2, (3, 16, 8, 16): 1}), torch.float32,
                                    torch.device("cpu"), min_seconds=0.001)
    assert math.isfinite(rate) and rate > 1e6  # at least a MFLOP/s on any CPU


def test_record_writes_the_json_contract_and_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(_bench, "OUT_DIR", tmp_path)
    _bench.record("demo", 2.0, "s", 4.0, 0.5, summary="2 s vs 4 s", extra=1, bad=float("nan"))
    data = json.loads((tmp_path / "demo.json").read_text())
    assert {k: data[k] for k in ("name", "value", "unit", "reference", "ratio")} == {
        "name": "demo", "value": 2.0, "unit": "s", "reference": 4.0, "ratio": 0.5}
    assert data["extra"] == 1 and data["commit"] and data["measured_at"]
    assert capsys.readouterr().out == "demo: 2 s vs 4 s\n"


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_numbers_become_null(tmp_path, monkeypatch, value):
    monkeypatch.setattr(_bench, "OUT_DIR", tmp_path)
    _bench.record("demo", value, "s", None, value, summary="x")
    data = json.loads((tmp_path / "demo.json").read_text())
    assert data["value"] is None and data["ratio"] is None and data["reference"] is None
