# ScDiVa checkpoints as workflow inputs (config `checkpoints:`). Each entry is either
#   published: {path | url | repo + revision, sha256: {config.json, model.safetensors, vocab.json}}
#   recipe:    {size, datasets, held_out, tasks, max_steps | max_epochs, batch_size, seed} -> pretrained
#              here on the configured datasets' cells (one corpus file each, labels dropped)
# and lands in resources/checkpoints/{checkpoint}/ (config.json, model.safetensors, vocab.json). A recipe
# with `datasets: each` and / or `seed: each` is pretrained once per dataset and / or seed of the run,
# into resources/checkpoints/{checkpoint}/[{dataset}/][seed{seed}/] (scdiva.bench.checkpoints.scopes).


rule fetch_checkpoint:
    output:
        [f"resources/checkpoints/{{checkpoint}}/{f}" for f in CHECKPOINT_FILES],
    wildcard_constraints:
        checkpoint=_one_of(checkpoint_names("published")),
    params:
        spec=lambda wc: config["checkpoints"][wc.checkpoint]["published"],
    log:
        "results/logs/fetch_checkpoint/{checkpoint}.log",
    localrule: True
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/fetch_checkpoint.py"


rule pretrain_corpus:
    input:
        "results/{dataset}/preprocessed.h5ad",
    output:
        # kept (not temp): made again for a seed added later, it would be newer than the checkpoints
        # already pretrained from it, and Snakemake would pretrain them all again
        "results/checkpoints/{checkpoint}/corpus/{dataset}.h5ad",
    wildcard_constraints:
        checkpoint=_one_of(checkpoint_names("recipe")),
    params:
        batch_key=lambda wc: dataset_config(wc.dataset)["batch_key"],
        held_out_batches=lambda wc: recipe_held_out_batches(wc.checkpoint, wc.dataset),
    log:
        "results/logs/pretrain_corpus/{checkpoint}.{dataset}.log",
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/pretrain_corpus.py"


rule pretrain:
    input:
        lambda wc: instance_corpus(wc.checkpoint),
    output:
        [f"resources/checkpoints/{{checkpoint}}/{f}" for f in CHECKPOINT_FILES],
    wildcard_constraints:
        # a recipe's name, and for a scoped recipe its /<dataset> and / or /seed<k>
        checkpoint=_scopes.instance_pattern(checkpoint_names("recipe")),
    params:
        recipe=lambda wc: instance_recipe(wc.checkpoint),
        tasks=lambda wc: instance_recipe(wc.checkpoint).get("tasks", ["masked_expression", "integration"]),
        length=lambda wc: recipe_length_option(wc.checkpoint),
        model=lambda wc: json.dumps(instance_recipe(wc.checkpoint).get("model") or {}),
        seed=lambda wc: _scopes.instance_seed(config, wc.checkpoint),
        device="cuda" if use_gpu() else "cpu",
        cli=SCDIVA_CLI,  # [<this job's python>, -m, scdiva.cli]: no `scdiva` command on PATH needed
        # `scdiva train` writes into a staging directory that replaces the output only when complete.
        staging=lambda wc: _scopes.staging_directory(wc.checkpoint),
        staging_history=lambda wc: f"{_scopes.staging_directory(wc.checkpoint)}.history.json",
        history=lambda wc: f"results/logs/pretrain/{wc.checkpoint}.history.json",
        out_dir=lambda wc: f"resources/checkpoints/{wc.checkpoint}",
    log:
        "results/logs/pretrain/{checkpoint}.log",
    benchmark:
        "results/benchmarks/pretrain/{checkpoint}.tsv"
    threads: lambda wc: resources_for("scdiva")["threads"]
    resources:
        # grow with the corpus (its datasets' cells) and the recipe's steps or epochs (docs/scale.md)
        mem_mb=lambda wc: resources_for("scdiva", checkpoint=wc.checkpoint)["mem_mb"],
        runtime=lambda wc: resources_for("scdiva", checkpoint=wc.checkpoint)["runtime"],
        **gpu_resources(),
    conda:
        "../../envs/scdiva.yaml"
    # Every value is quoted (`:q`, each item of a list): names are checked at parse time too, but
    # no config text is ever read by the shell as code or split into other paths.
    shell:
        "rm -rf {params.staging:q} && "
        "{params.cli:q} train --data {input:q} --output {params.staging:q} --size {params.recipe[size]:q} "
        "--config {params.model:q} "
        "--tasks {params.tasks:q} --batch-key batch {params.length:q} "
        "--batch-size {params.recipe[batch_size]:q} --seed {params.seed:q} --device {params.device:q} "
        "--threads {threads:q} --history {params.staging_history:q} > {log:q} 2>&1 && "
        "mv {params.staging_history:q} {params.history:q} && "
        "rm -rf {params.out_dir:q} && mv {params.staging:q} {params.out_dir:q}"
