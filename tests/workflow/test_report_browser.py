"""The HTML report in a real headless browser (Debian's `chromium`, installed by .ci/run).

Chromium is driven through the DevTools protocol over a pipe (`--remote-debugging-pipe`: commands
on file descriptor 3, answers on 4), so no extra Python package is needed. The report of the
session's smoke run must render without console errors or uncaught exceptions, every image must
load, the scIB and paper-claims tables must be there, and no table cell may show a raw Python
value such as a tuple `('pbmc_3chem', 'harmony')`.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("SCDIVA_REQUIRE_BROWSER"),
    reason="chromium not installed (apt-get install chromium; .ci/run installs it)",
)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--remote-debugging-pipe", "--window-size=1280,1000"]

# What the page reports about itself once loaded (run in the page).
PAGE_FACTS = """JSON.stringify({
  images: Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth})),
  headings: Array.from(document.querySelectorAll('h2, h3')).map(h => h.textContent.trim()),
  tables: Array.from(document.querySelectorAll('table')).map(t => ({
    header: Array.from(t.querySelectorAll('th')).map(c => c.textContent.trim()),
    cells: Array.from(t.querySelectorAll('td')).map(c => c.textContent.trim())})),
})"""


class Browser:
    """A headless Chromium with a DevTools session on one page, over a pipe."""

    def __init__(self, timeout: float = 60.0):
        self.timeout = timeout
        self.events: list[dict] = []
        self._next_id = 0
        commands_r, self._commands_w = os.pipe()
        self._answers_r, answers_w = os.pipe()
        self.profile = tempfile.mkdtemp(prefix="scdiva-chromium-")

        def map_fds():  # in the child: the protocol reads commands on fd 3 and writes answers on fd 4
            commands, answers = os.dup(commands_r), os.dup(answers_w)  # safe even if either is 3 or 4
            os.dup2(commands, 3)  # dup2 makes them inheritable; every other descriptor closes on exec
            os.dup2(answers, 4)

        self.proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                     close_fds=False, preexec_fn=map_fds,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(commands_r)
        os.close(answers_w)
        self._buffer = b""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self._answers_r, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, session: bool = False, **params) -> dict:
        self._next_id += 1
        request = {"id": self._next_id, "method": method, "params": params}
        if session:
            request["sessionId"] = self.session
        os.write(self._commands_w, json.dumps(request).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._read_message(deadline)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def wait_for(self, event: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not any(e.get("method") == event for e in self.events):
            self.events.append(self._read_message(deadline))

    def open(self, path: Path) -> None:
        self.call("Page.navigate", session=True, url=path.resolve().as_uri())
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        return result["result"]["value"]

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors (failed loads) seen so far."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                found.append(f"exception: {details.get('text')} "
                             f"{details.get('exception', {}).get('description', '')}".strip())
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        return found

    def screenshot(self, path: Path) -> None:
        """PNG of the viewport (1280 x 1000, `--window-size`) at the current scroll position."""
        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._commands_w)
        os.close(self._answers_r)
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture
def browser():
    if CHROMIUM is None:
        pytest.fail("SCDIVA_REQUIRE_BROWSER is set but chromium is not installed (apt-get install chromium)")
    instance = Browser()
    yield instance
    instance.close()


def test_browser_sees_console_errors_and_broken_images(browser, tmp_path):
    """The checks themselves: a page with an error, an exception and a broken image is caught."""
    page = tmp_path / "bad.html"
    page.write_text('<html><body><img alt="broken" src="data:image/png;base64,AAAA">'
                    "<script>console.error('boom'); undefinedFunction();</script></body></html>")
    browser.open(page)
    facts = json.loads(browser.evaluate(PAGE_FACTS))
    assert facts["images"] == [{"alt": "broken", "complete": True, "width": 0}]
    errors = browser.errors()
    assert any("console: boom" in e for e in errors) and any("undefinedFunction" in e for e in errors)


@pytest.mark.slow
def test_report_renders_cleanly_in_chromium(smoke_run, browser, tmp_path):
    report = smoke_run.workdir / "results" / "report" / "index.html"
    browser.open(report)
    facts = json.loads(browser.evaluate(PAGE_FACTS))
    assert browser.errors() == []
    assert len(facts["images"]) >= 4
    broken = [i["alt"] for i in facts["images"] if not (i["complete"] and i["width"] > 0)]
    assert broken == [], f"images that did not load: {broken}"
    headings = facts["headings"]
    assert any(h.startswith("Integration: pbmc_3chem") for h in headings)  # the scIB table's section
    assert "Paper claims vs this run" in headings
    headers = [" | ".join(t["header"]) for t in facts["tables"]]
    assert any("total_score" in h and "batch_score" in h for h in headers), headers  # scIB aggregates
    assert any("kBET" in h and "iLISI" in h and "Graph connectivity" in h for h in headers), headers  # all metrics
    assert any("claimed (paper)" in h for h in headers), headers
    raw = [c for t in facts["tables"] for c in t["cells"] if c.startswith(("(", "[", "{")) and "'" in c]
    assert raw == [], f"table cells with raw Python values: {raw[:5]}"
    # The scIB section as a reader sees it (docs/images/report.png is made this way:
    # SCDIVA_REPORT_SCREENSHOT=docs/images/report.png pytest -k renders_cleanly).
    browser.evaluate("Array.from(document.querySelectorAll('h2'))"
                     ".find(h => h.textContent.startsWith('Integration: pbmc_3chem')).scrollIntoView()")
    shot = Path(os.environ.get("SCDIVA_REPORT_SCREENSHOT") or tmp_path / "report.png")
    browser.screenshot(shot)
    assert shot.stat().st_size > 10_000


COVERAGE_FACTS = """JSON.stringify(Array.from(document.querySelectorAll('table.coverage td')).map(td => ({
  text: td.textContent.trim(), title: td.title, background: getComputedStyle(td).backgroundColor})))"""


def test_coverage_matrix_is_coloured_by_status_in_chromium(browser, tmp_path):
    """A report with one failed and one completed method: the matrix cells show each status in words and
    colour, and hovering a cell (its title) gives each seed's wall time, peak RSS and reason."""
    import pandas as pd

    from scdiva.bench.report import write_report
    from scdiva.bench.report.coverage import coverage_section

    reason = "MethodError: integration method 'broken' (entry point builtins:print) failed: TypeError"
    runs = pd.DataFrame([("pbmc_3chem", "integration", "harmony", s, "ok", "", 14.2, 845.0, 400, 28.2) for s in (0, 1)]
                        + [("pbmc_3chem", "integration", "broken", s, "failed", reason, 3.1, 310.0, 400, float("nan"))
                           for s in (0, 1)],
                        columns=["dataset", "task", "method", "seed", "status", "reason", "wall_s", "peak_rss_mb",
                                 "n_cells", "cells_per_s"])
    _, page = write_report([coverage_section(runs)], tmp_path / "report")
    browser.open(page)
    cells = {c["text"]: c for c in json.loads(browser.evaluate(COVERAGE_FACTS))}
    assert browser.errors() == []
    assert cells["ok 2/2"]["background"] == "rgb(200, 230, 201)"  # green
    assert cells["failed 2/2"]["background"] == "rgb(255, 205, 210)"  # red
    assert cells["failed 2/2"]["title"].startswith(f"seed 0: failed, 3.1 s, 310 MB peak RSS – {reason}\nseed 1:")
    assert cells["ok 2/2"]["title"] == "seed 0: ok, 14.2 s, 845 MB peak RSS\nseed 1: ok, 14.2 s, 845 MB peak RSS"
    # What the reader sees (SCDIVA_COVERAGE_SCREENSHOT=path pytest -k coverage_matrix keeps the picture).
    shot = Path(os.environ.get("SCDIVA_COVERAGE_SCREENSHOT") or tmp_path / "coverage.png")
    browser.screenshot(shot)
    assert shot.stat().st_size > 5_000
