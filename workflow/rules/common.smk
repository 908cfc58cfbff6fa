# Config validation and helpers shared by all rule files.
#
# Order of checks: the JSON schema (types, unknown keys) first, then checks that need Python
# (known method and parameter names, local source files and their obs / var keys, checkpoints).
# Both run when the workflow is parsed, so a bad config fails before any job starts.

import os
import re
import sys
from pathlib import Path
from types import SimpleNamespace

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# Repository root: relative dataset sources resolve against it, not the working directory, so
# `snakemake --directory elsewhere` reads the same files.
REPO_ROOT = Path(workflow.basedir).resolve()
# Workflow scripts import scdiva.bench from this checkout whichever Python runs them (the venv,
# a conda env made from envs/, a cluster node): jobs inherit the environment. Set here, not
# read, so it needs no `envvars:` assertion.
os.environ.update(PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])))
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))  # the same for this process, if scdiva is not installed

from scdiva.bench import config_checks as _checks

SCRIPTS = REPO_ROOT / "workflow" / "scripts"


def job_python():
    """The Python that runs the package in shell commands (the job's conda env's `python` under
    `--sdm conda`, else the Python running Snakemake, as for `script:` rules), so no `scdiva` command
    needs to be on PATH."""
    from snakemake.settings.types import DeploymentMethod

    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
        return "python"
    return sys.executable


# Shell rules call the command line as `{params.cli:q} train ...` with params cli=SCDIVA_CLI: a list,
# so `:q` quotes each word (workflow/rules/checkpoints.smk).
SCDIVA_CLI = [job_python(), "-m", "scdiva.cli"]
STAGED_DIR = _checks.STAGED_DIR
SHA256_LOCK = f"{STAGED_DIR}/sha256.lock.json"


def _checked(check, *args):
    """Run a check or accessor of scdiva.bench.config_checks: its ConfigError stops the workflow with the same
    message (a WorkflowError, shown without a traceback)."""
    try:
        return check(*args)
    except _checks.ConfigError as err:
        raise WorkflowError(str(err)) from None


try:
    validate(config, schema="../../config/schema.yaml")
except WorkflowError as err:
    import jsonschema

    cause = err.__cause__ or err.__context__  # the jsonschema error validate() was handling
    if not isinstance(cause, jsonschema.ValidationError):
        raise
    raise WorkflowError(_checks.schema_error_message(cause)) from None


# --- config accessors --------------------------------------------------------------------------


def dataset_names():
    """Names of the configured datasets, in config order."""
    return list(config["datasets"])


def dataset_config(name):
    """The config entry of dataset ``name`` (source, batch_key, label_key, ...)."""
    return config["datasets"][name]


def method_names():
    """Integration methods to benchmark, in config order."""
    return list(config["integration"]["methods"])


def seeds():
    """Random seeds; every method runs once per seed."""
    return list(config["seeds"])


def method_definition(method):
    """Config ``methods.<method>`` when it defines a method (entry_point / command / embedding), else None."""
    return _checks.method_definition(config, method)


def method_record(task, method):
    """The record of ``method`` for ``task`` (scdiva.bench.methods.registry): built in or defined in config."""
    return _checks.method_record(config, task, method, REPO_ROOT)


def method_params(method):
    """Per-method parameters from config ``methods.<method>`` (empty: the defaults); a config-defined
    method's are under its ``params``."""
    return _checks.method_params(config, method)


def use_gpu():
    return bool(config["gpu"])  # default (false) from config/schema.yaml


def resources_for(name, dataset=None, checkpoint=None):
    """threads, mem_mb and runtime (minutes) of a rule or method.

    ``resources.default`` overlaid by ``resources.<name>`` from the config. With ``dataset``, mem_mb and
    runtime are at least what the dataset's cell count needs (scdiva.bench.resources.estimate); with
    ``checkpoint`` (a recipe), what pretraining on its corpus needs (pretrain_estimate: the corpus
    datasets' cells, the recipe's steps or epochs); unless ``resources.<name>`` sets them itself.
    """
    merged = dict(config["resources"]["default"])  # its defaults: config/schema.yaml
    own = config["resources"].get(name, {})
    merged.update(own)
    needed = None
    if checkpoint is not None:
        from scdiva.bench.resources import pretrain_estimate

        recipe = config["checkpoints"][checkpoint]["recipe"]
        needed = pretrain_estimate(sum(dataset_cells(d) for d in recipe_datasets(checkpoint)),
                                   max_steps=recipe.get("max_steps"), max_epochs=recipe.get("max_epochs"),
                                   batch_size=recipe.get("batch_size", 128))
    elif dataset is not None:
        from scdiva.bench.resources import estimate

        stage = {"download": "download", "preprocess": "preprocess", "metrics": "metrics"}.get(
            name, "scdiva" if _loads_checkpoint(name) else "integrate")
        needed = estimate(stage, dataset_cells(dataset, before_subsample=stage == "download"))
        if stage == "metrics":  # one job scores every method and seed of the dataset
            needed["runtime"] *= max(1, len(method_seed_runs()))
    if needed is not None:
        for key in ("mem_mb", "runtime"):
            if key not in own:
                merged[key] = max(merged[key], needed[key])
    return merged


