"""Methods users bring through config: entry points, commands and precomputed embeddings.

A method is either built in (its task's ``builtin_records``, collected by
:mod:`scdiva.bench.methods.catalog`) or brought by the user through config ``methods.<name>``
with exactly one of:

- ``entry_point: "package.module:function"`` - a Python callable with the task's signature
  (integration: ``f(adata, *, batch_key, label_key, seed, params, threads) -> None`` writing
  ``adata.obsm["X_emb"]``; annotation: :class:`scdiva.bench.tasks.annotation.base.AnnotationFitter`);
- ``command: "program {input} {output}"`` - any program (R, Julia, another conda env through
  ``conda run -n ENV ...``): integration reads the h5ad ``{input}`` and writes an h5ad ``{output}``
  with ``obsm["X_emb"]``; annotation reads ``{reference}`` and ``{query}`` h5ads and writes a CSV
  ``{output}`` (first column the query cell names, column ``label`` the predictions);
- ``embedding: path`` - a precomputed embedding (``.h5ad`` with ``obsm[obsm_key]``, or a
  ``.csv``/``.tsv`` with cell names in the first column), matched to the cells by name; the path may
  contain ``{dataset}`` and ``{seed}``. Integration only.

plus ``task`` (``integration``, the default, or ``annotation``), ``params`` (passed to the method),
``gpu`` and ``needs_labels``. See docs/methods-and-metrics.md for a worked example.
"""


from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import shutil
import signal
import string
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from scdiva.bench.methods._common import EMBEDDING_KEY
from scdiva.bench.methods.contract import check_embedding
from scdiva.bench.methods.record import TASKS, MethodConfigError, MethodError, MethodRecord, load_entry_point
from scdiva.bench.tasks.annotation.base import FittedAnnotator

#: Keys of a config-defined method (config ``methods.<name>``); any other key is an error.
DEFINITION_KEYS = ("task", "entry_point", "command", "embedding", "obsm_key", "params", "gpu", "needs_labels",
                   "description")
KINDS = ("entry_point", "command", "embedding")
#: Keys of a method derived from a built-in one (config ``methods.<name>: {base: ..., params: ...}``).
DERIVED_KEYS = ("base", "task", "params", "description")
#: Placeholders a ``command`` may use, per task (values are shell-quoted).
COMMAND_FIELDS = {
    "integration": ("input", "output", "batch_key", "label_key", "seed", "threads", "params"),
    "annotation": ("reference", "query", "output", "batch_key", "label_key", "seed", "threads", "params"),
}


def is_definition(entry: Mapping[str, Any] | None) -> bool:
    """True if config ``methods.<name>`` defines a method (entry_point / command / embedding, or
    ``base``: a built-in method with other parameters)."""
    return bool(entry) and any(k in entry for k in (*KINDS, "base"))


def config_params(entry: Mapping[str, Any] | None) -> dict[str, Any]:
    """The parameters in config ``methods.<name>``: the entry itself for a built-in method, its
    ``params`` for a config-defined one."""
    if is_definition(entry):
        return dict(entry.get("params") or {})
    return dict(entry or {})



