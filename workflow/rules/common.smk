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

from scdiva.bench.download import DownloadError, resolve_source
from scdiva.bench.validate import DatasetValidationError, check_batch_overlap, check_source

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
STAGED_DIR = "resources/datasets"
SHA256_LOCK = f"{STAGED_DIR}/sha256.lock.json"


def _config_error(err):
    """One line per schema violation: where in the config, what is wrong, what is allowed."""
    where = ".".join(str(part) for part in err.absolute_path) or "(top level)"
    parts = [f"invalid config at `{where}`: {err.message}"]
    if "propertyNames" in err.schema_path:  # a bad name (of a dataset, checkpoint): say which and how to fix
        name = str(err.instance)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.-") or "name1"
        parts = [f"invalid config at `{where}.{name}`: the name {name!r} may hold only letters, digits, '_', '.' "
                 "and '-', starting with a letter or digit (it becomes file names, wildcards and words of shell "
                 f"commands). Rename it, e.g. to {safe!r}"]
    elif err.validator == "additionalProperties" and "properties" in err.schema:
        parts.append(f"Allowed keys here: {', '.join(err.schema['properties'])}")
    elif err.validator == "required":
        parts.append(f"Add it under `{where}`")
    parts.append("See config/schema.yaml.")
    return ". ".join(parts)


try:
    validate(config, schema="../../config/schema.yaml")
except WorkflowError as err:
    import jsonschema

    cause = err.__cause__ or err.__context__  # the jsonschema error validate() was handling
    if not isinstance(cause, jsonschema.ValidationError):
        raise
    raise WorkflowError(_config_error(cause)) from None


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
    from scdiva.bench.methods.registry import is_definition

    entry = config.get("methods", {}).get(method)
    return dict(entry) if is_definition(entry) else None


def method_record(task, method):
    """The record of ``method`` for ``task`` (scdiva.bench.methods.registry): built in or defined in config."""
    from scdiva.bench.methods.registry import get_method

    return get_method(task, method, method_definition(method), base_dir=REPO_ROOT)


def method_params(method):
    """Per-method parameters from config ``methods.<method>`` (empty: the defaults); a config-defined
    method's are under its ``params``."""
    from scdiva.bench.methods.registry import config_params

    return config_params(config.get("methods", {}).get(method))


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


# --- semantic checks ---------------------------------------------------------------------------


def local_source_path(source):
    """Absolute path of a local or file:// dataset source; None for an http(s) URL."""
    return resolve_source(source, REPO_ROOT).path


def _check_methods():
    """Every listed method has a record (built in, or defined in config `methods`) and known parameters;
    a config-defined entry point imports, a command's placeholders are known, an embedding file exists."""
    try:
        from scdiva.bench.methods.registry import MethodConfigError, is_definition, method_records
    except ImportError as err:
        raise WorkflowError(f"cannot import the method registry scdiva.bench.methods ({err}); "
                            "is the scdiva package installed (`make install`)?")
    listed = {"integration": method_names(), "annotation": annotation_methods()}
    for task, names in listed.items():
        for method in names:
            try:
                record = method_record(task, method)
                params = method_params(method) if task == "integration" else annotation_params(method)
                record.params(params)
            except (KeyError, MethodConfigError) as err:
                raise WorkflowError(f"config `{task}.methods`: {err.args[0]}") from None
            except ValueError as err:
                raise WorkflowError(str(err)) from None
            if record.embedding is not None:
                for dataset in dataset_names():
                    for seed in seeds():
                        path = Path(record.embedding.format(dataset=dataset, seed=seed))
                        if not path.is_file():
                            raise WorkflowError(
                                f"method {method!r}: precomputed embedding {path} (config `methods.{method}.embedding`"
                                f": {method_definition(method)['embedding']!r}) does not exist for dataset "
                                f"{dataset!r}, seed {seed}. Relative paths resolve against the repository root.")
    for method, entry in config.get("methods", {}).items():
        if not is_definition(entry) and method not in method_records("integration"):
            raise WorkflowError(f"config `methods.{method}`: unknown integration method {method!r}; built-in: "
                                f"{', '.join(method_records('integration'))}. To add your own, give it `entry_point`, "
                                "`command` or `embedding` (docs/methods-and-metrics.md).")
        if not is_definition(entry):
            try:  # parameters of a built-in method that this run does not list are checked too
                method_records("integration")[method].params(entry)
            except ValueError as err:
                raise WorkflowError(str(err)) from None
        if is_definition(entry) and method not in listed["integration"] + listed["annotation"]:
            try:  # defined but not benchmarked: still checked, so a typo shows now
                method_record(entry.get("task", "integration"), method)
            except (KeyError, MethodConfigError) as err:
                raise WorkflowError(str(err.args[0])) from None
    for method in config.get("annotation", {}).get("params", {}):
        if method not in method_records("annotation"):
            raise WorkflowError(f"config `annotation.params.{method}`: {method!r} is no built-in annotation method "
                                f"({', '.join(method_records('annotation'))}); a config-defined method takes its "
                                f"parameters under `methods.{method}.params`.")


