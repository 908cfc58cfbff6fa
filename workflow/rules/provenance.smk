# results/provenance.json: data, code, config, packages, hardware, seeds and times of this run, and
# its report section. Runs after every table, so `finished` is when the last table was written.
# RUN_ID (common.smk) is the `run_id` column of each results/tables/*_scores.csv.
from types import SimpleNamespace


def provenance_inputs(wildcards=None):
    """Every file the run reads that no rule writes, by the config key that names it: dataset sources
    and metadata tables, multimodal and cross-species sources, precomputed embeddings, the files of
    published checkpoints and the paper's claims. A URL source has no local file; its staged copy is
    recorded under `datasets`. tests/workflow/test_provenance.py checks this against the DAG's inputs."""
    inputs = {}
    for name in dataset_names():
        for key in ("source", "metadata"):
            value = dataset_config(name).get(key)
            path = local_source_path(value) if value else None
            if path is not None:
                inputs[f"datasets.{name}.{key}"] = str(path)
    for name in multimodal_datasets():
        inputs[f"multimodal.datasets.{name}.source"] = str(extra_source("multimodal", name))
    for pair in cross_species_settings()["pairs"]:
        for name in (pair["reference"], pair["query"]):
            inputs[f"cross_species.datasets.{name}.source"] = str(extra_source("cross_species", name))
    for method in method_names():
        for dataset in dataset_names():
            for seed in seeds():
                path = method_embedding_input(SimpleNamespace(method=method, dataset=dataset, seed=seed))
                if path:
                    inputs[f"methods.{method}.embedding[{dataset}, seed {seed}]"] = str(path)
    for name in used_checkpoints():
        published = config["checkpoints"][name].get("published") or {}
        if published.get("path"):
            from scdiva.bench.checkpoints import source_files

            directory = local_source_path(published["path"])
            for filename in source_files(published):
                inputs[f"checkpoints.{name}.published.path/{filename}"] = str(directory / filename)
    inputs["config/paper_claims.yaml"] = paper_section_inputs(None)["claims"]
    return inputs


rule provenance:
    input:
        datasets=expand(f"{STAGED_DIR}/{{dataset}}.h5ad", dataset=dataset_names()),
        tables=lambda wc: [path for path in final_outputs() if path.startswith("results/tables/")],
        sources=lambda wc: list(provenance_inputs().values()),
    output:
        record="results/provenance.json",
        section=PROVENANCE_SECTION,
    params:
        run_id=RUN_ID,
        start_commit=START_CODE["commit"],
        datasets=lambda wc: {d: f"{STAGED_DIR}/{d}.h5ad" for d in dataset_names()},
        inputs=provenance_inputs,
        repo=str(REPO_ROOT),
    log:
        "results/logs/provenance/provenance.log",
    localrule: True
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/provenance.py"
