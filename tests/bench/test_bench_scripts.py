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


def test_every_ablation_variant_names_real_settings():
    """A misspelt override would silently run the default recipe under a variant's name."""
    import dataclasses

    import scdiva_ablation as ablation

    from scdiva.bench.methods.scdiva import SCDIVA_ANNOTATION_DEFAULTS, SCDIVA_FINETUNED_DEFAULTS
    from scdiva.config import ScDiVaConfig

    config_fields = {f.name for f in dataclasses.fields(ScDiVaConfig)}
    annotation_keys = set(SCDIVA_ANNOTATION_DEFAULTS) | {"annotation_only"}
    for name, settings in ablation.VARIANTS.items():
        assert set(settings) <= {"config", "pretrain", "finetune", "annotation", "kl_restart"}, name
        assert set(settings.get("config", {})) <= config_fields, name
        for key, value in settings.get("config", {}).items():  # not the preset's own value
            assert value != ablation.model_config("default").get(key), (name, key)
        for key, value in settings.get("pretrain", {}).items():
            assert value != ablation.PRETRAIN.get(key), (name, key)
        assert set(settings.get("finetune", {})) <= set(SCDIVA_FINETUNED_DEFAULTS), name
        assert set(settings.get("annotation", {})) <= annotation_keys, name
        for key, value in settings.get("finetune", {}).items():  # a variant changes something
            assert name == "previous" or value != SCDIVA_FINETUNED_DEFAULTS[key], (name, key)
        for key, value in settings.get("annotation", {}).items():
            assert name == "previous" or value != SCDIVA_ANNOTATION_DEFAULTS.get(key), (name, key)
    assert ablation.changes_integration(ablation.VARIANTS["default"])
    assert ablation.changes_integration(ablation.VARIANTS["no_transformer"])
    assert not ablation.changes_integration(ablation.VARIANTS["gentle_trunk"])
    assert ablation.changes_annotation(ablation.VARIANTS["default"])
    assert ablation.changes_annotation(ablation.VARIANTS["no_transformer"])
    assert not ablation.changes_annotation(ablation.VARIANTS["short_finetune"])
    # a longer pretraining reaches both fine-tunes, and its checkpoint is not the default's
    assert ablation.changes_integration(ablation.VARIANTS["long_pretrain"])
    assert ablation.changes_annotation(ablation.VARIANTS["long_pretrain"])
    assert ablation.pretrain_settings("long_pretrain")["max_epochs"] > ablation.pretrain_settings("default")["max_epochs"]


def test_ablation_cache_reruns_only_the_parts_whose_settings_changed(tmp_path):
    """A changed default must not leave an old score under the new recipe's name, nor rerun what it
    does not reach."""
    import scdiva_ablation as ablation

    calls = []

    def compute(parts):
        calls.append(sorted(parts))
        return {part: {f"{part}_score": len(calls)} for part in parts}

    path = tmp_path / "scdiva_default.seed0.json"
    stamps = {"integration": {"lr": 1e-3}, "annotation": {"trunk": 1.0}}
    first = ablation.cached_parts(path, stamps, compute)
    assert calls == [["annotation", "integration"]]
    assert first["integration_score"] == 1 and first["annotation_score"] == 1
    assert ablation.cached_parts(path, stamps, compute)["annotation_score"] == 1  # cached: nothing reruns
    assert len(calls) == 1
    # an option added later and left unset (None) changes nothing that ran: still cached
    ablation.cached_parts(path, {**stamps, "integration": {"lr": 1e-3, "new_option": None}}, compute)
    assert len(calls) == 1
    changed = ablation.cached_parts(path, {**stamps, "annotation": {"trunk": 0.3}}, compute)
    assert calls[-1] == ["annotation"]
    assert changed["annotation_score"] == 2 and changed["integration_score"] == 1
    only_integration = ablation.cached_parts(path, {"integration": stamps["integration"]}, compute)
    assert len(calls) == 2 and "annotation_score" not in only_integration
    assert json.loads(path.read_text())["settings"] == {"integration": stamps["integration"]}
    # --parts: a changed integration stamp reruns integration alone and keeps the cached annotation
    ablation.cached_parts(path, stamps, compute)
    assert calls[-1] == ["annotation"]
    kept = ablation.cached_parts(path, {"integration": {"lr": 1e-4}, "annotation": {"trunk": 0.5}}, compute,
                                 only=["integration"])
    assert calls[-1] == ["integration"]
    assert kept["integration_score"] == 4 and kept["annotation_score"] == 3
    assert kept["settings"] == {"integration": {"lr": 1e-4}, "annotation": {"trunk": 1.0}}


def test_ablation_stamps_follow_the_defaults(monkeypatch):
    import scdiva_ablation as ablation

    from scdiva.bench.methods import scdiva as methods

    before = ablation.part_settings("default")
    monkeypatch.setitem(methods.SCDIVA_ANNOTATION_DEFAULTS, "query_epochs", 7)
    after = ablation.part_settings("default")
    assert after["integration"] == before["integration"]
    assert after["annotation"] != before["annotation"]
    assert set(ablation.part_settings("short_finetune")) == {"integration"}
    assert set(ablation.part_settings("gentle_trunk")) == {"annotation"}
    # a changed model preset reaches both parts (and the pretrained checkpoint's cache key)
    from scdiva.config import NAMED_SIZES

    monkeypatch.setitem(NAMED_SIZES["tiny"], "max_tokens", NAMED_SIZES["tiny"]["max_tokens"] + 1)
    resized = ablation.part_settings("default")
    assert resized["integration"] != after["integration"] and resized["annotation"] != after["annotation"]


def test_context_probe_cuts_the_input_at_inference_and_restores_the_model():
    import anndata as ad
    import context_dependence
    import numpy as np

    from scdiva import ScDiVaModel

    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(200)]
    cells = ad.AnnData(X=rng.poisson(2.0, size=(12, len(genes))).astype(np.float32))
    cells.var_names = genes
    model = ScDiVaModel.from_config("tiny", genes=genes, seed=0)
    full_tokens, full_latent = model.tokenize(cells).gene_ids.shape[1], model.get_latent(cells)
    with context_dependence.context_cut(model, 4):
        assert model.tokenize(cells).gene_ids.shape[1] == 1 + 4  # <cls> + 4 expressed, 4 // 8 = 0 unexpressed
        assert not np.allclose(model.get_latent(cells), full_latent)
    with context_dependence.without_profile(model):
        assert not np.allclose(model.get_latent(cells), full_latent)
    # both restore the model as it was
    assert model.tokenize(cells).gene_ids.shape[1] == full_tokens
    np.testing.assert_array_equal(model.get_latent(cells), full_latent)