def record_from_config(name: str, entry: Mapping[str, Any], *, base_dir: str | Path | None = None) -> MethodRecord:
    """A :class:`MethodRecord` from config ``methods.<name>``, checked before any job runs."""
    where = f"method {name!r}: config `methods.{name}`"
    unknown = sorted(set(entry) - set(DEFINITION_KEYS))
    if unknown:
        raise MethodConfigError(f"{where} has unknown keys {unknown}; allowed: {', '.join(DEFINITION_KEYS)} "
                                "(method parameters go under `params`)")
    kinds = [k for k in KINDS if k in entry]
    if len(kinds) != 1:
        raise MethodConfigError(f"{where} must have exactly one of {', '.join(KINDS)}; it has {kinds}")
    kind = kinds[0]
    task = entry.get("task", "integration")
    if task not in TASKS:
        raise MethodConfigError(f"method {name!r}: config `methods.{name}.task` is {task!r}; one of {', '.join(TASKS)}")
    params = entry.get("params") or {}
    if not isinstance(params, Mapping):
        raise MethodConfigError(f"method {name!r}: config `methods.{name}.params` must be a mapping of parameter names to values")
    value = entry[kind]
    if not isinstance(value, str) or not value.strip():
        raise MethodConfigError(f"method {name!r}: config `methods.{name}.{kind}` must be a non-empty string")
    common = dict(name=name, task=task, defaults=dict(params), gpu=bool(entry.get("gpu", False)),
                  needs_labels=bool(entry.get("needs_labels", False)), kind=kind, check_params=False,
                  description=str(entry.get("description", "")))
    if kind == "entry_point":
        load_entry_point(value, method=name, where=f"config `methods.{name}.entry_point`")  # fail now, not in the job
        return MethodRecord(function=value, **common)
    if kind == "command":
        _check_command(value, task, where=f"method {name!r}: config `methods.{name}.command`")
        runner = run_integration_command if task == "integration" else fit_annotation_command
        return MethodRecord(function=partial(runner, command=value, method=name), **common)
    if task != "integration":
        raise MethodConfigError(f"{where}: a precomputed `embedding` serves integration only, not {task}")
    template = value
    if base_dir is not None and not Path(template).is_absolute():
        template = str(Path(base_dir) / template)
    try:
        template.format(dataset="d", seed=0)
    except (KeyError, IndexError, ValueError) as err:
        raise MethodConfigError(f"method {name!r}: config `methods.{name}.embedding` {value!r}: only {{dataset}} and {{seed}} may be "
                                f"filled in ({err})") from None
    obsm_key = str(entry.get("obsm_key", EMBEDDING_KEY))
    return MethodRecord(function=partial(load_embedding, obsm_key=obsm_key, method=name), embedding=template,
                        **common)


# --- command-line methods --------------------------------------------------------------------------


def _quoted_placeholders(command: str) -> list[tuple[str, str]]:
    """Placeholders of ``command`` that stand inside shell quotes, with the quote character: the
    harness quotes every value itself, and a value inside the template's own quotes could close them."""
    found, quote, escaped = [], "", False
    for literal, name, _spec, _conv in string.Formatter().parse(command):
        for char in literal:  # the shell's quoting rules, as far as quotes go
            if escaped:
                escaped = False
            elif char == "\\" and quote != "'":
                escaped = True
            elif quote and char == quote:
                quote = ""
            elif not quote and char in "'\"":
                quote = char
        if name is not None and quote:
            found.append((name, quote))
    return found


def _check_command(command: str, task: str, *, where: str) -> None:
    allowed = COMMAND_FIELDS[task]
    try:
        command.format(**{k: "x" for k in allowed})
    except (KeyError, IndexError, ValueError) as err:
        raise MethodConfigError(f"{where} {command!r}: unknown placeholder {err}; a {task} command may use "
                                + ", ".join("{" + k + "}" for k in allowed) + " (write {{ }} for literal braces)") from None
    quoted = _quoted_placeholders(command)
    if quoted:
        shown = ", ".join(f"{q}{{{name}}}{q}" for name, q in quoted)
        raise MethodConfigError(f"{where} {command!r} puts {shown} inside quotes; remove the quotes: the harness "
                                "quotes every value it fills in (quotes around a placeholder would let a value "
                                "close them)")
    required = ("input", "output") if task == "integration" else ("reference", "query", "output")
    missing = [k for k in required if "{" + k + "}" not in command]
    if missing:
        raise MethodConfigError(f"{where} {command!r} must contain " + ", ".join("{" + k + "}" for k in missing))


class _Terminated(SystemExit):
    """SIGTERM arrived while a command method ran: unwinds the job so its temporary copy is removed."""


#: lines of a command's stderr copied to the job log
STDERR_TAIL_LINES = 40
#: seconds a command gets to exit after SIGTERM before it is killed
TERMINATE_GRACE_S = 5.0


