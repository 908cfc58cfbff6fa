# Helpers of the paper figures and report sections (paper.smk, report.smk).

def model_method_names():
    """This run's integration and annotation methods of the model under test (record role "model",
    config-derived ones included): marked in-sample on development datasets."""
    listed = [("integration", m) for m in method_names()] + [("annotation", m) for m in annotation_methods()]
    return sorted({m for task, m in listed if method_record(task, m).role == "model"})


def development_datasets():
    """Datasets with `role: development`: the model's defaults were chosen on them (rows in-sample)."""
    return [d for d in dataset_names() if dataset_config(d)["role"] == "development"]


def trajectory_methods():
    """Integration methods of the model under test (record role "model": ScDiVa) in this run."""
    return [m for m in method_names() if method_record("integration", m).role == "model"]


def trajectory_figures():
    """Trajectory figures for the report: every dataset, once a ScDiVa embedding is configured."""
    return [f"results/{d}/trajectory.png" for d in dataset_names()] if trajectory_methods() else []


PAPER_SECTIONS = ["claims", "checkpoints", "integration", "annotation", "multitask", "trajectory"]


def report_section_files():
    """Extra report sections (JSON, scdiva.bench.report.Section) that the report rule renders."""
    return ([f"results/report/sections/paper_{name}.json" for name in PAPER_SECTIONS] + [PROVENANCE_SECTION]
            + extra_benchmark_sections())  # multimodal / cross-species sections (workflow/rules/cross_species_common.smk)


def used_checkpoints():
    """Names of the ScDiVa checkpoints some job of this run loads, in config order."""
    used = {name for name, _, _ in scdiva_checkpoint_users()}
    return [name for name in config.get("checkpoints", {}) if name in used]


def used_checkpoint_directories():
    """The checkpoint directories the run's jobs load: one per recipe, or per dataset and / or seed of a
    scoped recipe (scdiva.bench.checkpoints.scopes), in config order."""
    directories = [_scopes.checkpoint_directory(config, name, dataset, seed)
                   for name, dataset, _ in scdiva_checkpoint_users() for seed in seeds()]
    order = {name: i for i, name in enumerate(config.get("checkpoints", {}))}
    return sorted(set(directories), key=lambda d: (order[d.split("/")[2]], d))


def paper_section_inputs(wildcards):
    inputs = {"claims": str(REPO_ROOT / "config" / "paper_claims.yaml"),
              "checkpoint_configs": [f"{d}/config.json" for d in used_checkpoint_directories()]}
    if method_names():
        inputs["integration"] = "results/tables/integration_scores.csv"
    if annotation_datasets() and annotation_methods():
        inputs["annotation"] = "results/tables/annotation_scores.csv"
        inputs["annotation_by_seed"] = "results/tables/annotation_scores_by_seed.csv"
        jobs = [f"results/{d}/annotation/{m}/seed{seeds()[0]}" for d in annotation_datasets()
                for m in annotation_methods()]
        inputs["annotation_infos"] = [f"{j}.json" for j in jobs]
        inputs["confusion"] = [f"{j}.confusion.png" for j in jobs]
    if "multitask" in config and multitask_datasets():
        inputs["multitask"] = "results/tables/multitask_scores.csv"
        inputs["multitask_comparison"] = "results/tables/multitask_comparison.csv"
        inputs["multitask_infos"] = [f"results/{d}/multitask/seed{multitask_seeds()[0]}.json"
                                     for d in multitask_datasets()]
    figures = trajectory_figures()
    if figures:
        inputs["trajectory"] = figures
        inputs["trajectory_medians"] = [f.replace("trajectory.png", "trajectory_median_pseudotime.csv")
                                        for f in figures]
        # the ScDiVa runs the figures use: one that did not complete is named in the section
        inputs["trajectory_runs"] = [f"results/{d}/integration/{m}/seed{seeds()[0]}.run.json"
                                     for d in dataset_names() for m in trajectory_methods()]
    return inputs


# Run when the workflow is parsed, after the dataset and checkpoint checks.
_checked(_checks.check_methods, config, REPO_ROOT)
_checked(_checks.check_scdiva_coverage, config, REPO_ROOT)
