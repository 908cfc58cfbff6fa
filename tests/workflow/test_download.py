"""Staging datasets: local paths, file:// URLs and real HTTP downloads (resume, checksums, lock file)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anndata
import pytest
import yaml

from scdiva.bench.core.download import (
    ChecksumMismatchError,
    DownloadError,
    read_lock,
    resolve_source,
    sha256_of,
    stage_dataset,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
PBMC = REPO_ROOT / "data" / "pbmc_3chem_symphony.h5ad"
PBMC_SHA256 = "ac9987e219aa5eafa969e92739ba2c6f37d081d889aa3cbb15228de38758c0eb"


class FileServer:
    """A real HTTP server on 127.0.0.1 serving ``payload`` at /data.h5ad.

    ``ranges``: honour ``Range: bytes=N-`` with 206 (else ignore it and send 200 with everything);
    ``cut_after``: send only this many bytes of the body, then drop the connection (an interrupted
    download). Records the Range header of every request in ``range_headers``.
    """

    def __init__(self, payload: bytes, *, ranges: bool = True, misaligned: bool = False):
        self.payload = payload
        self.ranges = ranges
        self.misaligned = misaligned  # answer a Range request with 206 from byte 0 (a buggy server)
        self.cut_after: int | None = None
        self.range_headers: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                header = self.headers.get("Range")
                server.range_headers.append(header)
                body, status = server.payload, 200
                start = 0
                if header and server.ranges:
                    start = 0 if server.misaligned else int(header.removeprefix("bytes=").split("-")[0])
                    if start >= len(server.payload):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(server.payload)}")
                        self.end_headers()
                        return
                    body, status = server.payload[start:], 206
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(server.payload) - 1}/{len(server.payload)}")
                self.end_headers()
                if server.cut_after is not None:
                    self.wfile.write(body[: server.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/data.h5ad"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def payload() -> bytes:
    return PBMC.read_bytes()


@pytest.fixture
def server(payload: bytes) -> Iterator[FileServer]:
    with FileServer(payload) as srv:
        yield srv


def test_embedded_file_matches_config_digest():
    assert sha256_of(PBMC) == PBMC_SHA256


def test_relative_path_resolves_against_base_dir_not_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = resolve_source("data/pbmc_3chem_symphony.h5ad", REPO_ROOT)
    assert source.path == REPO_ROOT / "data" / "pbmc_3chem_symphony.h5ad"
    assert resolve_source(f"file://{PBMC}", tmp_path).path == PBMC
    assert resolve_source("https://example.org/x.h5ad", tmp_path).url == "https://example.org/x.h5ad"
    with pytest.raises(DownloadError, match="unsupported source"):
        resolve_source("s3://bucket/x.h5ad", tmp_path)


@pytest.mark.parametrize("form", ["relative", "absolute", "file_url"])
def test_local_sources_are_copied_and_verified(tmp_path, monkeypatch, form):
    monkeypatch.chdir(tmp_path)  # the working directory must not matter
    source = {
        "relative": "data/pbmc_3chem_symphony.h5ad",
        "absolute": str(PBMC),
        "file_url": PBMC.as_uri(),
    }[form]
    dest = tmp_path / "staged" / "pbmc.h5ad"
    digest = stage_dataset(source, dest, sha256=PBMC_SHA256, base_dir=REPO_ROOT)
    assert digest == PBMC_SHA256
    assert dest.read_bytes() == PBMC.read_bytes()
    assert not dest.stat().st_ino == PBMC.stat().st_ino  # a copy, not a link to the source
    assert list(dest.parent.iterdir()) == [dest]  # no .part left behind


def test_missing_local_file_names_the_path(tmp_path):
    with pytest.raises(DownloadError, match=r"does not exist.*check `source`"):
        stage_dataset("data/nope.h5ad", tmp_path / "x.h5ad", base_dir=REPO_ROOT)
    assert not (tmp_path / "x.h5ad").exists()


def test_local_checksum_mismatch_leaves_nothing(tmp_path):
    wrong = "0" * 64
    with pytest.raises(ChecksumMismatchError) as err:
        stage_dataset(str(PBMC), tmp_path / "x.h5ad", sha256=wrong, dataset="pbmc")
    message = str(err.value)
    assert wrong in message and PBMC_SHA256 in message  # expected and actual digest
    assert "datasets.pbmc.sha256" in message and str(PBMC) in message  # the config key and the file
    assert list(tmp_path.iterdir()) == []


def test_http_download_is_complete_and_readable(tmp_path, server):
    dest = tmp_path / "x.h5ad"
    assert stage_dataset(server.url, dest, sha256=PBMC_SHA256) == PBMC_SHA256
    assert server.range_headers == [None]
    adata = anndata.read_h5ad(dest)
    assert adata.shape == (1200, 1767)


def test_interrupted_http_download_resumes_with_range(tmp_path, server, payload):
    dest = tmp_path / "x.h5ad"
    part = tmp_path / "x.h5ad.part"
    server.cut_after = len(payload) // 3
    with pytest.raises(DownloadError, match="interrupted.*run again to resume"):
        stage_dataset(server.url, dest, sha256=PBMC_SHA256)
    assert not dest.exists()
    assert part.read_bytes() == payload[: len(payload) // 3]

    server.cut_after = None
    assert stage_dataset(server.url, dest, sha256=PBMC_SHA256) == PBMC_SHA256
    assert server.range_headers[-1] == f"bytes={len(payload) // 3}-"
    assert dest.read_bytes() == payload
    assert not part.exists()


def test_complete_part_file_is_verified_not_downloaded_again(tmp_path, server, payload):
    (tmp_path / "x.h5ad.part").write_bytes(payload)
    assert stage_dataset(server.url, tmp_path / "x.h5ad", sha256=PBMC_SHA256) == PBMC_SHA256
    assert server.range_headers == [f"bytes={len(payload)}-"]  # answered 416: nothing left to fetch


def test_server_without_range_support_restarts_from_scratch(tmp_path, payload):
    (tmp_path / "x.h5ad.part").write_bytes(b"stale bytes from another file")
    with FileServer(payload, ranges=False) as srv:
        assert stage_dataset(srv.url, tmp_path / "x.h5ad", sha256=PBMC_SHA256) == PBMC_SHA256
    assert (tmp_path / "x.h5ad").read_bytes() == payload


def test_partial_answer_for_another_range_is_not_appended(tmp_path, payload):
    (tmp_path / "x.h5ad.part").write_bytes(payload[:1000])
    with FileServer(payload, misaligned=True) as srv:
        assert stage_dataset(srv.url, tmp_path / "x.h5ad", sha256=PBMC_SHA256) == PBMC_SHA256
    assert srv.range_headers == ["bytes=1000-", None]  # then asked again for the whole file
    assert (tmp_path / "x.h5ad").read_bytes() == payload


def test_http_checksum_mismatch_discards_the_download(tmp_path, server):
    with pytest.raises(ChecksumMismatchError, match="sha256 mismatch"):
        stage_dataset(server.url, tmp_path / "x.h5ad", sha256="f" * 64)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a .part that a rerun would resume


def test_unreachable_url_says_what_to_do(tmp_path):
    with FileServer(b"") as srv:
        url = srv.url
    with pytest.raises(DownloadError, match="cannot reach"):
        stage_dataset(url, tmp_path / "x.h5ad")


def test_url_without_digest_is_recorded_then_enforced(tmp_path, payload):
    lock = tmp_path / "sha256.lock.json"
    with FileServer(payload) as srv:
        first = stage_dataset(srv.url, tmp_path / "a.h5ad", lock_file=lock)
        assert first == PBMC_SHA256
        assert read_lock(lock) == {srv.url: PBMC_SHA256}
        assert json.loads(lock.read_text())[srv.url]["sha256"] == PBMC_SHA256
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5ad", "sha256.lock.json", "sha256.lock.json.lock"]

        srv.payload = payload[:-10] + b"0123456789"  # the file at the URL changes
        with pytest.raises(ChecksumMismatchError) as err:
            stage_dataset(srv.url, tmp_path / "b.h5ad", lock_file=lock, dataset="pbmc")
    assert str(lock) in str(err.value) and PBMC_SHA256 in str(err.value)
    assert hashlib.sha256(srv.payload).hexdigest() in str(err.value)
    assert not (tmp_path / "b.h5ad").exists()
    assert read_lock(lock) == {srv.url: PBMC_SHA256}  # the recorded digest is not overwritten


def test_lock_file_keeps_entries_of_other_urls(tmp_path, payload):
    lock = tmp_path / "sha256.lock.json"
    lock.write_text(json.dumps({"https://example.org/other.h5ad": {"sha256": "a" * 64}}))
    with FileServer(payload) as srv:
        stage_dataset(srv.url, tmp_path / "a.h5ad", lock_file=lock)
    assert read_lock(lock) == {"https://example.org/other.h5ad": "a" * 64, srv.url: PBMC_SHA256}


@pytest.mark.slow  # two real download jobs
def test_download_rule_records_and_enforces_url_digest(tmp_path, payload):
    """Through the Snakemake CLI: a URL without sha256 is recorded in the lock file, then enforced."""

    def stage(url: str) -> subprocess.CompletedProcess:
        overlay = tmp_path / "web.yaml"
        overlay.write_text(yaml.safe_dump(
            {"datasets": {"web_pbmc": {"source": url, "batch_key": "donor", "label_key": "cell_type"}}}
        ))
        cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO_ROOT / "Snakefile"),
               "--directory", str(tmp_path), "--cores", "1", "resources/datasets/web_pbmc.h5ad",
               "--configfile", str(overlay)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    staged = tmp_path / "resources" / "datasets" / "web_pbmc.h5ad"
    lock = tmp_path / "resources" / "datasets" / "sha256.lock.json"
    with FileServer(payload) as srv:
        first = stage(srv.url)
        assert first.returncode == 0, first.stderr[-3000:]
        assert staged.read_bytes() == payload
        assert read_lock(lock) == {srv.url: PBMC_SHA256}

        staged.unlink()
        srv.payload = payload[:-10] + b"0123456789"
        second = stage(srv.url)
    assert second.returncode != 0
    assert "sha256 mismatch" in second.stderr and str(lock.name) in second.stderr
    assert not staged.exists()
