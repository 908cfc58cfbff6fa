"""Damaged sources fail clearly: a truncated or corrupted .h5ad.gz and a metadata table with repeated
barcodes (or a cut gzip) name the dataset, the config key and the fix, instead of a raw EOFError or
pandas' length mismatch. Real files: gzipped .h5ad cut on disk, 10x .h5 files, CSVs."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest
from test_bad_input import PBMC, assert_fails_cleanly, dataset_overlay, run_snakemake
from test_formats import _obs, write_10x_h5, write_cellxgene, write_metadata

from scdiva.bench.core.formats import detect_format, stage_as_h5ad
from scdiva.bench.core.validate import DatasetValidationError


def _gzipped_h5ad(tmp_path: Path) -> bytes:
    plain = tmp_path / "x.h5ad"
    write_cellxgene(plain)
    return gzip.compress(plain.read_bytes())


def _cut(data: bytes, how: str) -> bytes:
    if how == "half":  # an interrupted download
        return data[: len(data) // 2]
    if how == "header_only":  # cut inside the first deflate block: not even the HDF5 signature
        return data[:12]
    if how == "no_trailer":  # the whole stream but its CRC / length trailer
        return data[:-8]
    corrupt = bytearray(data)  # a flipped byte in the middle: bad deflate data or a CRC mismatch
    corrupt[len(data) // 2] ^= 0xFF
    return bytes(corrupt)


@pytest.mark.parametrize("how", ["half", "header_only", "no_trailer", "corrupt"])
def test_damaged_h5ad_gz_names_dataset_source_and_fix(tmp_path, how):
    source = tmp_path / "atlas.h5ad.gz"
    source.write_bytes(_cut(_gzipped_h5ad(tmp_path), how))
    out = tmp_path / "staged.h5ad"
    with pytest.raises(DatasetValidationError) as info:
        stage_as_h5ad(source, out, dataset="atlas")
    message = str(info.value)
    assert message.startswith(f"dataset 'atlas': source {source} (config `datasets.atlas.source`) is a "
                              "truncated or damaged gzip file ("), message
    assert "Fetch the complete file again" in message and "gzip -t" in message
    assert not out.exists() and list(tmp_path.glob(".staged*")) == []  # nothing half-written is left


def test_damaged_h5ad_gz_names_the_configured_source_when_staged_under_another_name(tmp_path):
    """The download rule checks a `.part` file; ``shown`` makes the message name the configured source."""
    part = tmp_path / "atlas.source.part"
    part.write_bytes(_cut(_gzipped_h5ad(tmp_path), "header_only"))
    with pytest.raises(DatasetValidationError, match=r"source https://example.org/atlas.h5ad.gz \(config "):
        detect_format(part, dataset="atlas", shown="https://example.org/atlas.h5ad.gz")
    part.write_bytes(_cut(_gzipped_h5ad(tmp_path), "half"))
    with pytest.raises(DatasetValidationError, match=r"source https://example.org/atlas.h5ad.gz \(config "):
        stage_as_h5ad(part, tmp_path / "o.h5ad", dataset="atlas", shown="https://example.org/atlas.h5ad.gz")


def test_metadata_with_repeated_barcodes_names_the_barcodes_and_the_fix(tmp_path):
    source = tmp_path / "filtered_feature_bc_matrix.h5"
    write_10x_h5(source)
    obs = _obs()
    repeated = pd.concat([obs, obs.iloc[[3, 3, 7]].assign(donor="d9")])  # a second sample's rows appended
    meta = tmp_path / "meta.csv"
    repeated.rename_axis("barcode").to_csv(meta)
    out = tmp_path / "staged.h5ad"
    with pytest.raises(DatasetValidationError) as info:
        stage_as_h5ad(source, out, dataset="tenx", metadata=meta)
    message = str(info.value)
    assert message.startswith(f"dataset 'tenx': 2 barcodes have more than one row in the metadata file {meta} "
                              "(config `datasets.tenx.metadata`, the cell table of `datasets.tenx.source`"), message
    assert "['AAAC0003-1', 'AAAC0007-1']" in message and "Keep one row per barcode" in message
    assert not out.exists()


def test_cut_gzipped_metadata_names_the_key(tmp_path):
    source = tmp_path / "m.h5"
    write_10x_h5(source)
    good = tmp_path / "meta.csv"
    write_metadata(good)
    meta = tmp_path / "meta.csv.gz"
    meta.write_bytes(gzip.compress(good.read_bytes())[:40])
    with pytest.raises(DatasetValidationError, match=r"dataset 'tenx': cannot read the metadata file .*meta\.csv\.gz "
                                                     r"\(config `datasets\.tenx\.metadata`.*EOFError"):
        stage_as_h5ad(source, tmp_path / "o.h5ad", dataset="tenx", metadata=meta)


@pytest.mark.slow  # a real Snakemake run (parse + the download job)
def test_truncated_h5ad_gz_source_fails_the_download_job_in_one_line(tmp_path):
    """As a new user meets it: `source:` a gzipped .h5ad whose download was cut. The download job
    fails with the message (no EOFError traceback) and nothing is staged or run after it."""
    source = tmp_path / "pbmc.h5ad.gz"
    with open(PBMC, "rb") as src, gzip.open(source, "wb") as dst:
        shutil.copyfileobj(src, dst)
    source.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    digest = hashlib.sha256(source.read_bytes()).hexdigest()  # the digest of what is there: the check passes
    proc = run_snakemake(tmp_path, dataset_overlay(source=str(source), sha256=digest), timeout=300)
    assert_fails_cleanly(proc, tmp_path, f"dataset 'pbmc_3chem': source {source} (config `datasets.pbmc_3chem.source`) "
                         "is a truncated or damaged gzip file (EOFError", "Fetch the complete file again",
                         started={"download"})
    log = (tmp_path / "results" / "logs" / "download" / "pbmc_3chem.log").read_text()
    assert "Traceback" not in log and "truncated or damaged gzip file" in log, log[-3000:]
    assert ".part" not in log, log[-3000:]  # the configured source is named, not the file being staged
    assert not list((tmp_path / "resources" / "datasets").glob("pbmc_3chem.h5ad*"))
