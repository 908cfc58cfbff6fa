# Functions and parse-time checks of the cross-species benchmark (its rules: workflow/rules/cross_species.smk).
# Cross-species benchmark: config `cross_species` (scdiva.bench.tasks.cross_species): annotation trained on one
# species and applied to the other, and both species integrated with species as the batch.
# Off unless the config has a `cross_species.pairs` block; checked when the workflow is parsed.


def cross_species_settings():
    """Config `cross_species` over its defaults; methods default to every registered method of each half."""
    return _checks.cross_species_settings(config)


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


_checked(_checks.check_cross_species, config, REPO_ROOT)


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
