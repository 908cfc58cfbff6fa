"""``FitSettings``: how :meth:`scdiva.ScDiVaModel.fit` trains, as one typed object.

``fit`` takes the data (AnnData, tasks, obs keys, layer) as arguments and everything about the
training run as one :class:`FitSettings`, or as keywords that replace single fields of it
(``model.fit(adata, max_steps=200)``). The named recipes (:mod:`scdiva.model.recipes`) are field
values of this object.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scdiva.config import OBJECTIVE_SETTINGS
from scdiva.train.trainer import TrainingSettings

_TRAINER_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainingSettings)
                     if f.default is not dataclasses.MISSING}


def _trainer_default(name: str) -> Any:
    """The optimisation defaults are the trainer's (one place for each)."""
    return _TRAINER_DEFAULTS[name]


@dataclasses.dataclass(frozen=True)
class FitSettings:
    """Settings of one :meth:`scdiva.ScDiVaModel.fit` call.

    Parameters
    ----------
    max_steps, max_epochs
        Length of the run, in optimizer steps or in epochs (give at most one). Neither:
        :func:`scdiva.model.scdiva_model.default_max_epochs`, scVI's heuristic.
    batch_size, lr, weight_decay, warmup_fraction, clip_grad_norm, precision, num_workers
        Optimisation (AdamW, linear warmup then cosine decay); see
        :class:`scdiva.train.trainer.TrainingSettings`.
    seed
        Seeds the cell order, masking, held-out split and any parameters the fit adds.
    checkpoint_dir, checkpoint_every, resume
        A checkpoint every ``checkpoint_every`` steps in ``checkpoint_dir``; ``resume=True``
        continues from it exactly.
    progress_bar
        Show a progress bar.
    validation_fraction, eval_every, early_stopping_patience, early_stopping_tasks
        Cells held out to monitor the loss (of ``early_stopping_tasks`` only, when given);
        ``early_stopping_patience`` stops when it stops improving and restores the best weights.
    balance_labels
        Sample the ``annotation`` classes equally often (needs a classifier task).
    trunk_lr_factor
        Learning-rate multiplier of everything but the task heads.
    count_thinning
        Train on cells binomially thinned to a random ``count_thinning``-100% of their counts
        (:func:`scdiva.data.dataset.thin_counts`); None: off.
    weight_average_epochs
        Early-stop on, and keep, a moving average of the weights over about that many epochs.
    dropout
        Dropout rate for this fit only (None: ``config.dropout``).
    converge_genes_expert
        Refit the genes expert of an ensemble classifier to its optimum on the labelled cells
        after training (:meth:`scdiva.module.heads.ClassifierHead.fit_genes_expert`).
    kl_weight, kl_free_bits, adversarial_batch_weight, decoder_dispersion
        The integration objective from this fit on (None: as the model has it; see
        :class:`scdiva.module.heads.CountDecoderHead`); the model's config keeps them.
    kl_weight_ramp_epochs
        Move the KL weight to ``kl_weight`` linearly over that many epochs instead of at once.
    """

    max_steps: int | None = None
    max_epochs: int | None = None
    batch_size: int = _trainer_default("batch_size")
    lr: float = _trainer_default("lr")
    seed: int = _trainer_default("seed")
    checkpoint_dir: str | Path | None = _trainer_default("checkpoint_dir")
    resume: bool = _trainer_default("resume")
    weight_decay: float = _trainer_default("weight_decay")
    warmup_fraction: float = _trainer_default("warmup_fraction")
    clip_grad_norm: float = _trainer_default("clip_grad_norm")
    checkpoint_every: int | None = _trainer_default("checkpoint_every")
    progress_bar: bool = _trainer_default("progress_bar")
    precision: str = _trainer_default("precision")
    num_workers: int = _trainer_default("num_workers")
    validation_fraction: float = _trainer_default("validation_fraction")
    early_stopping_patience: int | None = _trainer_default("early_stopping_patience")
    eval_every: int | None = _trainer_default("eval_every")
    early_stopping_tasks: Sequence[str] | None = _trainer_default("early_stopping_tasks")
    balance_labels: bool = False
    trunk_lr_factor: float = _trainer_default("trunk_lr_factor")
    count_thinning: float | None = _trainer_default("count_thinning")
    weight_average_epochs: float | None = _trainer_default("weight_average_epochs")
    dropout: float | None = _trainer_default("dropout")
    converge_genes_expert: bool = True
    kl_weight: float | None = None
    adversarial_batch_weight: float | None = None
    decoder_dispersion: str | None = None
    kl_free_bits: float | None = None
    kl_weight_ramp_epochs: float | None = None

    def replace(self, **options: Any) -> FitSettings:
        """A copy with ``options`` (field names) replaced; an unknown name is a TypeError naming it."""
        unknown = sorted(set(options) - FIT_OPTIONS)
        if unknown:
            raise TypeError(f"unknown training option(s) {unknown}: the options are the fields of "
                            f"scdiva.model.settings.FitSettings ({', '.join(sorted(FIT_OPTIONS))})")
        return dataclasses.replace(self, **options)

    def objective(self) -> dict[str, Any]:
        """The integration-objective settings (``scdiva.config.OBJECTIVE_SETTINGS``)."""
        return {name: getattr(self, name) for name in OBJECTIVE_SETTINGS}

    def optimisation(self) -> dict[str, Any]:
        """The settings the trainer takes as they are (:class:`scdiva.train.trainer.TrainingSettings`)."""
        return {name: getattr(self, name) for name in _PASSED_TO_TRAINER}


#: every field of FitSettings (the keywords ``fit`` accepts besides its data arguments)
FIT_OPTIONS = frozenset(f.name for f in dataclasses.fields(FitSettings))
#: FitSettings fields the trainer takes under the same name (the rest are resolved by the model first)
_PASSED_TO_TRAINER = tuple(sorted(FIT_OPTIONS & set(_TRAINER_DEFAULTS) - {"max_steps"}))
