"""The `none` and `norm` clippers (trainers/clipping/simple.py) and `seed_norms`
(trainers/clipping/base.py): exact outputs on hand-computed seed-batched tensors, and validation of
their parameters. The contract every registered clipper keeps (zero and non-finite gradients, one
seed never reaching another, `keep_seeds`, `describe`) and the other methods' exact outputs are in
test_clipping_methods.py."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from trainers.clipping import CLIPPERS, ClipContext, Clipper, ClipTelemetry, build_clipper, seed_norms
from trainers.config import ConfigError, DivergenceConfig
from trainers.detection import Trigger, grad_trigger

CPU = torch.device("cpu")


def seeds(*rows: Any) -> torch.Tensor:
    """One float32 tensor with a leading seed dimension: row s is seed s's gradient."""
    return torch.tensor(rows, dtype=torch.float32)


def bound(method: str, grads: list[torch.Tensor], params: dict[str, Any] | None = None) -> Clipper:
    """A clipper bound to a training of len(grads[0]) seeds and these tensors (none of them head)."""
    clipper = build_clipper(method, params)
    clipper.bind(ClipContext(n_seeds=grads[0].shape[0], max_steps=10, device=CPU,
                             is_head=(False,) * len(grads)))
    return clipper


def clip(method: str, grads: list[torch.Tensor], params: dict[str, Any] | None = None) -> ClipTelemetry:
    """Clip `grads` in place (the weights are not read by none/norm: the gradients stand in)."""
    return bound(method, grads, params).clip(grads, [g.clone() for g in grads])


def assert_telemetry(t: ClipTelemetry, pre: list[float], post: list[float], clipped: list[bool]) -> None:
    n = len(pre)
    assert t.pre_norm.shape == t.post_norm.shape == t.clipped.shape == (n,)
    assert t.clipped.dtype == torch.bool
    torch.testing.assert_close(t.pre_norm, torch.tensor(pre), rtol=0, atol=1e-6)
    torch.testing.assert_close(t.post_norm, torch.tensor(post), rtol=0, atol=1e-6)
    assert t.clipped.tolist() == clipped


# ---- seed_norms --------------------------------------------------------------------------------


def test_seed_norms_spans_all_tensors_per_seed() -> None:
    """Per seed, the L2 norm over every tensor together, whatever their shapes: seed 0 has
    sqrt(3² + 4² + 12²) = 13, seed 1 is all zero, seed 2 has sqrt(1 + 2² + 2²) = 3."""
    grads = [
        seeds(3.0, 0.0, 1.0),                          # (S,): one scalar per seed
        seeds([[4.0]], [[0.0]], [[2.0]]),              # (S, 1, 1)
        seeds([0.0, 12.0], [0.0, 0.0], [-2.0, 0.0]),   # (S, 2)
    ]
    assert seed_norms(grads).tolist() == [13.0, 0.0, 3.0]


# ---- none --------------------------------------------------------------------------------------


@pytest.mark.parametrize("grad", [[3.0, 4.0], [3.0e3, 4.0e3], [-1.0e6, 0.0, 2.0e6]])
def test_none_never_changes_gradients(grad: list[float]) -> None:
    """Two seeds, the second ten times the first: untouched, reported with their own norms."""
    before = [seeds(grad, [10 * g for g in grad]), seeds([1.0], [0.0])]
    grads = [g.clone() for g in before]
    t = clip("none", grads)
    expected = math.sqrt(sum(g * g for g in grad) + 1.0)
    expected_1 = math.sqrt(sum(100 * g * g for g in grad))
    assert t.pre_norm.tolist() == pytest.approx([expected, expected_1], rel=1e-6)
    assert torch.equal(t.post_norm, t.pre_norm)
    assert t.clipped.tolist() == [False, False]
    for g, b in zip(grads, before, strict=True):
        assert torch.equal(g, b)


# ---- norm, L2 ----------------------------------------------------------------------------------


def test_norm_scales_whole_gradient_to_max_norm() -> None:
    """Grads [3, 4] and [0] have global norm 5; max_norm 1 scales both by 1/5."""
    grads = [seeds([3.0, 4.0]), seeds([0.0])]
    t = clip("norm", grads, {"max_norm": 1.0})
    assert_telemetry(t, pre=[5.0], post=[1.0], clipped=[True])
    torch.testing.assert_close(grads[0], seeds([0.6, 0.8]), rtol=0, atol=1e-7)
    torch.testing.assert_close(grads[1], seeds([0.0]), rtol=0, atol=0)
    assert float(seed_norms(grads)[0]) == pytest.approx(1.0, abs=1e-6)


