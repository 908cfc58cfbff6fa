"""`snakemake --lint` is clean: rule files hold rules, functions live in common.smk and the stages' *_common.smk, no absolute paths."""

from __future__ import annotations

import subprocess
import sys


def test_snakemake_lint_is_clean(workflow_tools):
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "--snakefile", str(workflow_tools.repo / "Snakefile"),
                           "--configfile", str(workflow_tools.repo / "config" / "config.yaml")],
                          cwd=workflow_tools.repo, capture_output=True, text=True, env=workflow_tools.env(), timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "Lints for" not in output, output[-3000:]
