"""Report sections and their rendering to markdown and self-contained HTML."""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scdiva.bench.core.io import atomic_path


@dataclass
class Section:
    """One report section.

    ``markdown`` is the body (GitHub-style tables allowed); ``figures`` are image paths (PNG/SVG/JPG)
    shown below it, embedded as base64 in the HTML. ``order`` sorts sections (lower first).
    ``html``, when given, is the body of the HTML report in place of the rendered markdown (for what
    markdown cannot say, e.g. table cells coloured by status); ``report.md`` keeps ``markdown``.
    """

    title: str
    markdown: str = ""
    figures: list[str] = field(default_factory=list)
    order: int = 100
    html: str = ""

    def to_json(self, path: str | os.PathLike[str]) -> None:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(asdict(self), indent=2))


def load_sections(paths: Iterable[str | os.PathLike[str]]) -> list[Section]:
    """Sections written with :meth:`Section.to_json` (by other rules)."""
    sections = []
    for path in paths:
        data = json.loads(Path(path).read_text())
        unknown = set(data) - {"title", "markdown", "figures", "order", "html"}
        if unknown or "title" not in data:
            raise ValueError(f"{path}: not a report section (needs 'title'; unknown keys {sorted(unknown)})")
        sections.append(Section(**data))
    return sections


def _relative(path: str, start: Path) -> str:
    return os.path.relpath(Path(path).resolve(), start.resolve())


def render_markdown(sections: Sequence[Section], out_dir: Path, title: str) -> str:
    """Markdown document; figures are linked relative to ``out_dir``."""
    parts = [f"# {title}\n"]
    for section in sorted(sections, key=lambda s: s.order):
        parts.append(f"## {section.title}\n\n{section.markdown.strip()}\n")
        for fig in section.figures:
            parts.append(f"![{Path(fig).stem}]({_relative(fig, out_dir)})\n")
    return "\n".join(parts)


_MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:0.85em;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 7px;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}
nav li{display:inline;margin-right:1em}code{background:#f5f5f5;padding:1px 3px}"""
#: the coverage matrix's cells, coloured by run status (scdiva.bench.report.coverage)
COVERAGE_CSS = """.st-ok{background:#c8e6c9}.st-failed{background:#ffcdd2}.st-timeout{background:#ffe0b2}
.st-out_of_memory{background:#e1bee7}.st-not_applicable{background:#eee;color:#555}.st-none{color:#999}
table.coverage td,table.coverage th{text-align:center;white-space:nowrap}
table.coverage td:nth-child(-n+2),table.coverage th:nth-child(-n+2){text-align:left}
.legend span{display:inline-block;padding:1px 6px;margin-right:6px;border:1px solid #ccc}"""


def markdown_to_html(text: str) -> str:
    """HTML of report markdown: GitHub-style tables, fenced code, and markdown inside ``<details>``."""
    # deferred: imports markdown (this module is imported at workflow parse time)
    import markdown

    # Tables inside <details> (long tables, folded) are markdown too: md_in_html renders them.
    source = text.replace("<details>", '<details markdown="1">')
    return markdown.markdown(source, extensions=["tables", "fenced_code", "md_in_html"])


def _embed_image(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in _MIME:
        raise ValueError(f"cannot embed {path}: use one of {sorted(_MIME)}")
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    alt = html.escape(Path(path).stem)
    return f'<figure><img alt="{alt}" src="data:{_MIME[suffix]};base64,{data}"><figcaption>{alt}</figcaption></figure>'


def render_html(sections: Sequence[Section], title: str) -> str:
    """Self-contained HTML: no external files, images embedded as base64 data URIs."""
    ordered = sorted(sections, key=lambda s: s.order)
    anchors = [f"s{i}" for i in range(len(ordered))]
    nav = "".join(f'<li><a href="#{a}">{html.escape(s.title)}</a></li>' for a, s in zip(anchors, ordered, strict=True))
    body = []
    for anchor, section in zip(anchors, ordered, strict=True):
        content = section.html or markdown_to_html(section.markdown)
        figures = "".join(_embed_image(f) for f in section.figures)
        body.append(f'<section id="{anchor}"><h2>{html.escape(section.title)}</h2>{content}{figures}</section>')
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}\n{COVERAGE_CSS}</style></head><body><h1>{html.escape(title)}</h1><nav><ul>{nav}</ul></nav>"
        + "".join(body)
        + "</body></html>"
    )


def write_report(sections: Sequence[Section], out_dir: str | os.PathLike[str], *,
                 title: str = "ScDiVa Bench report") -> tuple[Path, Path]:
    """Write ``report.md`` and the self-contained ``index.html`` into ``out_dir``; returns both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path, html_path = out_dir / "report.md", out_dir / "index.html"
    with atomic_path(md_path) as tmp:
        tmp.write_text(render_markdown(sections, out_dir, title))
    with atomic_path(html_path) as tmp:
        tmp.write_text(render_html(sections, title))
    return md_path, html_path
