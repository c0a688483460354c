"""Clippers whose threshold follows the history of each seed's own gradient norms: AutoClip, ZClip.

Both keep per-seed state (rows indexed by seed, dropped with `keep_seeds`) and a step counter shared
by the batch. Both leave non-finite norms out of their statistics: such a seed is about to be
stopped as diverged, and until then its state stays what it was and no other seed can notice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from trainers.clipping.base import ClipContext, Clipper, scale_
from trainers.clipping.unitwise import shrink_factors
from trainers.errors import ConfigError

# Norms are stored in float32 whatever the gradients' dtype: enough for a threshold, half the
# memory of float64 for AutoClip's (S, max_steps) history, and supported on every device.
STATE_DTYPE = torch.float32


@dataclass(frozen=True)
class AutoClipParams:
    percentile: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.percentile <= 100:
            raise ConfigError("percentile", f"must be in (0, 100], got {self.percentile!r}")


class AutoClipper(Clipper):
    """AutoClip (Seetharaman et al. 2020): norm clipping at the p-th percentile of the seed's own norm history.

    At step t the threshold is the `percentile`-th percentile, linearly interpolated as numpy's
    default, of the seed's pre-clip global L2 norms of every step so far, the current one
    included; a gradient whose norm exceeds it is scaled to it, keeping its direction. The history
    is of pre-clip norms, as in the paper, and covers every step (no window).

    State: per seed, the finite norms seen so far in a preallocated (S, max_steps) tensor, kept
    sorted (unused slots hold +inf, which sorts last) with a per-seed count. Only a percentile is
    ever read, so the order of the steps does not matter, and inserting into a sorted row costs one
    pass over it where re-sorting it every step (torch.quantile) is O(t log t) and about 20 times
    slower at t = 10^4. A NaN or infinite norm is not recorded: that seed's threshold is the
    percentile of its finite norms (NaN if it has none, which clips nothing), a NaN gradient passes
    through unchanged and an infinite one becomes NaN, as with norm clipping."""

    name = "autoclip"
    Params = AutoClipParams

    @classmethod
    def state_bytes(cls, n_seeds: int, max_steps: int) -> int:
        """The norm history, one float32 per seed and step allocated at bind, and the temporaries
        an insertion makes over the rows' used width (a shifted copy, two selections, two masks),
        which near the end are the history's size again, three times over."""
        return 4 * n_seeds * max_steps * 4

    def bind(self, context: ClipContext) -> None:
        super().bind(context)
        self._sorted = torch.full((context.n_seeds, context.max_steps), math.inf, dtype=STATE_DTYPE,
                                  device=context.device)
        self._count = torch.zeros(context.n_seeds, dtype=torch.long, device=context.device)
        self._step = 0

    def keep_seeds(self, index: torch.Tensor) -> None:
        self._sorted = self._sorted[index]
        self._count = self._count[index]

    def _clip(self, grads: Sequence[torch.Tensor], weights: Sequence[torch.Tensor],
              pre_norm: torch.Tensor) -> torch.Tensor:
        if self._step >= self._sorted.shape[1]:
            raise RuntimeError(f"autoclip was bound for max_steps={self._sorted.shape[1]} and cannot "
                               f"clip step {self._step}")
        norm = pre_norm.to(STATE_DTYPE)
        finite = torch.isfinite(norm)
        # Searched over whole rows (the +inf tail included) because searchsorted wants them contiguous.
        pos = torch.searchsorted(self._sorted, norm.unsqueeze(1), right=True)
        # Each row holds at most `_step` norms, so the first _step + 1 columns hold all of them and
        # at least one +inf slot for the new one: only those need rewriting.
        width = self._step + 1
        rows = self._sorted[:, :width]
        pos = torch.where(finite.unsqueeze(1), pos, width)  # past the end: the row is left as it is
        cols = torch.arange(width, device=rows.device)
        shifted = torch.cat([rows[:, :1], rows[:, :-1]], dim=1)
        rows.copy_(torch.where(cols < pos, rows, torch.where(cols == pos, norm.unsqueeze(1), shifted)))
        self._count += finite
        self._step += 1

        threshold = self._percentile(rows, self._count)
        factor, clipped = shrink_factors(pre_norm, threshold)
        scale_(grads, factor)
        return clipped

    def _percentile(self, rows: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        """numpy's default ("linear") percentile of the first count[s] entries of each sorted row:
        the value at virtual index q·(n − 1), interpolated between its two neighbours."""
        last = (count - 1).clamp_min(0)
        # float64 as numpy computes the index, so q·(n − 1) lands on the same neighbours.
        virtual = last.double() * (self.params.percentile / 100)
        lo = virtual.floor().long()
        hi = torch.minimum(lo + 1, last)
        below = rows.gather(1, lo.unsqueeze(1)).squeeze(1)
        above = rows.gather(1, hi.unsqueeze(1)).squeeze(1)
        value = torch.lerp(below, above, (virtual - lo).to(rows.dtype))
        return torch.where(count > 0, value, math.nan)


@dataclass(frozen=True)
class ZClipParams:
    z_thresh: float = 2.5  # first: the main knob, always shown in arm labels
    alpha: float = 0.97
    warmup_steps: int = 25
    max_grad_norm: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ConfigError("alpha", f"must be in (0, 1), got {self.alpha!r}")
        if not self.z_thresh > 0:
            raise ConfigError("z_thresh", f"must be > 0, got {self.z_thresh!r}")
        if not 1 <= self.warmup_steps <= 10_000_000:
            raise ConfigError("warmup_steps", f"must be in [1, 10000000], got {self.warmup_steps!r}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ConfigError("max_grad_norm", f"must be > 0 or null, got {self.max_grad_norm!r}")


# σ below this is treated as this in the z-score only, so identical warm-up norms (σ = 0) give a
# finite z. Above it the formulas are the paper's exactly. (The reference implementation divides
# by σ + 1e-6 instead, which also shifts z slightly whenever σ is small but non-zero.)
SIGMA_FLOOR = 1e-12


class ZClipper(Clipper):
    """ZClip (Kumar et al. 2025): clip norm spikes detected by a z-score against an EMA of the seed's norms.

    Warm-up: for the first `warmup_steps` steps nothing is z-clipped and the pre-clip norms are
    collected; at the last of them μ and σ² are set to their mean and (population) variance.
    After that, with g the pre-clip global L2 norm and z = (g − μ) / σ: when z > z_thresh the
    gradient is scaled to the norm g' = μ + z_thresh²·σ / z (a larger spike is cut back harder);
    otherwise g' = g. Then, as in the reference implementation (bluorion-com/ZClip), the EMA
    takes g', mean first and the variance against the updated mean:
    μ ← α·μ + (1 − α)·g', then σ² ← α·σ² + (1 − α)·(g' − μ)².
    `max_grad_norm`, when set, is a hard cap applied after the z-clip, during warm-up too; as in
    the reference the EMA sees g' before the cap, so a cap that binds does not drag μ down to it.

    State per seed: the warm-up norms (S, warmup_steps), μ and σ²; a step counter for the batch.
    σ = 0 is floored to 1e-12 in z only (see SIGMA_FLOOR). A NaN or infinite norm is kept out of
    the warm-up statistics (NaN-mean) and of the EMA update; the NaN gradient passes through and
    an infinite one becomes NaN, as with norm clipping."""

    name = "zclip"
    Params = ZClipParams

    def bind(self, context: ClipContext) -> None:
        super().bind(context)
        n, device = context.n_seeds, context.device
        self._warmup = torch.full((n, self.params.warmup_steps), math.nan, dtype=STATE_DTYPE, device=device)
        self._mean = torch.zeros(n, dtype=STATE_DTYPE, device=device)
        self._var = torch.zeros(n, dtype=STATE_DTYPE, device=device)
        self._step = 0

    def keep_seeds(self, index: torch.Tensor) -> None:
        self._warmup = self._warmup[index]
        self._mean = self._mean[index]
        self._var = self._var[index]

    def _clip(self, grads: Sequence[torch.Tensor], weights: Sequence[torch.Tensor],
              pre_norm: torch.Tensor) -> torch.Tensor:
        p = self.params
        norm = pre_norm.to(STATE_DTYPE)
        if self._step < p.warmup_steps:
            self._warmup[:, self._step] = torch.where(torch.isfinite(norm), norm, math.nan)
            if self._step == p.warmup_steps - 1:
                self._mean = self._warmup.nanmean(dim=1)
                self._var = (self._warmup - self._mean.unsqueeze(1)).square().nanmean(dim=1)
            target = norm
            clipped = torch.zeros_like(norm, dtype=torch.bool)
        else:
            sigma = self._var.sqrt()
            z = (norm - self._mean) / sigma.clamp_min(SIGMA_FLOOR)
            clipped = z > p.z_thresh  # False for NaN z
            # z > z_thresh > 0 wherever the threshold is used, so the divisor is never 0 there.
            threshold = self._mean + p.z_thresh ** 2 * sigma / torch.where(clipped, z, 1.0)
            target = torch.where(clipped, threshold, norm)
            mean = p.alpha * self._mean + (1 - p.alpha) * target
            var = p.alpha * self._var + (1 - p.alpha) * (target - mean).square()
            # On the norm, not the target: an infinite norm is a spike whose target (μ) is finite.
            update = torch.isfinite(norm)
            self._mean = torch.where(update, mean, self._mean)
            self._var = torch.where(update, var, self._var)
        self._step += 1

        if p.max_grad_norm is not None:
            capped = target > p.max_grad_norm
            target = torch.where(capped, p.max_grad_norm, target)
            clipped = clipped | capped
        # Where clipped, the pre-clip norm exceeds the target >= 0, so it is not 0.
        factor = torch.where(clipped, target / torch.where(clipped, pre_norm, 1.0), 1.0)
        scale_(grads, factor)
        return clipped
