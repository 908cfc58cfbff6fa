"""File helpers shared by the workflow scripts: atomic writes, so no half-written output survives."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    import anndata


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    The temporary file lives in the same directory (same file system), so the final
    :func:`os.replace` is atomic: readers see either the old file, no file, or the complete one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():
            # mkstemp creates the file with mode 0600; give it the mode any new file gets (0644 under umask 022).
            tmp.chmod(default_file_mode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a new empty directory beside ``path``; it replaces ``path`` (and all it held) only if the
    block succeeds, so an interrupted job never leaves a complete-looking directory behind.

    The directory-tree twin of :func:`atomic_path`: same file system, a rename at the end, the
    temporary directory removed whatever happens.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        tmp.chmod(default_dir_mode())  # mkdtemp's 0700 would hide the directory from the group
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def default_file_mode() -> int:
    """The mode ``open()`` gives a new file under the current umask (0o644 under umask 022)."""
    return 0o666 & ~_umask()


def default_dir_mode() -> int:
    """The mode ``mkdir`` gives a new directory under the current umask (0o755 under umask 022);
    ``tempfile.mkdtemp`` gives 0o700 instead."""
    return 0o777 & ~_umask()


def write_h5ad_atomic(adata: anndata.AnnData, path: str | os.PathLike[str]) -> None:
    """Write ``adata`` to ``path`` (gzip-free h5ad) through a temporary file and an atomic rename."""
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)


def configure_logging(log_file: str | os.PathLike[str] | None, level: int = logging.INFO) -> None:
    """Log to ``log_file`` (the rule's ``log:``) and to stderr, which Snakemake shows.

    An exception the script does not catch is logged with its traceback too, so the rule's log
    says why the job failed instead of staying empty.
    """
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        # truncate once, then append: scripts also redirect print output into the same file in append
        # mode, and a handler writing at its own offset would overwrite those lines
        open(log_file, "w").close()
        handlers.append(logging.FileHandler(log_file, mode="a"))
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers, force=True
    )
    sys.excepthook = _log_uncaught


def _log_uncaught(exc_type, exc, tb) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    # To the log handlers only: the stderr handler already shows it, so no second print.
    logging.getLogger("scdiva.bench").critical("uncaught %s: %s", exc_type.__name__, exc, exc_info=(exc_type, exc, tb))


def fail(message: str) -> NoReturn:
    """Log a user-facing error (no traceback: the message says what to do) and exit non-zero."""
    logging.getLogger("scdiva.bench").error(message)
    sys.exit(1)


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex sha256 digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _glibc():
    """The C library through ctypes, or None where it cannot be loaded."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def trim_freed_memory() -> bool:
    """Give the heap's free memory back to the OS now (glibc ``malloc_trim(0)``).

    Why: glibc keeps freed blocks in its heap, so streaming many batches through ScDiVa grows resident
    memory with the cells processed (9.7 GB at 1M cells, docs/scale.md) although no batch is kept.
    Trimming after every few tens of batches bounded a 1M-cell embedding at 867 MB with no slowdown,
    where a fixed mmap threshold (:func:`return_freed_memory`) cost time in page faults. Returns False
    where it cannot run (not glibc); nothing else changes.
    """
    libc = _glibc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return False
    libc.malloc_trim(0)
    return True


def return_freed_memory(threshold_bytes: int = 1 << 20) -> bool:
    """Serve allocations above ``threshold_bytes`` by mmap, so memory freed after each batch goes back to the OS.

    Why: glibc raises its mmap threshold as large blocks are freed, after which a batch's tensors come
    from the heap, which it keeps: streaming 1M cells through ScDiVa grew to 9.7 GB resident although
    every batch is freed (docs/scale.md). Fixing the threshold keeps resident memory flat. Returns
    False where it cannot be set (not glibc); nothing else changes.
    """
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(-3, int(threshold_bytes)))  # -3: M_MMAP_THRESHOLD
