"""A job's process keeps freed memory for reuse (scdiva.bench.core.memory)."""

import subprocess
import sys

import pytest

# allocate and free 20 blocks of 2 MiB, 15 times; the last 10 rounds' page faults per round
_ROUNDS = """
import resource, sys
import numpy as np
from scdiva.bench.core.memory import keep_freed_memory
if sys.argv[1] == "fixed":
    assert keep_freed_memory()
def round_():
    blocks = [np.ones(1 << 19, np.float32) for _ in range(20)]
    del blocks
for _ in range(5):
    round_()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    round_()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


def _faults_per_round(mode: str) -> float:
    run = subprocess.run([sys.executable, "-c", _ROUNDS, mode], capture_output=True, text=True, check=True)
    return float(run.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")
def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    # glibc's own thresholds hand the 40 MiB back each round and fault all of it in again next round
    assert _faults_per_round("default") > 5_000
    assert _faults_per_round("fixed") < 100
