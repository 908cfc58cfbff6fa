"""Command methods are bounded (scdiva.bench.methods.catalog): their temporary copy of the data is
removed on success, failure and SIGTERM (the command's processes stopped, in the process group of the
Python that started them); their stderr tail goes to the job log; a template that quotes a placeholder
itself is refused when the config is read, with the fix."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from scdiva.bench.api import annotate, integrate
from scdiva.bench.core.sampling import split_reference_query
from scdiva.bench.methods.external import record_from_config
from scdiva.bench.methods.record import MethodConfigError, MethodError

BATCH = "donor"


# --- templates that quote a placeholder themselves ------------------------------------------------------


@pytest.mark.parametrize(("command", "shown"), [
    ("prog {input} {output} --labels '{label_key}'", "'{label_key}'"),
    ('prog "{input}" {output}', '"{input}"'),
    ('prog {input} {output} --opt="--key={batch_key}"', '"{batch_key}"'),
    ("prog 'x' {input} {output} \"y {seed}\"", '"{seed}"'),  # inside quotes after a quoted word
])
def test_a_placeholder_inside_quotes_is_refused_with_the_fix(command, shown):
    with pytest.raises(MethodConfigError, match="remove the quotes: the harness quotes every value") as err:
        record_from_config("quoted", {"command": command})
    message = str(err.value)
    assert message.startswith("method 'quoted': config `methods.quoted.command`") and shown in message
    assert "\n" not in message


@pytest.mark.parametrize("command", [
    "prog {input} {output} --labels {label_key}",
    "prog {input} {output} --name 'fixed text' {seed}",  # quotes around literal text only
    "sh -c 'exit 0' && prog {input} {output}",
    "prog 'a '{seed}' b' {input} {output}",  # between two quoted words, not inside one
    "prog {input} {output} \\'{threads}",  # an escaped quote opens nothing
    "prog {{literal}} {input} {output}",
])
def test_unquoted_placeholders_pass(command):
    assert record_from_config("fine", {"command": command}).kind == "command"


def test_annotation_template_checked_too():
    with pytest.raises(MethodConfigError, match=r"puts '\{label_key\}' inside quotes; remove the quotes"):
        record_from_config("q", {"task": "annotation", "command": "p {reference} {query} {output} '{label_key}'"})


def test_hostile_values_stay_quoted(pbmc_small, tmp_path, monkeypatch):
    """A label key that is shell code reaches the command as one literal argument."""
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "echo.py"
    script.write_text("import sys, anndata, numpy as np\n"
                      "a = anndata.read_h5ad(sys.argv[1])\n"
                      "open('argv.txt', 'w').write(sys.argv[3])\n"
                      "out = anndata.AnnData(obs=a.obs[[]]); out.obsm['X_emb'] = a.obsm['X_pca'][:, :2]\n"
                      "out.write_h5ad(sys.argv[2])\n")
    record = record_from_config("echo", {"command": f"{sys.executable} {script} {{input}} {{output}} {{label_key}}",
                                         "needs_labels": True})
    hostile = "cell_type'; touch pwned; echo '$(touch pwned2)"
    data = pbmc_small.copy()
    data.obs[hostile] = data.obs["cell_type"]
    integrate(data, record, batch_key=BATCH, label_key=hostile, seed=0)
    assert (tmp_path / "argv.txt").read_text() == hostile
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()


# --- the temporary copy: removed on success and failure; stderr tail to the log ------------------------------


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """TMPDIR of this test only, so leftovers of the command's copy can be seen."""
    folder = tmp_path / "tmpdir"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


EMBED = textwrap.dedent("""
    import sys, anndata
    print("loading", sys.argv[1], file=sys.stderr)
    a = anndata.read_h5ad(sys.argv[1])
    if sys.argv[3] == "fail":
        print("step 1 of 2 done", file=sys.stderr)
        sys.exit("out of patience: giving up")
    out = anndata.AnnData(obs=a.obs[[]])
    out.obsm["X_emb"] = a.obsm["X_pca"][:, :3]
    out.write_h5ad(sys.argv[2])
    print("wrote the embedding", file=sys.stderr)
""")


@pytest.mark.parametrize("outcome", ["ok", "fail"])
def test_integration_copy_removed_and_stderr_tail_logged(pbmc_small, tmp_path, private_tmp, caplog, outcome):
    (tmp_path / "embed.py").write_text(EMBED)
    record = record_from_config("cli", {"command": f"{sys.executable} {tmp_path / 'embed.py'} {{input}} {{output}} "
                                                   f"{outcome}"})
    data = pbmc_small.copy()
    caplog.set_level(logging.INFO, logger="scdiva.bench.methods")  # the job log: the rule's log file and stderr
    if outcome == "ok":
        integrate(data, record, batch_key=BATCH, label_key="cell_type", seed=0)
        assert data.obsm["X_emb"].shape == (data.n_obs, 3)
        assert "wrote the embedding" in caplog.text
    else:
        with pytest.raises(MethodError) as err:
            integrate(data, record, batch_key=BATCH, label_key="cell_type", seed=0)
        message = str(err.value)
        assert "\n" not in message
        assert message == ("integration method 'cli': command failed with exit status 1; its last line of output: "
                           "out of patience: giving up (the command line and its output tail are in the job log)")
        log = caplog.text
        assert "integration method 'cli': last 3 lines of the command's stderr:\nloading " in log
        assert "step 1 of 2 done" in log and "out of patience: giving up" in log
    assert list(private_tmp.iterdir()) == []


