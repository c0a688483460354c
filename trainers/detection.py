"""Divergence and convergence rules, as pure functions of the numbers one step produced."""

from __future__ import annotations

import math
from enum import Enum

import torch

from trainers.config import DivergenceConfig


class Trigger(str, Enum):
    """Why a run was declared diverged."""

    NONFINITE_LOSS = "nonfinite_loss"
    NONFINITE_GRAD = "nonfinite_grad"
    LOSS_EXPLOSION = "loss_explosion"
    GRAD_EXPLOSION = "grad_explosion"


def loss_trigger(loss: float, initial_loss: float, rule: DivergenceConfig) -> Trigger | None:
    """Divergence read off the loss: not finite, or above loss_factor × the initial loss."""
    if not math.isfinite(loss):
        return Trigger.NONFINITE_LOSS
    if loss > rule.loss_factor * initial_loss:
        return Trigger.LOSS_EXPLOSION
    return None


def loss_ok(losses: torch.Tensor, initial: torch.Tensor, rule: DivergenceConfig) -> torch.Tensor:
    """Where `loss_trigger` gives None, for float64 tensors of many seeds at once."""
    return torch.isfinite(losses) & (losses <= rule.loss_factor * initial)


def grad_trigger(pre_clip_norm: float, rule: DivergenceConfig) -> Trigger | None:
    """Divergence read off the pre-clip gradient norm: not finite, or above the limit.

    The pre-clip norm is used because clipping hides an explosion from everything downstream.
    """
    if not math.isfinite(pre_clip_norm):
        return Trigger.NONFINITE_GRAD
    if pre_clip_norm > rule.grad_norm_limit:
        return Trigger.GRAD_EXPLOSION
    return None


def grad_ok(pre_clip_norms: torch.Tensor, rule: DivergenceConfig) -> torch.Tensor:
    """Where `grad_trigger` gives None, for a float64 tensor of many seeds at once."""
    return torch.isfinite(pre_clip_norms) & (pre_clip_norms <= rule.grad_norm_limit)


def is_converged(eval_loss: float, target_loss: float) -> bool:
    """At or under the target. A non-finite loss never converges."""
    return math.isfinite(eval_loss) and eval_loss <= target_loss


def converged(eval_losses: torch.Tensor, target_loss: float) -> torch.Tensor:
    """Where `is_converged` is true, for a float64 tensor of many seeds at once."""
    return torch.isfinite(eval_losses) & (eval_losses <= target_loss)
