# Helpers of the download and preprocess stages (workflow/rules/download.smk, preprocess.smk): cell
# counts that size jobs, and the inputs of the staging and preprocessing jobs.

_CELL_COUNTS = {}


def dataset_cells(name, before_subsample=False):
    """Cells a job of dataset ``name`` handles: `subsample` if set (unless ``before_subsample``), else the
    staged or local .h5ad's count, else `expected_cells`, else 0 (resources stay as configured)."""
    entry = dataset_config(name)
    if name not in _CELL_COUNTS:
        from scdiva.bench.core.formats import n_obs_of

        count = entry.get("expected_cells", 0)
        for path in (Path(STAGED_DIR) / f"{name}.h5ad", local_source_path(entry["source"])):
            if path is not None and path.is_file() and path.suffix == ".h5ad":
                try:
                    count = n_obs_of(path)
                    break
                except (OSError, KeyError):
                    continue
        _CELL_COUNTS[name] = count
    count = _CELL_COUNTS[name]
    if not before_subsample and entry.get("subsample"):
        count = min(count, entry["subsample"]) if count else entry["subsample"]
    return count


def staged_h5ad(wildcards):
    return f"{STAGED_DIR}/{wildcards.dataset}.h5ad"


def download_input(wildcards):
    """Local sources are inputs of `download`, so editing the file re-stages it; URLs have none."""
    path = local_source_path(dataset_config(wildcards.dataset)["source"])
    return [str(path)] if path is not None else []


PREPROCESS_KEYS = ("batch_key", "label_key", "counts_layer", "gene_id_column", "subsample", "round_counts")


def preprocess_entry(name):
    """The keys of dataset ``name`` that change its preprocessed AnnData."""
    return {key: value for key, value in dataset_config(name).items() if key in PREPROCESS_KEYS}


def preprocessed_h5ad(wildcards):
    """Input function for method rules: the validated, preprocessed AnnData of ``{dataset}``."""
    return f"results/{wildcards.dataset}/preprocessed.h5ad"
