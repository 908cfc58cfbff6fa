"""The catalog: method name -> record, the only module that sees every task's methods.

Rules (``workflow/rules/*.smk``), the config checks, the workflow's job scripts and the report read
:class:`~scdiva.bench.methods.record.MethodRecord` s from here; none of them names a method. Each
task module exports its built-in records (``builtin_records``); a method brought through config
``methods.<name>`` is built by :func:`scdiva.bench.methods.external.record_from_config`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from scdiva.bench.methods.external import DERIVED_KEYS, is_definition, record_from_config
from scdiva.bench.methods.record import MethodConfigError, MethodRecord

_REGISTRY: dict[tuple[str, str], MethodRecord] = {}
_BUILTINS_LOADED = False


def _registry() -> dict[tuple[str, str], MethodRecord]:
    """The records, the built-in ones registered on first use (so importing this module imports no
    method module, and the method modules may import from the package freely)."""
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        _load_builtins()
    return _REGISTRY


def register(record: MethodRecord, *, replace: bool = False) -> MethodRecord:
    """Add a built-in method; a second record for one (task, name) is an error unless ``replace``."""
    _registry()
    key = (record.task, record.name)
    if key in _REGISTRY and not replace:
        raise ValueError(f"{record.task} method {record.name!r} is registered twice")
    _REGISTRY[key] = record
    return record


def method_records(task: str) -> dict[str, MethodRecord]:
    """The built-in methods of ``task``, by name, in registration order."""
    return {name: rec for (t, name), rec in _registry().items() if t == task}


def model_methods(task: str) -> list[str]:
    """Built-in methods of ``task`` whose role is "model" (the model under test, ScDiVa), in registration order."""
    return [name for name, rec in method_records(task).items() if rec.role == "model"]


def method_role(name: str) -> str:
    """Role of method ``name`` in any task ("model", "baseline" or "control"); a method the registry
    does not know (one defined in config) is a baseline."""
    roles = {rec.role for (_, n), rec in _registry().items() if n == name}
    return roles.pop() if len(roles) == 1 else "baseline"



def get_method(task: str, name: str, entry: Mapping[str, Any] | None = None, *,
               base_dir: str | Path | None = None) -> MethodRecord:
    """The record of method ``name`` for ``task``: built from config ``entry`` when that defines
    a method, else the built-in one. Errors name the method and what to fix."""
    if entry and "base" in entry:
        return derived_record(task, name, entry)
    if is_definition(entry):
        if (task, name) in _registry():
            raise MethodConfigError(f"method {name!r}: config `methods.{name}` defines a method, but {name!r} is a built-in {task} "
                                    "method; give yours another name")
        record = record_from_config(name, entry, base_dir=base_dir)
        if record.task != task:
            raise MethodConfigError(f"method {name!r} is defined for task {record.task!r} (config "
                                    f"`methods.{name}.task`) but listed under `{task}.methods`")
        return record
    try:
        return _registry()[(task, name)]
    except KeyError:
        raise KeyError(f"unknown {task} method {name!r}; built-in: {sorted(method_records(task))}. "
                       f"To add your own, define it in config `methods.{name}` with `entry_point`, `command` "
                       "or `embedding` (docs/methods-and-metrics.md)") from None


def derived_record(task: str, name: str, entry: Mapping[str, Any]) -> MethodRecord:
    """A built-in method under another name with some of its parameters changed: config
    ``methods.<name>: {base: <built-in method>, params: {...}}`` (``task: annotation`` for an
    annotation method). Everything else (role, labels it needs, checkpoint, GPU) is the base's, so an
    ablation variant runs, is scored and is reported exactly as the method it varies."""
    where = f"method {name!r}: config `methods.{name}`"
    unknown = sorted(set(entry) - set(DERIVED_KEYS))
    if unknown:
        raise MethodConfigError(f"{where} has unknown keys {unknown}; a method with `base` allows "
                                f"{', '.join(DERIVED_KEYS)} (parameters go under `params`)")
    own_task = entry.get("task", "integration")
    if own_task != task:
        raise MethodConfigError(f"method {name!r} is defined for task {own_task!r} (config `methods.{name}.task`) "
                                f"but listed under `{task}.methods`")
    base = entry["base"]
    if (task, name) in _registry():
        raise MethodConfigError(f"{where} derives a method, but {name!r} is a built-in {task} method; "
                                "give yours another name")
    if (task, base) not in _registry():
        raise MethodConfigError(f"{where}: `base` {base!r} is not a built-in {task} method; built-in: "
                                f"{sorted(method_records(task))}")
    params = entry.get("params") or {}
    if not isinstance(params, Mapping):
        raise MethodConfigError(f"{where}: `params` must be a mapping of parameter names to values")
    parent = _registry()[(task, base)]
    unknown = sorted(set(params) - set(parent.defaults)) if parent.check_params else []
    if unknown:
        raise MethodConfigError(f"{where}: `params` {unknown} are not parameters of {base!r}; it accepts "
                                f"{sorted(parent.defaults)}")
    return replace(parent, name=name, defaults={**parent.defaults, **params}, overrides=dict(params),
                   description=str(entry.get("description") or f"{base} with {dict(params)}"))


def _load_builtins() -> None:
    # Deferred to the first lookup: Snakemake reads the catalog while it parses the workflow, and the
    # task modules import pandas, anndata and the method modules' defaults.
    # deferred: imports torch, anndata (this module is imported at workflow parse time)
    from scdiva.bench.tasks import cross_species, multimodal
    from scdiva.bench.tasks.annotation import records as annotation
    from scdiva.bench.tasks.integration import records as integration

    for module in (integration, annotation, multimodal, cross_species):
        for record in module.builtin_records():
            _REGISTRY[(record.task, record.name)] = record
