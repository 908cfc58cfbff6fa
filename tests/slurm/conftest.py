"""The `slurm_cluster` fixture: a running local SLURM, or a skip (developers) / failure (CI).

Developers without root skip these tests (`pytest -m "not slurm"`, or they skip themselves when no
cluster runs). CI sets SCDIVA_REQUIRE_SLURM=1: then a missing cluster is started, and if that is
impossible the tests fail instead of silently skipping.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from slurm_harness import CLUSTER_SCRIPT, REQUIRE_SLURM, slurm_ready


def _unavailable(reason: str) -> None:
    if REQUIRE_SLURM:
        pytest.fail(f"SCDIVA_REQUIRE_SLURM=1 but SLURM is not available: {reason}", pytrace=False)
    pytest.skip(f"no local SLURM cluster ({reason}); start one with `sudo {CLUSTER_SCRIPT} start`")


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    if slurm_ready():
        return
    if not REQUIRE_SLURM:
        _unavailable("sinfo shows no idle node")
    if os.geteuid() != 0:
        _unavailable("starting it needs root")
    env = dict(os.environ, SCDIVA_SLURM_PLACEHOLDER_GPU="1")
    try:
        started = subprocess.run(
            [str(CLUSTER_SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=900
        )
    except subprocess.TimeoutExpired:
        _unavailable(f"{CLUSTER_SCRIPT} start took more than 15 minutes")
    if started.returncode != 0 or not slurm_ready():
        _unavailable(f"{CLUSTER_SCRIPT} start failed:\n{started.stderr[-3000:]}")
