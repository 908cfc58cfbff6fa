"""Training recipes measured in the benchmarks, shared by the Python API and the workflow.

A recipe is a set of :class:`scdiva.model.settings.FitSettings` fields (the settings it chooses; the
rest keep FitSettings' defaults). :data:`INTEGRATION_FINETUNE` is what ``ScDiVaModel.fit_integration`` and
``ScDiVaInference.integrate_batches`` train with by default, and what the workflow's
``scdiva_finetuned`` method starts from (scdiva.bench.methods.scdiva), so a user's batch correction
and the benchmark tables come from the same fine-tune. The figures below are
paired differences over seeds on the embedded datasets (docs/model.md#decisions has each one's table;
config/ablation_variants.yaml runs every alternative as a workflow method).
"""

from __future__ import annotations

from typing import Any

from scdiva.config import DEFAULT_CLASSIFIER_HIDDEN_LAYERS

#: the integration fine-tune of a pretrained checkpoint (FitSettings fields)
INTEGRATION_FINETUNE: dict[str, Any] = {
    # scVI's budget (its epoch heuristic, 400 epochs below 20,000 cells), ended by early stopping on
    # 10% held-out cells: on the PBMCs (3 seeds) the batch score rose from 0.752 (100 epochs, patience
    # 8) to 0.827 and scIB Total from 0.716 to 0.736. The learning rate's cosine decay spans the whole
    # budget, so the longer horizon also keeps the rate higher in the epochs that run. Patience 10
    # evaluations (epochs): the averaged weights' held-out loss, once past its best, did not improve
    # again in 12 fine-tunes (7 PBMC, 5 pancreas seeds), so 10 keeps the model that 20 gave in each of
    # them, 6-7% sooner
    "max_epochs": None,
    "batch_size": 128,
    "lr": 1e-3,
    "validation_fraction": 0.1,
    "early_stopping_patience": 10,
    # the pretrained trunk at 0.3x the decoder's rate keeps more of the biology pretraining found:
    # scIB Total 0.793 against 0.779 on the human pancreas (higher in each of 3 seeds) and 0.740
    # against 0.735 on the PBMCs; 0.1x mixed batches too little
    "trunk_lr_factor": 0.3,
    # early stopping on, and the result taken from, a moving average of the weights over about 5
    # epochs (scdiva.train.trainer.WeightAverage): scIB Total +0.006 on the pancreas (5 of 5 seeds) and
    # +0.001 on the PBMCs (5 of 7) against the last step's weights, in the same time
    "weight_average_epochs": 5,
    # no dropout: scIB Total -0.003 [95% t: -0.012, +0.006] on the PBMCs (7 seeds) and +0.005
    # [-0.008, +0.018] on the human pancreas (5 seeds) against the checkpoint's 0.1, in 14-15% less
    # time (drawing the masks is about a tenth of a training step on CPU)
    "dropout": 0.0,
    # off: training on cells thinned to 30-100% of their counts raised scIB Total by 0.009 on the PBMCs
    # (7 seeds) and 0.003 on the human pancreas (5 seeds) but made the PBMC fine-tune 2.23x scVI's CPU
    # time, past issue 13's 2x
    "count_thinning": None,
    # the KL term weighed 3 (the checkpoint's 1 in pretraining): the latent keeps less of what the
    # batch-conditioned decoder explains. scIB Total +0.024 [95% t: +0.001, +0.046] on the human
    # pancreas (5 of 5 seeds; batch +0.029, bio +0.020) and +0.007 [-0.003, +0.018] on the PBMCs (5 of
    # 7; batch +0.017, bio +0.001); 2 and 5 were worse on the pancreas
    "kl_weight": 3.0,
    # the KL weight moved from the checkpoint's 1 to 3 over the first 50 epochs, not at once: the jump
    # switched whole latent dimensions off (8-12 of 16 stayed active on the human pancreas). Over 20
    # seeds the two are level: scIB Total +0.001 [95% t: -0.008, +0.010] on the human pancreas (higher
    # in 11 of 20; seeds 0-9 alone gave +0.007) and -0.001 [-0.006, +0.004] on the PBMCs (6 of 20)
    "kl_weight_ramp_epochs": 50,
}


#: the annotation fine-tune of a pretrained checkpoint on a labelled reference, ELBO beside the
#: classifier (FitSettings fields): the workflow's annotation method ``scdiva``
#: (scdiva.bench.methods.scdiva), which then maps the query (:data:`ANNOTATION_QUERY_EPOCHS`)
ANNOTATION_FINETUNE: dict[str, Any] = {
    # at most 100 epochs, early-stopped after 8 evaluations without progress on 10% held-out cells
    "max_epochs": 100,
    "batch_size": 128,
    "lr": 1e-3,
    "validation_fraction": 0.1,
    "early_stopping_patience": 8,
    # the pretrained trunk at the heads' rate: 0.3 gave a lower macro-F1 on the PBMCs' held-out
    # chemistry in each of 3 seeds (0.738 against 0.773 on average; docs/model.md)
    "trunk_lr_factor": 1.0,
    # early stopping on, and the result taken from, a moving average of the weights over about 5
    # epochs: part of the classifier change below (docs/model.md)
    "weight_average_epochs": 5,
    # the annotation classes sampled equally often
    "balance_labels": True,
    # the ensemble's genes expert refitted to its optimum after each fit: PBMC query macro-F1 +0.005
    # [95% t: +0.001, +0.009] and accuracy +0.006 [+0.001, +0.011] over 10 seeds (higher in 8);
    # `scdiva_joint_genes_expert` in config/ablation_variants.yaml turns it back (docs/model.md)
    "converge_genes_expert": True,
}

#: the annotation classifier's options (scdiva.model.tasks.TaskSpec)
ANNOTATION_CLASSIFIER: dict[str, Any] = {
    # depth of the MLP on the latent mean. 0 (a logistic regression on the latent, the
    # `linear_classifier` variant) was not better over 5 seeds on the PBMCs: macro-F1 0.779 against
    # 0.775, accuracy 0.902 against 0.914 (docs/model.md)
    "hidden_layers": DEFAULT_CLASSIFIER_HIDDEN_LAYERS,
    # the latent-mean MLP and a logistic regression on the log-normalised genes, each trained on its
    # own error, predicting together (scdiva.module.heads.ClassifierHead). With the weight averaging
    # above it raised PBMC query macro-F1 from 0.772 to 0.787 and accuracy from 0.904 to 0.920, higher
    # in 9 and 10 of 10 seeds (docs/model.md); "latent" (as scANVI) is the variant `latent_classifier`
    "representation": "latent_and_genes_ensemble",
}

#: query mapping after the reference fit: epochs on reference + unlabelled query cells (0: skip)
ANNOTATION_QUERY_EPOCHS = 20
