"""Stage a dataset (local path, ``file://`` or ``http(s)://`` URL) into the workflow, verified.

Staging is atomic: data goes to a ``.part`` file beside the destination and is renamed only once
its sha256 digest checks out, so a destination file always is the complete, verified dataset.
HTTP downloads resume an interrupted ``.part`` file with a ``Range`` request. A URL without a
configured digest gets the digest of its first download recorded in a lock file
(``sha256.lock.json``), and later downloads must match it (trust on first use).
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from scdiva.bench.core.io import default_file_mode, sha256_of

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
HTTP_TIMEOUT_S = 60.0


class DownloadError(RuntimeError):
    """A dataset could not be staged (missing, unreachable or failing its checksum)."""


class ChecksumMismatchError(DownloadError):
    """The staged bytes do not have the expected sha256 digest."""


@dataclass(frozen=True)
class Source:
    """Where a dataset comes from: a local ``path`` or a remote ``url`` (exactly one is set)."""

    path: Path | None = None
    url: str | None = None

    @property
    def is_remote(self) -> bool:
        return self.url is not None

    def __str__(self) -> str:
        return self.url if self.url is not None else str(self.path)


def resolve_source(source: str, base_dir: str | os.PathLike[str]) -> Source:
    """Interpret a config ``source``: http(s) URL, ``file://`` URL, or a path.

    Relative paths resolve against ``base_dir`` (the repository root), not the working
    directory, so ``snakemake --directory elsewhere`` finds the same file.
    """
    parsed = urlparse(source)
    if parsed.scheme in ("http", "https"):
        return Source(url=source)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise DownloadError(f"file:// URL {source!r} names host {parsed.netloc!r}; use file:///absolute/path")
        return Source(path=Path(unquote(parsed.path)))
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter: a Windows drive, not a scheme
        raise DownloadError(
            f"unsupported source {source!r}: use a local path, a file:// URL or an http(s):// URL"
        )
    path = Path(source).expanduser()
    return Source(path=path if path.is_absolute() else Path(base_dir) / path)


# --- lock file -------------------------------------------------------------------------------


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock so parallel download jobs do not lose each other's entries."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path.with_name(lock_path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_lock(lock_path: str | os.PathLike[str]) -> dict[str, str]:
    """Recorded digests, source URL -> sha256 (empty when the lock file does not exist)."""
    lock_path = Path(lock_path)
    if not lock_path.exists():
        return {}
    try:
        entries = json.loads(lock_path.read_text())
    except json.JSONDecodeError as err:
        raise DownloadError(
            f"lock file {lock_path} is not valid JSON ({err}); delete it to record the digests again"
        ) from err
    return {str(url): str(entry["sha256"]) for url, entry in entries.items()}


def record_digest(lock_path: str | os.PathLike[str], url: str, sha256: str) -> None:
    """Add or replace the digest recorded for ``url``; the lock file is rewritten atomically."""
    lock_path = Path(lock_path)
    with _exclusive(lock_path):
        entries = json.loads(lock_path.read_text()) if lock_path.exists() else {}
        entries[url] = {"sha256": sha256}
        _atomic_write_text(lock_path, json.dumps(entries, indent=2, sort_keys=True) + "\n")


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, default_file_mode())  # mkstemp's 0600 -> the umask's usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- transfer ---------------------------------------------------------------------------------


def _progress(total: int | None, initial: int, desc: str):
    # deferred: imports tqdm (this module is imported at workflow parse time)
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=desc)


def _copy_local(path: Path, part: Path) -> None:
    # A copy, not a hardlink: a hardlink shares the inode, so editing the source in place would
    # silently change the staged, already verified file.
    if not path.is_file():
        raise DownloadError(
            f"dataset file {path} does not exist; check `source` in the config "
            "(relative paths are relative to the repository root)"
        )
    with open(path, "rb") as src, open(part, "wb") as dst, _progress(path.stat().st_size, 0, path.name) as bar:
        for chunk in iter(lambda: src.read(CHUNK_BYTES), b""):
            dst.write(chunk)
            bar.update(len(chunk))
    shutil.copystat(path, part)


def _download_http(url: str, part: Path, timeout: float = HTTP_TIMEOUT_S) -> None:
    """Download ``url`` into ``part``, resuming from its current size when the server allows it."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "scdiva-bench"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:
            # Range beyond the end: the partial file already holds every byte; the digest decides.
            logger.info("%s: %s already complete (%d bytes)", url, part.name, have)
            return
        raise DownloadError(f"downloading {url} failed: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise DownloadError(
            f"cannot reach {url} ({err}); check the URL and the network, or download the file "
            "yourself and set `source` to its local path"
        ) from err
    with response:
        # Append only if the server answers with exactly the bytes that follow the partial file.
        content_range = response.headers.get("Content-Range", "")
        resumed = have > 0 and response.status == 206 and content_range.startswith(f"bytes {have}-")
        if have and not resumed:
            if response.status == 206:  # a partial answer for another range: ask for everything
                response.close()
                part.unlink()
                return _download_http(url, part, timeout)
            logger.info("%s: server ignored the Range request; downloading from the start", url)
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        if resumed:
            logger.info("%s: resuming at byte %d", url, have)
        with open(part, "ab" if resumed else "wb") as handle, _progress(total, have, Path(url).name) as bar:
            try:
                for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                    handle.write(chunk)
                    bar.update(len(chunk))
            except (http.client.HTTPException, OSError) as err:
                raise DownloadError(
                    f"download of {url} was interrupted after {handle.tell()} bytes ({err!r}); "
                    f"run again to resume it from {part}"
                ) from err
    if total is not None and part.stat().st_size != total:
        raise DownloadError(
            f"download of {url} was interrupted after {part.stat().st_size} of {total} bytes; "
            f"run again to resume it from {part}"
        )


