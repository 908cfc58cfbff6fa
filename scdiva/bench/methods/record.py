"""The method record: one per benchmarked method, the only place its function, defaults and traits are written.

This module imports nothing of the benchmark but its shared helpers, so every task, the catalog
(:mod:`scdiva.bench.methods.catalog`, name -> record) and the config checks can read records.
Methods users bring through config are built by :mod:`scdiva.bench.methods.external`; the contract
an embedding must meet is :mod:`scdiva.bench.methods.contract`.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from scdiva.bench.methods._common import resolve_params

TASKS = ("integration", "annotation")
ROLES = ("model", "baseline", "control")
#: reference points that anchor the scores (negative and positive controls) are named control_<kind>:
#: tables list them after the methods and no ranking names one the best
CONTROL_PREFIX = "control_"


def is_control(method: str) -> bool:
    """Whether ``method`` is a control (named ``control_<kind>``): a reference point, not a competitor."""
    return str(method).startswith(CONTROL_PREFIX)
_ENTRY_POINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class MethodError(RuntimeError):
    """A method failed or returned something unusable; the message names the method."""


class MethodConfigError(ValueError):
    """A config-defined method is malformed (bad entry point, command, embedding path, keys)."""


@dataclass(frozen=True)
class MethodRecord:
    """Everything the workflow and the report know about one method of one task.

    ``function`` is the callable or ``"package.module:function"`` (imported on first use, so
    reading the registry stays light). ``defaults`` are the accepted parameters and their
    defaults (``None`` = the authors' default); with ``check_params`` unknown parameters are
    errors. ``role``: ``"model"`` is the model under test (ScDiVa; the report compares it with
    the paper's claims), ``"baseline"`` a competitor, ``"control"`` a reference point that is no
    competitor (the unintegrated PCA). ``checkpoint_param`` names the parameter that selects a
    config ``checkpoints.<name>`` (the job then depends on that checkpoint's files).
    ``saves_model``: the job also writes ``seed{seed}.model/`` (scVI); ``reuses_model_of``: the
    method starts from that method's saved model when their settings agree (scANVI from scVI).
    """

    name: str
    task: str
    function: Callable[..., Any] | str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    gpu: bool = False
    needs_labels: bool = False
    role: str = "baseline"
    checkpoint_param: str | None = None
    saves_model: bool = False
    reuses_model_of: str | None = None
    #: with ``reuses_model_of``: ``"module:function"(source_params, own_params) -> bool``, whether the
    #: saved model fits this method's settings
    model_compatible: str | None = None
    kind: str = "builtin"
    check_params: bool = True
    description: str = ""
    #: config-defined ``embedding``: the path template ({dataset}, {seed}); else None.
    embedding: str | None = None
    #: ``"module:function"`` taking the same arguments as ``function`` but an AnnData backed on the
    #: preprocessed file (obs + var in memory, rows read from disk): the integrate job calls it instead
    #: of loading the file, so the method's memory does not grow with the matrix (docs/scale.md)
    streams_from: str | None = None
    #: with role "control": "negative" (integrating or annotating nothing useful scores this) or
    #: "positive" (what keeping every cell type and mixing every batch scores); reports scale by them
    control: str | None = None
    #: a method derived from a built-in one (config ``methods.<name>.base``): the parameters it changes
    overrides: Mapping[str, Any] = field(default_factory=dict)
    #: the method pretrains its own model on the benchmark's cells, without their labels (cross-species
    #: ScDiVa): its annotation fitter also takes them as ``corpus``, its integration function embeds them
    pretrains: bool = False
    #: what an integration method writes: ``"embedding"`` (``obsm["X_emb"]``, scored on every metric) or
    #: ``"graph"`` (``obsp["graph_distances"]``, a neighbour graph: scored on the graph metrics only)
    output: str = "embedding"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            raise MethodConfigError(f"method name {self.name!r} must be letters, digits, '_', '.', '-' "
                                    "(it becomes a file name and a wildcard)")
        if self.role not in ROLES:
            raise MethodConfigError(f"method {self.name!r}: role {self.role!r} is not one of {ROLES}")
        if self.output not in ("embedding", "graph"):
            raise MethodConfigError(f"method {self.name!r}: output {self.output!r} is not 'embedding' or 'graph'")
        if self.control not in (None, "negative", "positive") or (self.control and self.role != "control"):
            raise MethodConfigError(f"method {self.name!r}: control {self.control!r} needs role 'control' and is "
                                    "'negative' or 'positive'")

    def load(self) -> Callable[..., Any]:
        """The callable (importing an entry point); a clear error naming the method if it cannot."""
        if callable(self.function):
            return self.function
        return load_entry_point(self.function, method=self.name, where="its record")

    def params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """``params`` over the defaults; unknown keys are an error when the record checks them."""
        if not self.check_params:
            return {**self.defaults, **dict(params or {})}
        return resolve_params(self.name, self.defaults, params)



def load_entry_point(spec: str, *, method: str, where: str) -> Callable[..., Any]:
    """Import ``"package.module:function"``; errors say which method and what went wrong."""
    where = f"method {method!r} ({where})"
    if not isinstance(spec, str) or not _ENTRY_POINT.match(spec):
        raise MethodConfigError(f"{where}: entry point {spec!r} is not of the form 'package.module:function'")
    module_name, attr = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # ImportError, or the module failing while it is imported
        raise MethodConfigError(f"{where}: cannot import module {module_name!r} of entry point {spec!r} "
                                f"({type(err).__name__}: {err}); it must be importable by the workflow's Python "
                                "(installed, or on PYTHONPATH)") from None
    function = getattr(module, attr, None)
    if not callable(function):
        raise MethodConfigError(f"{where}: module {module_name!r} has no callable {attr!r} (entry point {spec!r})")
    return function

