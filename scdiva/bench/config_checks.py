"""Checks of a loaded workflow config that need Python, run while the workflow is parsed.

The JSON schema (config/schema.yaml, applied by Snakemake) checks types and keys first; these functions
check what a schema cannot: known method and parameter names, local source files and their obs / var
keys, checkpoint directories and vocabularies, the multimodal and cross-species blocks. Each takes the
config dict (schema defaults filled in) and the repository root, and raises :class:`ConfigError` naming
the key and the fix. workflow/rules/common.smk (and the *_common.smk files) call them at parse time and
re-raise the message as a Snakemake ``WorkflowError``; tests call them in-process.

Relative dataset sources and checkpoint paths resolve against ``repo_root``; staged datasets and
fetched checkpoints are looked up under ``workdir`` (the workflow's working directory).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from scdiva.bench.checkpoints import scopes
from scdiva.bench.checkpoints.adapters import check_adapter
from scdiva.bench.checkpoints.fetch import check_vocabulary_serves, source_files
from scdiva.bench.checkpoints.files import CheckpointError
from scdiva.bench.core.download import DownloadError, resolve_source
from scdiva.bench.core.formats import detect_format
from scdiva.bench.core.validate import (
    DatasetValidationError,
    check_batch_overlap,
    check_source,
    read_source_tables,
)
from scdiva.bench.methods.catalog import get_method, method_records
from scdiva.bench.methods.external import config_params, is_definition
from scdiva.bench.methods.record import MethodConfigError
from scdiva.config import ScDiVaConfig
from scdiva.files import VOCAB_FILE

STAGED_DIR = "resources/datasets"  # staged copies of the datasets, relative to the working directory


class ConfigError(Exception):
    """A config the workflow cannot run; the message names the config key and what to do."""


def schema_error_message(err: Any) -> str:
    """One line per schema violation: where in the config, what is wrong, what is allowed.

    Parameters
    ----------
    err
        The ``jsonschema.ValidationError`` of the violation.
    """
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


# --- config accessors the checks share with the workflow (common.smk delegates to these) -----------


def local_source_path(source: str, repo_root: Path) -> Path | None:
    """Absolute path of a local or file:// source; None for an http(s) URL."""
    return resolve_source(source, repo_root).path


def method_definition(config: Mapping[str, Any], method: str) -> dict[str, Any] | None:
    """Config ``methods.<method>`` when it defines a method (entry_point / command / embedding), else None."""
    entry = config.get("methods", {}).get(method)
    return dict(entry) if is_definition(entry) else None


def method_record(config: Mapping[str, Any], task: str, method: str, repo_root: Path):
    """The record of ``method`` for ``task`` (scdiva.bench.methods.catalog): built in or defined in config."""
    return get_method(task, method, method_definition(config, method), base_dir=repo_root)


def method_params(config: Mapping[str, Any], method: str) -> dict[str, Any]:
    """Per-method parameters from config ``methods.<method>`` (empty: the defaults); a config-defined
    method's are under its ``params``."""
    return config_params(config.get("methods", {}).get(method))


def annotation_params(config: Mapping[str, Any], method: str) -> dict[str, Any]:
    """Parameters of annotation method ``method``: `annotation.params.<method>` for a built-in one, the
    `params` of its definition in config `methods.<method>` for a config-defined one."""
    if method_definition(config, method) is not None:
        return method_params(config, method)
    return dict(config.get("annotation", {}).get("params", {}).get(method) or {})


def task_params(config: Mapping[str, Any], task: str, method: str) -> dict[str, Any]:
    """The configured parameters of ``method`` as a ``task`` (integration / annotation) method."""
    return method_params(config, method) if task == "integration" else annotation_params(config, method)


def recipe_datasets(config: Mapping[str, Any], name: str) -> list[str]:
    """Datasets whose cells make up checkpoint recipe ``name``'s pretraining corpus."""
    return scopes.recipe_datasets(config, name)


def annotation_datasets(config: Mapping[str, Any]) -> list[str]:
    """Datasets with an annotation split (config `datasets.<name>.annotation`)."""
    return [d for d, entry in config["datasets"].items() if entry.get("annotation")]


