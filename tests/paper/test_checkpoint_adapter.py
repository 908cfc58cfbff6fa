"""Checkpoint adapters: an external release (torch state dict under other key names, a gene list, a
hyperparameter file) becomes a ScDiVa checkpoint whose embeddings equal the original model's."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import torch
import yaml

from scdiva.bench.checkpoints.adapters import ADAPTED_FROM, torch_state_dict
from scdiva.bench.checkpoints.fetch import (
    CHECKPOINT_FILES,
    CheckpointError,
    fetch_checkpoint,
    sha256_of,
)

REPO = Path(__file__).resolve().parents[2]
PBMC = REPO / "data" / "pbmc_3chem_symphony.h5ad"
# tests/conftest.py by path (several conftest.py files exist), as tests/workflow/test_provenance.py does
_spec = importlib.util.spec_from_file_location("scdiva_tests_conftest", REPO / "tests" / "conftest.py")
_conftest = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(_conftest)
snakemake_command, workflow_env = _conftest.snakemake_command, _conftest.workflow_env

# The release's key layout (Lightning-style `model.` prefix, its own module names) -> ScDiVa's; the
# same rules are the worked example of docs/checkpoints.md.
KEY_MAP = [
    [r"^model\.gene_encoder\.embedding\.", "embedding.gene."],
    [r"^model\.gene_encoder\.value_mlp\.", "embedding.value."],
    [r"^model\.gene_encoder\.mask_token$", "embedding.mask_value"],
    [r"^model\.transformer\.layers\.(\d+)\.self_attn\.in_proj\.", r"blocks.\1.attn.qkv."],
    [r"^model\.transformer\.layers\.(\d+)\.self_attn\.out_proj\.", r"blocks.\1.attn.out."],
    [r"^model\.transformer\.layers\.(\d+)\.ln_(\d)\.", r"blocks.\1.norm\2."],
    [r"^model\.transformer\.layers\.(\d+)\.mlp\.", r"blocks.\1.ffn."],
    [r"^model\.", ""],
]
CONFIG_FIELDS = {"d_model": "hidden_size", "n_layers": "num_layers", "n_heads": "num_heads", "d_ff": "ffn_size",
                 "n_latent": "latent_dim", "batch_categories": "batch_labels"}


def _release_key(key: str) -> str:
    """ScDiVa key -> the release's (the inverse of KEY_MAP, written independently of the adapter)."""
    for pattern, replacement in [(r"^embedding\.gene\.", "gene_encoder.embedding."),
                                 (r"^embedding\.value\.", "gene_encoder.value_mlp."),
                                 (r"^embedding\.mask_value$", "gene_encoder.mask_token"),
                                 (r"^blocks\.(\d+)\.attn\.qkv\.", r"transformer.layers.\1.self_attn.in_proj."),
                                 (r"^blocks\.(\d+)\.attn\.out\.", r"transformer.layers.\1.self_attn.out_proj."),
                                 (r"^blocks\.(\d+)\.norm(\d)\.", r"transformer.layers.\1.ln_\2."),
                                 (r"^blocks\.(\d+)\.ffn\.", r"transformer.layers.\1.mlp.")]:
        if re.match(pattern, key):
            return "model." + re.sub(pattern, replacement, key, count=1)
    return "model." + key


@pytest.fixture(scope="module")
def cells() -> ad.AnnData:
    pbmc = ad.read_h5ad(PBMC)
    index = np.concatenate([np.flatnonzero((pbmc.obs["donor"] == d).to_numpy())[:40]
                            for d in sorted(set(pbmc.obs["donor"]))])
    return pbmc[index].copy()


@pytest.fixture(scope="module")
def original(cells):
    """A real tiny ScDiVa model, trained a few steps (gene statistics, three batches' embeddings)."""
    from scdiva import ScDiVaModel

    torch.set_num_threads(1)
    model = ScDiVaModel.from_config("tiny", genes=cells.var_names, seed=0)
    model.fit(cells, tasks=["masked_expression", "integration"], batch_key="donor", max_steps=3, seed=0,
              progress_bar=False)
    return model


