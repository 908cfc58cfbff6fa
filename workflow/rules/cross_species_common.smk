# Functions and parse-time checks of the cross-species benchmark (its rules: workflow/rules/cross_species.smk).
# Cross-species benchmark: config `cross_species` (scdiva.bench.cross_species): annotation trained on one
# species and applied to the other, and both species integrated with species as the batch.
# Off unless the config has a `cross_species.pairs` block; checked when the workflow is parsed.


def cross_species_settings():
    """Config `cross_species` over its defaults; methods default to every registered method of each half."""
    from scdiva.bench.cross_species import ANNOTATION_TASK, INTEGRATION_TASK
    from scdiva.bench.methods.registry import method_records

    defaults = {"datasets": {}, "pairs": [], "both_directions": True,
                "annotation_methods": list(method_records(ANNOTATION_TASK)),
                "integration_methods": list(method_records(INTEGRATION_TASK)),
                "min_shared_genes": 200, "n_top_genes": 2000, "subsample": None, "params": {}}
    return {**defaults, **config.get("cross_species", {})}


def cross_species_pairs():
    """Pair names ``reference__query`` as configured."""
    return [f"{p['reference']}__{p['query']}" for p in cross_species_settings()["pairs"]]


def cross_species_annotation_jobs():
    """(pair, reference) of every annotation run: each pair's reference, and its query when both_directions."""
    settings = cross_species_settings()
    jobs = []
    for p in settings["pairs"]:
        pair = f"{p['reference']}__{p['query']}"
        jobs.append((pair, p["reference"]))
        if settings["both_directions"]:
            jobs.append((pair, p["query"]))
    return jobs


def _check_cross_species():
    from scdiva.bench.cross_species import (
        ANNOTATION_TASK,
        INTEGRATION_TASK,
        CrossSpeciesError,
        check_cross_species_config,
        method_params,
    )
    from scdiva.bench.methods.registry import method_records
    from scdiva.bench.validate import DatasetValidationError

    settings = cross_species_settings()
    if not settings["pairs"]:
        return
    tasks = {ANNOTATION_TASK: "annotation_methods", INTEGRATION_TASK: "integration_methods"}
    for task, key in tasks.items():
        for method in settings[key]:
            try:  # unknown methods or parameters stop the workflow here, before any job
                method_params(task, method, settings["params"].get(method))
            except CrossSpeciesError as err:
                raise WorkflowError(f"config `cross_species.{key}`: {err}") from None
    known = set(method_records(ANNOTATION_TASK)) | set(method_records(INTEGRATION_TASK))
    for method in sorted(set(settings["params"]) - known):  # a misspelt name would be silently ignored
        raise WorkflowError(f"config `cross_species.params.{method}`: no cross-species method is called {method!r}; "
                            f"known: {sorted(known)}")
    paths = {name: extra_source("cross_species", name) for name in settings["datasets"]}
    try:
        check_cross_species_config(settings, paths)
    except (CrossSpeciesError, DatasetValidationError) as err:
        raise WorkflowError(str(err)) from None


_check_cross_species()


def cross_species_sources(wc):
    reference, query = wc.xs_pair.split("__")
    return {"reference": str(extra_source("cross_species", reference)),
            "query": str(extra_source("cross_species", query))}


def cross_species_score_files(wc=None):
    settings = cross_species_settings()
    files = [f"results/cross_species/{pair}/annotation/{m}/ref-{ref}.seed{s}.scores.csv"
             for pair, ref in cross_species_annotation_jobs() for m in settings["annotation_methods"] for s in seeds()]
    files += [f"results/cross_species/{pair}/integration/{m}/seed{s}.scores.csv"
              for pair in cross_species_pairs() for m in settings["integration_methods"] for s in seeds()]
    return files


def extra_benchmark_outputs():
    """Tables of the multimodal and cross-species benchmarks the config asks for (for final_outputs)."""
    outputs = []
    if multimodal_datasets():
        outputs.append("results/tables/multimodal_scores.csv")
    if cross_species_settings()["pairs"]:
        outputs.append("results/tables/cross_species_scores.csv")
    return outputs


def extra_benchmark_sections():
    """Report sections of the multimodal and cross-species benchmarks (for report_section_files)."""
    sections = []
    if multimodal_datasets():
        sections.append("results/report/sections/multimodal.json")
    if cross_species_settings()["pairs"]:
        sections.append("results/report/sections/cross_species.json")
    return sections
