"""Clippers (trainers/clipping.py): exact outputs, the contract every clipper keeps, validation."""

from __future__ import annotations

import math

import pytest
import torch

from trainers.clipping import CLIPPERS, ClipTelemetry, build_clipper, global_norm
from trainers.config import ConfigError, DivergenceConfig
from trainers.detection import Trigger, grad_trigger

from tests.trainers.helpers import params_with_grads


def test_global_norm_spans_all_tensors() -> None:
    """sqrt(3² + 4² + 12²) = 13 over three tensors of different shapes."""
    grads = [torch.tensor([3.0]), torch.tensor([[4.0]]), torch.tensor([0.0, 12.0])]
    assert float(global_norm(grads)) == 13.0
    assert float(global_norm([])) == 0.0


def test_norm_scales_whole_gradient_to_max_norm() -> None:
    """Grads [3, 4] and [0] have global norm 5; max_norm 1 scales both by 1/5."""
    params = params_with_grads([3.0, 4.0], [0.0])
    telemetry = build_clipper("norm", {"max_norm": 1.0}).clip(params)
    assert telemetry == ClipTelemetry(pre_norm=5.0, post_norm=1.0, clipped=True)
    torch.testing.assert_close(params[0].grad, torch.tensor([0.6, 0.8]), rtol=0, atol=1e-7)
    torch.testing.assert_close(params[1].grad, torch.tensor([0.0]), rtol=0, atol=0)
    assert float(global_norm([p.grad for p in params])) == pytest.approx(1.0, abs=1e-6)


def test_norm_keeps_direction_across_tensors() -> None:
    """Every tensor is scaled by the same factor max_norm / global norm (here 2/13)."""
    originals = [torch.tensor([3.0]), torch.tensor([[4.0, 0.0]]), torch.tensor([0.0, -12.0])]
    params = params_with_grads(*originals)
    telemetry = build_clipper("norm", {"max_norm": 2.0}).clip(params)
    assert telemetry == ClipTelemetry(pre_norm=13.0, post_norm=2.0, clipped=True)
    for p, g in zip(params, originals):
        torch.testing.assert_close(p.grad, g * (2.0 / 13.0))


@pytest.mark.parametrize("max_norm", [5.0, 10.0, 1.0e9])
def test_norm_at_or_under_threshold_leaves_gradient_untouched(max_norm: float) -> None:
    """A gradient whose norm is exactly max_norm (5) or below is not clipped."""
    params = params_with_grads([3.0, 4.0], [0.0])
    telemetry = build_clipper("norm", {"max_norm": max_norm}).clip(params)
    assert telemetry == ClipTelemetry(pre_norm=5.0, post_norm=5.0, clipped=False)
    assert torch.equal(params[0].grad, torch.tensor([3.0, 4.0]))
    assert torch.equal(params[1].grad, torch.tensor([0.0]))


def test_parameters_without_gradient_are_skipped() -> None:
    """A parameter with no .grad neither counts in the norm nor gets one."""
    params = params_with_grads([3.0, 4.0])
    frozen = torch.nn.Parameter(torch.ones(3))
    telemetry = build_clipper("norm", {"max_norm": 1.0}).clip([*params, frozen])
    assert telemetry.pre_norm == 5.0
    assert frozen.grad is None


@pytest.mark.parametrize("grad", [[3.0, 4.0], [3.0e3, 4.0e3], [-1.0e6, 0.0, 2.0e6]])
def test_none_never_changes_gradients(grad: list[float]) -> None:
    params = params_with_grads(grad)
    telemetry = build_clipper("none").clip(params)
    expected = math.sqrt(sum(g * g for g in grad))
    assert telemetry.pre_norm == pytest.approx(expected, rel=1e-6)
    assert telemetry.post_norm == telemetry.pre_norm
    assert telemetry.clipped is False
    assert torch.equal(params[0].grad, torch.tensor(grad))


# ---- the contract of every registered clipper, at its default parameters ----------------------

@pytest.mark.parametrize("method", sorted(CLIPPERS))
def test_contract_zero_gradient(method: str) -> None:
    params = params_with_grads([0.0, 0.0], torch.zeros(2, 3))
    telemetry = build_clipper(method).clip(params)
    assert telemetry == ClipTelemetry(pre_norm=0.0, post_norm=0.0, clipped=False)
    assert torch.equal(params[0].grad, torch.zeros(2))
    assert torch.equal(params[1].grad, torch.zeros(2, 3))


@pytest.mark.parametrize("scale", [1.0e-3, 1.0, 1.0e3, 1.0e6])
@pytest.mark.parametrize("method", sorted(CLIPPERS))
def test_contract_finite_gradient(method: str, scale: float) -> None:
    """post_norm <= pre_norm, both finite; post_norm is the norm actually left in the gradient;
    `clipped` says whether the gradient changed."""
    gen = torch.Generator().manual_seed(0)
    originals = [torch.randn(4, 3, generator=gen) * scale, torch.randn(5, generator=gen) * scale]
    params = params_with_grads(*originals)
    telemetry = build_clipper(method).clip(params)
    assert math.isfinite(telemetry.pre_norm) and math.isfinite(telemetry.post_norm)
    assert telemetry.post_norm <= telemetry.pre_norm
    assert telemetry.pre_norm == pytest.approx(float(global_norm(originals)), rel=1e-6)
    after = [p.grad for p in params]
    assert float(global_norm(after)) == pytest.approx(telemetry.post_norm, rel=1e-5)
    changed = any(not torch.equal(a, o) for a, o in zip(after, originals))
    assert changed is telemetry.clipped


@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("method", sorted(CLIPPERS))
def test_contract_nonfinite_gradient_reports_nonfinite_pre_norm(method: str, bad: float) -> None:
    """Clipping cannot repair a NaN/inf gradient; its pre-clip norm must stay non-finite so that
    divergence detection sees it."""
    params = params_with_grads([1.0, bad], [2.0])
    telemetry = build_clipper(method).clip(params)
    assert not math.isfinite(telemetry.pre_norm)
    assert telemetry.clipped is False
    assert grad_trigger(telemetry.pre_norm, DivergenceConfig()) is Trigger.NONFINITE_GRAD
    assert torch.equal(params[1].grad, torch.tensor([2.0]))


@pytest.mark.parametrize("method", sorted(CLIPPERS))
def test_contract_describe(method: str) -> None:
    """Every clipper describes itself with its registry name, a doc line and its parameters."""
    info = CLIPPERS[method].describe()
    assert info["name"] == method
    assert info["doc"]
    assert isinstance(info["params"], list)


def test_norm_describe_lists_max_norm() -> None:
    assert CLIPPERS["norm"].describe()["params"] == [
        {"name": "max_norm", "type": "float", "default": 1.0}]


# ---- validation ----------------------------------------------------------------------------

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


def test_norm_default_max_norm() -> None:
    assert build_clipper("norm").params.max_norm == 1.0


def test_unknown_method_lists_known_methods() -> None:
    with pytest.raises(ConfigError) as info:
        build_clipper("nrom")
    assert info.value.path == "method"
    assert "'nrom'" in info.value.message
    assert str(sorted(CLIPPERS)) in info.value.message


@pytest.mark.parametrize(("method", "key", "known"), [
    ("norm", "max_nrom", "['max_norm']"),
    ("none", "max_norm", "[]"),
])
def test_unknown_parameter_names_key_and_known_ones(method: str, key: str, known: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_clipper(method, {key: 1.0})
    assert info.value.path == f"params.{key}"
    assert info.value.message == f"unknown parameter; known: {known}"
    assert str(info.value) == f"params.{key}: unknown parameter; known: {known}"
