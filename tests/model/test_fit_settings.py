"""``FitSettings``: the training run as one typed object, and the recipes as its fields."""

import dataclasses

import numpy as np
import pytest

from scdiva import FitSettings, ScDiVaModel
from scdiva.bench.methods.scdiva import SCDIVA_ANNOTATION_DEFAULTS, fit_settings
from scdiva.config import OBJECTIVE_SETTINGS
from scdiva.model import recipes
from scdiva.model.settings import FIT_OPTIONS
from scdiva.train.trainer import TrainingSettings


def test_a_settings_object_trains_exactly_as_the_same_keywords(small_pbmc):
    keywords = dict(max_steps=3, batch_size=32, lr=2e-3, seed=4, progress_bar=False, kl_weight=2.0)

    def fitted(**how):
        model = ScDiVaModel.from_config("tiny", genes=small_pbmc.var_names, seed=0)
        history = model.fit(small_pbmc, tasks=["integration"], batch_key="donor", **how)
        return [h["loss"] for h in history], model

    by_keywords, model_a = fitted(**keywords)
    by_object, model_b = fitted(settings=FitSettings(**keywords))
    # an object and a keyword on top of it: the keyword wins
    by_both, _ = fitted(settings=FitSettings(**{**keywords, "lr": 1.0}), lr=2e-3)
    assert by_keywords == by_object == by_both
    assert model_a.config.kl_weight == model_b.config.kl_weight == 2.0
    changed, _ = fitted(settings=FitSettings(**{**keywords, "seed": 5}))
    assert changed != by_keywords


def test_an_unknown_training_option_is_named_before_the_model_changes(small_pbmc):
    model = ScDiVaModel.from_config("tiny", genes=small_pbmc.var_names, seed=0)
    before = model.config.to_dict()
    with pytest.raises(TypeError, match=r"unknown training option\(s\) \['max_stepz'\].*FitSettings"):
        model.fit(small_pbmc, tasks=["integration"], batch_key="donor", max_stepz=3)
    after = model.config.to_dict()
    assert before == after


def test_optimisation_defaults_are_the_trainers():
    trainer = {f.name: f.default for f in dataclasses.fields(TrainingSettings)}
    settings = FitSettings()
    shared = FIT_OPTIONS & set(trainer) - {"max_steps"}
    assert shared >= {"batch_size", "lr", "weight_decay", "warmup_fraction", "clip_grad_norm", "trunk_lr_factor"}
    for name in shared:
        assert getattr(settings, name) == trainer[name], name
    assert set(settings.objective()) == set(OBJECTIVE_SETTINGS)


@pytest.mark.parametrize("recipe", ["INTEGRATION_FINETUNE", "ANNOTATION_FINETUNE"])
def test_every_recipe_setting_is_a_training_option(recipe):
    values = getattr(recipes, recipe)
    settings = FitSettings().replace(**values)
    for name, value in values.items():
        assert getattr(settings, name) == value


def test_the_annotation_method_trains_with_the_annotation_recipe():
    params = SCDIVA_ANNOTATION_DEFAULTS
    settings = fit_settings(params, seed=3)
    for name, value in recipes.ANNOTATION_FINETUNE.items():
        if name not in ("balance_labels", "converge_genes_expert"):  # passed by fit_annotation_model
            assert getattr(settings, name) == value, name
    assert (settings.seed, settings.progress_bar) == (3, False)
    assert params["classifier_representation"] == recipes.ANNOTATION_CLASSIFIER["representation"]
    assert params["query_epochs"] == recipes.ANNOTATION_QUERY_EPOCHS
    # an explicit step count replaces the recipe's epoch count
    short = fit_settings({**params, "max_steps": 7}, seed=0)
    assert (short.max_steps, short.max_epochs) == (7, None)
    assert np.isclose(fit_settings({**params, "lr": 5e-4}, seed=0).lr, 5e-4)
