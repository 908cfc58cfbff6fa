"""Run one method in a supervised child process and record its outcome (``<output stem>.run.json``).

A method job (integrate, annotate, multimodal, cross-species) forks a child that does all the method's
work: imports, loading the data, the method, writing its outputs. The parent (the job itself) enforces
the job's ``runtime`` resource as a timeout (also on a local run), forwards SIGTERM to the child's
process group, measures the child's wall seconds and peak resident memory, and classifies the outcome:

``ok``, ``not_applicable`` (the method raised :class:`NotApplicable`), ``failed``, ``timeout``,
``out_of_memory`` (a ``MemoryError``, an out-of-memory error of a library, or a SIGKILL that was not
the timeout's: the kernel's or the scheduler's memory limit).

The job then writes ``<stem>.run.json`` and, on any status but ok, failure stubs in place of its other
outputs, and exits 0: one method's failure never stops the rest of the run. ``runs_table`` collects every
run.json into ``results/tables/runs.csv``; ``check_runs`` fails the run when some run was not ok.

Why a fork and not a thread or ``multiprocessing``: a hung native library or a command cannot be
stopped from a thread; the parent imports nothing heavy before forking (no torch / BLAS thread pools
exist yet), so the child starts from a clean, cheap copy and needs nothing pickled.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import math
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scdiva.bench.core.io import atomic_path, write_h5ad_atomic
from scdiva.bench.methods.record import MethodError

STATUSES = ("ok", "not_applicable", "failed", "timeout", "out_of_memory")
#: Statuses that leave nothing to retry.
COMPLETE = ("ok", "not_applicable")
RUNS_COLUMNS = ["dataset", "task", "method", "seed", "status", "reason", "wall_s", "peak_rss_mb", "n_cells",
                "cells_per_s"]
#: Seconds between SIGTERM and SIGKILL of the child's process group.
GRACE_S = 10.0

log = logging.getLogger("scdiva.bench.core.outcomes")


class NotApplicable(Exception):
    """Raised by a method (or its job) that does not apply to this dataset; the run is recorded as
    ``not_applicable`` with the message as its reason, and is not retried."""


class _Terminated(BaseException):
    """Raised in the child by SIGTERM, so ``finally`` blocks and context managers (temporary copies of
    the data, a command's subprocess) clean up before it exits."""


@dataclass
class RunOutcome:
    """The outcome of one (dataset, task, method, seed) run: one row of ``runs.csv``.

    ``wall_s`` is the child's wall time (loading the data included); ``cells_per_s`` divides
    ``n_cells`` by the method's own seconds when the method reports them (else by ``wall_s``).
    ``flags`` are one-line warnings about an ok result (e.g. constant embedding columns); ``outputs``
    and ``log`` are the job's files, which ``check_runs`` removes / shows for a run that was not ok.
    """

    dataset: str
    task: str
    method: str
    seed: int
    status: str
    reason: str = ""
    wall_s: float = math.nan
    peak_rss_mb: float = math.nan
    n_cells: int | None = None
    cells_per_s: float = math.nan
    flags: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    log: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"run status {self.status!r} is not one of {STATUSES}")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def row(self) -> dict[str, Any]:
        """The ``runs.csv`` row; an ok run's flags go into its reason."""
        row = {k: getattr(self, k) for k in RUNS_COLUMNS}
        if self.ok and self.flags:
            row["reason"] = "; ".join(self.flags)
        return row

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the record as JSON (atomically; NaN as null)."""
        data = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(data, indent=1) + "\n")

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> RunOutcome:
        """The record written by :meth:`write`; a clear error naming the file if it is not one."""
        try:
            data = json.loads(Path(path).read_text())
            return cls(**{k: (math.nan if v is None and k in ("wall_s", "peak_rss_mb", "cells_per_s") else v)
                          for k, v in data.items()})
        except (OSError, ValueError, TypeError) as err:
            raise ValueError(f"{path}: not a run record ({err}); delete it and rerun its job") from None


def timeout_seconds(runtime_min: float | None) -> float | None:
    """The child's time limit for a job whose ``runtime`` resource is ``runtime_min`` minutes: a margin
    below it (10 %, at most 2 min), so the outcome is recorded before a scheduler kills the job."""
    if runtime_min is None or runtime_min <= 0:
        return None
    total = float(runtime_min) * 60.0
    return total - min(120.0, 0.1 * total)


def first_line(text: str) -> str:
    """The first non-empty line of ``text`` (a reason is one line; the log keeps the rest)."""
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return ""


def _describe(err: BaseException) -> str:
    message = first_line(str(err))
    if isinstance(err, (MethodError, NotApplicable)) and message:
        return message  # these name the method and say what to do already
    return f"{type(err).__name__}: {message}" if message else type(err).__name__


def _is_out_of_memory(err: BaseException) -> bool:
    # MemoryError, and libraries' own ones (torch.cuda.OutOfMemoryError, jaxlib's RESOURCE_EXHAUSTED)
    return isinstance(err, MemoryError) or "OutOfMemory" in type(err).__name__ or "out of memory" in str(err).lower()


def _set_parent_death_signal() -> None:
    """Linux: the child gets SIGKILL if the job process dies, so no orphaned method outlives its job."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Reporter:
    """What the child tells the parent while it runs: ``report(n_cells=..., method_s=..., flags=[...])``."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def __call__(self, **fields: Any) -> None:
        os.write(self._fd, (json.dumps(fields, default=str) + "\n").encode())


def _child(work: Callable[[Reporter], None], fd: int) -> None:
    """Body of the forked child: run ``work``, send its outcome, exit without returning to the caller."""
    code = 0
    report = Reporter(fd)
    try:
        os.setpgid(0, 0)  # its own process group: a timeout stops the method's subprocesses too
        _set_parent_death_signal()

        def on_term(signum, frame):
            raise _Terminated()

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        work(report)
        report(status="ok")
    except _Terminated:
        code = 143
    except NotApplicable as err:
        report(status="not_applicable", reason=_describe(err))
    except BaseException as err:  # noqa: BLE001 - everything a method can raise is its outcome
        if isinstance(err, SystemExit) and err.code in (0, None):
            report(status="ok")
        else:
            log.error("the method failed:\n%s", "".join(traceback.format_exception(err)).rstrip())
            reason = _describe(err) if not isinstance(err, SystemExit) else f"exited with status {err.code}"
            report(status="out_of_memory" if _is_out_of_memory(err) else "failed", reason=reason)
            code = 1
    finally:
        with contextlib.suppress(Exception):
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            for handler in logging.getLogger().handlers:
                handler.flush()
        os._exit(code)


def _wait(pid: int, timeout: float | None) -> tuple[int, Any] | None:
    """(wait status, rusage) of ``pid``, or None if it still runs after ``timeout`` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    try:
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if pidfd is not None:
                select.select([pidfd], [], [], left)
            else:
                time.sleep(0.2 if left is None else min(0.2, left))
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done == pid:
                return status, usage
            if deadline is not None and time.monotonic() >= deadline:
                return None
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _stop(pid: int, grace_s: float) -> tuple[int, Any]:
    """SIGTERM the child's process group, SIGKILL it after ``grace_s``; (wait status, rusage)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    waited = _wait(pid, grace_s)
    if waited is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        _, status, usage = os.wait4(pid, 0)
        return status, usage
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # anything the child left behind in its group
    return waited


def supervise(work: Callable[[Reporter], None], *, dataset: str, task: str, method: str, seed: int,
              runtime_min: float | None, log_path: str | None = None, outputs: Iterable[str] = (),
              grace_s: float = GRACE_S) -> RunOutcome:
    """Run ``work(report)`` in a forked child under the job's time limit; its :class:`RunOutcome`.

    Parameters
    ----------
    work
        Does all the method's work in the child (heavy imports included) and writes its outputs; calls
        ``report(n_cells=..., method_s=..., flags=[...])`` with what it knows. Raising
        :class:`NotApplicable` records ``not_applicable``; any other exception ``failed`` (its first line
        the reason, the traceback in the log) or ``out_of_memory``.
    dataset, task, method, seed
        The run's key in ``runs.csv``.
    runtime_min
        The job's ``runtime`` resource (minutes); the child is stopped a margin before it
        (:func:`timeout_seconds`) and the run recorded as ``timeout``. None: no limit.
    log_path
        The job's log (where the child's traceback went), kept in the record for ``check_runs``.
    outputs
        The job's declared outputs, kept in the record: ``check_runs`` removes them when the run was not
        ok, so the next ``snakemake`` retries it.
    grace_s
        Seconds between SIGTERM and SIGKILL when the child is stopped.
    """
    limit = timeout_seconds(runtime_min)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    for handler in logging.getLogger().handlers:
        handler.flush()
    read_fd, write_fd = os.pipe()
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child never returns from here
        os.close(read_fd)
        _child(work, write_fd)
    os.close(write_fd)
    terminated: list[int] = []

    def forward(signum, frame):  # the job is being cancelled (Snakemake, the scheduler): stop the method too
        terminated.append(signum)
        raise _Terminated()

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    timed_out = False
    try:
        waited = _wait(pid, limit)
        if waited is None:
            timed_out = True
            log.error("%s: still running after %.0f s, stopping it", method, limit)
            waited = _stop(pid, grace_s)
    except _Terminated:
        _stop(pid, grace_s)
        raise SystemExit(128 + terminated[0]) from None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    wall = time.perf_counter() - start
    status_code, usage = waited
    messages = _read_messages(read_fd)
    fields = {k: v for m in messages for k, v in m.items()}
    outcome = RunOutcome(dataset=dataset, task=task, method=method, seed=int(seed), status="failed",
                         wall_s=round(wall, 3), peak_rss_mb=round(usage.ru_maxrss / 1024.0, 1),
                         n_cells=fields.get("n_cells"), flags=list(fields.get("flags") or []),
                         outputs=[str(o) for o in outputs], log=log_path)
    outcome.status, outcome.reason = _classify(status_code, fields, timed_out=timed_out, runtime_min=runtime_min,
                                               method=method)
    seconds = fields.get("method_s") or wall
    if outcome.ok and outcome.n_cells and seconds:  # a throughput only for a run that finished
        outcome.cells_per_s = round(outcome.n_cells / float(seconds), 2)
    log.info("%s run of %s on %s (seed %s): %s%s (%.1f s, peak %.0f MB)", task, method, dataset, seed,
             outcome.status, f": {outcome.reason}" if outcome.reason else "", wall, outcome.peak_rss_mb)
    return outcome


def _read_messages(fd: int) -> list[dict[str, Any]]:
    chunks = []
    with os.fdopen(fd, "rb") as pipe:
        chunks.append(pipe.read())
    messages = []
    for line in b"".join(chunks).decode(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            messages.append(json.loads(line))
    return messages


def _classify(status_code: int, fields: Mapping[str, Any], *, timed_out: bool, runtime_min: float | None,
              method: str) -> tuple[str, str]:
    """(status, one-line reason) from the child's wait status and what it reported."""
    if timed_out:
        return "timeout", (f"exceeded its runtime of {runtime_min:g} min (resources.{method}.runtime); "
                           f"raise it to let {method} finish")
    if "status" in fields:
        reason = str(fields.get("reason") or "")
        if fields["status"] == "out_of_memory":
            reason = f"{reason} (out of memory: raise resources.{method}.mem_mb)"
        return str(fields["status"]), reason
    if os.WIFSIGNALED(status_code):
        signum = os.WTERMSIG(status_code)
        if signum == signal.SIGKILL:
            return "out_of_memory", (f"killed by signal 9, most likely the memory limit: raise "
                                     f"resources.{method}.mem_mb")
        return "failed", f"killed by signal {signum} ({signal.Signals(signum).name}); see the log"
    return "failed", f"the method's process exited with status {os.waitstatus_to_exitcode(status_code)}; see the log"


