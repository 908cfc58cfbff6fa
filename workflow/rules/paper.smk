# Paper figures that need ScDiVa's embedding: PAGA + diffusion pseudotime beside PCA.


def trajectory_methods():
    return [m for m in ("scdiva_zeroshot", "scdiva_finetuned") if m in method_names()]


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
        root_label=config.get("report", {}).get("trajectory_root_label", "HSC"),
        seed=seeds()[0],
    log:
        "results/logs/trajectory/{dataset}.log",
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/trajectory.py"
