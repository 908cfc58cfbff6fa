# Helpers of the integration, metrics and report rules (integrate.smk, metrics.smk, report.smk).

def integration_gpu(method):
    """1 GPU only for GPU-capable methods, and only when config `gpu: true`."""
    return 1 if use_gpu() and method_record("integration", method).gpu else 0


def annotation_gpu(method):
    """1 GPU only for GPU-capable annotation methods, and only when config `gpu: true`."""
    return 1 if use_gpu() and method_record("annotation", method).gpu else 0


def model_saving_methods():
    """Integration methods whose job also saves a model another method starts from (scVI for scANVI)."""
    return [m for m in method_names() if method_record("integration", m).saves_model]


def method_embedding_input(wildcards):
    """Input of an integration job: the precomputed embedding file of a config `embedding` method."""
    record = method_record("integration", wildcards.method)
    if record.embedding is None:
        return []
    return record.embedding.format(dataset=wildcards.dataset, seed=wildcards.seed)


def method_seed_runs():
    """(method, seed) of every integration job of a dataset."""
    return [(m, s) for m in method_names() for s in seeds()]


def scanvi_scvi_model(wildcards):
    """Input of a job whose record `reuses_model_of` another method (scanvi: scvi): that job's saved model
    (same dataset and seed) when it is benchmarked with compatible settings; otherwise none (it trains its own)."""
    record = method_record("integration", wildcards.method)
    source = record.reuses_model_of
    if source is None or source not in method_names():
        return []
    from scdiva.bench.methods.record import load_entry_point

    compatible = load_entry_point(record.model_compatible, method=record.name, where=f"method {record.name!r}")
    if not compatible(method_params(source), method_params(wildcards.method)):
        return []
    return f"results/{wildcards.dataset}/integration/{source}/seed{wildcards.seed}.model/model.pt"


def metrics_files(wildcards=None):
    """One scIB metrics table per dataset (all its methods and seeds)."""
    return [f"results/{d}/integration/metrics.csv" for d in dataset_names()]


def report_embeddings(wildcards=None):
    """Embeddings of the first seed (UMAP grid), per dataset and method."""
    return [f"results/{d}/integration/{m}/seed{seeds()[0]}.h5ad" for d in dataset_names() for m in method_names()]