# --- failure stubs: what a job that did not produce a result leaves in place of its outputs -----------


def write_stub_h5ad(path: str | os.PathLike[str], outcome: RunOutcome) -> None:
    """An .h5ad with no cells, no ``obsm["X_emb"]`` and ``uns["status"]`` / ``uns["reason"]``: nothing that
    reads it can take it for an embedding (:func:`embedding_status` reads them back).

    Parameters
    ----------
    path
        The job's .h5ad output.
    outcome
        The run's outcome (not ok).
    """
    # deferred: imports anndata (this module is imported at workflow parse time)
    import anndata as ad

    stub = ad.AnnData()
    stub.uns["status"] = outcome.status
    stub.uns["reason"] = outcome.reason
    write_h5ad_atomic(stub, path)


def write_stub_csv(path: str | os.PathLike[str], columns: Iterable[str]) -> None:
    """A CSV with the header and no rows."""
    with atomic_path(path) as tmp:
        tmp.write_text(",".join(columns) + "\n")


def write_stub_json(path: str | os.PathLike[str], outcome: RunOutcome) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"status": outcome.status, "reason": outcome.reason}, indent=1) + "\n")


def write_stub_png(path: str | os.PathLike[str], outcome: RunOutcome) -> None:
    """A figure that says the run produced no result, and why."""
    # deferred: imports matplotlib (this module is imported at workflow parse time)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 1.5))
    ax.axis("off")
    ax.text(0.01, 0.5, f"{outcome.method} on {outcome.dataset} (seed {outcome.seed}): {outcome.status}\n"
            f"{outcome.reason[:160]}", va="center", fontsize=8, wrap=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


def embedding_status(adata: Any) -> tuple[str, str]:
    """(status, reason) of an integration job's .h5ad: ("ok", "") for an embedding, the stub's otherwise."""
    status = str(adata.uns.get("status", "ok"))
    return status, str(adata.uns.get("reason", ""))


# --- runs.csv -----------------------------------------------------------------------------------------


def runs_table(records: Iterable[str | os.PathLike[str]],
               metrics_status: Iterable[str | os.PathLike[str]] = ()) -> Any:
    """``runs.csv`` from every run.json, with the metrics jobs' verdicts folded into integration rows.

    Parameters
    ----------
    records
        The ``.run.json`` of every run (:meth:`RunOutcome.write`).
    metrics_status
        Every dataset's ``metrics_status.csv`` (columns dataset, method, seed, status, reason): an
        integration run that was ok but whose scIB metrics failed becomes ``failed`` with reason
        ``scIB metrics: ...``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`RUNS_COLUMNS`, one row per run, sorted by task, dataset, method and seed.
    """
    # deferred: imports pandas (this module is imported at workflow parse time)
    import pandas as pd

    rows = [RunOutcome.read(path).row() for path in records]
    table = pd.DataFrame(rows, columns=RUNS_COLUMNS)
    failures = {}
    for path in metrics_status:
        status = pd.read_csv(path, dtype={"method": str, "status": str, "reason": str})
        for row in status.itertuples(index=False):
            if row.status == "failed":
                failures[(str(row.dataset), "integration", str(row.method), int(row.seed))] = row.reason
    for i, row in table.iterrows():
        key = (row["dataset"], row["task"], row["method"], int(row["seed"]))
        if key in failures and row["status"] == "ok":
            table.loc[i, "status"] = "failed"
            table.loc[i, "reason"] = f"scIB metrics: {failures[key]}"
    table["seed"] = table["seed"].astype(int)
    table["n_cells"] = table["n_cells"].astype("Int64")
    return table.sort_values(["task", "dataset", "method", "seed"], kind="stable").reset_index(drop=True)