def _loads_checkpoint(method):
    """True for an integration method whose record loads a ScDiVa checkpoint (it is sized as one)."""
    try:
        return method_record("integration", method).checkpoint_param is not None
    except KeyError:
        return False


_CELL_COUNTS = {}


def dataset_cells(name, before_subsample=False):
    """Cells a job of dataset ``name`` handles: `subsample` if set (unless ``before_subsample``), else the
    staged or local .h5ad's count, else `expected_cells`, else 0 (resources stay as configured)."""
    entry = dataset_config(name)
    if name not in _CELL_COUNTS:
        from scdiva.bench.formats import n_obs_of

        count = entry.get("expected_cells", 0)
        for path in (Path(STAGED_DIR) / f"{name}.h5ad", local_source_path(entry["source"])):
            if path is not None and path.is_file() and path.suffix == ".h5ad":
                try:
                    count = n_obs_of(path)
                    break
                except (OSError, KeyError):
                    continue
        _CELL_COUNTS[name] = count
    count = _CELL_COUNTS[name]
    if not before_subsample and entry.get("subsample"):
        count = min(count, entry["subsample"]) if count else entry["subsample"]
    return count


def staged_h5ad(wildcards):
    return f"{STAGED_DIR}/{wildcards.dataset}.h5ad"


def download_input(wildcards):
    """Local sources are inputs of `download`, so editing the file re-stages it; URLs have none."""
    path = local_source_path(dataset_config(wildcards.dataset)["source"])
    return [str(path)] if path is not None else []


PREPROCESS_KEYS = ("batch_key", "label_key", "counts_layer", "gene_id_column", "subsample", "round_counts")


def preprocess_entry(name):
    """The keys of dataset ``name`` that change its preprocessed AnnData."""
    return {key: value for key, value in dataset_config(name).items() if key in PREPROCESS_KEYS}


def preprocessed_h5ad(wildcards):
    """Input function for method rules: the validated, preprocessed AnnData of ``{dataset}``."""
    return f"results/{wildcards.dataset}/preprocessed.h5ad"


# The record of every run's outcome, and the last job of `all`, which fails the run when a run was not ok
# (workflow/rules/runs.smk).
RUNS_TABLE = "results/tables/runs.csv"
RUNS_CHECKED = "results/runs_checked.txt"


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


def final_outputs():
    """What the default target builds - the report, every table the config asks for, the record of every
    run's outcome and its check (which runs last)."""
    outputs = ["results/report/index.html", "results/tables/integration_scores.csv", RUNS_TABLE, RUNS_CHECKED]
    if annotation_datasets() and annotation_methods():
        outputs.append("results/tables/annotation_scores.csv")
    if "multitask" in config and multitask_datasets():
        outputs.append("results/tables/multitask_scores.csv")
    outputs += extra_benchmark_outputs()  # multimodal / cross-species tables (workflow/rules/cross_species_common.smk)
    return outputs + trajectory_figures()


# --- semantic checks (scdiva.bench.config_checks) -------------------------------------------------


def local_source_path(source):
    """Absolute path of a local or file:// dataset source; None for an http(s) URL."""
    return _checks.local_source_path(source, REPO_ROOT)


def method_checkpoint(task, method):
    """The config checkpoint a method loads (its record's `checkpoint_param`), or None."""
    return _checks.method_checkpoint(config, task, method, REPO_ROOT)


def scdiva_checkpoint_users():
    """(checkpoint, dataset, what) for every ScDiVa job the config asks for."""
    return _checks.scdiva_checkpoint_users(config, REPO_ROOT)


_checked(_checks.check_datasets, config, REPO_ROOT)
_checked(_checks.check_checkpoints, config, REPO_ROOT)  # makes published paths absolute


# --- integration, metrics and report ------------------------------------------------------


def integration_gpu(method):
    """1 GPU only for GPU-capable methods, and only when config `gpu: true`."""
    return 1 if use_gpu() and method_record("integration", method).gpu else 0


def annotation_gpu(method):
    """1 GPU only for GPU-capable annotation methods, and only when config `gpu: true`."""
    return 1 if use_gpu() and method_record("annotation", method).gpu else 0


def model_saving_methods():
    """Integration methods whose job also saves a model another method starts from (scVI for scANVI)."""
    return [m for m in method_names() if method_record("integration", m).saves_model]


def method_embedding_input(wildcards):
    """Input of an integration job: the precomputed embedding file of a config `embedding` method."""
    record = method_record("integration", wildcards.method)
    if record.embedding is None:
        return []
    return record.embedding.format(dataset=wildcards.dataset, seed=wildcards.seed)