def _check_datasets():
    for name, entry in config["datasets"].items():
        source = entry["source"]
        try:
            path = local_source_path(source)
        except DownloadError as err:
            raise WorkflowError(f"dataset {name!r}: {err} (config `datasets.{name}.source`).") from None
        if path is not None and not path.is_file():
            raise WorkflowError(
                f"dataset {name!r}: source file {path} does not exist (config `datasets.{name}.source`: "
                f"{source!r}). Relative paths resolve against the repository root {REPO_ROOT}; "
                "use an absolute path, a file:// URL or an http(s):// URL."
            )
        annotation = entry.get("annotation")
        if annotation:
            try:
                check_batch_overlap(annotation["reference_batches"], annotation["query_batches"], dataset=name)
            except DatasetValidationError as err:
                raise WorkflowError(str(err)) from None
        # Keys and shape from obs / var of the file (cheap: no matrix is read), for every dataset
        # before any job: a local source, or a remote one already staged (else the download job checks).
        staged = Path(STAGED_DIR) / f"{name}.h5ad"
        readable = path if path is not None else (staged if staged.is_file() else None)
        if readable is path and path is not None:
            from scdiva.bench.formats import detect_format

            try:  # a 10x file or gzipped .h5ad is converted, then checked, by its download job
                if detect_format(path, dataset=name, declared=entry.get("format", "auto"), strict=False) != "h5ad":
                    readable = staged if staged.is_file() else None
            except DatasetValidationError as err:
                raise WorkflowError(str(err)) from None
        if readable is not None:
            try:
                check_source(readable, entry, dataset=name,
                             min_cells_per_batch=config["preprocess"]["min_cells_per_batch"])
            except DatasetValidationError as err:
                raise WorkflowError(str(err)) from None


def _check_checkpoints():
    """Published paths exist (relative ones resolve against the repository root, as dataset sources
    do); recipes name only configured datasets."""
    from scdiva.bench.checkpoints import source_files

    for name, entry in config.get("checkpoints", {}).items():
        published = entry.get("published") or {}
        if published.get("path"):
            needed = source_files(published)  # with an `adapter`: the release's own files
            where = f"checkpoints.{name}.published.path"
            try:
                path = local_source_path(published["path"])
            except DownloadError as err:
                raise WorkflowError(f"checkpoint {name!r}: {err} (config `{where}`).") from None
            missing = [f for f in needed if not (path / f).is_file()]
            if missing:
                raise WorkflowError(
                    f"checkpoint {name!r}: directory {path} (config `{where}`: {published['path']!r}) lacks "
                    f"{missing}; it needs {', '.join(needed)}. Relative paths resolve against the "
                    f"repository root {REPO_ROOT}; use an absolute path or a file:// URL."
                )
            published["path"] = str(path)  # the rule copies from here, whatever the working directory
        if published.get("adapter"):
            from scdiva.bench.adapters import check_adapter
            from scdiva.bench.checkpoints import CheckpointError

            try:
                check_adapter(name, published)
            except CheckpointError as err:
                raise WorkflowError(str(err)) from None
        recipe = entry.get("recipe") or {}
        named = recipe.get("datasets", "all")
        unknown = [] if named == "all" else [d for d in named if d not in config["datasets"]]
        if unknown:
            raise WorkflowError(
                f"checkpoint {name!r}: config `checkpoints.{name}.recipe.datasets` names datasets {unknown} that are "
                f"not configured; configured datasets: {', '.join(config['datasets'])}. Add them under "
                f"`datasets:` or name configured ones."
            )


