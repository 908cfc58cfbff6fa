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


def trajectory_figures():
    """Trajectory figures for the report: every dataset, once a ScDiVa embedding is configured."""
    return [f"results/{d}/trajectory.png" for d in dataset_names()] if trajectory_methods() else []


_final_outputs_before_paper = final_outputs


def final_outputs():
    return _final_outputs_before_paper() + trajectory_figures()
