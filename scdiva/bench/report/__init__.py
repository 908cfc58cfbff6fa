"""Benchmark report: markdown, CSV/LaTeX tables, figures and a self-contained ``index.html``.

The report is a list of :class:`Section` objects. The integration benchmark contributes its
sections (:func:`integration_sections`); other parts of the workflow add theirs either in Python
(append to the list before :func:`write_report`) or as section JSON files
(:meth:`Section.to_json` / :func:`load_sections`) that the report rule takes as inputs.
"""

from scdiva.bench.report.document import Section, load_sections, render_html, render_markdown, write_report
from scdiva.bench.report.integration import integration_sections

__all__ = [
    "Section",
    "integration_sections",
    "load_sections",
    "render_html",
    "render_markdown",
    "write_report",
]