def test_norm_keeps_direction_across_tensors() -> None:
    """Every tensor is scaled by the same factor max_norm / global norm (here 2/13)."""
    originals = [seeds([3.0]), seeds([[4.0, 0.0]]), seeds([0.0, -12.0])]
    grads = [g.clone() for g in originals]
    t = clip("norm", grads, {"max_norm": 2.0})
    assert_telemetry(t, pre=[13.0], post=[2.0], clipped=[True])
    for g, o in zip(grads, originals, strict=True):
        torch.testing.assert_close(g, o * (2.0 / 13.0))


@pytest.mark.parametrize("max_norm", [5.0, 10.0, 1.0e9])
def test_norm_at_or_under_threshold_leaves_gradient_untouched(max_norm: float) -> None:
    """A gradient whose norm is exactly max_norm (5) or below is not clipped."""
    grads = [seeds([3.0, 4.0]), seeds([0.0])]
    t = clip("norm", grads, {"max_norm": max_norm})
    assert t.pre_norm.tolist() == [5.0] and t.post_norm.tolist() == [5.0]
    assert t.clipped.tolist() == [False]
    assert torch.equal(grads[0], seeds([3.0, 4.0]))
    assert torch.equal(grads[1], seeds([0.0]))


def test_norm_decides_per_seed() -> None:
    """Seed 0 (norm 5) is over max_norm 1 and is scaled by 1/5; seed 1 (norm 0.5) is under it and
    keeps its gradient bit for bit, although the two seeds' joint norm is over 1."""
    grads = [seeds([3.0, 4.0], [0.3, 0.4]), seeds([0.0], [0.0])]
    t = clip("norm", grads, {"max_norm": 1.0})
    assert_telemetry(t, pre=[5.0, 0.5], post=[1.0, 0.5], clipped=[True, False])
    torch.testing.assert_close(grads[0][0], torch.tensor([0.6, 0.8]), rtol=0, atol=1e-7)
    assert torch.equal(grads[0][1], torch.tensor([0.3, 0.4]))
    assert torch.equal(grads[1], seeds([0.0], [0.0]))


def test_norm_default_parameters() -> None:
    params = build_clipper("norm").params
    assert (params.max_norm, params.norm_type) == (1.0, 2)


# ---- norm, norm_type "inf" ---------------------------------------------------------------------


def test_norm_inf_scales_by_the_largest_entry_and_reports_l2() -> None:
    """[3, -4]: the largest |entry| is 4 > max_norm 2, so the scale is 2/4 = 0.5. The reported norms
    are L2 all the same: 5 before, ‖[1.5, -2]‖ = 2.5 after."""
    grads = [seeds([3.0, -4.0])]
    t = clip("norm", grads, {"max_norm": 2.0, "norm_type": "inf"})
    assert_telemetry(t, pre=[5.0], post=[2.5], clipped=[True])
    assert torch.equal(grads[0], seeds([1.5, -2.0]))


def test_norm_inf_takes_the_largest_entry_over_all_tensors() -> None:
    """[1, -2] and [3]: the largest |entry| is 3 (in the second tensor), scale 2/3 for both."""
    originals = [seeds([1.0, -2.0]), seeds([3.0])]
    grads = [g.clone() for g in originals]
    t = clip("norm", grads, {"max_norm": 2.0, "norm_type": "inf"})
    assert t.clipped.tolist() == [True]
    assert t.pre_norm.tolist() == pytest.approx([math.sqrt(14.0)], rel=1e-6)
    for g, o in zip(grads, originals, strict=True):
        torch.testing.assert_close(g, o * (2.0 / 3.0))


@pytest.mark.parametrize("max_norm", [4.0, 4.5])
def test_norm_inf_at_or_under_the_largest_entry_is_untouched_though_l2_is_over(max_norm: float) -> None:
    """[3, -4] has L2 norm 5 > max_norm but largest |entry| 4 <= max_norm: not clipped, which shows
    the max-abs entry decides, not the L2 norm."""
    grads = [seeds([3.0, -4.0])]
    t = clip("norm", grads, {"max_norm": max_norm, "norm_type": "inf"})
    assert_telemetry(t, pre=[5.0], post=[5.0], clipped=[False])
    assert torch.equal(grads[0], seeds([3.0, -4.0]))


def test_norm_inf_decides_per_seed() -> None:
    """Seed 0's largest |entry| 4 is over 2 (scale 0.5); seed 1's is 1.5, under 2 — its L2 norm
    sqrt(1.5² + 1.5² + 1.5²) = 2.6 is over 2, and it is untouched all the same."""
    grads = [seeds([3.0, -4.0], [1.5, -1.5]), seeds([0.0], [1.5])]
    t = clip("norm", grads, {"max_norm": 2.0, "norm_type": "inf"})
    assert_telemetry(t, pre=[5.0, math.sqrt(6.75)], post=[2.5, math.sqrt(6.75)], clipped=[True, False])
    assert torch.equal(grads[0], seeds([1.5, -2.0], [1.5, -1.5]))
    assert torch.equal(grads[1], seeds([0.0], [1.5]))


