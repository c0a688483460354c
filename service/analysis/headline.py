"""The sweep's answer in one plain sentence, built from its statistics: does clipping cut
divergence (and how surely), how far does it move the highest stable learning rate, and how much
faster does it reach the target there. The dashboard shows it above the charts; the CLI prints it."""

from __future__ import annotations

from typing import Sequence

from service.analysis.numbers import percent, percent_range
from service.analysis.statistics import Estimate, PairedComparison, Unavailable
from service.analysis.summary import ArmFrontier, CellSummary
from trainers.clipping import BASELINE


def _rate_with_interval(cell: CellSummary) -> str:
    assert cell.divergence_rate is not None and cell.divergence_ci is not None
    low, high = cell.divergence_ci
    return f"{percent(cell.divergence_rate)} [{percent_range(low, high)}]"


def _significance(p_value: float) -> str:
    if p_value < 0.001:
        return "p < 0.001"
    return f"p = {p_value:.2g}" + (", not significant" if p_value >= 0.05 else "")


def _best_comparison(cells: Sequence[CellSummary]) -> tuple[CellSummary, PairedComparison] | None:
    """The cell whose arm cut divergence most against the baseline; ties go to the surer test,
    then the higher learning rate."""
    compared = [(cell, cell.vs_baseline) for cell in cells
                if isinstance(cell.vs_baseline, PairedComparison) and cell.finished]
    if not compared:
        return None
    return min(compared, key=lambda pair: (pair[1].rate_difference, pair[1].p_value, -pair[0].lr))


def _stable_lr(frontier: ArmFrontier | None) -> float | None:
    return None if frontier is None or isinstance(frontier.stable_lr, Unavailable) else frontier.stable_lr


def _speedup(cells: Sequence[CellSummary], arm: str, arm_lr: float, baseline_lr: float) -> str | None:
    """Steps to target of the arm at its best stable lr against the baseline at its own."""
    def steps(label: str, lr: float) -> Estimate | Unavailable | None:
        found = [c.steps_to_target for c in cells if c.clipping == label and c.lr == lr]
        return found[0] if found else None

    ours, theirs = steps(arm, arm_lr), steps(BASELINE, baseline_lr)
    if not isinstance(ours, Estimate) or not isinstance(theirs, Estimate):
        why = next((s.reason for s in (ours, theirs) if isinstance(s, Unavailable)), None)
        return f"steps to target not compared ({why})" if why else None
    ratio = theirs.value / ours.value
    if ratio >= 1:
        return f"{ratio:.1f}× fewer steps to target"
    return f"{1 / ratio:.1f}× more steps to target"


# While a sweep trains, the headline waits until every cell has this many trained runs: a rate
# from two runs ("100%, 2/2") is not an answer, and read as one it misleads.
PROVISIONAL_MIN_RUNS = 8


def too_early(cell: CellSummary, running: bool) -> bool:
    """Whether a cell of a sweep still training has too few trained runs for its rate to be read
    as an answer: fewer than PROVISIONAL_MIN_RUNS, and fewer than it will have."""
    return running and cell.finished < min(PROVISIONAL_MIN_RUNS, cell.runs)


def headline(cells: Sequence[CellSummary], frontier: Sequence[ArmFrontier], tolerance: float,
             running: bool = False) -> str | None:
    """One sentence answering the sweep's question, or None while no cell has an outcome. While
    the sweep is `running` the sentence says it is provisional, with how many runs it stands on,
    and says only the counts until every cell has PROVISIONAL_MIN_RUNS trained runs."""
    if not any(c.finished for c in cells):
        return None
    if not running:
        return _answer(cells, frontier, tolerance)
    done, total = sum(c.finished for c in cells), sum(c.runs for c in cells)
    fewest = min(c.finished for c in cells)
    if any(too_early(c, running) for c in cells):
        diverged = sum(c.diverged for c in cells)
        return (f"so far {done} of {total} runs have finished ({diverged} diverged); the answer waits until "
                f"every cell has {PROVISIONAL_MIN_RUNS} (the thinnest has {fewest}).")
    return f"so far ({done} of {total} runs): " + _answer(cells, frontier, tolerance)


def _answer(cells: Sequence[CellSummary], frontier: Sequence[ArmFrontier], tolerance: float) -> str:
    by_arm = {f.clipping: f for f in frontier}
    baseline_cells = [c for c in cells if c.clip_method == BASELINE and c.finished]
    best = _best_comparison(cells)
    if best is None:  # no baseline arm, or only it: nothing to compare, only each arm's frontier
        stable = [f"{f.clipping} {lr:g}" for f in frontier if (lr := _stable_lr(f)) is not None]
        if stable:
            return f"highest stable lr at {percent(tolerance)} tolerance: " + ", ".join(stable) + "."
        return f"no learning rate kept its divergence upper bound under {percent(tolerance)} in any arm."
    cell, paired = best
    [baseline_cell] = [c for c in baseline_cells if c.lr == cell.lr]
    if not any(c.diverged for c in baseline_cells):
        sentence = "no run diverged without clipping at any learning rate tried: try larger learning rates"
    elif paired.rate_difference >= 0:
        sentence = f"no clipping arm diverged less often than {BASELINE} at any learning rate"
    else:
        sentence = (f"{cell.clipping} cut divergence at lr {cell.lr:g} from {_rate_with_interval(baseline_cell)} "
                    f"to {_rate_with_interval(cell)} ({_significance(paired.p_value)})")
    arm_lr, baseline_lr = _stable_lr(by_arm.get(cell.clipping)), _stable_lr(by_arm.get(BASELINE))
    if arm_lr is not None and baseline_lr is not None:
        sentence += f"; highest stable lr {arm_lr:g} vs {baseline_lr:g}"
        speed = _speedup(cells, cell.clipping, arm_lr, baseline_lr)
        if speed:
            sentence += f"; {speed}"
    elif arm_lr is not None:
        sentence += f"; highest stable lr {arm_lr:g}, while no lr was stable without clipping"
    else:
        reason = by_arm[cell.clipping].stable_lr if cell.clipping in by_arm else None
        if isinstance(reason, Unavailable):
            sentence += f"; no stable learning rate at {percent(tolerance)} ({reason.reason})"
    return sentence + "."
