"""Optimizers and the learning-rate schedule.

Every optimizer here is element-wise (SGD with momentum, Adam, AdamW), so one optimizer over
parameters stacked along a seed dimension performs exactly the per-seed updates: nothing mixes
across seeds. The vectorized engine relies on this.
"""

from __future__ import annotations

from typing import Sequence

import torch

from trainers.config import OptimizerConfig


def build_optimizer(params: Sequence[torch.Tensor], config: OptimizerConfig, lr: float) -> torch.optim.Optimizer:
    decay = config.resolved_weight_decay
    if config.name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, nesterov=config.nesterov,
                               weight_decay=decay)
    betas = (config.beta1, config.beta2)
    if config.name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=config.eps, weight_decay=decay)
    return torch.optim.AdamW(params, lr=lr, betas=betas, eps=config.eps, weight_decay=decay)


def lr_at(step: int, base_lr: float, warmup_steps: int) -> float:
    """The learning rate of update `step` (0-based): a linear ramp to `base_lr` over the first
    `warmup_steps` updates (lr/w, 2·lr/w, …, lr), then constant."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return base_lr
    return base_lr * (step + 1) / warmup_steps


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
