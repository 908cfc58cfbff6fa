"""Cluster resources that grow with a dataset's cells (scdiva.bench.core.resources) and their use in the rules."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from scdiva.bench.core.resources import SCALING, estimate, pretrain_estimate

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("stage", list(SCALING))
def test_estimates_grow_with_cells(stage):
    sizes = [0, 10_000, 100_000, 1_000_000]
    mem = [estimate(stage, n)["mem_mb"] for n in sizes]
    runtime = [estimate(stage, n)["runtime"] for n in sizes]
    assert mem == sorted(mem) and runtime == sorted(runtime)
    assert runtime[-1] > runtime[0] and mem[0] == SCALING[stage].base_mb


def test_preprocess_memory_is_linear_in_cells():
    s = SCALING["preprocess"]
    assert estimate("preprocess", 500_000)["mem_mb"] == s.base_mb + round(s.mb_per_1k * 500)


def test_unknown_stage_names_the_known_ones():
    with pytest.raises(KeyError, match="known: download, preprocess"):
        estimate("nope", 10)


def test_paper_config_plans_offline_with_jobs_sized_by_cells(tmp_path):
    """`snakemake -n --configfile config/paper.yaml` plans every paper dataset without the network, and
    the jobs of the 330K-cell atlas ask for more memory than those of the 16K-cell pancreas."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"),
                           "--directory", str(tmp_path), "--configfile", "config/paper.yaml", "--cores", "1",
                           "--printshellcmds"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for name in ("pbmc_hao", "immune_conde", "immune_scib", "covid_wilk", "pancreas_scib", "heart_hca", "brain_seaad"):
        assert f"results/{name}/preprocessed.h5ad" in out, name

    def preprocess_mem(dataset):
        block = out.split(f"output: results/{dataset}/preprocessed.h5ad", 1)[1].split("resources:", 1)[1]
        return int(block.split("mem_mb=", 1)[1].split(",", 1)[0])

    floor = 8000  # config/paper.yaml resources.default.mem_mb
    assert preprocess_mem("immune_conde") == max(floor, estimate("preprocess", 329_762)["mem_mb"])
    assert preprocess_mem("heart_hca") == max(floor, estimate("preprocess", 100_000)["mem_mb"])  # its subsample
    assert preprocess_mem("immune_conde") > preprocess_mem("pancreas_scib")

    # pretrain: sized by its corpus (every configured dataset's cells: `datasets: all`) and its 20,000 steps
    import yaml

    from scdiva.bench.core.formats import n_obs_of

    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    corpus = n_obs_of(REPO / "data" / "pbmc_3chem_symphony.h5ad") + sum(
        entry.get("subsample") or entry["expected_cells"] for entry in paper["datasets"].values())
    recipe = paper["checkpoints"]["scdiva_tiny"]["recipe"]
    block = out.split("rule pretrain:", 1)[1].split("resources:", 1)[1].split("\n", 1)[0]
    requested = {key: int(block.split(f"{key}=", 1)[1].split(",", 1)[0]) for key in ("mem_mb", "runtime")}
    needed = pretrain_estimate(corpus, max_steps=recipe["max_steps"], batch_size=recipe["batch_size"])
    assert requested == {"mem_mb": max(floor, needed["mem_mb"]), "runtime": needed["runtime"]}
    assert requested["mem_mb"] > floor  # the ~825K-cell corpus needs more than a dataset job's floor


def test_pretrain_request_grows_with_corpus_and_training_length():
    small, large = pretrain_estimate(10_000, max_epochs=30), pretrain_estimate(1_000_000, max_epochs=30)
    assert large["mem_mb"] > small["mem_mb"] and large["runtime"] > small["runtime"]
    assert pretrain_estimate(10_000)["runtime"] == small["runtime"]  # 30 epochs when the recipe says nothing
    # with max_steps, time follows the cells the steps see (steps x batch), memory the corpus
    steps = pretrain_estimate(10_000, max_steps=1000, batch_size=128)
    assert steps["runtime"] == pretrain_estimate(1_000_000, max_steps=1000, batch_size=128)["runtime"]
    assert steps["runtime"] < pretrain_estimate(10_000, max_steps=4000, batch_size=128)["runtime"]
    s = SCALING["pretrain"]
    assert steps["runtime"] == math.ceil(s.base_min + s.min_per_1k * 128)
    assert small["mem_mb"] == math.ceil(s.base_mb + s.mb_per_1k * 10)
