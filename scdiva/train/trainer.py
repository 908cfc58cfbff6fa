"""Training loop: AdamW, linear warmup + cosine decay, gradient clipping, reproducible resume, DDP."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scdiva.data.dataset import CellCorpus, thin_counts
from scdiva.files import WEIGHTS_FILE
from scdiva.module.scdiva_module import ScDiVaModule
from scdiva.train.checkpoint import (
    find_checkpoint,
    load_trainer_state,
    optimizer_from_flat,
    save_training_checkpoint,
)
from scdiva.train.distributed import DistInfo, barrier, default_device, setup_distributed
from scdiva.train.precision import check_precision, uses_bf16

logger = logging.getLogger(__name__)


@dataclass
class TrainingSettings:
    """Optimisation settings of one :func:`train` call."""

    max_steps: int
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    #: fraction of ``max_steps`` with a linear learning-rate warmup (then cosine decay to 10%)
    warmup_fraction: float = 0.05
    clip_grad_norm: float = 1.0
    seed: int = 0
    task_weights: dict[str, float] = field(default_factory=dict)
    checkpoint_dir: str | Path | None = None
    checkpoint_every: int | None = None  # default: every 10% of the run
    resume: bool = False
    progress_bar: bool = True
    device: str | torch.device | None = None
    #: "auto": bf16 autocast on CUDA, float32 on CPU (scdiva.train.precision); or "fp32" / "bf16"
    precision: str = "auto"
    #: kept for API compatibility: batches are read and tokenised vectorised, without workers
    num_workers: int = 0
    #: fraction of cells held out (stratified by nothing, seeded) to monitor the loss on; 0: none
    validation_fraction: float = 0.0
    #: evaluate the held-out loss every this many steps (default: once per epoch)
    eval_every: int | None = None
    #: stop when the held-out loss has not improved for this many evaluations (None: never);
    #: the weights of the best evaluation are restored at the end
    early_stopping_patience: int | None = None
    #: the tasks whose weighted held-out loss is monitored (None: every trained task). A task kept at
    #: a small weight beside the one that matters (masked expression beside the integration ELBO)
    #: then cannot keep a run going that its main objective has finished with
    early_stopping_tasks: tuple[str, ...] | None = None
    #: sample cells so that every class of this classifier task is equally frequent (unlabelled
    #: cells keep their overall share); None: plain shuffling
    balance_task: str | None = None
    #: learning-rate multiplier of everything except the task heads (fine-tuning a pretrained
    #: trunk gently while the heads learn at the full rate)
    trunk_lr_factor: float = 1.0
    #: augmentation: each training cell's counts are binomially thinned to a fraction drawn uniformly
    #: from ``[count_thinning, 1]`` (a shallower sequencing of the same cell); None: off. Held-out
    #: cells are scored unthinned. See :func:`scdiva.data.dataset.thin_counts`
    count_thinning: float | None = None
    #: evaluate, early-stop on and keep an exponential moving average of the weights over about this
    #: many epochs instead of the last step's weights (None: off). The weights the optimiser reaches
    #: at one step move with that step's cells and dropout; their running mean sits nearer the
    #: centre of the region the run explores. Training itself follows the raw weights; a resumed run
    #: starts the average again from the weights it resumes with
    weight_average_epochs: float | None = None
    #: dropout rate of this run (every ``nn.Dropout`` of the module; the module's own rates are put
    #: back afterwards); None: the module's rates
    dropout: float | None = None

    def validate(self) -> None:
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        check_precision(self.precision)
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if not 0 <= self.validation_fraction < 0.5:
            raise ValueError(f"validation_fraction must be in [0, 0.5), got {self.validation_fraction}")
        if self.early_stopping_patience is not None and self.validation_fraction == 0:
            raise ValueError("early stopping needs held-out cells: set validation_fraction > 0")
        if self.early_stopping_tasks is not None and not self.early_stopping_tasks:
            raise ValueError("early_stopping_tasks must name at least one task (or be None: every task)")
        if not self.trunk_lr_factor > 0:
            raise ValueError(f"trunk_lr_factor must be > 0, got {self.trunk_lr_factor}")
        if self.count_thinning is not None and not 0 < self.count_thinning <= 1:
            raise ValueError(f"count_thinning must be in (0, 1] (the lowest fraction of counts kept) or None, "
                             f"got {self.count_thinning}")
        if self.weight_average_epochs is not None and not self.weight_average_epochs > 0:
            raise ValueError(f"weight_average_epochs must be > 0 or None, got {self.weight_average_epochs}")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1) or None, got {self.dropout}")


def lr_factor(step: int, max_steps: int, warmup_steps: int, floor: float = 0.1) -> float:
    """Learning-rate multiplier: linear warmup to 1, then cosine decay to ``floor``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, max_steps - warmup_steps)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def steps_per_epoch(n_cells: int, batch_size: int, world_size: int = 1) -> int:
    return math.ceil(math.ceil(n_cells / world_size) / batch_size)