def method_seed_runs():
    """(method, seed) of every integration job of a dataset."""
    return [(m, s) for m in method_names() for s in seeds()]


def scanvi_scvi_model(wildcards):
    """Input of a job whose record `reuses_model_of` another method (scanvi: scvi): that job's saved model
    (same dataset and seed) when it is benchmarked with compatible settings; otherwise none (it trains its own)."""
    record = method_record("integration", wildcards.method)
    source = record.reuses_model_of
    if source is None or source not in method_names():
        return []
    from scdiva.bench.methods.registry import load_entry_point

    compatible = load_entry_point(record.model_compatible, method=record.name, where=f"method {record.name!r}")
    if not compatible(method_params(source), method_params(wildcards.method)):
        return []
    return f"results/{wildcards.dataset}/integration/{source}/seed{wildcards.seed}.model/model.pt"


def metrics_files(wildcards=None):
    """One scIB metrics table per dataset (all its methods and seeds)."""
    return [f"results/{d}/integration/metrics.csv" for d in dataset_names()]


def report_embeddings(wildcards=None):
    """Embeddings of the first seed (UMAP grid), per dataset and method."""
    return [f"results/{d}/integration/{m}/seed{seeds()[0]}.h5ad" for d in dataset_names() for m in method_names()]


# --- ScDiVa checkpoints (config `checkpoints`) ---------------------------------------------

from scdiva.bench.checkpoints import CHECKPOINT_FILES


def checkpoint_names(kind):
    return [name for name, entry in config.get("checkpoints", {}).items() if kind in entry]


def _one_of(names):
    # A wildcard constraint matching exactly these names (never matching when there are none).
    return "|".join(re.escape(n) for n in names) or "(?!x)x"


def checkpoint_files(name):
    """The files of checkpoint ``name``: inputs of every rule that loads it."""
    if name not in config.get("checkpoints", {}):
        raise WorkflowError(f"ScDiVa checkpoint {name!r} is not defined in config `checkpoints`; "
                            f"defined: {sorted(config.get('checkpoints', {}))}")
    return [f"resources/checkpoints/{name}/{f}" for f in CHECKPOINT_FILES]


def recipe_datasets(name):
    """Datasets whose cells make up checkpoint recipe ``name``'s pretraining corpus."""
    return _checks.recipe_datasets(config, name)


def recipe_held_out_batches(name, dataset):
    """Batches of ``dataset`` kept out of checkpoint ``name``'s corpus (recipe `held_out`)."""
    if config["checkpoints"][name]["recipe"].get("held_out", "none") != "annotation_query":
        return []
    annotation = dataset_config(dataset).get("annotation")
    return list(annotation["query_batches"]) if annotation else []


def recipe_length_option(name):
    """`scdiva train` option for the recipe's training length (max_steps, else max_epochs), as a list of
    words for `{params.length:q}`."""
    recipe = config["checkpoints"][name]["recipe"]
    if "max_steps" in recipe:
        return ["--max-steps", str(recipe["max_steps"])]
    from scdiva.bench.resources import DEFAULT_PRETRAIN_EPOCHS

    return ["--max-epochs", str(recipe.get("max_epochs", DEFAULT_PRETRAIN_EPOCHS))]


def gpu_resources():
    return {"gpu": 1} if use_gpu() else {}


def scdiva_checkpoint_inputs(wildcards):
    """Extra inputs of an integration job: the checkpoint files when the method loads one (ScDiVa)."""
    name = method_checkpoint("integration", wildcards.method)
    return [] if name is None else checkpoint_files(name)


# --- annotation and multi-task benchmarks ---------------------------------------------------


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
        inputs["checkpoint"] = checkpoint_files(name)
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


# --- paper figures and report sections ------------------------------------------------------


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


def paper_section_inputs(wildcards):
    inputs = {"claims": str(REPO_ROOT / "config" / "paper_claims.yaml"),
              "checkpoint_configs": [f"resources/checkpoints/{n}/config.json" for n in used_checkpoints()]}
    if method_names():
        inputs["integration"] = "results/tables/integration_scores.csv"
    if annotation_datasets() and annotation_methods():
        inputs["annotation"] = "results/tables/annotation_scores.csv"
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


# --- provenance (scdiva.bench.provenance; rule in provenance.smk) -------------------------------
# RUN_ID hashes the effective config and the code version only (no time), so an unchanged workflow
# keeps its id and reruns nothing; tables get it as a param. The start time reaches the provenance
# job through the environment (setdefault: a job that re-parses this file keeps the first time).
from datetime import datetime, timezone

from scdiva.bench import provenance as _provenance

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
            from scdiva.bench.checkpoints import source_files

            directory = local_source_path(published["path"])
            for filename in source_files(published):
                inputs[f"checkpoints.{name}.published.path/{filename}"] = str(directory / filename)
    inputs["config/paper_claims.yaml"] = paper_section_inputs(None)["claims"]
    return inputs
