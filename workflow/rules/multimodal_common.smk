# Functions and parse-time checks of the multi-modal benchmark (its rules: workflow/rules/multimodal.smk).
# Multi-modal (RNA + surface protein) benchmark: config `multimodal` (scdiva.bench.multimodal).
# Off unless the config has a `multimodal.datasets` block; checked when the workflow is parsed.


def multimodal_settings():
    """Config `multimodal` over its defaults; methods default to every registered multimodal method."""
    from scdiva.bench.multimodal import multimodal_methods

    defaults = {"datasets": {}, "methods": multimodal_methods(), "held_out_fraction": 0.2, "n_top_genes": 2000,
                "params": {}}
    return {**defaults, **config.get("multimodal", {})}


def multimodal_datasets():
    return list(multimodal_settings()["datasets"])


def extra_source(section, name):
    """Local path of dataset ``name`` of config section ``section`` (multimodal / cross_species)."""
    source = config[section]["datasets"][name]["source"]
    where = f"{section}.datasets.{name}.source"
    try:
        path = local_source_path(source)
    except DownloadError as err:
        raise WorkflowError(f"dataset {name!r}: {err} (config `{where}`).") from None
    if path is None:
        raise WorkflowError(f"dataset {name!r}: config `{where}` is a URL ({source!r}); the {section} benchmark reads "
                            "local files only: download it and give its path or a file:// URL.")
    if not path.is_file():
        raise WorkflowError(f"dataset {name!r}: source file {path} does not exist (config `{where}`: {source!r}); "
                            f"relative paths resolve against the repository root {REPO_ROOT}.")
    return path


def _check_multimodal():
    from scdiva.bench.multimodal import MultimodalError, check_multimodal_source, method_params

    settings = multimodal_settings()
    for name, entry in settings["datasets"].items():
        try:
            check_multimodal_source(extra_source("multimodal", name), entry, dataset=name)
        except MultimodalError as err:
            raise WorkflowError(str(err)) from None
    for method in settings["methods"]:
        try:
            method_params(method, {})
        except MultimodalError as err:
            raise WorkflowError(f"config `multimodal.methods`: {err}") from None
    for method, params in settings["params"].items():
        try:
            method_params(method, params)
        except MultimodalError as err:
            raise WorkflowError(f"config `multimodal.params.{method}`: {err}") from None


_check_multimodal()


def multimodal_job(wc):
    return f"results/multimodal/{wc.mm_dataset}/{wc.mm_method}/seed{wc.seed}"
