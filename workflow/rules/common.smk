# Config validation and helpers shared by all rule files.
#
# Order of checks: the JSON schema (types, unknown keys) first, then checks that need Python
# (known method and parameter names, local source files and their obs / var keys, checkpoints).
# Both run when the workflow is parsed, so a bad config fails before any job starts.

import os
import re
import shlex
import sys
from pathlib import Path

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
from scdiva.bench.validate import DatasetValidationError, check_source

SCRIPTS = REPO_ROOT / "workflow" / "scripts"


def job_python():
    """The Python that runs the package in shell commands (the job's conda env's `python` under
    `--sdm conda`, else the Python running Snakemake, as for `script:` rules), so no `scdiva` command
    needs to be on PATH."""
    from snakemake.settings.types import DeploymentMethod

    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
        return "python"
    return shlex.quote(sys.executable)


# Shell rules call the command line as `{SCDIVA_CLI} train ...` (workflow/rules/checkpoints.smk).
SCDIVA_CLI = f"{job_python()} -m scdiva.cli"
STAGED_DIR = "resources/datasets"
SHA256_LOCK = f"{STAGED_DIR}/sha256.lock.json"


def _config_error(err):
    """One line per schema violation: where in the config, what is wrong, what is allowed."""
    where = ".".join(str(part) for part in err.absolute_path) or "(top level)"
    parts = [f"invalid config at `{where}`: {err.message}"]
    if err.validator == "additionalProperties" and "properties" in err.schema:
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


def method_params(method):
    """Per-method parameters from config ``methods.<method>`` (empty: the defaults)."""
    return dict(config.get("methods", {}).get(method) or {})


def use_gpu():
    return bool(config.get("gpu", False))


def resources_for(name):
    """threads, mem_mb and runtime (minutes) of a rule or method.

    ``resources.default`` overlaid by ``resources.<name>`` from the config.
    """
    merged = {"threads": 1, "mem_mb": 4000, "runtime": 30}
    merged.update(config.get("resources", {}).get("default", {}))
    merged.update(config.get("resources", {}).get(name, {}))
    return merged


def staged_h5ad(wildcards):
    return f"{STAGED_DIR}/{wildcards.dataset}.h5ad"


def download_input(wildcards):
    """Local sources are inputs of `download`, so editing the file re-stages it; URLs have none."""
    path = local_source_path(dataset_config(wildcards.dataset)["source"])
    return [str(path)] if path is not None else []


PREPROCESS_KEYS = ("batch_key", "label_key", "counts_layer", "gene_id_column", "subsample")


def preprocess_entry(name):
    """The keys of dataset ``name`` that change its preprocessed AnnData."""
    return {key: value for key, value in dataset_config(name).items() if key in PREPROCESS_KEYS}


def preprocessed_h5ad(wildcards):
    """Input function for method rules: the validated, preprocessed AnnData of ``{dataset}``."""
    return f"results/{wildcards.dataset}/preprocessed.h5ad"


def final_outputs():
    """What the default target builds - the report and every table the config asks for."""
    outputs = ["results/report/index.html", "results/tables/integration_scores.csv"]
    if annotation_datasets() and annotation_methods():
        outputs.append("results/tables/annotation_scores.csv")
    if "multitask" in config and multitask_datasets():
        outputs.append("results/tables/multitask_scores.csv")
    return outputs + trajectory_figures()


# --- semantic checks ---------------------------------------------------------------------------


def local_source_path(source):
    """Absolute path of a local or file:// dataset source; None for an http(s) URL."""
    return resolve_source(source, REPO_ROOT).path


