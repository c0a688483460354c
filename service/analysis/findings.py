"""What the thresholds make of a comparison's numbers: the regressions and improvements, each
with its evidence and a sentence a chat message can show as it is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from service.analysis.numbers import percent
from trainers.clipping import BASELINE

if TYPE_CHECKING:  # the comparison calls judge() on itself
    from service.analysis.comparison import Comparison, DivergenceChange, Side, Thresholds


@dataclass(frozen=True)
class Finding:
    """A regression or improvement the thresholds call real. `subject` is what it is about: a
    cell's configuration hash, or an arm's label for the frontier."""

    kind: str  # divergence, slowdown, frontier, protection; or improvement
    measure: str  # what changed: divergence, slowdown (speed), frontier, protection
    subject: str
    lr: float | None
    clipping: str
    evidence: dict[str, object]
    text: str


def _fraction(side: Side) -> str:
    return f"{side.diverged}/{side.runs}"


def _q(q: float) -> str:
    return f"{q:.2g}" if q >= 0.001 else f"{q:.1e}"


def _cell_name(lr: float, clipping: str) -> str:
    return f"lr {lr:g}, {clipping}"


def judge(result: Comparison, t: Thresholds) -> None:
    """Fill in the regressions and improvements the thresholds call real."""
    for c in result.divergence:
        evidence = divergence_evidence(c)
        name = _cell_name(c.lr, c.clipping)
        if c.q_worse < t.alpha and c.rate_change >= t.min_effect:
            result.regressions.append(Finding(
                "divergence", "divergence", c.config_hash, c.lr, c.clipping, evidence,
                f"divergence at {name}: {_fraction(c.baseline)} → {_fraction(c.current)} (q = {_q(c.q_worse)})"))
        elif c.q_better < t.alpha and -c.rate_change >= t.min_effect:
            result.improvements.append(Finding(
                "improvement", "divergence", c.config_hash, c.lr, c.clipping, evidence,
                f"less divergence at {name}: {_fraction(c.baseline)} → {_fraction(c.current)} "
                f"(q = {_q(c.q_better)})"))
        if c.clip_method != BASELINE and c.baseline.diverged == 0 and c.current.diverged > 0:
            result.regressions.append(Finding(
                "protection", "protection", c.config_hash, c.lr, c.clipping, evidence,
                f"clipping stopped protecting at {name}: 0/{c.baseline.runs} diverged before, "
                f"{_fraction(c.current)} now"))
    for s in result.speed:
        evidence = {"baseline_median": s.baseline_median, "current_median": s.current_median, "ratio": s.ratio,
                    "ratio_low": s.low, "ratio_high": s.high, "cell_index": s.cell_index}
        name = _cell_name(s.lr, s.clipping)
        between = f"median steps to target {s.baseline_median:g} → {s.current_median:g}"
        if s.low > 1 and s.ratio >= t.min_slowdown:
            result.regressions.append(Finding(
                "slowdown", "slowdown", s.config_hash, s.lr, s.clipping, evidence,
                f"slower at {name}: {between} ({s.ratio:.2f}×, 95% interval {s.low:.2f}–{s.high:.2f})"))
        elif s.high < 1 and s.ratio <= 1 / t.min_slowdown:
            result.improvements.append(Finding(
                "improvement", "slowdown", s.config_hash, s.lr, s.clipping, evidence,
                f"faster at {name}: {between} ({s.ratio:.2f}×, 95% interval {s.low:.2f}–{s.high:.2f})"))
    for f in result.frontier:
        evidence = {"baseline_lr": f.baseline_lr, "current_lr": f.current_lr, "tolerance": t.tolerance}
        said = (f"highest stable lr for {f.clipping} at {percent(t.tolerance)}: "
                f"{_lr(f.baseline_lr)} → {_lr(f.current_lr)}")
        if f.baseline_lr is not None and (f.current_lr is None or f.current_lr < f.baseline_lr):
            result.regressions.append(Finding("frontier", "frontier", f.clipping, f.current_lr, f.clipping,
                                              evidence, said))
        elif f.current_lr is not None and (f.baseline_lr is None or f.current_lr > f.baseline_lr):
            result.improvements.append(Finding("improvement", "frontier", f.clipping, f.current_lr, f.clipping,
                                               evidence, said))


def _lr(lr: float | None) -> str:
    return "none" if lr is None else f"{lr:g}"


def divergence_evidence(c: DivergenceChange) -> dict[str, object]:
    """A divergence change as stored with an alert and sent in a webhook."""
    return {"cell_index": c.cell_index, "baseline_cell_index": c.baseline_cell_index, "test": c.test,
            "baseline": {"diverged": c.baseline.diverged, "runs": c.baseline.runs, "rate": c.baseline.rate,
                         "interval": c.baseline.interval},
            "current": {"diverged": c.current.diverged, "runs": c.current.runs, "rate": c.current.rate,
                        "interval": c.current.interval},
            "rate_change": c.rate_change, "p_worse": c.p_worse, "q_worse": c.q_worse, "p_better": c.p_better,
            "q_better": c.q_better, "flipped_seeds": list(c.flipped), "recovered_seeds": list(c.recovered)}