def split_validation(n_cells: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training, held-out) cell indices: a seeded random ``fraction`` held out (at least one)."""
    order = np.random.default_rng([seed, 7]).permutation(n_cells)
    n_held = int(round(fraction * n_cells))
    if fraction > 0:
        n_held = min(max(n_held, 1), n_cells - 1)
    return np.sort(order[n_held:]), np.sort(order[:n_held])


def epoch_order(train_cells: np.ndarray, epoch: int, seed: int, weights: np.ndarray | None) -> np.ndarray:
    """Cells of one epoch, in order: a permutation, or a weighted draw with replacement."""
    rng = np.random.default_rng([seed, epoch])
    if weights is None:
        return train_cells[rng.permutation(train_cells.size)]
    return rng.choice(train_cells, size=train_cells.size, replace=True, p=weights / weights.sum())


def balanced_weights(codes: np.ndarray) -> np.ndarray:
    """Sampling weights: labelled cells balanced across classes, unlabelled (-1) at their share."""
    weights = np.zeros(codes.size, dtype=np.float64)
    labelled = codes >= 0
    if labelled.any():
        classes, counts = np.unique(codes[labelled], return_counts=True)
        per_class = dict(zip(classes.tolist(), counts.tolist(), strict=True))
        share = labelled.mean()
        weights[labelled] = [share / (len(classes) * per_class[c]) for c in codes[labelled]]
    if (~labelled).any():
        weights[~labelled] = (~labelled).mean() / (~labelled).sum()
    return weights


def train(module: ScDiVaModule, corpus: CellCorpus, tasks: Sequence[str], settings: TrainingSettings,
          save_model: Callable[[Path], None] | None = None) -> list[dict[str, Any]]:
    """Train ``module`` on the cells of ``corpus`` for at most ``settings.max_steps`` optimizer steps.

    The loss is the weighted sum of the per-task losses. Everything random (cell order, token
    sampling, value masks, dropout, the reparameterisation noise) is a function of
    ``(seed, step)``, so a run resumed from a checkpoint - at an epoch boundary or inside an
    epoch - continues exactly as the uninterrupted run would. With ``validation_fraction`` a
    held-out set of cells is scored every ``eval_every`` steps (the full-weight loss of the
    ``early_stopping_tasks``, in eval mode); with ``early_stopping_patience`` training stops when it
    stops improving and the best weights are restored. Returns one record per step: ``step``,
    ``epoch``, ``loss``, ``lr``, ``loss_<task>`` (plus ``val_loss`` on evaluated steps).
    """
    settings.validate()
    with dropout_rate(module, settings.dropout):
        return _train(module, corpus, tasks, settings, save_model)


def _train(module: ScDiVaModule, corpus: CellCorpus, tasks: Sequence[str], settings: TrainingSettings,
           save_model: Callable[[Path], None] | None) -> list[dict[str, Any]]:
    info = setup_distributed()
    device = torch.device(settings.device) if settings.device is not None else default_device(info)
    module.to(device)
    train_cells, held_out = split_validation(len(corpus), settings.validation_fraction, settings.seed)
    weights_of_cells = None
    if settings.balance_task is not None:
        weights_of_cells = balanced_weights(corpus.label_codes(settings.balance_task)[train_cells])
    shard = np.arange(info.rank, train_cells.size, info.world_size)  # DDP: every rank its own cells
    per_epoch = steps_per_epoch(train_cells.size, settings.batch_size, info.world_size)
    warmup = int(settings.warmup_fraction * settings.max_steps)
    eval_every = settings.eval_every or per_epoch
    monitored = list(tasks) if settings.early_stopping_tasks is None else list(settings.early_stopping_tasks)
    if not set(monitored) <= set(tasks):
        raise ValueError(f"early_stopping_tasks {sorted(set(monitored) - set(tasks))} are not among the trained "
                         f"tasks {list(tasks)}")

    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, p in module.named_parameters():
        decays = not (p.ndim < 2 or "norm" in name or "embedding" in name)
        groups.setdefault((decays, name.startswith("heads.")), []).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": params, "weight_decay": settings.weight_decay if decays else 0.0,
          "lr_factor": 1.0 if is_head else settings.trunk_lr_factor}
         for (decays, is_head), params in sorted(groups.items())], lr=settings.lr)

    run_identity = {"max_steps": settings.max_steps, "tasks": list(tasks), "seed": settings.seed,
                    "batch_size": settings.batch_size, "n_cells": len(corpus), "data": corpus.fingerprint()}
    history: list[dict[str, Any]] = []
    step, best = 0, {"loss": math.inf, "step": 0, "bad_evals": 0}
    checkpoint = find_checkpoint(settings.checkpoint_dir) if settings.checkpoint_dir and settings.resume else None
    if checkpoint is not None:
        state, optimizer_tensors = load_trainer_state(checkpoint)
        differs = {k: (state.get(k), v) for k, v in run_identity.items() if state.get(k) != v}
        if differs:
            detail = ", ".join(f"{k}: checkpoint {old!r}, this run {new!r}" for k, (old, new) in differs.items())
            raise ValueError(f"cannot resume from {checkpoint}: it was written by a different run ({detail}); "
                             "rerun with the same settings and data, or use another checkpoint_dir or resume=False")
        from safetensors.torch import load_file

        module.load_state_dict(load_file(str(checkpoint / WEIGHTS_FILE), device=str(device)))
        optimizer_from_flat(optimizer, {k: v.to(device) for k, v in optimizer_tensors.items()},
                            state["optimizer"])
        step, history, best = state["step"], state["history"], state.get("best", best)
        logger.info("resuming from %s at step %d of %d", checkpoint, step, settings.max_steps)
    elif settings.resume:
        logger.info("resume=True but %s holds no checkpoint yet: starting from step 0", settings.checkpoint_dir)
    best_state = _snapshot(module) if held_out.size else None
    average = None
    if settings.weight_average_epochs is not None:
        average = WeightAverage(module, 1.0 / (settings.weight_average_epochs * per_epoch))

    model_for_step: torch.nn.Module = _LossModule(module)
    if info.world_size > 1:
        model_for_step = torch.nn.parallel.DistributedDataParallel(
            model_for_step, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)
    use_bf16 = uses_bf16(settings.precision, device, inference=False)
    every = settings.checkpoint_every or max(1, settings.max_steps // 10)
    weights = {t: settings.task_weights.get(t, 1.0) for t in tasks}

    progress = _progress(settings, info, step)
    module.train()
    start = time.perf_counter()
    stopped_early = False
    while step < settings.max_steps and not stopped_early:
        epoch, skip = divmod(step, per_epoch)
        order = epoch_order(train_cells, epoch, settings.seed, weights_of_cells)[shard]
        batches = [order[i : i + settings.batch_size] for i in range(0, order.size, settings.batch_size)]
        for cells in batches[skip:]:
            batch = corpus.batch_of(cells).to(device)
            torch.manual_seed(settings.seed * 1_000_003 + step)
            if settings.count_thinning is not None:
                batch = thin_counts(batch, settings.count_thinning)
            factor = lr_factor(step, settings.max_steps, warmup)
            for group in optimizer.param_groups:
                group["lr"] = settings.lr * factor * group["lr_factor"]
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
                losses = model_for_step(batch, list(tasks), step)
            if not losses:
                raise ValueError(f"no task had anything to learn from in step {step}: tasks {list(tasks)} "
                                 "(are all labels missing?)")
            loss = sum(weights[t] * value for t, value in losses.items())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), settings.clip_grad_norm)
            optimizer.step()
            if average is not None:
                average.update(module)
            step += 1
            record = {"step": step, "epoch": epoch, "loss": float(loss.detach()), "lr": settings.lr * factor,
                      **{f"loss_{t}": float(v.detach()) for t, v in losses.items()}}
            if held_out.size and (step % eval_every == 0 or step == settings.max_steps):
                with average.swapped_in(module) if average is not None else contextlib.nullcontext():
                    record["val_loss"] = held_out_loss(module, corpus, held_out, monitored, weights,
                                                       settings.batch_size, device, use_bf16)
                if record["val_loss"] < best["loss"]:
                    best = {"loss": record["val_loss"], "step": step, "bad_evals": 0}
                    best_state = _snapshot(module) if average is None else average.snapshot()
                else:
                    best["bad_evals"] += 1
                patience = settings.early_stopping_patience
                stopped_early = patience is not None and best["bad_evals"] >= patience
            history.append(record)
            progress.update(1)
            progress.set_postfix(loss=f"{record['loss']:.4f}", epoch=epoch)
            if settings.checkpoint_dir and (step % every == 0 or step == settings.max_steps or stopped_early):
                if info.is_main:
                    if save_model is None:
                        raise ValueError("checkpointing needs save_model")
                    save_training_checkpoint(settings.checkpoint_dir, save_model, optimizer, {
                        **run_identity, "step": step, "history": history, "best": best})
                barrier(info)
            if step >= settings.max_steps or stopped_early:
                break
    progress.close()
    restored = best_state is not None and settings.early_stopping_patience is not None and best["step"] > 0
    if restored:
        module.load_state_dict(best_state)
        logger.info("restored the weights of step %d (held-out loss %.4f)", best["step"], best["loss"])
    elif average is not None:
        module.load_state_dict(average.snapshot())
    # the module's schedules (KL warm-up) count this run from its step 0, also after a resume
    module.finish_training(list(tasks), best["step"] if restored else step)
    module.eval()
    if history:
        history[-1]["train_seconds"] = time.perf_counter() - start
        history[-1]["stopped_early"] = stopped_early
        if held_out.size:
            history[-1]["best_step"] = best["step"]
    return history


@torch.no_grad()
def held_out_loss(module: ScDiVaModule, corpus: CellCorpus, cells: np.ndarray, tasks: Sequence[str],
                  weights: dict[str, float], batch_size: int, device: torch.device, use_bf16: bool) -> float:
    """Weighted loss of ``cells`` in eval mode at full KL weight (the ELBO, not its warm-up)."""
    was_training = module.training
    module.eval()
    total, n = 0.0, 0
    rng_state = torch.get_rng_state()
    for i in range(0, cells.size, batch_size):
        batch = corpus.batch_of(cells[i : i + batch_size]).to(device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
            losses = module.losses(batch, list(tasks), step=None)
        total += float(sum(weights[t] * v for t, v in losses.items())) * len(batch)
        n += len(batch)
    torch.set_rng_state(rng_state)
    module.train(was_training)
    return total / max(n, 1)


@contextlib.contextmanager
def dropout_rate(module: torch.nn.Module, rate: float | None) -> Iterator[None]:
    """Every ``nn.Dropout`` of ``module`` at ``rate`` for the block (None: left as it is)."""
    layers = [m for m in module.modules() if isinstance(m, torch.nn.Dropout)] if rate is not None else []
    own = [m.p for m in layers]
    for m in layers:
        m.p = rate
    try:
        yield
    finally:
        for m, p in zip(layers, own, strict=True):
            m.p = p


def _snapshot(module: ScDiVaModule) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


class WeightAverage:
    """Exponential moving average of a module's floating-point weights (``rate`` = the share of each
    step's weights in it); other entries (step counters) follow the module."""

    def __init__(self, module: torch.nn.Module, rate: float):
        self.rate = min(1.0, rate)
        self.state = _snapshot(module)

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        for name, value in module.state_dict().items():
            if value.is_floating_point():
                self.state[name].lerp_(value, self.rate)
            else:
                self.state[name].copy_(value)

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self.state.items()}

    @contextlib.contextmanager
    def swapped_in(self, module: torch.nn.Module) -> Iterator[None]:
        """The averaged weights in ``module`` for the block, its own weights back afterwards."""
        own = _snapshot(module)
        module.load_state_dict(self.state)
        try:
            yield
        finally:
            module.load_state_dict(own)


class _LossModule(torch.nn.Module):
    """forward() = the task losses: DDP synchronises gradients only through forward()."""

    def __init__(self, module: ScDiVaModule):
        super().__init__()
        self.module = module

    def forward(self, batch, tasks: list[str], step: int) -> dict[str, torch.Tensor]:
        return self.module.losses(batch, tasks, step)


def _progress(settings: TrainingSettings, info: DistInfo, initial: int):
    from tqdm.auto import tqdm

    return tqdm(total=settings.max_steps, initial=initial, desc="ScDiVa training", unit="step",
                disable=not settings.progress_bar or not info.is_main, dynamic_ncols=True)
