# Provenance (scdiva.bench.core.provenance; its rule: provenance.smk).
# RUN_ID hashes the effective config and the code version only (no time), so an unchanged workflow
# keeps its id and reruns nothing; tables get it as a param. The start time reaches the provenance
# job through the environment (setdefault: a job that re-parses this file keeps the first time).
from datetime import datetime, timezone

from scdiva.bench.core import provenance as _provenance

os.environ.setdefault("SCDIVA_RUN_STARTED", datetime.now(timezone.utc).isoformat(timespec="seconds"))
START_CODE = _provenance.code_version(REPO_ROOT)
RUN_ID = _provenance.run_id(_provenance.config_sha256(config), START_CODE)
PROVENANCE_SECTION = "results/report/sections/provenance.json"


def provenance_inputs(wildcards=None):
    """Every file the run reads that no job writes, by the config key that names it: dataset sources
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
            from scdiva.bench.checkpoints.fetch import source_files

            directory = local_source_path(published["path"])
            for filename in source_files(published):
                inputs[f"checkpoints.{name}.published.path/{filename}"] = str(directory / filename)
    inputs["config/paper_claims.yaml"] = paper_section_inputs(None)["claims"]
    return inputs
