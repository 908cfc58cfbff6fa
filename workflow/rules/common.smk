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
    """The record of ``method`` for ``task`` (scdiva.bench.methods.catalog): built in or defined in config."""
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
    runtime are at least what the dataset's cell count needs (scdiva.bench.core.resources.estimate); with
    ``checkpoint`` (a recipe's checkpoint), what pretraining on its corpus needs (pretrain_estimate: the corpus
    datasets' cells, the recipe's steps or epochs); unless ``resources.<name>`` sets them itself.
    """
    merged = dict(config["resources"]["default"])  # its defaults: config/schema.yaml
    own = config["resources"].get(name, {})
    merged.update(own)
    needed = None
    if checkpoint is not None:
        from scdiva.bench.core.resources import pretrain_estimate

        recipe = instance_recipe(checkpoint)
        needed = pretrain_estimate(sum(dataset_cells(d) for d in _scopes.instance_datasets(config, checkpoint)),
                                   max_steps=recipe.get("max_steps"), max_epochs=recipe.get("max_epochs"),
                                   batch_size=recipe.get("batch_size", 128))
    elif dataset is not None:
        from scdiva.bench.core.resources import estimate

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


# The record of every run's outcome, and the last job of `all`, which fails the run when a run was not ok
# (workflow/rules/runs.smk).
RUNS_TABLE = "results/tables/runs.csv"
RUNS_CHECKED = "results/runs_checked.txt"


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