def stage_dataset(
    source: str,
    destination: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    lock_file: str | os.PathLike[str] | None = None,
    base_dir: str | os.PathLike[str] = ".",
    dataset: str | None = None,
    check: Callable[[Path], object] | None = None,
) -> str:
    """Copy or download ``source`` to ``destination`` atomically and verify it; returns its sha256.

    ``sha256`` is the expected digest. Without it, a URL's digest is looked up in (and on the
    first download recorded in) ``lock_file``; local files without a digest are not checked.
    ``dataset`` only makes error messages name the config entry. ``check`` (e.g. reading the
    file's obs keys) runs on the complete download before it is staged or its digest recorded;
    if it raises, the download is discarded.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    part = destination.with_name(destination.name + ".part")
    resolved = resolve_source(source, base_dir)
    label = f"dataset {dataset!r}" if dataset else "dataset"
    config_key = f"datasets.{dataset}.sha256" if dataset else "sha256"

    expected = sha256.lower() if sha256 else None
    recorded = False
    if expected is None and resolved.is_remote and lock_file is not None:
        expected = read_lock(lock_file).get(resolved.url)
        recorded = expected is not None

    if resolved.is_remote:
        _download_http(resolved.url, part)
    else:
        _copy_local(resolved.path, part)

    actual = sha256_of(part)
    if expected is not None and actual != expected:
        part.unlink(missing_ok=True)  # a corrupt partial file must not be resumed
        where = f"recorded in {lock_file}" if recorded else f"set in `{config_key}`"
        raise ChecksumMismatchError(
            f"sha256 mismatch for {label} from {resolved}:\n"
            f"  expected {expected} ({where})\n"
            f"  actual   {actual}\n"
            "The file is corrupt or has changed at its source. If you trust the new file, set "
            f"`{config_key}: {actual}`"
            + (f" (and remove its entry from {lock_file})" if recorded else "")
            + "; otherwise run again to fetch it anew."
        )
    if check is not None:
        try:
            check(part)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    os.replace(part, destination)
    if expected is None and resolved.is_remote and lock_file is not None:
        record_digest(lock_file, resolved.url, actual)
        logger.info("recorded sha256 %s for %s in %s", actual, resolved.url, lock_file)
    logger.info("staged %s from %s -> %s (sha256 %s)", label, resolved, destination, actual)
    return actual