def test_annotation_copy_removed_on_failure(pbmc_small, tmp_path, private_tmp, caplog):
    reference, query = split_reference_query(pbmc_small, batch_key=BATCH, label_key="cell_type",
                                             reference_batches=["3pv2", "5p"], query_batches=["3pv1"])
    record = record_from_config("cli_fail", {"task": "annotation", "command": f"{sys.executable} -c "
                                             "'import sys; sys.exit(\"no model for these genes\")' "
                                             "{reference} {query} {output}"})
    with pytest.raises(MethodError, match="annotation method 'cli_fail': command failed with exit status 1; its "
                                          "last line of output: no model for these genes"):
        annotate(record, reference, query, label_key="cell_type", batch_key=BATCH, timing_repeats=1)
    assert "annotation method 'cli_fail': last 1 lines of the command's stderr:\nno model for these genes" in caplog.text
    assert list(private_tmp.iterdir()) == []


def test_a_command_killed_by_a_signal_says_so(pbmc_small, tmp_path, private_tmp):
    record = record_from_config("killed", {"command": "kill -9 $$ # {input} {output}"})
    with pytest.raises(MethodError, match=r"integration method 'killed': command was killed by signal 9 \(SIGKILL\)"):
        integrate(pbmc_small.copy(), record, batch_key=BATCH, label_key="cell_type", seed=0)
    assert list(private_tmp.iterdir()) == []


# --- SIGTERM: a real job process, a real command, a real signal --------------------------------------------

SLOW_COMMAND = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    Path(sys.argv[3]).write_text(f"{os.getpid()} {os.getpgid(0)}")
    time.sleep(120)
""")

JOB = textwrap.dedent("""
    import sys
    import anndata as ad, numpy as np
    from scdiva.bench.api import integrate
    from scdiva.bench.methods.external import record_from_config
    script, pidfile = sys.argv[1], sys.argv[2]
    adata = ad.AnnData(X=np.ones((20, 5), dtype=np.float32))
    adata.obs["batch"] = ["a", "b"] * 10
    adata.obsm["X_pca"] = np.random.default_rng(0).normal(size=(20, 3))
    record = record_from_config("sleeper", {"command": f"{sys.executable} {script} {{input}} {{output}} {pidfile}"})
    integrate(adata, record, batch_key="batch", label_key=None, seed=0)
    print("not reached")
""")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.parametrize("target", ["process", "group"])
def test_sigterm_stops_the_command_and_removes_the_copy(tmp_path, target):
    """SIGTERM to the job's Python alone (a scheduler) or to its process group (the job supervisor):
    the command's process ends, the temporary copy is gone, the job ends by SIGTERM."""
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    (tmp_path / "slow.py").write_text(SLOW_COMMAND)
    (tmp_path / "job.py").write_text(JOB)
    pidfile = tmp_path / "command.pid"
    job = subprocess.Popen([sys.executable, str(tmp_path / "job.py"), str(tmp_path / "slow.py"), str(pidfile)],
                           env={**os.environ, "TMPDIR": str(tmpdir)}, start_new_session=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
            assert job.poll() is None, job.communicate()
            time.sleep(0.2)
        command_pid, command_pgid = map(int, pidfile.read_text().split())
        assert command_pgid == os.getpgid(job.pid)  # the supervisor's group kill reaches the command
        assert len(list(tmpdir.iterdir())) == 1  # the copy of the data exists while the command runs
        if target == "process":
            os.kill(job.pid, signal.SIGTERM)
        else:
            os.killpg(job.pid, signal.SIGTERM)
        out, err = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert job.returncode == -signal.SIGTERM, err
    assert "not reached" not in out
    deadline = time.monotonic() + 10
    while not _gone(command_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _gone(command_pid)
    assert list(tmpdir.iterdir()) == []


def test_sigterm_handler_is_restored(pbmc_small, tmp_path):
    """After a command method the process's own SIGTERM handler is back."""
    (tmp_path / "embed.py").write_text(EMBED)
    before = signal.getsignal(signal.SIGTERM)
    record = record_from_config("cli", {"command": f"{sys.executable} {tmp_path / 'embed.py'} {{input}} {{output}} ok"})
    integrate(pbmc_small.copy(), record, batch_key=BATCH, label_key="cell_type", seed=0)
    assert signal.getsignal(signal.SIGTERM) is before


def test_command_reads_no_labels_unless_declared(pbmc_small, tmp_path):
    """The command's {input} holds the batch column only; declared needs_labels it holds every column."""
    script = tmp_path / "cols.py"
    script.write_text("import sys, anndata\n"
                      "a = anndata.read_h5ad(sys.argv[1])\n"
                      "open(sys.argv[3], 'w').write(','.join(a.obs.columns))\n"
                      "out = anndata.AnnData(obs=a.obs[[]]); out.obsm['X_emb'] = a.obsm['X_pca'][:, :2]\n"
                      "out.write_h5ad(sys.argv[2])\n")
    for needs_labels in (False, True):
        cols = tmp_path / f"cols_{needs_labels}.txt"
        record = record_from_config("cols", {"command": f"{sys.executable} {script} {{input}} {{output}} {cols}",
                                             "needs_labels": needs_labels})
        integrate(pbmc_small.copy(), record, batch_key=BATCH, label_key="cell_type", seed=0)
        expected = list(pbmc_small.obs.columns) if needs_labels else [BATCH]
        assert cols.read_text().split(",") == expected