def method_checkpoint(config: Mapping[str, Any], task: str, method: str, repo_root: Path) -> str | None:
    """The config checkpoint a method loads (its record's `checkpoint_param`), or None."""
    record = method_record(config, task, method, repo_root)
    if record.checkpoint_param is None:
        return None
    return record.params(task_params(config, task, method))[record.checkpoint_param]


def scdiva_checkpoint_users(config: Mapping[str, Any], repo_root: Path) -> list[tuple[str, str, str]]:
    """(checkpoint, dataset, what) for every ScDiVa job the config asks for."""
    users = []
    for task, names, datasets in (("integration", config["integration"]["methods"], list(config["datasets"])),
                                  ("annotation", config["annotation"]["methods"], annotation_datasets(config))):
        for method in names:
            name = method_checkpoint(config, task, method, repo_root)
            if name is not None:
                users += [(name, d, f"{task} method {method}") for d in datasets]
    return users


def multimodal_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """Config `multimodal` over its defaults; methods default to every registered multimodal method."""
    # deferred: imports torch, anndata (this module is imported at workflow parse time)
    from scdiva.bench.tasks.multimodal import multimodal_methods

    defaults = {"datasets": {}, "methods": multimodal_methods(), "held_out_fraction": 0.2, "n_top_genes": 2000,
                "params": {}}
    return {**defaults, **config.get("multimodal", {})}


def cross_species_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """Config `cross_species` over its defaults; methods default to every registered method of each half."""
    # deferred: imports anndata (this module is imported at workflow parse time)
    from scdiva.bench.tasks.cross_species import ANNOTATION_TASK, INTEGRATION_TASK

    defaults = {"datasets": {}, "pairs": [], "both_directions": True,
                "annotation_methods": list(method_records(ANNOTATION_TASK)),
                "integration_methods": list(method_records(INTEGRATION_TASK)),
                "min_shared_genes": 200, "n_top_genes": 2000, "subsample": None, "params": {}}
    return {**defaults, **config.get("cross_species", {})}


def extra_source(config: Mapping[str, Any], section: str, name: str, repo_root: Path) -> Path:
    """Local path of dataset ``name`` of config section ``section`` (multimodal / cross_species).

    Raises
    ------
    ConfigError
        The source is a URL, or its file does not exist.
    """
    source = config[section]["datasets"][name]["source"]
    where = f"{section}.datasets.{name}.source"
    try:
        path = local_source_path(source, repo_root)
    except DownloadError as err:
        raise ConfigError(f"dataset {name!r}: {err} (config `{where}`).") from None
    if path is None:
        raise ConfigError(f"dataset {name!r}: config `{where}` is a URL ({source!r}); the {section} benchmark reads "
                          "local files only: download it and give its path or a file:// URL.")
    if not path.is_file():
        raise ConfigError(f"dataset {name!r}: source file {path} does not exist (config `{where}`: {source!r}); "
                          f"relative paths resolve against the repository root {repo_root}.")
    return path


# --- the checks, in the order the workflow runs them (check_config) ---------------------------------


