"""Bad multimodal / cross-species config: the error names the key and the fix while the workflow is parsed,
before any job (issue 17). The parse-time checks run in-process (test_bad_input.parse_time_error); the
wrong protein key also goes through the real Snakemake CLI, so the wiring in multimodal_common.smk stays
tested (the order of every check in the rule files: test_config_checks.py)."""

from __future__ import annotations

from pathlib import Path

import anndata
from test_bad_input import PARSE_TIME, assert_fails_cleanly, assert_rejected_at_parse, run_snakemake

DATA = Path(__file__).resolve().parents[2] / "data"
CITE = {"source": str(DATA / "citeseq_eccite_pbmc.h5ad"), "protein_obsm_key": "protein_expression",
        "batch_key": "hto_sample"}
HUMAN = {"source": str(DATA / "pancreas_baron_human.h5ad"), "species": "human", "label_key": "cell_type",
         "batch_key": "donor"}
MOUSE = {"source": str(DATA / "pancreas_baron_mouse.h5ad"), "species": "mouse", "label_key": "cell_type",
         "batch_key": "library"}


def test_wrong_protein_obsm_key(tmp_path):
    overlay = {"multimodal": {"datasets": {"cite": {**CITE, "protein_obsm_key": "adt"}}}}
    fragments = ("multimodal.datasets.cite.protein_obsm_key", "no obsm['adt']", "['hto', 'protein_expression']")
    assert_rejected_at_parse(tmp_path, overlay, *fragments)
    proc = run_snakemake(tmp_path, overlay)  # the multimodal check kept end to end, through the CLI
    assert_fails_cleanly(proc, tmp_path, *fragments, started=PARSE_TIME)


def test_species_sharing_too_few_genes(tmp_path):
    mouse = anndata.read_h5ad(DATA / "pancreas_baron_mouse.h5ad")
    mouse.var_names = [f"ENSMUSG{i:011d}" for i in range(mouse.n_vars)]  # ids, not symbols: nothing matches
    mouse.write_h5ad(tmp_path / "mouse_ids.h5ad")
    overlay = {"cross_species": {"datasets": {"human": HUMAN, "mouse": {**MOUSE, "source": str(tmp_path / "mouse_ids.h5ad")}},
                                 "pairs": [{"reference": "human", "query": "mouse"}]}}
    assert_rejected_at_parse(tmp_path, overlay, "cross-species pair 'human' -> 'mouse': only 0 genes are shared",
                             "at least 200 needed", "gene_id_column")


def test_unknown_pair_dataset_and_schema_typo(tmp_path):
    overlay = {"cross_species": {"datasets": {"human": HUMAN, "mouse": MOUSE},
                                 "pairs": [{"reference": "human", "query": "zebrafish"}]}}
    assert_rejected_at_parse(tmp_path, overlay, "cross_species.pairs[0].query` names 'zebrafish'")
    overlay = {"multimodal": {"datasets": {"cite": {**CITE, "protein_key": "protein_expression"}}}}
    assert_rejected_at_parse(tmp_path, overlay, "multimodal.datasets.cite", "protein_key")


def test_unknown_method_names_the_registered_ones(tmp_path):
    """Method lists are checked against the registry's records (no schema enum to keep in step)."""
    overlay = {"multimodal": {"datasets": {"cite": CITE}, "methods": ["scdiva", "totalVI"]}}
    assert_rejected_at_parse(tmp_path, overlay, "multimodal.methods", "unknown multimodal method 'totalVI'",
                             "scdiva, totalvi, scvi, pca, mean_protein")
    overlay = {"cross_species": {"datasets": {"human": HUMAN, "mouse": MOUSE},
                                 "pairs": [{"reference": "human", "query": "mouse"}],
                                 "annotation_methods": ["logreg", "scanvi"], "params": {"scanvi": {"epochs": 3}}}}
    assert_rejected_at_parse(tmp_path, overlay, "cross_species.annotation_methods", "unknown parameter(s) ['epochs']")
    overlay["cross_species"].update(annotation_methods=["logreg", "celltypist"], params={})
    assert_rejected_at_parse(tmp_path, overlay, "unknown cross species annotation method 'celltypist'",
                             "scdiva, logreg, knn_pca, scanvi")
