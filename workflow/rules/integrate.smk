# One job per (dataset, method, seed): embed the preprocessed cells with an integration method (its
# record in scdiva.bench.methods.catalog: built in, or defined in config `methods.<name>`).
# Output: obs index + obsm["X_emb"] + uns["runtime_s"], and the run's outcome (seed{seed}.run.json,
# scdiva.bench.core.outcomes): a method that fails, times out (resources.<method>.runtime) or runs out of
# memory leaves a stub .h5ad (no X_emb, uns["status"]) and its job still succeeds; runs.smk reports it. A method whose record `saves_model` (scvi)
# also saves its model, and one that `reuses_model_of` it (scanvi) of the same dataset and seed starts
# from it (scanvi_scvi_model in common.smk) instead of training the same model again.


rule integrate:
    input:
        preprocessed_h5ad,
        scdiva_checkpoint_inputs,  # ScDiVa methods: the checkpoint files (workflow/rules/checkpoints.smk)
        scvi_model=scanvi_scvi_model,
        embedding=method_embedding_input,  # config `methods.<name>.embedding`: the precomputed file
    output:
        h5ad="results/{dataset}/integration/{method}/seed{seed}.h5ad",
        run="results/{dataset}/integration/{method}/seed{seed}.run.json",
    params:
        batch_key=lambda wc: dataset_config(wc.dataset)["batch_key"],
        label_key=lambda wc: dataset_config(wc.dataset).get("label_key"),
        method_params=lambda wc: job_method_params("integration", wc.method, wc.dataset, wc.seed),
        definition=lambda wc: method_definition(wc.method),
    log:
        "results/logs/integrate/{dataset}.{method}.seed{seed}.log",
    benchmark:
        "results/benchmarks/integrate/{dataset}.{method}.seed{seed}.tsv"
    threads: lambda wc: resources_for(wc.method)["threads"]
    resources:
        mem_mb=lambda wc: resources_for(wc.method, wc.dataset)["mem_mb"],
        runtime=lambda wc: resources_for(wc.method, wc.dataset)["runtime"],
        gpu=lambda wc: integration_gpu(wc.method),
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/integrate.py"


use rule integrate as integrate_scvi with:
    output:
        h5ad="results/{dataset}/integration/{method}/seed{seed}.h5ad",
        run="results/{dataset}/integration/{method}/seed{seed}.run.json",
        scvi_model="results/{dataset}/integration/{method}/seed{seed}.model/model.pt",
    wildcard_constraints:
        method=_one_of(model_saving_methods()),


ruleorder: integrate_scvi > integrate
