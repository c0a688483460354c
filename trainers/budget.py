"""What a trial costs before it runs: the memory a chunk of seeds needs, from the task's and the
clipper's own estimates (Task.cost, Clipper.state_bytes).

Per seed, in float32: the weights, their gradients and two optimizer moments (Adam's; SGD with
momentum keeps one), one training batch's activations and their gradients, and the evaluation
batch's. A chunk multiplies that by its seeds and adds the clipper's state. The figure is an
estimate to refuse what cannot fit, not a promise of what will.
"""

from __future__ import annotations

from trainers.clipping import CLIPPERS
from trainers.config import TrainConfig
from trainers.tasks import build_task

FLOAT32 = 4


def trial_memory_bytes(config: TrainConfig, n_seeds: int) -> int | None:
    """Bytes a trial of `n_seeds` seeds of this configuration holds; None when the task cannot say."""
    cost = build_task(config.task, config.task_params).cost(config.batch_size)
    if cost is None:
        return None
    per_seed = FLOAT32 * (4 * cost.parameters + 2 * cost.training + cost.evaluation)
    clipper = CLIPPERS[config.clipping.method]
    return n_seeds * per_seed + clipper.state_bytes(n_seeds, config.max_steps)
