"""Scoped checkpoint recipes: which checkpoint directory each (dataset, seed) job loads."""

import re

import pytest

from scdiva.bench.checkpoints import scopes
from scdiva.bench.report.checkpoints import checkpoint_label


def config_with(**recipe):
    return {"datasets": {"pbmc": {}, "pancreas": {}, "lung": {}},
            "checkpoints": {"tiny": {"recipe": {"size": "tiny", **recipe}},
                            "released": {"published": {"path": "/x", "sha256": {}}}}}


@pytest.mark.parametrize(("recipe", "expected"), [
    ({}, "tiny"),
    ({"seed": 3}, "tiny"),
    ({"datasets": "each"}, "tiny/pancreas"),
    ({"seed": "each"}, "tiny/seed2"),
    ({"datasets": "each", "seed": "each"}, "tiny/pancreas/seed2"),
])
def test_each_job_loads_the_checkpoint_of_its_scope(recipe, expected):
    config = config_with(**recipe)
    assert scopes.checkpoint_instance(config, "tiny", "pancreas", 2) == expected
    assert scopes.checkpoint_directory(config, "tiny", "pancreas", "2") == f"resources/checkpoints/{expected}"
    assert scopes.checkpoint_instance(config, "released", "pancreas", 2) == "released"


def test_a_scoped_checkpoint_is_staged_beside_the_recipes_directory_not_inside_it():
    assert scopes.staging_directory("tiny") == "resources/checkpoints/.tiny.partial"
    assert scopes.staging_directory("tiny/pbmc/seed1") == "resources/checkpoints/.tiny.pbmc.seed1.partial"


def test_an_instance_knows_its_corpus_and_its_seed():
    both = config_with(datasets="each", seed="each")
    assert scopes.parse_instance(both, "tiny/lung/seed4") == ("tiny", "lung", 4)
    assert scopes.instance_datasets(both, "tiny/lung/seed4") == ["lung"]
    assert scopes.instance_seed(both, "tiny/lung/seed4") == 4
    shared = config_with(datasets=["pbmc", "lung"], seed=7)
    assert scopes.instance_datasets(shared, "tiny") == ["pbmc", "lung"]
    assert scopes.instance_seed(shared, "tiny") == 7
    assert scopes.instance_datasets(config_with(), "tiny") == ["pbmc", "pancreas", "lung"]
    per_seed = config_with(seed="each")
    assert scopes.instance_datasets(per_seed, "tiny/seed0") == ["pbmc", "pancreas", "lung"]
    assert scopes.instance_seed(per_seed, "tiny/seed0") == 0
    for wrong in ("tiny", "tiny/lung", "tiny/seed1/extra"):
        with pytest.raises(ValueError, match="is not a checkpoint of recipe 'tiny'"):
            scopes.parse_instance(both, wrong)
    with pytest.raises(ValueError, match="is not a checkpoint"):
        scopes.parse_instance(shared, "tiny/seed0")


def test_the_pretrain_rule_pattern_matches_the_instances_of_the_recipes_only():
    pattern = re.compile(scopes.instance_pattern(["tiny", "small.v2"]))
    for instance in ("tiny", "tiny/pbmc", "tiny/seed12", "tiny/pbmc/seed0", "small.v2"):
        assert pattern.fullmatch(instance), instance
    for other in ("tinyx", "small_v2", "released", "tiny/pbmc/seed0/x", "tiny/a/b"):
        assert not pattern.fullmatch(other), other
    assert not re.fullmatch(scopes.instance_pattern([]), "tiny")


def test_a_scoped_recipe_replaces_the_jobs_checkpoint_parameter_only():
    scoped = config_with(seed="each")
    params = {"checkpoint": "tiny", "max_steps": 5}
    assert scopes.with_checkpoint_directory(scoped, params, "checkpoint", "tiny", "pbmc", 1) == {
        "checkpoint": "resources/checkpoints/tiny/seed1", "max_steps": 5}
    assert params["checkpoint"] == "tiny"  # the configured parameters are not changed in place
    assert scopes.with_checkpoint_directory(config_with(), params, "checkpoint", "tiny", "pbmc", 1) == params
    assert scopes.with_checkpoint_directory(scoped, params, None, None, "pbmc", 1) == params


def test_the_report_names_a_scoped_checkpoint_by_its_directory():
    assert checkpoint_label("resources/checkpoints/tiny/config.json") == "tiny"
    assert checkpoint_label("/run/resources/checkpoints/tiny/pbmc/seed1/config.json") == "tiny/pbmc/seed1"
    assert checkpoint_label("/elsewhere/tiny/config.json") == "tiny"
