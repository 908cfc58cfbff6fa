"""Published checkpoints: fetched from a local path offline, every file checked by sha256."""

import pytest

from scdiva.bench.checkpoints.fetch import (
    CHECKPOINT_FILES,
    CheckpointError,
    fetch_checkpoint,
    sha256_of,
)


@pytest.fixture()
def published(tmp_path):
    source = tmp_path / "published"
    source.mkdir()
    for i, name in enumerate(CHECKPOINT_FILES):
        (source / name).write_bytes(f"file {i}".encode())
    return source, {name: sha256_of(source / name) for name in CHECKPOINT_FILES}


def test_fetch_from_local_path_verifies_each_file(published, tmp_path):
    source, digests = published
    out = fetch_checkpoint("demo", {"path": str(source), "sha256": digests}, tmp_path / "ckpt" / "demo")
    assert sorted(p.name for p in out.iterdir()) == sorted(CHECKPOINT_FILES)


def test_wrong_digest_leaves_nothing_behind(published, tmp_path):
    source, digests = published
    digests = {**digests, "vocab.json": "0" * 64}
    with pytest.raises(CheckpointError, match="vocab.json has sha256"):
        fetch_checkpoint("demo", {"path": str(source), "sha256": digests}, tmp_path / "ckpt" / "demo")
    assert list((tmp_path / "ckpt").iterdir()) == []


def test_source_must_be_one_and_pinned(published, tmp_path):
    _, digests = published
    with pytest.raises(CheckpointError, match="revision"):
        fetch_checkpoint("demo", {"repo": "org/model", "sha256": digests}, tmp_path / "x")
    with pytest.raises(CheckpointError, match="exactly one"):
        fetch_checkpoint("demo", {"sha256": digests}, tmp_path / "x")