@contextlib.contextmanager
def command_workdir(method: str) -> Iterator[Path]:
    """A temporary directory for a command method's copy of the data, removed when the block ends:
    on success, on failure and on SIGTERM. While the block runs, SIGTERM (from the job supervisor or
    the scheduler) raises in the main thread, so the command is stopped and the copy removed; then the
    signal is delivered again to the handler that was there before (by default: the process ends)."""
    terminated: list[int] = []

    def on_term(signum: int, _frame: Any) -> None:
        terminated.append(signum)
        raise _Terminated(128 + signum)

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGTERM)
        if previous is signal.SIG_IGN:
            previous = None
        else:
            signal.signal(signal.SIGTERM, on_term)
    tmp: str | None = None
    try:
        tmp = tempfile.mkdtemp(prefix=f"scdiva-{method}-")
        yield Path(tmp)
    finally:
        if previous is not None:  # a second SIGTERM during the clean-up is noted, not raised
            signal.signal(signal.SIGTERM, lambda signum, _frame: terminated.append(signum))
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
            if terminated:
                signal.raise_signal(signal.SIGTERM)


def _descendants(pid: int) -> list[int]:
    """Process ids of every descendant of ``pid`` (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []
    for entry in entries:
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the command's shell and everything it started, SIGKILL after the grace period."""
    pids = [proc.pid, *_descendants(proc.pid)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        try:
            proc.wait(timeout=TERMINATE_GRACE_S)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM and not any(_alive(pid) for pid in pids[1:]):
            return


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    stat = Path(f"/proc/{pid}/stat")  # a zombie has exited; its parent has not collected it yet
    with contextlib.suppress(OSError, IndexError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _tail(path: Path, lines: int) -> list[str]:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace").strip().splitlines()[-lines:]
    return []


def _run(command: str, fields: Mapping[str, Any], *, method: str, task: str) -> None:
    """Run ``command`` with ``fields`` shell-quoted into it, in this process's process group (so a
    supervisor's group kill reaches it); its stdout and stderr go to files in the work directory and
    their tail to this job's log (the ``scdiva.bench.methods`` logger, which the workflow's scripts
    send to the rule's log and stderr). Errors are one line naming the method."""
    line = command.format(**{k: shlex.quote(str(v)) for k, v in fields.items()})
    shown = " ".join(line.split())  # the error message is one line
    workdir = Path(fields["output"]).parent
    out_path, err_path = workdir / "command.stdout", workdir / "command.stderr"
    log = logging.getLogger("scdiva.bench.methods")
    log.info("%s method %r: running %s", task, method, line)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(line, shell=True, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    returncode = None
    try:
        returncode = proc.wait()
    except BaseException:  # SIGTERM (_Terminated), Ctrl-C: the command must not outlive its job
        _stop(proc)
        raise
    finally:
        tail = _tail(err_path, STDERR_TAIL_LINES) or _tail(out_path, STDERR_TAIL_LINES)
        if tail:
            which = "stderr" if _tail(err_path, 1) else "stdout"
            log.log(logging.INFO if returncode == 0 else logging.WARNING, "%s method %r: last %d lines of the "
                    "command's %s:\n%s", task, method, len(tail), which, "\n".join(tail))
    if returncode != 0:
        how = (f"was killed by signal {-returncode} ({signal.Signals(-returncode).name})" if returncode < 0
               else f"failed with exit status {returncode}")
        last = f"; its last line of output: {tail[-1].strip()}" if tail else "; it wrote nothing to stderr"
        raise MethodError(f"{task} method {method!r}: command {how}{last} (the command line and its output tail are "
                          "in the job log)")
    if not Path(fields["output"]).is_file():
        raise MethodError(f"{task} method {method!r}: command exited 0 but did not write {{output}} ({shown})")


def _write_params(directory: Path, params: Mapping[str, Any]) -> Path:
    path = directory / "params.json"
    path.write_text(json.dumps(dict(params), indent=1, default=str))
    return path


def _file_start(path: Path) -> str:
    with contextlib.suppress(OSError):
        with open(path, "rb") as handle:
            return repr(handle.read(40).decode("utf-8", errors="replace"))
    return "unreadable"


def read_h5ad_output(path: Path, *, method: str, what: str, obsm_key: str = EMBEDDING_KEY):
    """``anndata.read_h5ad(path)``, or one line naming ``method`` when ``path`` is no .h5ad (text, a CSV)
    or its ``obsm[obsm_key]`` is stored 1-D (anndata would silently read that as one column)."""
    # deferred: imports anndata, h5py (this module is imported at workflow parse time)
    import anndata as ad
    import h5py

    try:
        data = ad.read_h5ad(path)
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise MethodError(f"integration method {method!r}: {what} {path} is not an AnnData .h5ad file (it starts "
                          f"with {_file_start(path)}; {type(err).__name__}: {first}); expected an .h5ad with "
                          f"obsm[{obsm_key!r}] (cells x dimensions)") from None
    with h5py.File(path, "r") as handle:
        stored = handle.get(f"obsm/{obsm_key}")
        if isinstance(stored, h5py.Dataset) and stored.ndim == 1:
            check_embedding(np.zeros(stored.shape), n_cells=data.n_obs, method=method,
                            source=f"obsm[{obsm_key!r}] of {what} {path}")  # refuses it: 1-D
    return data


def run_integration_command(adata, *, batch_key: str, label_key: str | None, seed: int, params: Mapping[str, Any],
                            threads: int, command: str, method: str, **_: Any) -> None:
    """Write ``adata`` to ``{input}``, run ``command``, read ``obsm["X_emb"]`` of ``{output}`` by cell name."""
    with command_workdir(method) as tmp_dir:
        adata.write_h5ad(tmp_dir / "input.h5ad")
        fields = dict(input=tmp_dir / "input.h5ad", output=tmp_dir / "output.h5ad", batch_key=batch_key,
                      label_key=label_key or "", seed=seed, threads=threads, params=_write_params(tmp_dir, params))
        _run(command, fields, method=method, task="integration")
        out = read_h5ad_output(fields["output"], method=method, what="the command's {output}")
    if EMBEDDING_KEY not in out.obsm:
        raise MethodError(f"integration method {method!r}: its output h5ad has no obsm[{EMBEDDING_KEY!r}] "
                          f"(the obsm keys it wrote: {list(out.obsm) or 'none'})")
    values = check_embedding(out.obsm[EMBEDDING_KEY], n_cells=out.n_obs, method=method,
                             source=f"obsm[{EMBEDDING_KEY!r}] of the command's output h5ad")
    adata.obsm[EMBEDDING_KEY] = match_cells(out.obs_names, values, adata.obs_names, method=method,
                                            source="the command's output")


def fit_annotation_command(reference, *, label_key: str, batch_key: str, seed: int, params: Mapping[str, Any],
                           threads: int, command: str, method: str):
    """An annotator that runs ``command`` once per query: it trains on ``{reference}`` and labels
    ``{query}`` in one program, so its whole run is timed as ``query_fit_s`` and ``predict`` returns
    the labels it wrote."""
    # deferred: imports pandas (this module is imported at workflow parse time)
    import pandas as pd


    state: dict[str, Any] = {}

    def map_query(query) -> None:
        with command_workdir(method) as tmp_dir:
            reference.write_h5ad(tmp_dir / "reference.h5ad")
            hidden = query.copy()
            hidden.obs = hidden.obs.drop(columns=[label_key], errors="ignore")  # annotate() hides them too
            hidden.write_h5ad(tmp_dir / "query.h5ad")
            fields = dict(reference=tmp_dir / "reference.h5ad", query=tmp_dir / "query.h5ad",
                          output=tmp_dir / "predictions.csv", batch_key=batch_key, label_key=label_key, seed=seed,
                          threads=threads, params=_write_params(tmp_dir, params))
            _run(command, fields, method=method, task="annotation")
            try:
                table = pd.read_csv(fields["output"], index_col=0)
            except Exception as err:
                raise MethodError(f"annotation method {method!r}: its {{output}} is not a readable CSV (it starts with "
                                  f"{_file_start(fields['output'])}; {type(err).__name__}); expected a CSV with the "
                                  "query cell names in the first column and a column 'label'") from None
        if "label" not in table.columns:
            raise MethodError(f"annotation method {method!r}: its CSV needs a column 'label' with the predictions "
                              f"(it has {list(table.columns)}; the first column holds the query cell names)")
        state["labels"] = match_cells(table.index.astype(str), table["label"].astype(str).to_numpy(),
                                      query.obs_names, method=method, source="the command's predictions")

    def predict(query) -> np.ndarray:
        return state["labels"]

    return FittedAnnotator(predict=predict, map_query=map_query)


# --- precomputed embeddings --------------------------------------------------------------------------


def match_cells(names, values, cells, *, method: str, source: str) -> np.ndarray:
    """Rows of ``values`` (named ``names``) in the order of ``cells``; every cell must be present."""
    # deferred: imports pandas (this module is imported at workflow parse time)
    import pandas as pd

    index = pd.Index([str(n) for n in names])
    if index.has_duplicates:
        dup = index[index.duplicated()].unique()[:5].tolist()
        raise MethodError(f"method {method!r}: {source} names some cells twice, e.g. {dup}")
    cells = pd.Index([str(c) for c in cells])
    missing = cells.difference(index, sort=False)
    if len(missing):
        raise MethodError(f"method {method!r}: {source} lacks {len(missing)} of the {len(cells)} cells, e.g. "
                          f"{missing[:5].tolist()}; rows are matched by cell name (obs_names of the preprocessed "
                          "dataset, after QC and subsampling)")
    return np.asarray(values)[index.get_indexer(cells)]


def read_embedding_file(path: str | Path, *, obsm_key: str = EMBEDDING_KEY, method: str):
    """(cell names, float32 matrix) of a precomputed embedding: ``.h5ad`` (``obsm[obsm_key]``) or
    ``.csv``/``.tsv``; checked against the embedding contract (:func:`check_embedding`)."""
    # deferred: imports pandas (this module is imported at workflow parse time)
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise MethodError(f"method {method!r}: precomputed embedding {path} does not exist")
    if path.suffix == ".h5ad":
        data = read_h5ad_output(path, method=method, what="precomputed embedding", obsm_key=obsm_key)
        if obsm_key not in data.obsm:
            raise MethodError(f"method {method!r}: {path} has no obsm[{obsm_key!r}] (it has {list(data.obsm)}); "
                              f"set config `methods.{method}.obsm_key`")
        values = check_embedding(data.obsm[obsm_key], n_cells=data.n_obs, method=method,
                                 source=f"obsm[{obsm_key!r}] of precomputed embedding {path}")
        return data.obs_names, values.astype(np.float32, copy=False)
    if path.suffix in (".csv", ".tsv", ".txt"):
        try:
            table = pd.read_csv(path, index_col=0, sep="\t" if path.suffix != ".csv" else ",")
        except Exception as err:
            raise MethodError(f"method {method!r}: precomputed embedding {path} is not a readable table "
                              f"({type(err).__name__}); expected cell names in the first column and one numeric "
                              "column per dimension") from None
        text = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])
                or pd.api.types.is_bool_dtype(table[c])]
        if text:
            example = table[text[0]].dropna().astype(str)
            example = f" (e.g. {example.iloc[0]!r})" if len(example) else ""
            raise MethodError(f"method {method!r}: precomputed embedding {path} has non-numeric column(s) "
                              f"{[str(c) for c in text[:5]]}{example}; expected cell names in the first column and "
                              "one numeric column per dimension")
        values = check_embedding(table.to_numpy(), n_cells=len(table), method=method,
                                 source=f"precomputed embedding {path}")
        return table.index, values.astype(np.float32, copy=False)
    raise MethodError(f"method {method!r}: precomputed embedding {path} must be .h5ad, .csv or .tsv")


def load_embedding(adata, *, batch_key: str, label_key: str | None, seed: int, params: Mapping[str, Any],
                   threads: int, embedding: str | Path, obsm_key: str = EMBEDDING_KEY, method: str) -> None:
    """Put the precomputed embedding ``embedding`` into ``adata.obsm["X_emb"]``, matched by cell name."""
    names, values = read_embedding_file(embedding, obsm_key=obsm_key, method=method)
    adata.obsm[EMBEDDING_KEY] = match_cells(names, values, adata.obs_names, method=method,
                                            source=f"precomputed embedding {embedding}")
