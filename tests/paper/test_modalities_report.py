"""Report sections of the multimodal and cross-species benchmarks (scdiva.bench.report.modalities)."""

from __future__ import annotations

import pandas as pd

from scdiva.bench.report.modalities import cross_species_section, multimodal_section, scdiva_gaps


def test_gaps_name_the_winner_and_the_difference():
    table = pd.DataFrame([
        {"dataset": "cite", "method": "scdiva", "metric": "protein_pearson", "value": 0.40},
        {"dataset": "cite", "method": "totalvi", "metric": "protein_pearson", "value": 0.55},
        {"dataset": "cite", "method": "pca", "metric": "protein_pearson", "value": 0.50},
        {"dataset": "cite", "method": "scdiva", "metric": "hto_ilisi", "value": 0.90},
        {"dataset": "cite", "method": "totalvi", "metric": "hto_ilisi", "value": 0.80},
        {"dataset": "cite", "method": "scdiva", "metric": "runtime_s", "value": 100.0},
        {"dataset": "cite", "method": "pca", "metric": "runtime_s", "value": 1.0},
    ])
    lines = scdiva_gaps(table, ["dataset"], ["protein_pearson", "hto_ilisi", "runtime_s"])
    assert lines == ["- cite: `protein_pearson` ScDiVa 0.400 vs totalvi 0.550 (difference -0.150)",
                     "- cite: `runtime_s` ScDiVa 100.000 vs pca 1.000 (difference +99.000)"]
    section = multimodal_section(table, figures=["/no/such.png"])
    assert "gives no numbers" in section.markdown and section.figures == []
    assert "protein_pearson` ScDiVa 0.400 vs totalvi" in section.markdown


def test_cross_species_section_lists_both_directions_and_unseen_types():
    rows = []
    for ref, query, scdiva_acc in (("human", "mouse", 0.7), ("mouse", "human", 0.9)):
        for method, acc in (("scdiva", scdiva_acc), ("logreg", 0.8)):
            for metric, value in (("accuracy", acc), ("macro_f1", acc - 0.1), ("f1:beta", acc),
                                  ("unseen_fraction", 0.1 if ref == "human" else 0.0)):
                rows.append({"task": "annotation", "reference": ref, "query": query, "method": method,
                             "metric": metric, "value": value})
    rows.append({"task": "integration", "reference": "human", "query": "mouse", "method": "scdiva",
                 "metric": "bio_score", "value": 0.5})
    section = cross_species_section(pd.DataFrame(rows), figures=[])
    md = section.markdown
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in md.splitlines() if line.startswith("|")]
    assert ["human", "mouse", "scdiva"] in [r[:3] for r in rows] and ["mouse", "human", "logreg"] in [r[:3] for r in rows]
    assert "('" not in md  # index levels are columns, never a Python tuple in a cell
    assert "human: `accuracy` ScDiVa 0.700 vs logreg 0.800" in md
    assert "mouse: `accuracy`" not in md  # ScDiVa wins that direction
    assert "Per-class F1" in md and "gives no numbers" in md
