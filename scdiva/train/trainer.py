"""Training loop: AdamW, linear warmup + cosine decay, gradient clipping, reproducible resume, DDP."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import ConcatDataset, DataLoader, DistributedSampler

from scdiva.data.dataset import CellTokenDataset, collate_cells
from scdiva.module.scdiva_module import ScDiVaModule
from scdiva.train.checkpoint import (
    find_checkpoint,
    load_trainer_state,
    optimizer_from_flat,
    save_training_checkpoint,
)
from scdiva.train.distributed import DistInfo, barrier, default_device, setup_distributed

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
    #: "auto": bf16 autocast on CUDA, float32 on CPU (bf16 matmuls are not faster on most CPUs;
    #: see benchmarks/cpu_matmul_precision.py); or "fp32" / "bf16" explicitly
    precision: str = "auto"
    num_workers: int = 0

    def validate(self) -> None:
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {self.precision!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")


def lr_factor(step: int, max_steps: int, warmup_steps: int, floor: float = 0.1) -> float:
    """Learning-rate multiplier: linear warmup to 1, then cosine decay to ``floor``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, max_steps - warmup_steps)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def steps_per_epoch(n_cells: int, batch_size: int, world_size: int = 1) -> int:
    return math.ceil(math.ceil(n_cells / world_size) / batch_size)


def train(module: ScDiVaModule, datasets: Sequence[CellTokenDataset], tasks: Sequence[str],
          settings: TrainingSettings, save_model: Callable[[Path], None] | None = None) -> list[dict[str, Any]]:
    """Train ``module`` on ``datasets`` for ``settings.max_steps`` optimizer steps.

    The loss is the weighted sum of the per-task losses. Everything random (cell order, token
    sampling, value masks, dropout, the reparameterisation noise) is a function of
    ``(seed, step)``, so a run resumed from a checkpoint continues exactly as the uninterrupted
    run would. Returns one record per step: ``step``, ``epoch``, ``loss``, ``lr``, ``loss_<task>``.
    """
    settings.validate()
    info = setup_distributed()
    device = torch.device(settings.device) if settings.device is not None else default_device(info)
    module.to(device)
    dataset = datasets[0] if len(datasets) == 1 else ConcatDataset(datasets)
    n_genes = module.config.n_genes
    per_epoch = steps_per_epoch(len(dataset), settings.batch_size, info.world_size)
    warmup = int(settings.warmup_fraction * settings.max_steps)

    decay, no_decay = [], []
    for name, p in module.named_parameters():
        (no_decay if p.ndim < 2 or "norm" in name or "embedding" in name else decay).append(p)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=settings.lr)

    history: list[dict[str, Any]] = []
    step = 0
    checkpoint = find_checkpoint(settings.checkpoint_dir) if settings.checkpoint_dir and settings.resume else None
    if checkpoint is not None:
        state, optimizer_tensors = load_trainer_state(checkpoint)
        if state["max_steps"] != settings.max_steps or state["tasks"] != list(tasks):
            raise ValueError(f"cannot resume from {checkpoint}: it was written by a run with max_steps="
                             f"{state['max_steps']}, tasks={state['tasks']} (this run: {settings.max_steps}, "
                             f"{list(tasks)}); use another checkpoint_dir or resume=False")
        from safetensors.torch import load_file

        module.load_state_dict(load_file(str(checkpoint / "model.safetensors"), device=str(device)))
        optimizer_from_flat(optimizer, {k: v.to(device) for k, v in optimizer_tensors.items()},
                            state["optimizer"])
        step, history = state["step"], state["history"]
        logger.info("resuming from %s at step %d of %d", checkpoint, step, settings.max_steps)
    elif settings.resume:
        logger.info("resume=True but %s holds no checkpoint yet: starting from step 0", settings.checkpoint_dir)

    model_for_step: torch.nn.Module = _LossModule(module)
    if info.world_size > 1:
        model_for_step = torch.nn.parallel.DistributedDataParallel(
            model_for_step, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)
    sampler = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                 seed=settings.seed)
    use_bf16 = settings.precision == "bf16" or (settings.precision == "auto" and device.type == "cuda")
    every = settings.checkpoint_every or max(1, settings.max_steps // 10)
    weights = {t: settings.task_weights.get(t, 1.0) for t in tasks}

    progress = _progress(settings, info, step)
    module.train()
    start = time.perf_counter()
    while step < settings.max_steps:
        epoch, skip = divmod(step, per_epoch)
        sampler.set_epoch(epoch)
        for d in datasets:
            d.set_epoch(epoch)
        indices = list(sampler)
        batches = [indices[i : i + settings.batch_size] for i in range(0, len(indices), settings.batch_size)]
        loader = DataLoader(dataset, batch_sampler=batches[skip:], num_workers=settings.num_workers,
                            collate_fn=lambda items: collate_cells(items, n_genes))
        for batch in loader:
            batch = batch.to(device)
            torch.manual_seed(settings.seed * 1_000_003 + step)
            factor = lr_factor(step, settings.max_steps, warmup)
            for group in optimizer.param_groups:
                group["lr"] = settings.lr * factor
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
            step += 1
            record = {"step": step, "epoch": epoch, "loss": float(loss.detach()), "lr": settings.lr * factor,
                      **{f"loss_{t}": float(v.detach()) for t, v in losses.items()}}
            history.append(record)
            progress.update(1)
            progress.set_postfix(loss=f"{record['loss']:.4f}", epoch=epoch)
            if settings.checkpoint_dir and (step % every == 0 or step == settings.max_steps):
                if info.is_main:
                    if save_model is None:
                        raise ValueError("checkpointing needs save_model")
                    save_training_checkpoint(settings.checkpoint_dir, save_model, optimizer, {
                        "step": step, "max_steps": settings.max_steps, "tasks": list(tasks),
                        "seed": settings.seed, "history": history})
                barrier(info)
            if step >= settings.max_steps:
                break
    progress.close()
    module.eval()
    if history:
        history[-1]["train_seconds"] = time.perf_counter() - start
    return history


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
