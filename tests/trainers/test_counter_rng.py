"""Counter-based random numbers (trainers/counter_rng.py) and the tasks that draw their data from
them: a seed's batch is the same drawn alone or in a chunk, and on the CPU or a GPU."""

from __future__ import annotations

import pytest
import torch

from trainers import build_task
from trainers.counter_rng import bits, integers, uniform
from trainers.tasks import TASKS
from trainers.tasks.base import DrawnDataTask

DRAWN = sorted(name for name, cls in TASKS.items() if issubclass(cls, DrawnDataTask))
SEEDS = torch.tensor([0, 5, 9, 2**40])


def test_the_stream_definition_is_pinned() -> None:
    """Stored runs refer to these numbers: any change to the hash or its inputs must be deliberate."""
    assert bits(torch.tensor([0, 1, 2**40]), "pin", 3, (4,)).tolist() == [
        [2696141725, 2767862211, 873920445, 122106450],
        [1464399725, 1612449161, 1655908955, 857735896],
        [2784816351, 942064397, 3102361114, 2849004915],
    ]


def test_seeds_steps_and_streams_give_different_numbers_and_a_draw_never_repeats() -> None:
    a = bits(SEEDS, "data", 0, (1000,))
    assert a.unique().numel() == a.numel()  # the hash is a bijection of the index
    assert not torch.equal(a, bits(SEEDS, "data", 1, (1000,)))
    assert not torch.equal(a, bits(SEEDS, "eval", 0, (1000,)))
    assert all(not torch.equal(a[i], a[j]) for i in range(len(SEEDS)) for j in range(i))


def test_uniform_is_uniform_on_the_float32_grid() -> None:
    u = uniform(torch.tensor([3]), "u", 0, (200_000,)).flatten()
    assert u.dtype == torch.float32 and 0 <= u.min() and u.max() < 1
    assert torch.equal(u * 2**24, (u * 2**24).floor())
    counts = torch.histc(u, bins=20, min=0, max=1)
    expected = len(u) / 20
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 45  # 19 degrees of freedom: 45 is past the 99.9th percentile
    assert abs(float(u[1:] @ u[:-1]) / (len(u) - 1) - 0.25) < 0.005  # neighbours uncorrelated


def test_seeds_streams_are_uncorrelated() -> None:
    """Batch 7 of 64 seeds: every pair's correlation within what independent uniforms would show
    (1,600 values a seed: standard error 0.025; 0.13 is past 5 of them)."""
    u = uniform(torch.arange(64), "data.values", 7, (50, 32)).reshape(64, -1)
    r = torch.corrcoef(u)
    assert r[~torch.eye(64, dtype=torch.bool)].abs().max() < 0.13


def test_integers_cover_their_range_evenly() -> None:
    k = integers(torch.tensor([1, 2]), "k", 7, (60_000,), low=-3, high=3)
    assert k.dtype == torch.int64 and k.min() == -3 and k.max() == 2
    counts = torch.bincount((k + 3).flatten())
    assert (counts - 20_000).abs().max() < 600  # ~4 standard deviations


@pytest.mark.parametrize("bad", [dict(step=-1), dict(step=2**32)])
def test_a_step_outside_32_bits_is_refused(bad: dict) -> None:
    with pytest.raises(ValueError, match="step must be in"):
        bits(SEEDS, "s", shape=(2,), **bad)


def test_an_empty_or_huge_integer_range_is_refused() -> None:
    with pytest.raises(ValueError, match="low < high"):
        integers(SEEDS, "s", 0, (2,), low=3, high=3)
    with pytest.raises(ValueError, match="under 2"):
        integers(SEEDS, "s", 0, (2,), low=0, high=2**31)


@pytest.mark.parametrize("name", DRAWN)
def test_a_seed_draws_the_same_batch_alone_and_in_a_chunk(name: str) -> None:
    task = build_task(name, {"seq_len": 20, "eval_size": 16})
    x, y = task.draw(SEEDS, "data", 4, 8)
    for i, seed in enumerate(SEEDS.tolist()):
        xs, ys = task.draw(torch.tensor([seed]), "data", 4, 8)
        assert torch.equal(x[i], xs[0]) and torch.equal(y[i], ys[0])
    stream = task.batches(int(SEEDS[1]), 8)
    x4, y4 = [next(stream) for _ in range(5)][4]
    assert torch.equal(x4, x[1]) and torch.equal(y4, y[1])  # batches() yields batch k at step k
    ex, ey = task.eval_batch(int(SEEDS[2]))
    cx, cy = task.draw(SEEDS, "eval", 0, 16)
    assert torch.equal(ex, cx[2]) and torch.equal(ey, cy[2])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", DRAWN)
def test_a_batch_drawn_on_the_gpu_is_the_cpus_bit_for_bit(name: str) -> None:
    task = build_task(name, {"seq_len": 50})
    x, y = task.draw(SEEDS, "data", 123, 32)
    gx, gy = task.draw(SEEDS.cuda(), "data", 123, 32)
    assert torch.equal(gx.cpu(), x) and torch.equal(gy.cpu(), y)


def test_a_drawn_data_task_without_an_eval_size_is_refused_where_it_is_defined() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class NoEval:
        seq_len: int = 10

    with pytest.raises(TypeError, match="Params needs an `eval_size` field"):
        class Broken(DrawnDataTask):  # noqa: F841
            name = "broken"
            Params = NoEval