def method_checkpoint(task, method):
    """The config checkpoint a method loads (its record's `checkpoint_param`), or None."""
    record = method_record(task, method)
    if record.checkpoint_param is None:
        return None
    params = method_params(method) if task == "integration" else annotation_params(method)
    return record.params(params)[record.checkpoint_param]


def scdiva_checkpoint_users():
    """(checkpoint, dataset, what) for every ScDiVa job the config asks for."""
    users = []
    for task, names, datasets in (("integration", method_names(), dataset_names()),
                                  ("annotation", annotation_methods(), annotation_datasets())):
        for method in names:
            name = method_checkpoint(task, method)
            if name is not None:
                users += [(name, d, f"{task} method {method}") for d in datasets]
    return users


def _check_scdiva_coverage():
    """Every ScDiVa job's checkpoint knows its dataset's genes, checked before any job runs: a recipe's
    corpus includes the dataset; a published checkpoint on disk covers the dataset's genes."""
    from scdiva.bench.checkpoints import CheckpointError, check_vocabulary_serves
    from scdiva.bench.validate import read_source_tables

    for name, dataset, what in scdiva_checkpoint_users():
        entry = config.get("checkpoints", {}).get(name)
        if entry is None:
            raise WorkflowError(f"{what} uses ScDiVa checkpoint {name!r}, which is not defined in config "
                                f"`checkpoints`; defined: {sorted(config.get('checkpoints', {}))}.")
        if "recipe" in entry:
            if dataset not in recipe_datasets(name):
                raise WorkflowError(
                    f"dataset {dataset!r}: {what} needs checkpoint {name!r}, whose pretraining corpus (config "
                    f"`checkpoints.{name}.recipe.datasets`: {recipe_datasets(name)}) does not include it, so its "
                    f"vocabulary lacks the dataset's genes. Add {dataset!r} to that list or set `datasets: all`.")
            continue
        path = entry["published"].get("path")
        if entry["published"].get("adapter"):  # its vocabulary exists once the fetch job has converted it
            path = f"resources/checkpoints/{name}" if Path(f"resources/checkpoints/{name}/vocab.json").is_file() else None
        source = local_source_path(dataset_config(dataset)["source"])
        if path is None or source is None:
            continue  # a remote checkpoint or dataset: its job checks once the files are here
        _, var, _ = read_source_tables(source, dataset=dataset)
        try:
            check_vocabulary_serves(Path(path) / "vocab.json", var, checkpoint=name, dataset=dataset,
                                    gene_id_column=dataset_config(dataset).get("gene_id_column"))
        except CheckpointError as err:
            raise WorkflowError(f"{err} ({what})") from None


_check_datasets()
_check_checkpoints()


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
    chosen = config["checkpoints"][name]["recipe"].get("datasets", "all")
    return dataset_names() if chosen == "all" else list(chosen)


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
    """Parameters of annotation method ``method``: `annotation.params.<method>` for a built-in one, the
    `params` of its definition in config `methods.<method>` for a config-defined one."""
    if method_definition(method) is not None:
        return method_params(method)
    return dict(config.get("annotation", {}).get("params", {}).get(method) or {})


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


# Need the annotation helpers above; run when the workflow is parsed, like the other checks.
_check_methods()
_check_scdiva_coverage()


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
