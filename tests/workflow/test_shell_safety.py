"""Nothing from the config reaches a shell unquoted.

Every value a `shell:` rule interpolates is quoted (`{x:q}`); names that become paths and shell words
(datasets, checkpoints) follow one pattern (config/schema.yaml `$defs/name`) and `recipe.tasks` is an
enum, so a hostile name or task stops the workflow at parse time with the key and the fix, and nothing
runs. The real run pretrains a recipe whose shell line is built from list values (`--tasks`,
`--max-steps`, the interpreter) to show the quoted line still works.
"""

from __future__ import annotations

import ast
import json
import string
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULE_FILES = sorted((REPO / "workflow" / "rules").glob("*.smk")) + [REPO / "Snakefile"]


def shell_templates(path: Path) -> list[tuple[int, str]]:
    """(line, template) of every `shell:` section of a rule file: its string literals, concatenated."""
    lines = path.read_text().splitlines()
    found = []
    for i, line in enumerate(lines):
        if line.strip().split("#")[0].strip() != "shell:":
            continue
        indent = len(line) - len(line.lstrip())
        body = []
        for following in lines[i + 1:]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            body.append(following.strip())
        found.append((i + 1, ast.literal_eval("(" + "\n".join(body) + ")")))
    return found


def test_every_shell_rule_quotes_every_value():
    templates = [(path, line, text) for path in RULE_FILES for line, text in shell_templates(path)]
    assert templates, "no shell: section found; the test would check nothing"
    unquoted = [
        f"{path.relative_to(REPO)}:{line}: {{{field}{':' + spec if spec else ''}}}"
        for path, line, text in templates
        for _, field, spec, _ in string.Formatter().parse(text)
        if field is not None and spec != "q"
    ]
    assert not unquoted, "shell values without :q\n" + "\n".join(unquoted)


def snakemake(workflow_tools, workdir: Path, overlay: dict, *extra: str) -> subprocess.CompletedProcess:
    configfile = workdir.parent / f"{workdir.name}.overlay.yaml"
    configfile.write_text(yaml.safe_dump(overlay))
    cmd = [*workflow_tools.command(workdir, configfile, cores=1), *extra]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=workflow_tools.env(), timeout=300)


def recipe(**extra) -> dict:
    return {"recipe": {"size": "tiny", "datasets": "all", "max_steps": 2, "batch_size": 64, **extra}}


HOSTILE = {
    "checkpoint name runs a command": (
        {"checkpoints": {"tiny$(touch pwned)": recipe()}},
        ["invalid config at `checkpoints.tiny$(touch pwned)`: the name 'tiny$(touch pwned)' may hold only "
         "letters, digits, '_', '.' and '-'", "Rename it, e.g. to 'tiny_touch_pwned'"],
    ),
    "checkpoint name with a space": (
        {"checkpoints": {"tiny x": recipe()}},
        ["invalid config at `checkpoints.tiny x`: the name 'tiny x'", "Rename it, e.g. to 'tiny_x'"],
    ),
    "recipe task runs a command": (
        {"checkpoints": {"scdiva_tiny": recipe(tasks=["masked_expression", "integration $(touch pwned)"])}},
        ["invalid config at `checkpoints.scdiva_tiny.recipe.tasks.1`: 'integration $(touch pwned)' is not one "
         "of ['masked_expression', 'integration']"],
    ),
    "dataset name runs a command": (
        {"datasets": {"pbmc$(touch pwned)": {"source": "data/pbmc_3chem_symphony.h5ad", "batch_key": "donor",
                                             "label_key": "cell_type"}}},
        ["invalid config at `datasets.pbmc$(touch pwned)`", "Rename it, e.g. to 'pbmc_touch_pwned'"],
    ),
}


@pytest.mark.parametrize(("case", "mode"), [(case, "dry run") for case in HOSTILE] + [
    ("checkpoint name runs a command", "real run"), ("recipe task runs a command", "real run")])
def test_hostile_names_stop_at_parse_time(workflow_tools, tmp_path, case, mode):
    overlay, fragments = HOSTILE[case]
    workdir = tmp_path / "w"
    workdir.mkdir()
    (workdir / "x.partial").write_text("a file a split path would remove\n")
    name = next(iter(overlay.get("checkpoints", {})), None)
    targets = [f"resources/checkpoints/{name}/config.json"] if name else []  # else the default target
    extra = ["-n"] if mode == "dry run" else []
    proc = snakemake(workflow_tools, workdir, overlay, *extra, "--", *targets)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    for fragment in fragments:
        assert fragment in output, f"{fragment!r} not in Snakemake's output:\n{output[-3000:]}"
    assert "Shell command" not in output and "Job stats" not in output, output[-3000:]
    assert not (workdir / "pwned").exists() and (workdir / "x.partial").exists()
    assert not (workdir / "resources").exists() and not (workdir / "results").exists()


@pytest.mark.slow
def test_recipe_pretrains_through_the_quoted_shell_line(workflow_tools, tmp_path):
    """A recipe with '.' and '-' in its name, one task and max_steps: the quoted line runs and lands."""
    workdir = tmp_path / "w"
    workdir.mkdir()
    proc = snakemake(workflow_tools, workdir, {"checkpoints": {"tiny.v1-a": recipe(tasks=["integration"])}},
                     "--", "resources/checkpoints/tiny.v1-a/config.json")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    line = next(x for x in output.splitlines() if "scdiva.cli train" in x)
    assert "--tasks integration --batch-key batch --max-steps 2 --batch-size 64 --seed 0" in line
    assert "--data results/checkpoints/tiny.v1-a/corpus/pbmc_3chem.h5ad" in line
    out = workdir / "resources" / "checkpoints"
    assert sorted(p.name for p in (out / "tiny.v1-a").iterdir()) == ["config.json", "model.safetensors",
                                                                        "vocab.json"]
    assert [p.name for p in out.iterdir()] == ["tiny.v1-a"]  # the staging directory was moved, not left
    history = json.loads((workdir / "results" / "logs" / "pretrain" / "tiny.v1-a.history.json").read_text())
    assert len(history) == 2 and all("loss_integration" in step and "loss_masked_expression" not in step
                                     for step in history)  # the recipe's one task, 2 steps