@pytest.fixture(scope="module")
def release(original, tmp_path_factory) -> Path:
    """The model as an external release: model.pt ({"state_dict": renamed keys, "epoch"}), genes.txt, hparams.json."""
    out = tmp_path_factory.mktemp("release")
    state = {_release_key(k): v.clone() for k, v in original.module.state_dict().items()}
    assert len(state) == len(original.module.state_dict())
    torch.save({"state_dict": state, "epoch": 3}, out / "model.pt")
    (out / "genes.txt").write_text("\n".join(original.vocab.genes) + "\n")
    c = original.config
    (out / "hparams.json").write_text(json.dumps({
        "hidden_size": c.d_model, "num_layers": c.n_layers, "num_heads": c.n_heads, "ffn_size": c.d_ff,
        "latent_dim": c.n_latent, "batch_labels": list(c.batch_categories), "learning_rate": 1e-4}))
    return out


def _options(**changes):
    return {"weights": "model.pt", "genes": "genes.txt", "hyperparameters": "hparams.json", "size": "tiny",
            "config_fields": CONFIG_FIELDS, "state_dict_key": "state_dict", "key_map": KEY_MAP, **changes}


def _spec(release: Path, **changes):
    return {"path": str(release), "sha256": {f: sha256_of(release / f) for f in ("model.pt", "genes.txt", "hparams.json")},
            "adapter": "scdiva.bench.checkpoints.adapters:torch_state_dict", "adapter_options": _options(**changes)}


def test_adapted_release_embeds_like_the_original(original, release, cells, tmp_path):
    from scdiva import ScDiVaModel

    out = fetch_checkpoint("ext", _spec(release), tmp_path / "checkpoints" / "ext")
    assert {p.name for p in out.iterdir()} == {*CHECKPOINT_FILES, ADAPTED_FROM}
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["ext"]  # no staging left behind
    adapted = ScDiVaModel.from_pretrained(out, device="cpu")
    assert adapted.vocab.genes == original.vocab.genes
    for key, tensor in original.module.state_dict().items():
        assert torch.equal(adapted.module.state_dict()[key], tensor), key
    np.testing.assert_allclose(adapted.get_latent(cells), original.get_latent(cells), rtol=0, atol=1e-6)
    assert json.loads((out / ADAPTED_FROM).read_text())["sha256"]["model.pt"] == sha256_of(release / "model.pt")


def test_a_wrong_mapping_changes_the_embedding(original, release, cells, tmp_path):
    """Swapping two same-shaped parameters loads fine: only the embedding comparison above catches it."""
    from scdiva import ScDiVaModel

    swapped = [[r"^model\.transformer\.layers\.(\d+)\.ln_1\.", r"blocks.\1.norm2."],
               [r"^model\.transformer\.layers\.(\d+)\.ln_2\.", r"blocks.\1.norm1."], *KEY_MAP]
    torch_state_dict(release, tmp_path / "wrong", **_options(key_map=swapped))
    wrong = ScDiVaModel.from_pretrained(tmp_path / "wrong", device="cpu")
    assert not np.allclose(wrong.get_latent(cells), original.get_latent(cells), atol=1e-3)


def test_unmatched_missing_and_colliding_keys_are_named(release, tmp_path):
    no_attention = [rule for rule in KEY_MAP if "in_proj" not in rule[0]]
    with pytest.raises(CheckpointError, match=r"key 'model\.transformer\.layers\.0\.self_attn\.in_proj\.weight' "
                                              r"maps to 'transformer\.layers\.0\.self_attn\.in_proj\.weight'.*key_map"):
        torch_state_dict(release, tmp_path / "a", **_options(key_map=no_attention))
    drop_heads = [[r"^model\.heads\.integration\.", None], *KEY_MAP]
    with pytest.raises(CheckpointError, match=r"'heads\.integration\.log_theta'.*receive no tensor from model\.pt"):
        torch_state_dict(release, tmp_path / "b", **_options(key_map=drop_heads))
    both_norm1 = [[r"^model\.transformer\.layers\.(\d+)\.ln_\d\.", r"blocks.\1.norm1."], *KEY_MAP]
    with pytest.raises(CheckpointError, match="both map to 'blocks.0.norm1.weight'"):
        torch_state_dict(release, tmp_path / "c", **_options(key_map=both_norm1))
    with pytest.raises(CheckpointError, match=r"has shape \(64,\), the configured ScDiVa model expects \(2,\)"):
        torch_state_dict(release, tmp_path / "d", **_options(config_fields={**CONFIG_FIELDS, "d_model": "num_layers"},
                                                            hyperparameters="hparams.json"))
    with pytest.raises(CheckpointError, match="no entry 'weights'.*top level: \\['epoch', 'state_dict'\\]"):
        torch_state_dict(release, tmp_path / "e", **_options(state_dict_key="weights"))


