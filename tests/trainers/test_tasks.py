"""The adding task's data and model (trainers/tasks/adding.py)."""

from __future__ import annotations

import pytest
import torch

from trainers import TASKS, build_task
from trainers.tasks.adding import AddingTask


@pytest.mark.parametrize("seq_len", [10, 17, 50])
def test_adding_batches_follow_the_problem(seq_len: int) -> None:
    """Two markers per sequence, one in the first 10 %, one in 10-50 %; the target is the mean of
    the two marked values; values lie in [0, 1)."""
    task = build_task("adding", {"seq_len": seq_len, "hidden": 4})
    x, y = next(task.batches(0, 64))
    assert x.shape == (seq_len, 64, 2) and y.shape == (64, 1)
    values, markers = x[..., 0], x[..., 1]
    assert ((values >= 0) & (values < 1)).all()
    assert torch.equal(markers.sum(dim=0), torch.full((64,), 2.0))
    first_end = max(1, seq_len // 10)
    for b in range(64):
        pos = torch.nonzero(markers[:, b]).flatten().tolist()
        assert len(pos) == 2
        assert 0 <= pos[0] < first_end <= pos[1] < seq_len // 2
        expected = 0.5 * (values[pos[0], b] + values[pos[1], b])
        assert torch.equal(y[b, 0], expected)


def test_eval_batch_has_eval_size() -> None:
    x, y = build_task("adding", {"seq_len": 10, "eval_size": 7}).eval_batch(0)
    assert x.shape == (10, 7, 2) and y.shape == (7, 1)


def test_model_init_and_shapes() -> None:
    """basic_tanh: biases zero, weights N(0, init_std); the output is one number per sequence."""
    task = build_task("adding", {"seq_len": 10, "hidden": 64, "init_std": 0.5})
    model = task.build_model(0)
    assert model.w_hh.shape == (64, 64) and model.w_in.shape == (64, 2)
    assert torch.equal(model.b, torch.zeros(64)) and torch.equal(model.b_out, torch.zeros(1))
    assert float(model.w_hh.detach().std()) == pytest.approx(0.5, rel=0.05)
    x, _ = next(task.batches(0, 3))
    assert model(x).shape == (3, 1)


def test_loss_is_mse() -> None:
    task = build_task("adding")
    assert float(task.loss(torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [1.0]]))) == 2.5


def test_registry() -> None:
    """The adding task is registered under its name (the full registry, every task in it, is checked
    in test_task_zoo.py)."""
    assert TASKS["adding"] is AddingTask
    assert isinstance(build_task("adding"), AddingTask)
    info = AddingTask.describe()
    assert info["name"] == "adding" and info["default_target_loss"] == 0.01
    assert info["doc"].startswith("Adding problem")
    assert [p["name"] for p in info["params"]] == [
        "seq_len", "hidden", "init", "init_std", "recurrent_gain", "eval_size"]