def check_datasets(config: Mapping[str, Any], repo_root: Path, workdir: Path = Path(".")) -> None:
    """Every dataset's source exists, its annotation split is disjoint, and the obs / var of every local
    (or already staged) .h5ad has the configured keys and enough batches.

    Parameters
    ----------
    config
        The workflow config, schema defaults filled in.
    repo_root
        The repository root, against which relative sources resolve.
    workdir
        The workflow's working directory (staged datasets are under ``resources/datasets`` there).
    """
    for name, entry in config["datasets"].items():
        source = entry["source"]
        try:
            path = local_source_path(source, repo_root)
        except DownloadError as err:
            raise ConfigError(f"dataset {name!r}: {err} (config `datasets.{name}.source`).") from None
        if path is not None and not path.is_file():
            raise ConfigError(
                f"dataset {name!r}: source file {path} does not exist (config `datasets.{name}.source`: "
                f"{source!r}). Relative paths resolve against the repository root {repo_root}; "
                "use an absolute path, a file:// URL or an http(s):// URL."
            )
        annotation = entry.get("annotation")
        try:
            if annotation:
                check_batch_overlap(annotation["reference_batches"], annotation["query_batches"], dataset=name)
            # Keys and shape from obs / var of the file (cheap: no matrix is read), for every dataset
            # before any job: a local source, or a remote one already staged (else the download job checks).
            staged = workdir / STAGED_DIR / f"{name}.h5ad"
            readable = path if path is not None else (staged if staged.is_file() else None)
            if readable is path and path is not None:
                # a 10x file or gzipped .h5ad is converted, then checked, by its download job
                if detect_format(path, dataset=name, declared=entry.get("format", "auto"), strict=False) != "h5ad":
                    readable = staged if staged.is_file() else None
            if readable is not None:
                check_source(readable, entry, dataset=name,
                             min_cells_per_batch=config["preprocess"]["min_cells_per_batch"])
        except DatasetValidationError as err:
            raise ConfigError(str(err)) from None


def check_checkpoints(config: dict[str, Any], repo_root: Path) -> None:
    """Published paths exist (relative ones resolve against the repository root, as dataset sources
    do); adapters are known; recipes name only configured datasets.

    Sets each ``checkpoints.<name>.published.path`` in ``config`` to its absolute path, so the rule
    copies from there whatever the working directory.

    Parameters
    ----------
    config
        The workflow config, schema defaults filled in (changed in place, see above).
    repo_root
        The repository root, against which relative paths resolve.
    """
    for name, entry in config.get("checkpoints", {}).items():
        published = entry.get("published") or {}
        if published.get("path"):
            needed = source_files(published)  # with an `adapter`: the release's own files
            where = f"checkpoints.{name}.published.path"
            try:
                path = local_source_path(published["path"], repo_root)
            except DownloadError as err:
                raise ConfigError(f"checkpoint {name!r}: {err} (config `{where}`).") from None
            missing = [f for f in needed if not (path / f).is_file()]
            if missing:
                raise ConfigError(
                    f"checkpoint {name!r}: directory {path} (config `{where}`: {published['path']!r}) lacks "
                    f"{missing}; it needs {', '.join(needed)}. Relative paths resolve against the "
                    f"repository root {repo_root}; use an absolute path or a file:// URL."
                )
            published["path"] = str(path)
        if published.get("adapter"):
            try:
                check_adapter(name, published)
            except CheckpointError as err:
                raise ConfigError(str(err)) from None
        recipe = entry.get("recipe") or {}
        named = recipe.get("datasets", "all")
        unknown = [] if named in ("all", "each") else [d for d in named if d not in config["datasets"]]
        if unknown:
            raise ConfigError(
                f"checkpoint {name!r}: config `checkpoints.{name}.recipe.datasets` names datasets {unknown} that are "
                f"not configured; configured datasets: {', '.join(config['datasets'])}. Add them under "
                f"`datasets:` or name configured ones."
            )
        check_model_overrides(name, recipe.get("size", "tiny"), recipe.get("model") or {})


def check_model_overrides(checkpoint: str, size: str, overrides: Mapping[str, Any]) -> None:
    """A recipe's `model` settings are fields of ScDiVaConfig that its ``size`` accepts."""
    if not overrides:
        return

    known = {f.name for f in fields(ScDiVaConfig)} - {"n_genes"}
    unknown = sorted(set(overrides) - known)
    where = f"checkpoint {checkpoint!r}: config `checkpoints.{checkpoint}.recipe.model`"
    if unknown:
        raise ConfigError(f"{where} has unknown settings {unknown}; model settings: {', '.join(sorted(known))}")
    try:
        ScDiVaConfig.from_size(size, **overrides)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from None