def test_source_files_are_verified_and_must_be_listed(release, tmp_path):
    spec = _spec(release)
    spec["sha256"]["genes.txt"] = "0" * 64
    with pytest.raises(CheckpointError, match="genes.txt has sha256"):
        fetch_checkpoint("ext", spec, tmp_path / "ckpt" / "ext")
    assert list((tmp_path / "ckpt").iterdir()) == []
    spec = _spec(release)
    del spec["sha256"]["hparams.json"]  # the adapter sees only verified files
    with pytest.raises(CheckpointError, match=r"hparams.json.*not among the checkpoint's verified files.*published.sha256"):
        fetch_checkpoint("ext", spec, tmp_path / "ckpt" / "ext")
    spec = _spec(release)
    spec["adapter_options"]["weight"] = "model.pt"
    with pytest.raises(CheckpointError, match="does not take config `checkpoints.ext.published.adapter_options`"):
        fetch_checkpoint("ext", spec, tmp_path / "ckpt" / "ext")


def test_pickled_objects_are_not_loaded(release, tmp_path):
    source = tmp_path / "release"
    source.mkdir()
    for name in ("genes.txt", "hparams.json"):
        (source / name).write_bytes((release / name).read_bytes())
    torch.save({"state_dict": {}, "callback": Path("x")}, source / "model.pt")  # an object, not a tensor
    with pytest.raises(CheckpointError, match="weights_only=True"):
        torch_state_dict(source, tmp_path / "out", **_options())


def test_hub_repo_offline_error_names_the_fix(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # what the variable sets at import
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    digests = dict.fromkeys(CHECKPOINT_FILES, "0" * 64)
    with pytest.raises(CheckpointError, match=r"config.json of Hugging Face repo scdiva-org/none@abc123.*"
                                              r"HF_HUB_OFFLINE is set.*`published.path`"):
        fetch_checkpoint("hub", {"repo": "scdiva-org/none", "revision": "abc123", "sha256": digests},
                         tmp_path / "ckpt" / "hub")
    assert list((tmp_path / "ckpt").iterdir()) == []


@pytest.mark.slow  # a real fetch_checkpoint job
def test_workflow_fetch_job_runs_the_adapter(original, release, tmp_path):
    """The fetch_checkpoint rule converts the release; a config typo in the adapter fails at parse time."""
    from scdiva import ScDiVaModel

    config = tmp_path / "ext.yaml"
    config.write_text(yaml.safe_dump({"checkpoints": {"ext": {"published": _spec(release)}}}))
    target = "resources/checkpoints/ext/model.safetensors"
    proc = subprocess.run([*snakemake_command(tmp_path / "wf", config, cores=1), target], cwd=REPO,
                          capture_output=True, text=True, env=workflow_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    adapted = ScDiVaModel.from_pretrained(tmp_path / "wf" / "resources" / "checkpoints" / "ext", device="cpu")
    assert torch.equal(adapted.module.state_dict()["blocks.1.attn.qkv.weight"],
                       original.module.state_dict()["blocks.1.attn.qkv.weight"])

    spec = _spec(release)
    spec["adapter"] = "scdiva.bench.checkpoints.adapters:torch_state_dicts"
    config.write_text(yaml.safe_dump({"checkpoints": {"ext": {"published": spec}}}))
    proc = subprocess.run([*snakemake_command(tmp_path / "wf2", config, cores=1), "-n", target], cwd=REPO,
                          capture_output=True, text=True, env=workflow_env())
    assert proc.returncode != 0
    assert "has no callable 'torch_state_dicts'" in proc.stdout + proc.stderr


def test_documented_example_is_the_tested_one():
    """docs/checkpoints.md's worked example uses exactly this file's key_map and config_fields."""
    text = (REPO / "docs" / "checkpoints.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    options = yaml.safe_load(block)["checkpoints"]["my_release"]["published"]["adapter_options"]
    assert options["key_map"] == KEY_MAP
    assert options["config_fields"] == CONFIG_FIELDS
    assert set(options) == set(_options())
