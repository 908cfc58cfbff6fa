"""Which pretrained checkpoint a ScDiVa job loads: one per recipe, or one per dataset and seed.

A checkpoint recipe (config ``checkpoints.<name>.recipe``) is pretrained once by default, on the
cells of its datasets with its ``seed``, and serves every job. Two settings scope it instead:

- ``datasets: each``: one checkpoint per dataset of the run, pretrained on that dataset's cells alone
  (a model that has seen no other dataset);
- ``seed: each``: one checkpoint per seed of the run, pretrained with that seed, so the seed-to-seed
  spread of a ScDiVa result includes its pretraining.

Each lands in its own directory under ``resources/checkpoints/``: ``<name>``, ``<name>/<dataset>``,
``<name>/seed<seed>`` or ``<name>/<dataset>/seed<seed>`` (:func:`checkpoint_instance`). Functions of
the config only: the workflow calls them when it parses the config.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

CHECKPOINT_ROOT = "resources/checkpoints"
#: the value of ``datasets`` or ``seed`` that scopes a recipe to each dataset or seed of the run
EACH = "each"


def _recipe(config: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    return (config.get("checkpoints", {}).get(name) or {}).get("recipe")


def recipe_datasets(config: Mapping[str, Any], name: str) -> list[str]:
    """Datasets whose cells recipe ``name`` pretrains on: its list, or every configured dataset (``all``,
    and ``each``, where each dataset's checkpoint takes its own)."""
    chosen = _recipe(config, name).get("datasets", "all")
    return list(config["datasets"]) if chosen in ("all", EACH) else list(chosen)


def per_dataset(config: Mapping[str, Any], name: str) -> bool:
    """True when checkpoint ``name`` is a recipe pretrained once per dataset (``datasets: each``)."""
    recipe = _recipe(config, name)
    return recipe is not None and recipe.get("datasets") == EACH


def per_seed(config: Mapping[str, Any], name: str) -> bool:
    """True when checkpoint ``name`` is a recipe pretrained once per seed of the run (``seed: each``)."""
    recipe = _recipe(config, name)
    return recipe is not None and recipe.get("seed") == EACH


def checkpoint_instance(config: Mapping[str, Any], name: str, dataset: str, seed: int | str) -> str:
    """The checkpoint a job on ``dataset`` with ``seed`` loads, as a path below ``resources/checkpoints``."""
    parts = [name]
    if per_dataset(config, name):
        parts.append(dataset)
    if per_seed(config, name):
        parts.append(f"seed{int(seed)}")
    return "/".join(parts)


def checkpoint_directory(config: Mapping[str, Any], name: str, dataset: str, seed: int | str) -> str:
    """``resources/checkpoints/<instance>``: the directory of :func:`checkpoint_instance`."""
    return f"{CHECKPOINT_ROOT}/{checkpoint_instance(config, name, dataset, seed)}"


def staging_directory(instance: str) -> str:
    """Where ``scdiva train`` writes ``instance`` before it replaces the checkpoint directory whole (a
    sibling of ``resources/checkpoints/<name>``, its path flattened, so no partial run is ever loaded)."""
    return f"{CHECKPOINT_ROOT}/.{instance.replace('/', '.')}.partial"


def parse_instance(config: Mapping[str, Any], instance: str) -> tuple[str, str | None, int | None]:
    """(recipe name, dataset or None, seed or None) of a path made by :func:`checkpoint_instance`."""
    name, *rest = instance.split("/")
    dataset = rest.pop(0) if per_dataset(config, name) and rest else None
    seed_part = rest.pop(0) if per_seed(config, name) and rest else None
    if (rest or (per_dataset(config, name) and dataset is None)
            or (per_seed(config, name) and not re.fullmatch(r"seed[0-9]+", seed_part or ""))):
        raise ValueError(f"{instance!r} is not a checkpoint of recipe {name!r}")
    return name, dataset, None if seed_part is None else int(seed_part[len("seed"):])


def instance_datasets(config: Mapping[str, Any], instance: str) -> list[str]:
    """The datasets whose cells pretrain ``instance`` (its recipe's ``datasets``, or its one dataset)."""
    name, dataset, _ = parse_instance(config, instance)
    return [dataset] if dataset is not None else recipe_datasets(config, name)


def instance_seed(config: Mapping[str, Any], instance: str) -> int:
    """The pretraining seed of ``instance`` (the run's seed for ``seed: each``, else the recipe's)."""
    name, _, seed = parse_instance(config, instance)
    return int(_recipe(config, name).get("seed", 0)) if seed is None else seed


def instance_pattern(names: list[str]) -> str:
    """A wildcard constraint matching the instances of the recipes ``names`` (never matching for none)."""
    if not names:
        return "(?!x)x"
    return "(?:" + "|".join(re.escape(n) for n in names) + r")(?:/[^/]+)?(?:/seed[0-9]+)?"


def with_checkpoint_directory(config: Mapping[str, Any], params: Mapping[str, Any], checkpoint_param: str | None,
                              name: str | None, dataset: str, seed: int | str) -> dict[str, Any]:
    """A job's method parameters with a scoped recipe's checkpoint replaced by the directory this job
    loads (``params`` as they are for a checkpoint that serves every job)."""
    params = dict(params)
    if checkpoint_param is not None and name is not None and (per_dataset(config, name) or per_seed(config, name)):
        params[checkpoint_param] = checkpoint_directory(config, name, dataset, seed)
    return params
