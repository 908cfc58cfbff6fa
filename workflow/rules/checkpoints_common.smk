# Helpers of the ScDiVa checkpoint rules (checkpoints.smk; config `checkpoints`).

import json

from scdiva.bench.checkpoints import scopes as _scopes
from scdiva.bench.checkpoints.files import CHECKPOINT_FILES


def checkpoint_names(kind):
    return [name for name, entry in config.get("checkpoints", {}).items() if kind in entry]


def _one_of(names):
    # A wildcard constraint matching exactly these names (never matching when there are none).
    return "|".join(re.escape(n) for n in names) or "(?!x)x"


def checkpoint_files(name, dataset, seed):
    """The files of the checkpoint ``name`` a job on ``dataset`` with ``seed`` loads: inputs of that job
    (one directory per dataset and / or seed for a recipe with `datasets: each` / `seed: each`)."""
    if name not in config.get("checkpoints", {}):
        raise WorkflowError(f"ScDiVa checkpoint {name!r} is not defined in config `checkpoints`; "
                            f"defined: {sorted(config.get('checkpoints', {}))}")
    directory = _scopes.checkpoint_directory(config, name, dataset, seed)
    return [f"{directory}/{f}" for f in CHECKPOINT_FILES]


def job_method_params(task, method, dataset, seed):
    """A job's method parameters: the configured ones, with a scoped recipe's checkpoint replaced by the
    directory of this dataset's and seed's checkpoint."""
    params = method_params(method) if task == "integration" else annotation_params(method)
    record = method_record(task, method)
    return _scopes.with_checkpoint_directory(config, params, record.checkpoint_param,
                                             method_checkpoint(task, method), dataset, seed)


def instance_recipe(instance):
    """The recipe of a pretrained checkpoint ``instance`` (`<name>[/<dataset>][/seed<k>]`)."""
    return config["checkpoints"][_scopes.parse_instance(config, instance)[0]]["recipe"]


def instance_corpus(instance):
    """The corpus files that pretrain ``instance``: one per dataset of its recipe (or its one dataset)."""
    name = _scopes.parse_instance(config, instance)[0]
    return [f"results/checkpoints/{name}/corpus/{d}.h5ad" for d in _scopes.instance_datasets(config, instance)]


def recipe_held_out_batches(name, dataset):
    """Batches of ``dataset`` kept out of checkpoint ``name``'s corpus (recipe `held_out`)."""
    if config["checkpoints"][name]["recipe"].get("held_out", "none") != "annotation_query":
        return []
    annotation = dataset_config(dataset).get("annotation")
    return list(annotation["query_batches"]) if annotation else []


def recipe_length_option(instance):
    """`scdiva train` option for the recipe's training length (max_steps, else max_epochs), as a list of
    words for `{params.length:q}`."""
    recipe = instance_recipe(instance)
    if "max_steps" in recipe:
        return ["--max-steps", str(recipe["max_steps"])]
    from scdiva.bench.core.resources import DEFAULT_PRETRAIN_EPOCHS

    return ["--max-epochs", str(recipe.get("max_epochs", DEFAULT_PRETRAIN_EPOCHS))]


def gpu_resources():
    return {"gpu": 1} if use_gpu() else {}


def scdiva_checkpoint_inputs(wildcards):
    """Extra inputs of an integration job: the checkpoint files when the method loads one (ScDiVa)."""
    name = method_checkpoint("integration", wildcards.method)
    return [] if name is None else checkpoint_files(name, wildcards.dataset, wildcards.seed)
