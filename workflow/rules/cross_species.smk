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


rule cross_species_prepare:
    input:
        unpack(cross_species_sources),
    output:
        "results/cross_species/{xs_pair}/prepared.h5ad",
    params:
        settings=lambda wc: cross_species_settings(),
        seed=lambda wc: seeds()[0],
    log:
        "results/logs/cross_species_prepare/{xs_pair}.log",
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/cross_species_prepare.py"


rule cross_species_annotation:
    input:
        "results/cross_species/{xs_pair}/prepared.h5ad",
    output:
        scores="results/cross_species/{xs_pair}/annotation/{xs_method}/ref-{xs_ref}.seed{seed}.scores.csv",
        predictions="results/cross_species/{xs_pair}/annotation/{xs_method}/ref-{xs_ref}.seed{seed}.predictions.csv",
    params:
        settings=lambda wc: cross_species_settings(),
        task="annotation",
    log:
        "results/logs/cross_species_annotation/{xs_pair}.{xs_method}.{xs_ref}.seed{seed}.log",
    benchmark:
        "results/benchmarks/cross_species_annotation/{xs_pair}.{xs_method}.{xs_ref}.seed{seed}.tsv"
    threads: lambda wc: resources_for(wc.xs_method)["threads"]
    resources:
        mem_mb=lambda wc: resources_for(wc.xs_method)["mem_mb"],
        runtime=lambda wc: resources_for(wc.xs_method)["runtime"],
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/cross_species.py"


rule cross_species_integration:
    input:
        "results/cross_species/{xs_pair}/prepared.h5ad",
    output:
        scores="results/cross_species/{xs_pair}/integration/{xs_method}/seed{seed}.scores.csv",
        embedding="results/cross_species/{xs_pair}/integration/{xs_method}/seed{seed}.h5ad",
    params:
        settings=lambda wc: cross_species_settings(),
        task="integration",
    log:
        "results/logs/cross_species_integration/{xs_pair}.{xs_method}.seed{seed}.log",
    benchmark:
        "results/benchmarks/cross_species_integration/{xs_pair}.{xs_method}.seed{seed}.tsv"
    threads: lambda wc: resources_for(wc.xs_method)["threads"]
    resources:
        mem_mb=lambda wc: resources_for(wc.xs_method)["mem_mb"],
        runtime=lambda wc: resources_for(wc.xs_method)["runtime"],
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/cross_species.py"


rule cross_species_table:
    input:
        cross_species_score_files,
    output:
        summary="results/tables/cross_species_scores.csv",
        by_seed="results/tables/cross_species_scores_by_seed.csv",
    params:
        group_by=["task", "reference", "query", "method", "metric"],
        run_id=RUN_ID,
    log:
        "results/logs/cross_species_table/cross_species_table.log",
    localrule: True
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/seed_table.py"


rule cross_species_section:
    input:
        table="results/tables/cross_species_scores.csv",
        predictions=lambda wc: [f"results/cross_species/{pair}/annotation/{m}/ref-{ref}.seed{seeds()[0]}.predictions.csv"
                                for pair, ref in cross_species_annotation_jobs()
                                for m in cross_species_settings()["annotation_methods"]],
    output:
        "results/report/sections/cross_species.json",
    params:
        figure_dir="results/report/figures",
    log:
        "results/logs/cross_species_section/cross_species_section.log",
    localrule: True
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/cross_species_section.py"


def issue17_outputs():
    """Tables of the multimodal and cross-species benchmarks the config asks for (for final_outputs)."""
    outputs = []
    if multimodal_datasets():
        outputs.append("results/tables/multimodal_scores.csv")
    if cross_species_settings()["pairs"]:
        outputs.append("results/tables/cross_species_scores.csv")
    return outputs


def issue17_sections():
    """Report sections of the multimodal and cross-species benchmarks (for report_section_files)."""
    sections = []
    if multimodal_datasets():
        sections.append("results/report/sections/multimodal.json")
    if cross_species_settings()["pairs"]:
        sections.append("results/report/sections/cross_species.json")
    return sections
