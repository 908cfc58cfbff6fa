"""config/schema.yaml: the shipped configs are valid, and every level is closed to unknown keys."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]


def load(name: str) -> dict:
    return yaml.safe_load((REPO_ROOT / "config" / name).read_text())


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = load("schema.yaml")
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def merged(base: dict, overlay: dict) -> dict:
    """Snakemake's --configfile merge: nested dicts are updated, everything else replaced."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def errors(validator, config: dict) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(config)
    ]


def test_default_and_smoke_configs_are_valid(validator):
    default = load("config.yaml")
    assert errors(validator, default) == []
    smoke = merged(default, load("smoke.yaml"))
    assert errors(validator, smoke) == []
    assert smoke["datasets"]["pbmc_3chem"]["subsample"] == 600


def test_default_config_points_at_the_embedded_data():
    entry = load("config.yaml")["datasets"]["pbmc_3chem"]
    assert (REPO_ROOT / entry["source"]).is_file()
    assert entry["sha256"] == "ac9987e219aa5eafa969e92739ba2c6f37d081d889aa3cbb15228de38758c0eb"
    assert entry["annotation"] == {"reference_batches": ["3pv2", "5p"], "query_batches": ["3pv1"]}


@pytest.mark.parametrize(
    ("path", "bad_key"),
    [
        ((), "sedes"),
        (("datasets", "pbmc_3chem"), "batchkey"),
        (("datasets", "pbmc_3chem", "annotation"), "reference"),
        (("preprocess",), "n_hvgs"),
        (("integration",), "method"),
        (("resources", "default"), "memory"),
    ],
)
def test_unknown_keys_are_errors_at_every_level(validator, path, bad_key):
    config = load("config.yaml")
    node = config
    for part in path:
        node = node.setdefault(part, {})  # resources.default is a schema default, absent from config.yaml
    node[bad_key] = 1
    found = errors(validator, config)
    assert len(found) == 1 and f"'{bad_key}' was unexpected" in found[0]
    assert found[0].startswith(".".join(path) + ":")


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("seeds",), "0", "is not of type 'array'"),
        (("seeds",), [-1], "less than the minimum"),
        (("gpu",), "yes", "is not of type 'boolean'"),
        (("datasets", "pbmc_3chem", "sha256"), "abc", "does not match"),
        (("datasets", "pbmc_3chem", "subsample"), 100.5, "is not of type 'integer'"),
        (("preprocess", "hvg_flavor"), "seurat", "is not one of"),
        (("preprocess", "n_pcs"), 1, "less than the minimum"),
        (("integration", "methods"), [], "should be non-empty"),
        (("resources", "default", "threads"), 0, "less than the minimum"),
    ],
)
def test_wrong_types_and_values_name_the_key(validator, path, value, expected):
    config = load("config.yaml")
    node = config
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    found = errors(validator, config)
    assert len(found) == 1 and expected in found[0]
    assert found[0].startswith(".".join(path))


def test_dataset_names_must_be_file_name_safe(validator):
    config = load("config.yaml")
    config["datasets"]["my data/x"] = config["datasets"]["pbmc_3chem"]
    assert any("does not match" in e for e in errors(validator, config))


def test_required_dataset_keys(validator):
    config = load("config.yaml")
    del config["datasets"]["pbmc_3chem"]["label_key"]
    assert errors(validator, config) == ["datasets.pbmc_3chem: 'label_key' is a required property"]


def test_python_preprocess_defaults_equal_the_schema_defaults():
    """The workflow takes every preprocess default from the schema; PreprocessSettings keeps the same
    values for Python callers outside Snakemake, and this test keeps the two from drifting apart."""
    import dataclasses

    from scdiva.bench.core.preprocess import PreprocessSettings

    schema = load("schema.yaml")["properties"]["preprocess"]["properties"]
    python = {f.name: f.default for f in dataclasses.fields(PreprocessSettings)}
    assert python == {key: spec["default"] for key, spec in schema.items()}
