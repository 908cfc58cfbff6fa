# The run records each task's table waits for (workflow/rules/runs.smk reads them all).


def task_run_records(task):
    """The .run.json of every run of ``task`` (integration, annotation, multimodal, cross_species) that this
    config schedules: a task's table waits for its own runs only."""
    if task == "integration":
        return [f"results/{d}/integration/{m}/seed{s}.run.json" for d in dataset_names() for m, s in method_seed_runs()]
    if task == "annotation":
        return [f"results/{d}/annotation/{m}/seed{s}.run.json"
                for d in annotation_datasets() for m in annotation_methods() for s in seeds()]
    if task == "multimodal":
        return [f"results/multimodal/{d}/{m}/seed{s}.run.json"
                for d in multimodal_datasets() for m in multimodal_settings()["methods"] for s in seeds()]
    if task == "cross_species":
        if not cross_species_settings()["pairs"]:
            return []
        return [f.replace(".scores.csv", ".run.json") for f in cross_species_score_files()]
    raise ValueError(f"unknown task {task!r}")


def run_records(wildcards=None):
    """The .run.json of every (dataset, task, method, seed) run this config schedules."""
    return [r for task in ("integration", "annotation", "multimodal", "cross_species") for r in task_run_records(task)]


def metrics_status_files(wildcards=None):
    """Per-embedding scoring verdicts of every dataset's metrics job (a failed scoring fails its run)."""
    return [f"results/{d}/integration/metrics_status.csv" for d in dataset_names()] if method_names() else []
