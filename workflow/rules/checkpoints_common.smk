# Helpers of the ScDiVa checkpoint rules (checkpoints.smk; config `checkpoints`).

import json

from scdiva.bench.checkpoints.files import CHECKPOINT_FILES


def checkpoint_names(kind):
    return [name for name, entry in config.get("checkpoints", {}).items() if kind in entry]


def _one_of(names):
    # A wildcard constraint matching exactly these names (never matching when there are none).
    return "|".join(re.escape(n) for n in names) or "(?!x)x"


def checkpoint_files(name):
    """The files of checkpoint ``name``: inputs of every rule that loads it."""
    if name not in config.get("checkpoints", {}):
        raise WorkflowError(f"ScDiVa checkpoint {name!r} is not defined in config `checkpoints`; "
                            f"defined: {sorted(config.get('checkpoints', {}))}")
    return [f"resources/checkpoints/{name}/{f}" for f in CHECKPOINT_FILES]


def recipe_datasets(name):
    """Datasets whose cells make up checkpoint recipe ``name``'s pretraining corpus."""
    return _checks.recipe_datasets(config, name)


def recipe_held_out_batches(name, dataset):
    """Batches of ``dataset`` kept out of checkpoint ``name``'s corpus (recipe `held_out`)."""
    if config["checkpoints"][name]["recipe"].get("held_out", "none") != "annotation_query":
        return []
    annotation = dataset_config(dataset).get("annotation")
    return list(annotation["query_batches"]) if annotation else []


def recipe_length_option(name):
    """`scdiva train` option for the recipe's training length (max_steps, else max_epochs), as a list of
    words for `{params.length:q}`."""
    recipe = config["checkpoints"][name]["recipe"]
    if "max_steps" in recipe:
        return ["--max-steps", str(recipe["max_steps"])]
    from scdiva.bench.core.resources import DEFAULT_PRETRAIN_EPOCHS

    return ["--max-epochs", str(recipe.get("max_epochs", DEFAULT_PRETRAIN_EPOCHS))]


def gpu_resources():
    return {"gpu": 1} if use_gpu() else {}


def scdiva_checkpoint_inputs(wildcards):
    """Extra inputs of an integration job: the checkpoint files when the method loads one (ScDiVa)."""
    name = method_checkpoint("integration", wildcards.method)
    return [] if name is None else checkpoint_files(name)
