# Functions and parse-time checks of the multi-modal benchmark (its rules: workflow/rules/multimodal.smk).
# Multi-modal (RNA + surface protein) benchmark: config `multimodal` (scdiva.bench.tasks.multimodal).
# Off unless the config has a `multimodal.datasets` block; checked when the workflow is parsed.


def multimodal_settings():
    """Config `multimodal` over its defaults; methods default to every registered multimodal method."""
    return _checks.multimodal_settings(config)


def multimodal_datasets():
    return list(multimodal_settings()["datasets"])


def extra_source(section, name):
    """Local path of dataset ``name`` of config section ``section`` (multimodal / cross_species)."""
    return _checked(_checks.extra_source, config, section, name, REPO_ROOT)


_checked(_checks.check_multimodal, config, REPO_ROOT)


def multimodal_job(wc):
    return f"results/multimodal/{wc.mm_dataset}/{wc.mm_method}/seed{wc.seed}"
