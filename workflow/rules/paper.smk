# Paper figures that need ScDiVa's embedding: PAGA + diffusion pseudotime beside PCA.


rule trajectory:
    input:
        h5ad="results/{dataset}/preprocessed.h5ad",
        embeddings=lambda wc: [f"results/{wc.dataset}/integration/{m}/seed{seeds()[0]}.h5ad"
                               for m in trajectory_methods()],
    output:
        figure="results/{dataset}/trajectory.png",
        medians="results/{dataset}/trajectory_median_pseudotime.csv",
    params:
        methods=trajectory_methods(),
        label_key=lambda wc: dataset_config(wc.dataset)["label_key"],
        root_label=config["report"]["trajectory_root_label"],
        seed=seeds()[0],
    log:
        "results/logs/trajectory/{dataset}.log",
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/trajectory.py"


# --- report sections: paper claims vs this run, annotation, multi-task, trajectory ---------------

rule paper_sections:
    input:
        unpack(paper_section_inputs),
    output:
        **{name: f"results/report/sections/paper_{name}.json" for name in PAPER_SECTIONS},
        annotation_paired="results/tables/annotation_paired.csv",
    params:
        figures={name: f"results/report/figures/paper_{name}.png"
                 for name in ("integration", "annotation", "multitask")},
        skipped=skipped_parts(),
        n_seeds=len(seeds()),  # the best baseline of the claims tables: one measured on every seed
        annotation_reference=config["annotation"]["reference"],  # compared with every method, seed by seed
        development=development_datasets(),  # their ScDiVa rows are marked in-sample
        models=model_method_names(),
    log:
        "results/logs/paper_sections/paper_sections.log",
    localrule: True
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/paper_sections.py"