def _check_methods():
    try:
        from scdiva.bench.methods import DEFAULT_PARAMS, INTEGRATION_METHODS
    except ImportError as err:
        raise WorkflowError(f"cannot import the method registry scdiva.bench.methods ({err}); "
                            "is the scdiva package installed (`make install`)?")
    known = sorted(INTEGRATION_METHODS)
    unknown = [m for m in method_names() if m not in INTEGRATION_METHODS]
    if unknown:
        raise WorkflowError(f"config `integration.methods` names unknown methods {unknown}; "
                            f"known methods: {', '.join(known)}.")
    for method, params in config.get("methods", {}).items():
        if method not in INTEGRATION_METHODS:
            raise WorkflowError(f"config `methods.{method}`: unknown method {method!r}; "
                                f"known methods: {', '.join(known)}.")
        accepted = DEFAULT_PARAMS.get(method, {})
        wrong = sorted(set(params or {}) - set(accepted))
        if wrong:
            raise WorkflowError(f"config `methods.{method}` has unknown parameters {wrong}; "
                                f"{method} accepts: {', '.join(sorted(accepted)) or '(none)'}.")


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
            overlap = sorted(set(annotation["reference_batches"]) & set(annotation["query_batches"]))
            if overlap:
                raise WorkflowError(f"dataset {name!r}: batches {overlap} are both reference and query in "
                                    f"`datasets.{name}.annotation`.")
        # Keys and shape from obs / var of the file (cheap: no matrix is read), for every dataset
        # before any job: a local source, or a remote one already staged (else the download job checks).
        staged = Path(STAGED_DIR) / f"{name}.h5ad"
        readable = path if path is not None else (staged if staged.is_file() else None)
        if readable is not None:
            try:
                check_source(readable, entry, dataset=name,
                             min_cells_per_batch=config.get("preprocess", {}).get("min_cells_per_batch", 10))
            except DatasetValidationError as err:
                raise WorkflowError(str(err)) from None


def _check_checkpoints():
    """Published paths exist (relative ones resolve against the repository root, as dataset sources
    do); recipes name only configured datasets."""
    from scdiva.bench.checkpoints import CHECKPOINT_FILES as CHECKPOINT_FILE_NAMES

    for name, entry in config.get("checkpoints", {}).items():
        published = entry.get("published") or {}
        if published.get("path"):
            where = f"checkpoints.{name}.published.path"
            try:
                path = local_source_path(published["path"])
            except DownloadError as err:
                raise WorkflowError(f"checkpoint {name!r}: {err} (config `{where}`).") from None
            missing = [f for f in CHECKPOINT_FILE_NAMES if not (path / f).is_file()]
            if missing:
                raise WorkflowError(
                    f"checkpoint {name!r}: directory {path} (config `{where}`: {published['path']!r}) lacks "
                    f"{missing}; it needs {', '.join(CHECKPOINT_FILE_NAMES)}. Relative paths resolve against the "
                    f"repository root {REPO_ROOT}; use an absolute path or a file:// URL."
                )
            published["path"] = str(path)  # the rule copies from here, whatever the working directory
        recipe = entry.get("recipe") or {}
        named = recipe.get("datasets", "all")
        unknown = [] if named == "all" else [d for d in named if d not in config["datasets"]]
        if unknown:
            raise WorkflowError(
                f"checkpoint {name!r}: config `checkpoints.{name}.recipe.datasets` names datasets {unknown} that are "
                f"not configured; configured datasets: {', '.join(config['datasets'])}. Add them under "
                f"`datasets:` or name configured ones."
            )


def scdiva_checkpoint_users():
    """(checkpoint, dataset, what) for every ScDiVa job the config asks for."""
    from scdiva.bench.methods import DEFAULT_PARAMS

    users = []
    for method in method_names():
        if method.startswith("scdiva"):
            name = {**DEFAULT_PARAMS[method], **method_params(method)}["checkpoint"]
            users += [(name, d, f"integration method {method}") for d in dataset_names()]
    if "scdiva" in annotation_methods():
        from scdiva.bench.methods.scdiva import SCDIVA_ANNOTATION_DEFAULTS

        name = {**SCDIVA_ANNOTATION_DEFAULTS, **annotation_params("scdiva")}["checkpoint"]
        users += [(name, d, "annotation method scdiva") for d in annotation_datasets()]
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
        source = local_source_path(dataset_config(dataset)["source"])
        if path is None or source is None:
            continue  # a remote checkpoint or dataset: its job checks once the files are here
        _, var, _ = read_source_tables(source, dataset=dataset)
        try:
            check_vocabulary_serves(Path(path) / "vocab.json", var, checkpoint=name, dataset=dataset,
                                    gene_id_column=dataset_config(dataset).get("gene_id_column"))
        except CheckpointError as err:
            raise WorkflowError(f"{err} ({what})") from None


_check_methods()
_check_datasets()
_check_checkpoints()


# --- integration, metrics and report ------------------------------------------------------


def integration_gpu(method):
    """1 GPU only for GPU-capable methods, and only when config `gpu: true`."""
    from scdiva.bench.methods import GPU_CAPABLE_METHODS

    return 1 if use_gpu() and method in GPU_CAPABLE_METHODS else 0


