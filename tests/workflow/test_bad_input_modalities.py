"""Bad multimodal / cross-species config, end to end through the real Snakemake CLI: the error names the
key and the fix while the workflow is parsed, before any job (issue 17)."""

from __future__ import annotations

from pathlib import Path

import anndata
from test_bad_input import PARSE_TIME, assert_fails_cleanly, run_snakemake

DATA = Path(__file__).resolve().parents[2] / "data"
CITE = {"source": str(DATA / "citeseq_eccite_pbmc.h5ad"), "protein_obsm_key": "protein_expression",
        "batch_key": "hto_sample"}
HUMAN = {"source": str(DATA / "pancreas_baron_human.h5ad"), "species": "human", "label_key": "cell_type",
         "batch_key": "donor"}
MOUSE = {"source": str(DATA / "pancreas_baron_mouse.h5ad"), "species": "mouse", "label_key": "cell_type",
         "batch_key": "library"}


def test_wrong_protein_obsm_key(tmp_path):
    proc = run_snakemake(tmp_path, {"multimodal": {"datasets": {"cite": {**CITE, "protein_obsm_key": "adt"}}}})
    assert_fails_cleanly(proc, tmp_path, "multimodal.datasets.cite.protein_obsm_key", "no obsm['adt']",
                         "['hto', 'protein_expression']", started=PARSE_TIME)


def test_species_sharing_too_few_genes(tmp_path):
    mouse = anndata.read_h5ad(DATA / "pancreas_baron_mouse.h5ad")
    mouse.var_names = [f"ENSMUSG{i:011d}" for i in range(mouse.n_vars)]  # ids, not symbols: nothing matches
    mouse.write_h5ad(tmp_path / "mouse_ids.h5ad")
    overlay = {"cross_species": {"datasets": {"human": HUMAN, "mouse": {**MOUSE, "source": str(tmp_path / "mouse_ids.h5ad")}},
                                 "pairs": [{"reference": "human", "query": "mouse"}]}}
    proc = run_snakemake(tmp_path, overlay)
    assert_fails_cleanly(proc, tmp_path, "cross-species pair 'human' -> 'mouse': only 0 genes are shared",
                         "at least 200 needed", "gene_id_column", started=PARSE_TIME)


def test_unknown_pair_dataset_and_schema_typo(tmp_path):
    overlay = {"cross_species": {"datasets": {"human": HUMAN, "mouse": MOUSE},
                                 "pairs": [{"reference": "human", "query": "zebrafish"}]}}
    proc = run_snakemake(tmp_path, overlay)
    assert_fails_cleanly(proc, tmp_path, "cross_species.pairs[0].query` names 'zebrafish'", started=PARSE_TIME)
    overlay = {"multimodal": {"datasets": {"cite": {**CITE, "protein_key": "protein_expression"}}}}
    proc = run_snakemake(tmp_path, overlay)
    assert_fails_cleanly(proc, tmp_path, "multimodal.datasets.cite", "protein_key", started=PARSE_TIME)


def test_unknown_method_names_the_registered_ones(tmp_path):
    """Method lists are checked against the registry's records (no schema enum to keep in step)."""
    overlay = {"multimodal": {"datasets": {"cite": CITE}, "methods": ["scdiva", "totalVI"]}}
    proc = run_snakemake(tmp_path, overlay)
    assert_fails_cleanly(proc, tmp_path, "multimodal.methods", "unknown multimodal method 'totalVI'",
                         "scdiva, totalvi, scvi, pca, mean_protein", started=PARSE_TIME)
    overlay = {"cross_species": {"datasets": {"human": HUMAN, "mouse": MOUSE},
                                 "pairs": [{"reference": "human", "query": "mouse"}],
                                 "annotation_methods": ["logreg", "scanvi"], "params": {"scanvi": {"epochs": 3}}}}
    proc = run_snakemake(tmp_path, overlay)
    assert_fails_cleanly(proc, tmp_path, "cross_species.annotation_methods", "unknown parameter(s) ['epochs']",
                         started=PARSE_TIME)
    overlay["cross_species"].update(annotation_methods=["logreg", "celltypist"], params={})
    proc = run_snakemake(tmp_path, overlay)
    assert_fails_cleanly(proc, tmp_path, "unknown cross species annotation method 'celltypist'",
                         "scdiva, logreg, knn_pca, scanvi", started=PARSE_TIME)
