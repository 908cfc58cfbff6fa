# Helpers of the annotation and multi-task rules (annotation.smk, multitask.smk).

def annotation_datasets():
    return [d for d in dataset_names() if dataset_config(d).get("annotation")]


def annotation_methods():
    return list(config["annotation"]["methods"])  # defaults ([]) from config/schema.yaml


def skipped_parts():
    """What this config leaves out and why ({benchmark: {dataset: reason}}), for the report."""
    skipped = {"annotation": {}, "multitask": {}}
    if annotation_methods():
        for d in dataset_names():
            if not dataset_config(d).get("annotation"):
                skipped["annotation"][d] = (f"no annotation split: add `datasets.{d}.annotation` with "
                                            "`reference_batches` and `query_batches` to benchmark annotation")
    if "multitask" in config:
        for d in dataset_names():
            if d not in multitask_datasets():
                skipped["multitask"][d] = "not listed in config `multitask.datasets`"
    return skipped


def annotation_params(method):
    """Parameters of annotation method ``method`` (built in: `annotation.params`; config-defined: its `params`)."""
    return _checks.annotation_params(config, method)


def annotation_inputs(wildcards):
    inputs = {"h5ad": f"results/{wildcards.dataset}/preprocessed.h5ad"}
    name = method_checkpoint("annotation", wildcards.method)
    if name is not None:
        inputs["checkpoint"] = checkpoint_files(name, wildcards.dataset, wildcards.seed)
    return inputs


def multitask_settings():
    """Config `multitask` with the defaults config/schema.yaml fills in (snakemake.utils.validate)."""
    return dict(config.get("multitask") or {})  # absent: no multi-task benchmark


def multitask_seeds():
    """Seeds of the multi-task runs: `multitask.seeds`, else the global `seeds` (3+ for the paired comparison)."""
    return multitask_settings()["seeds"] or seeds()


def multitask_datasets():
    chosen = multitask_settings()["datasets"]
    return [d for d in dataset_names() if chosen is None or d in chosen]