def check_methods(config: Mapping[str, Any], repo_root: Path) -> None:
    """Every listed method has a record (built in, or defined in config `methods`) and known parameters;
    a config-defined entry point imports, a command's placeholders are known, an embedding file exists.

    Parameters
    ----------
    config
        The workflow config, schema defaults filled in.
    repo_root
        The repository root, against which relative embedding paths resolve.
    """
    listed = {"integration": list(config["integration"]["methods"]),
              "annotation": list(config["annotation"]["methods"])}
    for task, names in listed.items():
        for method in names:
            try:
                record = method_record(config, task, method, repo_root)
                record.params(task_params(config, task, method))
            except (KeyError, MethodConfigError) as err:
                raise ConfigError(f"config `{task}.methods`: {err.args[0]}") from None
            except ValueError as err:
                raise ConfigError(str(err)) from None
            if record.embedding is not None:
                for dataset in config["datasets"]:
                    for seed in config["seeds"]:
                        path = Path(record.embedding.format(dataset=dataset, seed=seed))
                        if not path.is_file():
                            raise ConfigError(
                                f"method {method!r}: precomputed embedding {path} (config `methods.{method}.embedding`"
                                f": {method_definition(config, method)['embedding']!r}) does not exist for dataset "
                                f"{dataset!r}, seed {seed}. Relative paths resolve against the repository root.")
    for method, entry in config.get("methods", {}).items():
        if not is_definition(entry) and method not in method_records("integration"):
            raise ConfigError(f"config `methods.{method}`: unknown integration method {method!r}; built-in: "
                              f"{', '.join(method_records('integration'))}. To add your own, give it `entry_point`, "
                              "`command` or `embedding` (docs/methods-and-metrics.md).")
        if not is_definition(entry):
            try:  # parameters of a built-in method that this run does not list are checked too
                method_records("integration")[method].params(entry)
            except ValueError as err:
                raise ConfigError(str(err)) from None
        if is_definition(entry) and method not in listed["integration"] + listed["annotation"]:
            try:  # defined but not benchmarked: still checked, so a typo shows now
                method_record(config, entry.get("task", "integration"), method, repo_root)
            except (KeyError, MethodConfigError) as err:
                raise ConfigError(str(err.args[0])) from None
    for method in config.get("annotation", {}).get("params", {}):
        if method not in method_records("annotation"):
            raise ConfigError(f"config `annotation.params.{method}`: {method!r} is no built-in annotation method "
                              f"({', '.join(method_records('annotation'))}); a config-defined method takes its "
                              f"parameters under `methods.{method}.params`.")


def check_scdiva_coverage(config: Mapping[str, Any], repo_root: Path, workdir: Path = Path(".")) -> None:
    """Every ScDiVa job's checkpoint knows its dataset's genes: a recipe's corpus includes the dataset; a
    published checkpoint on disk (or an adapter's, once fetched under ``workdir``) covers its genes.

    Parameters
    ----------
    config
        The workflow config, schema defaults filled in, after :func:`check_checkpoints`.
    repo_root
        The repository root, against which relative dataset sources resolve.
    workdir
        The workflow's working directory (fetched checkpoints are under ``resources/checkpoints`` there).
    """
    for name, dataset, what in scdiva_checkpoint_users(config, repo_root):
        entry = config.get("checkpoints", {}).get(name)
        if entry is None:
            raise ConfigError(f"{what} uses ScDiVa checkpoint {name!r}, which is not defined in config "
                              f"`checkpoints`; defined: {sorted(config.get('checkpoints', {}))}.")
        if "recipe" in entry:
            if dataset not in recipe_datasets(config, name):
                raise ConfigError(
                    f"dataset {dataset!r}: {what} needs checkpoint {name!r}, whose pretraining corpus (config "
                    f"`checkpoints.{name}.recipe.datasets`: {recipe_datasets(config, name)}) does not include it, so "
                    f"its vocabulary lacks the dataset's genes. Add {dataset!r} to that list or set `datasets: all`.")
            continue
        path = entry["published"].get("path")
        if entry["published"].get("adapter"):  # its vocabulary exists once the fetch job has converted it
            fetched = workdir / "resources" / "checkpoints" / name
            path = fetched if (fetched / VOCAB_FILE).is_file() else None
        dataset_entry = config["datasets"][dataset]
        source = local_source_path(dataset_entry["source"], repo_root)
        if path is None or source is None:
            continue  # a remote checkpoint or dataset: its job checks once the files are here
        _, var, _ = read_source_tables(source, dataset=dataset)
        try:
            check_vocabulary_serves(Path(path) / VOCAB_FILE, var, checkpoint=name, dataset=dataset,
                                    gene_id_column=dataset_entry.get("gene_id_column"))
        except CheckpointError as err:
            raise ConfigError(f"{err} ({what})") from None


