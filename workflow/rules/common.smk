# Config validation and helpers shared by all rule files.
#
# Order of checks: the JSON schema (types, unknown keys) first, then checks that need Python
# (known method and parameter names, local source files). Both run when the workflow is parsed,
# so a bad config fails before any job starts.

import os
import re
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

SCRIPTS = REPO_ROOT / "workflow" / "scripts"
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
    """Files `rule all` builds; later rule files append theirs."""
    return ["results/report/index.html", "results/tables/integration_scores.csv"]


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


_check_methods()
_check_datasets()