# ---- non-finite gradients ----------------------------------------------------------------------


@pytest.mark.parametrize("norm_type", [2, "inf"])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_norm_non_finite_gradient_is_reported_and_stays_in_its_seed(bad: float, norm_type: Any) -> None:
    """Seed 0 has a NaN (or inf) entry: its pre-clip norm is non-finite, so divergence detection
    stops it (clipping cannot repair it). Seed 1 is clipped exactly as it would be alone (by 1/5
    for L2, by 1/4 for the max-abs entry)."""
    grads = [seeds([1.0, bad], [3.0, 4.0]), seeds([2.0], [0.0])]
    t = clip("norm", grads, {"max_norm": 1.0, "norm_type": norm_type})
    pre = float(t.pre_norm[0])
    assert math.isnan(pre) if math.isnan(bad) else pre == math.inf
    assert grad_trigger(pre, DivergenceConfig()) is Trigger.NONFINITE_GRAD
    if math.isnan(bad):  # a NaN norm is never "over" the threshold: the gradient passes through
        assert not bool(t.clipped[0])
        torch.testing.assert_close(grads[0][0], torch.tensor([1.0, math.nan]), equal_nan=True, rtol=0, atol=0)
        assert torch.equal(grads[1][0], torch.tensor([2.0]))
    scale = 1.0 / 5.0 if norm_type == 2 else 1.0 / 4.0
    assert bool(t.clipped[1])
    torch.testing.assert_close(grads[0][1], torch.tensor([3.0, 4.0]) * scale, rtol=0, atol=1e-7)
    assert float(t.pre_norm[1]) == 5.0
    assert float(t.post_norm[1]) == pytest.approx(5.0 * scale, rel=1e-6)


# ---- describe and validation -------------------------------------------------------------------


def test_norm_describe_lists_its_parameters() -> None:
    assert CLIPPERS["norm"].describe()["params"] == [
        {"name": "max_norm", "type": "float", "default": 1.0},
        {"name": "norm_type", "type": "Literal", "default": 2},
    ]


@pytest.mark.parametrize(("max_norm", "shown"), [(0, "0"), (0.0, "0.0"), (-1, "-1"), (-0.5, "-0.5")])
def test_norm_rejects_non_positive_max_norm(max_norm: float, shown: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_clipper("norm", {"max_norm": max_norm})
    assert info.value.path == "params.max_norm"
    assert f"got {shown}" in info.value.message


@pytest.mark.parametrize("max_norm", [math.nan, math.inf, "1.0", True, None])
def test_norm_rejects_non_numbers(max_norm: object) -> None:
    with pytest.raises(ConfigError) as info:
        build_clipper("norm", {"max_norm": max_norm})
    assert info.value.path == "params.max_norm"
    assert repr(max_norm) in info.value.message


def test_norm_accepts_integer_max_norm_as_float() -> None:
    params = build_clipper("norm", {"max_norm": 2}).params
    assert params.max_norm == 2.0 and isinstance(params.max_norm, float)


@pytest.mark.parametrize("norm_type", [1, "2", "l2", "INF", math.inf, None, True])
def test_norm_rejects_unknown_norm_type(norm_type: object) -> None:
    with pytest.raises(ConfigError) as info:
        build_clipper("norm", {"norm_type": norm_type})
    assert info.value.path == "params.norm_type"
    assert info.value.message == f"must be one of [2, 'inf'], got {norm_type!r}"


@pytest.mark.parametrize("norm_type", [2, "inf"])
def test_norm_accepts_both_norm_types(norm_type: Any) -> None:
    assert build_clipper("norm", {"norm_type": norm_type}).params.norm_type == norm_type


def test_unknown_method_lists_known_methods() -> None:
    with pytest.raises(ConfigError) as info:
        build_clipper("nrom")
    assert info.value.path == "method"
    assert "'nrom'" in info.value.message
    assert str(sorted(CLIPPERS)) in info.value.message


@pytest.mark.parametrize(("method", "key", "known"), [
    ("norm", "max_nrom", "['max_norm', 'norm_type']"),
    ("none", "max_norm", "[]"),
])
def test_unknown_parameter_names_key_and_known_ones(method: str, key: str, known: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_clipper(method, {key: 1.0})
    assert info.value.path == f"params.{key}"
    assert info.value.message == f"unknown parameter; known: {known}"
    assert str(info.value) == f"params.{key}: unknown parameter; known: {known}"


def test_clipping_before_bind_says_what_to_call() -> None:
    with pytest.raises(RuntimeError, match=r"the 'norm' clipper is not bound: call bind\(ClipContext"):
        build_clipper("norm", {}).clip([torch.ones(1, 3)], [torch.ones(1, 3)])