def check_multimodal(config: Mapping[str, Any], repo_root: Path) -> None:
    """Config `multimodal`: every dataset's source has the protein obsm key and batch column; methods and
    their parameters are known.

    Parameters
    ----------
    config
        The workflow config, schema defaults filled in.
    repo_root
        The repository root, against which relative sources resolve.
    """
    # deferred: imports torch, anndata (this module is imported at workflow parse time)
    from scdiva.bench.tasks.multimodal import MultimodalError, check_multimodal_source
    from scdiva.bench.tasks.multimodal import method_params as multimodal_params

    settings = multimodal_settings(config)
    for name, entry in settings["datasets"].items():
        try:
            check_multimodal_source(extra_source(config, "multimodal", name, repo_root), entry, dataset=name)
        except MultimodalError as err:
            raise ConfigError(str(err)) from None
    for method in settings["methods"]:
        try:
            multimodal_params(method, {})
        except MultimodalError as err:
            raise ConfigError(f"config `multimodal.methods`: {err}") from None
    for method, params in settings["params"].items():
        try:
            multimodal_params(method, params)
        except MultimodalError as err:
            raise ConfigError(f"config `multimodal.params.{method}`: {err}") from None


def check_cross_species(config: Mapping[str, Any], repo_root: Path) -> None:
    """Config `cross_species` (when it has pairs): methods and parameters are known, the sources exist,
    pairs name configured datasets that share enough genes.

    Parameters
    ----------
    config
        The workflow config, schema defaults filled in.
    repo_root
        The repository root, against which relative sources resolve.
    """
    # deferred: imports anndata (this module is imported at workflow parse time)
    from scdiva.bench.tasks.cross_species import (
        ANNOTATION_TASK,
        INTEGRATION_TASK,
        CrossSpeciesError,
        check_cross_species_config,
    )
    from scdiva.bench.tasks.cross_species import method_params as cross_species_params

    settings = cross_species_settings(config)
    if not settings["pairs"]:
        return
    tasks = {ANNOTATION_TASK: "annotation_methods", INTEGRATION_TASK: "integration_methods"}
    for task, key in tasks.items():
        for method in settings[key]:
            try:  # unknown methods or parameters stop the workflow here, before any job
                cross_species_params(task, method, settings["params"].get(method))
            except CrossSpeciesError as err:
                raise ConfigError(f"config `cross_species.{key}`: {err}") from None
    known = set(method_records(ANNOTATION_TASK)) | set(method_records(INTEGRATION_TASK))
    for method in sorted(set(settings["params"]) - known):  # a misspelt name would be silently ignored
        raise ConfigError(f"config `cross_species.params.{method}`: no cross-species method is called {method!r}; "
                          f"known: {sorted(known)}")
    paths = {name: extra_source(config, "cross_species", name, repo_root) for name in settings["datasets"]}
    try:
        check_cross_species_config(settings, paths)
    except (CrossSpeciesError, DatasetValidationError) as err:
        raise ConfigError(str(err)) from None


def check_config(config: dict[str, Any], repo_root: Path, workdir: Path = Path(".")) -> None:
    """Every check, in the order the workflow's parse runs them (common.smk, then the multimodal and
    cross-species rule files): the first problem found is raised.

    Parameters
    ----------
    config
        The workflow config, schema defaults filled in (checkpoint paths are made absolute in place).
    repo_root
        The repository root.
    workdir
        The workflow's working directory.
    """
    check_datasets(config, repo_root, workdir)
    check_checkpoints(config, repo_root)
    check_methods(config, repo_root)
    check_scdiva_coverage(config, repo_root, workdir)
    check_multimodal(config, repo_root)
    check_cross_species(config, repo_root)
