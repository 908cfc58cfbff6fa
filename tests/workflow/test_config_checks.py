"""scdiva.bench.config_checks: the parse-time checks the workflow runs, called in-process.

The failure cases are in test_bad_input.py and test_bad_input_modalities.py (each through
``parse_time_error``, a few also through the Snakemake CLI); here: the rule files call every check in
the order ``check_config`` (which those tests use) runs them, the shipped configs pass, and relative
checkpoint paths resolve against the repository root.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config, validate

from scdiva.bench import config_checks
from scdiva.bench.checkpoints.files import CHECKPOINT_FILES

REPO_ROOT = Path(__file__).resolve().parents[2]


def load_config(*names: str) -> dict:
    """config/<names> merged in order (as `--configfile` does), schema defaults filled in."""
    config: dict = {}
    for name in names:
        update_config(config, yaml.safe_load((REPO_ROOT / "config" / name).read_text()))
    validate(config, str(REPO_ROOT / "config" / "schema.yaml"))
    return config


def test_the_workflow_runs_every_check_in_the_order_of_check_config():
    """The checks the rule files call while parsing (in include order) are those check_config runs, in its order."""
    snakefile = (REPO_ROOT / "Snakefile").read_text()
    called = []
    for include in re.findall(r'^include: "(.+)"', snakefile, flags=re.M):
        called += re.findall(r"_checked\(_checks\.(check_\w+),", (REPO_ROOT / include).read_text())
    in_order = re.findall(r"^    (check_\w+)\(", inspect.getsource(config_checks.check_config), flags=re.M)
    assert called == in_order == ["check_datasets", "check_checkpoints", "check_methods", "check_scdiva_coverage",
                                  "check_multimodal", "check_cross_species"]


@pytest.mark.parametrize("names", [("config.yaml",), ("config.yaml", "smoke.yaml"), ("config.yaml", "ablation.yaml"),
                                   ("config.yaml", "ablation.yaml", "ablation_variants.yaml")],
                         ids=["default", "smoke", "ablation", "ablation_variants"])
def test_shipped_configs_pass(tmp_path, names):
    config_checks.check_config(load_config(*names), REPO_ROOT, tmp_path)


def test_every_ablation_variant_changes_what_it_names():
    """A variant equal to the shipped recipe measures nothing: each derived method's parameters and each
    variant checkpoint's model settings differ from what the method or recipe it varies uses."""
    from scdiva.bench.methods.catalog import get_method
    from scdiva.config import NAMED_SIZES

    config = load_config("config.yaml", "ablation.yaml", "ablation_variants.yaml")
    variants = yaml.safe_load((REPO_ROOT / "config" / "ablation_variants.yaml").read_text())
    shipped_recipe = config["checkpoints"]["scdiva_tiny"]["recipe"]
    for name in variants["checkpoints"]:
        recipe = config["checkpoints"][name]["recipe"]
        changed = {k: v for k, v in recipe.items() if k != "model" and shipped_recipe.get(k) != v}
        model = recipe.get("model", {})
        assert changed or model, name
        for key, value in model.items():
            assert value != NAMED_SIZES["tiny"].get(key), (name, key)
    for name, entry in variants["methods"].items():
        task = entry.get("task", "integration")
        base = get_method(task, entry["base"], None)
        assert entry["params"], name
        for key, value in entry["params"].items():
            assert value != base.defaults[key], (name, key)
        assert name in config[task]["methods"], name  # every defined variant runs


def test_relative_published_checkpoint_path_resolves_against_the_repository_root(tmp_path):
    """Not the working directory: the path is made absolute in the config, so the fetch rule copies from there."""
    root = tmp_path / "repo"
    (root / "ckpt").mkdir(parents=True)
    for name in CHECKPOINT_FILES:
        (root / "ckpt" / name).write_text("{}")
    config = load_config("config.yaml")
    config["checkpoints"] = {"mine": {"published": {"path": "ckpt"}}}
    config_checks.check_checkpoints(config, root)
    assert config["checkpoints"]["mine"]["published"]["path"] == str(root / "ckpt")
    (root / "ckpt" / "vocab.json").unlink()
    config["checkpoints"]["mine"]["published"]["path"] = "ckpt"
    with pytest.raises(config_checks.ConfigError, match=r"checkpoint 'mine': directory .*ckpt \(config "
                       r"`checkpoints.mine.published.path`: 'ckpt'\) lacks \['vocab.json'\]"):
        config_checks.check_checkpoints(config, root)


def test_recipe_model_settings_are_checked_before_any_job():
    config = load_config("config.yaml")
    recipe = config["checkpoints"]["scdiva_tiny"]["recipe"]
    recipe["model"] = {"n_layers": 0, "n_latent": 10}
    config_checks.check_checkpoints(config, REPO_ROOT)  # an ablation without the transformer is a recipe
    recipe["model"] = {"n_layayers": 0}
    with pytest.raises(config_checks.ConfigError, match=r"checkpoint 'scdiva_tiny': config "
                       r"`checkpoints.scdiva_tiny.recipe.model` has unknown settings \['n_layayers'\]; model "
                       r"settings: .*n_layers"):
        config_checks.check_checkpoints(config, REPO_ROOT)
