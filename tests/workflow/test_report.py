"""Report building blocks (sections, self-contained HTML) of the one report, results/report/index.html."""

from __future__ import annotations

import matplotlib
import pytest

from scdiva.bench.report import Section, load_sections, render_html, write_report

matplotlib.use("Agg")


@pytest.fixture
def figure(tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = tmp_path / "line.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def test_sections_from_other_rules_are_rendered_in_order(tmp_path, figure):
    Section("Annotation", "| a | b |\n|---|---|\n| 1 | 2 |", [str(figure)], order=50).to_json(tmp_path / "a.json")
    sections = [Section("Integration", "scores", order=20), *load_sections([tmp_path / "a.json"])]
    md_path, html_path = write_report(sections, tmp_path / "report")
    html = html_path.read_text()
    assert html.index("Integration") < html.index("Annotation")
    assert "<table>" in html and 'src="data:image/png;base64,' in html
    assert "../line.png" in md_path.read_text()


def test_bad_section_and_image_are_rejected(tmp_path):
    (tmp_path / "bad.json").write_text('{"heading": "x"}')
    with pytest.raises(ValueError, match="bad.json"):
        load_sections([tmp_path / "bad.json"])
    (tmp_path / "fig.tiff").write_bytes(b"x")
    with pytest.raises(ValueError, match="fig.tiff"):
        render_html([Section("x", figures=[str(tmp_path / "fig.tiff")])], "t")


def test_walltime_chart_sums_jobs_per_rule(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from scdiva.bench.report import figures
    from scdiva.bench.report.integration import benchmark_walltimes

    for rule, job, seconds in [("integrate", "d.scvi.seed0", 100.0), ("integrate", "d.scanvi.seed0", 20.5),
                               ("metrics", "d", 60.0)]:
        (tmp_path / "bench" / rule).mkdir(parents=True, exist_ok=True)
        (tmp_path / "bench" / rule / f"{job}.tsv").write_text(f"s\tmax_rss\n{seconds}\t100\n")
    jobs = benchmark_walltimes(tmp_path / "bench")
    bars = {}
    monkeypatch.setattr(figures, "_save", lambda fig, paths: bars.update(
        {b.get_y() + b.get_height() / 2: b.get_width() for b in fig.axes[0].patches}))
    figures.walltime_figure(jobs, [tmp_path / "w.png"])
    assert sorted(bars.values()) == [60.0, 120.5]  # one bar per rule, the sum of its jobs
    plt.close("all")