def method_seed_runs():
    """(method, seed) of every integration job of a dataset."""
    return [(m, s) for m in method_names() for s in seeds()]


def scanvi_scvi_model(wildcards):
    """Input of a scanvi job: the scvi job's saved model (same dataset and seed) when scvi is benchmarked
    with the same scVI settings; otherwise none and scanvi trains its own scVI."""
    if wildcards.method != "scanvi" or "scvi" not in method_names():
        return []
    from scdiva.bench.methods.scanvi_model import shares_scvi_model

    if not shares_scvi_model(method_params("scvi"), method_params("scanvi")):
        return []
    return f"results/{wildcards.dataset}/integration/scvi/seed{wildcards.seed}.model/model.pt"


def metrics_files(wildcards=None):
    """One scIB metrics table per dataset (all its methods and seeds)."""
    return [f"results/{d}/integration/metrics.csv" for d in dataset_names()]


def report_embeddings(wildcards=None):
    """Embeddings of the first seed (UMAP grid), per dataset and method."""
    return [f"results/{d}/integration/{m}/seed{seeds()[0]}.h5ad" for d in dataset_names() for m in method_names()]


# --- ScDiVa checkpoints (config `checkpoints`) ---------------------------------------------

CHECKPOINT_FILES = ["config.json", "model.safetensors", "vocab.json"]


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
    """`scdiva train` option for the recipe's training length (max_steps, else max_epochs)."""
    recipe = config["checkpoints"][name]["recipe"]
    if "max_steps" in recipe:
        return f"--max-steps {recipe['max_steps']}"
    return f"--max-epochs {recipe.get('max_epochs', 60)}"


def gpu_resources():
    return {"gpu": 1} if use_gpu() else {}


def scdiva_checkpoint_inputs(wildcards):
    """Extra inputs of an integration job: the checkpoint files when the method is a ScDiVa one."""
    if not wildcards.method.startswith("scdiva"):
        return []
    from scdiva.bench.methods import DEFAULT_PARAMS

    name = {**DEFAULT_PARAMS[wildcards.method], **method_params(wildcards.method)}["checkpoint"]
    return checkpoint_files(name)


# --- annotation and multi-task benchmarks ---------------------------------------------------


def annotation_datasets():
    return [d for d in dataset_names() if dataset_config(d).get("annotation")]


def annotation_methods():
    return list(config.get("annotation", {}).get("methods", []))


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
    return dict(config.get("annotation", {}).get("params", {}).get(method) or {})


def annotation_inputs(wildcards):
    inputs = {"h5ad": f"results/{wildcards.dataset}/preprocessed.h5ad"}
    if wildcards.method == "scdiva":
        inputs["checkpoint"] = checkpoint_files(annotation_params("scdiva").get("checkpoint", "scdiva_tiny"))
    return inputs


def multitask_settings():
    defaults = {"datasets": None, "head_counts": [1, 3, 5], "size": "tiny", "max_steps": 200,
                "batch_size": 64, "held_out_fraction": 0.2, "seeds": None}
    return {**defaults, **config.get("multitask", {})}


def multitask_seeds():
    """Seeds of the multi-task runs: `multitask.seeds`, else the global `seeds` (3+ for the paired comparison)."""
    return multitask_settings()["seeds"] or seeds()


def multitask_datasets():
    chosen = multitask_settings()["datasets"]
    return [d for d in dataset_names() if chosen is None or d in chosen]


# --- paper figures and report sections ------------------------------------------------------


def trajectory_methods():
    return [m for m in ("scdiva_zeroshot", "scdiva_finetuned") if m in method_names()]


def trajectory_figures():
    """Trajectory figures for the report: every dataset, once a ScDiVa embedding is configured."""
    return [f"results/{d}/trajectory.png" for d in dataset_names()] if trajectory_methods() else []


PAPER_SECTIONS = ["claims", "checkpoints", "integration", "annotation", "multitask", "trajectory"]


def report_section_files():
    """Extra report sections (JSON, scdiva.bench.report.Section) that the report rule renders."""
    return [f"results/report/sections/paper_{name}.json" for name in PAPER_SECTIONS] + [PROVENANCE_SECTION]


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
    return inputs


# Needs the annotation helpers above; runs when the workflow is parsed, like the other checks.
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
