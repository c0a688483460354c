"""Clipping methods on seed-batched gradients (trainers/clipping/): the contract every registered
clipper keeps, exact outputs of each method on hand-computed tensors, and parameter validation."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np
import pytest
import torch

from trainers.clipping import CLIPPERS, ClipContext, Clipper, ClipTelemetry, build_clipper, seed_norms
from trainers.config import ConfigError

CPU = torch.device("cpu")
S = 3
# Per-seed shapes of a small model: a weight, its bias, a conv-like 3-d weight, a scalar, and an
# output layer (weight and bias) flagged as head.
SHAPES: list[tuple[int, ...]] = [(4, 3), (4,), (2, 2, 2), (), (2, 4), (2,)]
IS_HEAD = (False, False, False, False, True, True)
STEPS = 40
SPIKES = {28: (0, 2), 33: (1,)}  # step -> seeds whose gradient is 30x larger, after ZClip's warm-up

Step = tuple[list[torch.Tensor], ClipTelemetry]


def bound(method: str, n_seeds: int, params: dict[str, Any] | None = None, is_head: tuple[bool, ...] = IS_HEAD,
          max_steps: int = 50) -> Clipper:
    clipper = build_clipper(method, params)
    clipper.bind(ClipContext(n_seeds=n_seeds, max_steps=max_steps, device=CPU, is_head=is_head))
    return clipper


def make_weights() -> list[torch.Tensor]:
    """Large enough that AGC's default limit (0.01·‖W_i‖) is crossed by some units and not others."""
    gen = torch.Generator().manual_seed(1)
    return [50 * torch.randn((S, *shape), generator=gen) for shape in SHAPES]


def make_sequence() -> list[list[torch.Tensor]]:
    """STEPS steps of gradients for S seeds whose per-seed scale wanders (log-normal) across every
    method's default threshold, with spikes."""
    gen = torch.Generator().manual_seed(0)
    out = []
    for step in range(STEPS):
        scale = 0.2 * torch.exp(torch.randn(S, generator=gen))
        for s in SPIKES.get(step, ()):
            scale[s] *= 30.0
        out.append([torch.randn((S, *shape), generator=gen) * scale.reshape(S, *[1] * len(shape))
                    for shape in SHAPES])
    return out


def run(clipper: Clipper, sequence: list[list[torch.Tensor]], weights: list[torch.Tensor]) -> list[Step]:
    """Clip copies of each step's gradients; return them with the telemetry."""
    out = []
    for grads in sequence:
        grads = [g.clone() for g in grads]
        out.append((grads, clipper.clip(grads, weights)))
    return out


def rows(step: Step, index: list[int]) -> Step:
    grads, t = step
    return [g[index] for g in grads], ClipTelemetry(t.pre_norm[index], t.post_norm[index], t.clipped[index])


def assert_same(a: Step, b: Step, exact: bool = True) -> None:
    tol: dict[str, float] = {"rtol": 0.0, "atol": 0.0} if exact else {"rtol": 1e-6, "atol": 1e-7}
    for x, y in zip(a[0], b[0], strict=True):
        torch.testing.assert_close(x, y, equal_nan=True, **tol)
    torch.testing.assert_close(a[1].pre_norm, b[1].pre_norm, equal_nan=True, **tol)
    torch.testing.assert_close(a[1].post_norm, b[1].post_norm, equal_nan=True, **tol)
    assert torch.equal(a[1].clipped, b[1].clipped)


METHODS = sorted(CLIPPERS)


# ---------------------------------------------------------------------------------------------
# The contract, for every registered method with its default parameters.


@pytest.mark.parametrize("method", METHODS)
def test_zero_gradient_stays_zero_and_is_not_clipped(method: str) -> None:
    """Past ZClip's warm-up too, where all-zero norms mean σ = 0 and μ = 0."""
    clipper = bound(method, S)
    for _ in range(30):
        grads = [torch.zeros(S, *shape) for shape in SHAPES]
        t = clipper.clip(grads, make_weights())
        assert all(torch.equal(g, torch.zeros_like(g)) for g in grads)
        assert torch.equal(t.pre_norm, torch.zeros(S))
        assert torch.equal(t.post_norm, torch.zeros(S))
        assert not t.clipped.any()


@pytest.mark.parametrize("method", METHODS)
def test_finite_gradient_shrinks_or_stays_and_reports_per_seed(method: str) -> None:
    clipper = bound(method, S)
    weights = make_weights()
    decisions = []
    for before in make_sequence():
        grads = [g.clone() for g in before]
        t = clipper.clip(grads, weights)
        for x in (t.pre_norm, t.post_norm, t.clipped):
            assert x.shape == (S,)
        assert t.clipped.dtype == torch.bool
        assert all(torch.isfinite(g).all() for g in grads)
        assert (t.post_norm <= t.pre_norm * (1 + 1e-6)).all()
        torch.testing.assert_close(t.pre_norm, seed_norms(before), rtol=0, atol=0)
        torch.testing.assert_close(t.post_norm, seed_norms(grads), rtol=0, atol=0)
        # `clipped` says exactly which seeds' gradients changed.
        changed = torch.stack([(g != b).reshape(S, -1).any(dim=1) for g, b in zip(grads, before)]).any(dim=0)
        assert torch.equal(changed, t.clipped)
        decisions += t.clipped.tolist()
    # The sequence is meant to make every method but "none" clip some seeds and not others.
    assert set(decisions) == ({False} if method == "none" else {False, True})


@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("method", METHODS)
def test_non_finite_gradient_in_one_seed_does_not_reach_the_others(method: str, bad: float) -> None:
    """Seed 1 gets a NaN (or inf) entry at steps 5 and 30 (in and after ZClip's warm-up); seeds 0
    and 2 must see exactly what they see when seed 1 stays finite."""
    weights = make_weights()
    clean = make_sequence()
    dirty = [[g.clone() for g in grads] for grads in clean]
    for step in (5, 30):
        dirty[step][0][1, 2, 1] = bad
    reference = run(bound(method, S), clean, weights)
    result = run(bound(method, S), dirty, weights)
    for step, (a, b) in enumerate(zip(result, reference)):
        assert_same(rows(a, [0, 2]), rows(b, [0, 2]))
        if step in (5, 30):
            pre = float(a[1].pre_norm[1])
            assert math.isnan(pre) if math.isnan(bad) else pre == math.inf


@pytest.mark.parametrize("method", METHODS)
def test_each_seed_is_clipped_as_if_alone(method: str) -> None:
    sequence, weights = make_sequence(), make_weights()
    batched = run(bound(method, S), sequence, weights)
    for s in range(S):
        alone = run(bound(method, 1), [[g[s:s + 1] for g in grads] for grads in sequence],
                    [w[s:s + 1] for w in weights])
        for a, b in zip(alone, batched):
            assert_same(a, rows(b, [s]), exact=False)


@pytest.mark.parametrize("drop_at", [10, 30])  # during and after ZClip's warm-up
@pytest.mark.parametrize("method", METHODS)
def test_keep_seeds_continues_the_kept_seeds_unchanged(method: str, drop_at: int) -> None:
    """Seed 1 leaves at step `drop_at`, and the remaining seeds are reordered to (2, 0)."""
    sequence, weights = make_sequence(), make_weights()
    reference = run(bound(method, S), sequence, weights)
    clipper = bound(method, S)
    run(clipper, sequence[:drop_at], weights)
    keep = [2, 0]
    clipper.keep_seeds(torch.tensor(keep))
    rest = run(clipper, [[g[keep] for g in grads] for grads in sequence[drop_at:]], [w[keep] for w in weights])
    for a, b in zip(rest, reference[drop_at:], strict=True):
        assert_same(a, rows(b, keep))


@pytest.mark.parametrize("method", METHODS)
def test_describe_is_json_and_defaults_round_trip(method: str) -> None:
    """What `GET /clipping-methods` lists, and what a resolved spec stores (every parameter spelled
    out), must build the same clipper again."""
    cls = CLIPPERS[method]
    description = json.loads(json.dumps(cls.describe()))
    assert description["name"] == method and description["doc"]
    defaults = cls().params
    assert [p["name"] for p in description["params"]] == [f.name for f in dataclasses.fields(defaults)]
    assert build_clipper(method, json.loads(json.dumps(dataclasses.asdict(defaults)))).params == defaults


# ---------------------------------------------------------------------------------------------
# value, per_layer, agc: exact outputs on hand-computed tensors.


def test_value_clamps_each_entry() -> None:
    # Seed 0 has -3 and 2 outside [-1, 1]; seed 1 touches the bound (1.0) but does not cross it.
    a = torch.tensor([[[0.5, -3.0], [2.0, 0.1]],
                      [[0.2, -0.9], [1.0, 0.0]]])
    b = torch.tensor([[0.25], [-1.0]])
    t = bound("value", 2, {"clip_value": 1.0}, is_head=(False, False)).clip([a, b], [a, b])
    torch.testing.assert_close(a, torch.tensor([[[0.5, -1.0], [1.0, 0.1]],
                                                [[0.2, -0.9], [1.0, 0.0]]]), rtol=0, atol=0)
    torch.testing.assert_close(b, torch.tensor([[0.25], [-1.0]]), rtol=0, atol=0)
    assert t.clipped.tolist() == [True, False]
    # pre: sqrt(0.25 + 9 + 4 + 0.01 + 0.0625) = sqrt(13.3225) = 3.65; post: sqrt(0.25+1+1+0.01+0.0625)
    torch.testing.assert_close(t.pre_norm, torch.tensor([3.65, math.sqrt(0.04 + 0.81 + 1.0 + 1.0)]))
    torch.testing.assert_close(t.post_norm[0], torch.tensor(math.sqrt(2.3225)))


def test_per_layer_scales_each_tensor_by_its_own_norm() -> None:
    # Seed 0: a = [3, 4] has norm 5 > 2, scaled by 2/5 to [1.2, 1.6]; b = [0.6, 0.8]ᵀ has norm 1 and
    # is left alone, though the global norm sqrt(26) exceeds 2. Seed 1: both under 2, untouched.
    a = torch.tensor([[3.0, 4.0], [1.0, 1.0]])
    b = torch.tensor([[[0.6], [0.8]], [[0.0], [1.5]]])
    t = bound("per_layer", 2, {"max_norm": 2.0}, is_head=(False, False)).clip([a, b], [a, b])
    torch.testing.assert_close(a, torch.tensor([[1.2, 1.6], [1.0, 1.0]]), rtol=1e-6, atol=0)
    torch.testing.assert_close(b, torch.tensor([[[0.6], [0.8]], [[0.0], [1.5]]]), rtol=0, atol=0)
    assert t.clipped.tolist() == [True, False]
    # seed 0 post: sqrt(1.2² + 1.6² + 1) = sqrt(5)
    torch.testing.assert_close(t.post_norm, torch.tensor([math.sqrt(5.0), math.sqrt(2.0 + 2.25)]))


def agc_case() -> tuple[list[torch.Tensor], list[torch.Tensor], tuple[bool, ...]]:
    """One seed; λ = 0.5, ε = 1e-3. Each tensor's expected result is in test_agc_clips_units_by_weight_norm."""
    weights = [
        torch.tensor([[[3.0, 4.0], [0.6, 0.8]]]),        # rows ‖W‖ = 5, 1
        torch.tensor([[3.0, 4.0]]),                      # a bias: one unit, ‖W‖ = 5
        torch.tensor([[0.0, 0.0]]),                      # a zero bias: ‖W‖ = 0 → ε
        torch.tensor([[[[1.0, 1.0], [1.0, 1.0]],         # (out=2, 2, 2): row 0 ‖W‖ = 2,
                       [[0.0, 0.0], [0.0, 0.0]]]]),      # row 1 ‖W‖ = 0 → ε
        torch.tensor([2.0]),                             # a scalar: ‖W‖ = 2
        torch.tensor([[[0.1, 0.0], [0.0, 0.1]]]),        # the head: rows ‖W‖ = 0.1
    ]
    grads = [
        torch.tensor([[[6.0, 8.0], [0.03, 0.04]]]),      # rows ‖G‖ = 10, 0.05
        torch.tensor([[6.0, 0.0]]),                      # ‖G‖ = 6
        torch.tensor([[0.03, 0.04]]),                    # ‖G‖ = 0.05
        torch.tensor([[[[2.0, 2.0], [2.0, 2.0]],         # row 0 ‖G‖ = 4
                       [[0.0, 0.0], [0.0, 0.0]]]]),      # row 1 ‖G‖ = 0: 0/0 must not appear
        torch.tensor([5.0]),                             # ‖G‖ = 5
        torch.tensor([[[10.0, 0.0], [0.0, 10.0]]]),      # rows ‖G‖ = 10
    ]
    return grads, weights, (False, False, False, False, False, True)


def test_agc_clips_units_by_weight_norm() -> None:
    grads, weights, is_head = agc_case()
    t = bound("agc", 1, {"clipping": 0.5, "eps": 1e-3}, is_head=is_head).clip(grads, weights)
    expected = [
        # row 0: 10 > 0.5·5 = 2.5 → ×2.5/10; row 1: 0.05 ≤ 0.5·1 → as is
        torch.tensor([[[1.5, 2.0], [0.03, 0.04]]]),
        # whole-tensor norm: 6 > 2.5 → ×2.5/6. (Element-wise it would have been [1.5, 0].)
        torch.tensor([[2.5, 0.0]]),
        # 0.05 > 0.5·max(0, 1e-3) = 5e-4 → ×5e-4/0.05 = ×0.01
        torch.tensor([[3e-4, 4e-4]]),
        # row 0: 4 > 0.5·2 = 1 → ×1/4; row 1: 0 ≤ 5e-4 → stays 0
        torch.tensor([[[[0.5, 0.5], [0.5, 0.5]], [[0.0, 0.0], [0.0, 0.0]]]]),
        # 5 > 0.5·2 = 1 → 1
        torch.tensor([1.0]),
        # head: untouched although 10 > 0.5·0.1
        torch.tensor([[[10.0, 0.0], [0.0, 10.0]]]),
    ]
    for g, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-6, atol=0)
    assert t.clipped.tolist() == [True]


def test_agc_clips_the_head_when_asked() -> None:
    grads, weights, is_head = agc_case()
    bound("agc", 1, {"clipping": 0.5, "clip_head": True}, is_head=is_head).clip(grads, weights)
    # rows: 10 > 0.5·0.1 = 0.05 → ×0.05/10
    torch.testing.assert_close(grads[5], torch.tensor([[[0.05, 0.0], [0.0, 0.05]]]), rtol=1e-6, atol=0)


def test_agc_under_the_limit_is_not_clipped() -> None:
    # Rows ‖G‖ = 2.5, 0.01 against 0.5·‖W‖ = 2.5 (at the limit, not over it; all exact in float32)
    # and 0.5·100 = 50.
    g = torch.tensor([[[1.5, 2.0], [0.01, 0.0]]])
    w = torch.tensor([[[3.0, 4.0], [0.0, 100.0]]])
    before = g.clone()
    t = bound("agc", 1, {"clipping": 0.5}, is_head=(False,)).clip([g], [w])
    assert torch.equal(g, before) and t.clipped.tolist() == [False]


# ---------------------------------------------------------------------------------------------
# autoclip


def norms_as_grads(norms: list[float]) -> list[torch.Tensor]:
    """One (S, 2) gradient per seed with the given global norms: [n, 0]."""
    return [torch.tensor([[n, 0.0] for n in norms])]


def clip_norms(clipper: Clipper, norms: list[float]) -> ClipTelemetry:
    grads = norms_as_grads(norms)
    return clipper.clip(grads, grads)


def test_autoclip_threshold_is_the_percentile_of_the_history_so_far() -> None:
    """p = 30, numpy's linear percentile: virtual index 0.3·(n − 1) into the sorted history, the
    current (pre-clip) norm included. Two seeds side by side with their own histories."""
    clipper = bound("autoclip", 2, {"percentile": 30}, is_head=(False,))
    seed0 = [4.0, 1.0, 3.0, 2.0, 10.0]
    seed1 = [1.0, 2.0, 3.0, 4.0, 5.0]
    # seed 0:   [4] → 4, not over;  [1, 4] idx 0.3 → 1.9, 1 not over;  [1, 3, 4] idx 0.6 → 1 + 0.6·2 = 2.2;
    #           [1, 2, 3, 4] idx 0.9 → 1.9;  [1, 2, 3, 4, 10] idx 1.2 → 2 + 0.2·1 = 2.2
    # seed 1:   [1] → 1, not over;  [1, 2] → 1.3;  [1, 2, 3] → 1.6;  [1..4] → 1.9;  [1..5] → 2.2
    expected_post = [(4.0, 1.0), (1.0, 1.3), (2.2, 1.6), (1.9, 1.9), (2.2, 2.2)]
    expected_clipped = [(False, False), (False, True), (True, True), (True, True), (True, True)]
    for n0, n1, post, clipped in zip(seed0, seed1, expected_post, expected_clipped):
        t = clip_norms(clipper, [n0, n1])
        assert t.pre_norm.tolist() == [n0, n1]
        assert t.post_norm.tolist() == pytest.approx(post, rel=1e-6)
        assert tuple(t.clipped.tolist()) == clipped


def test_autoclip_matches_numpy_percentile_and_skips_non_finite_norms() -> None:
    """60 random norms per seed; seed 1 has a NaN and an inf that must not enter its history."""
    rng = np.random.default_rng(3)
    norms = rng.lognormal(0.0, 1.0, size=(60, 2))
    norms[[7, 40], 1] = [math.nan, math.inf]
    clipper = bound("autoclip", 2, {"percentile": 25}, is_head=(False,), max_steps=60)
    for step in range(60):
        t = clip_norms(clipper, norms[step].tolist())
        for s in range(2):
            history = norms[:step + 1, s]
            threshold = np.percentile(history[np.isfinite(history)], 25)
            current = norms[step, s]
            if math.isnan(current):
                assert math.isnan(float(t.post_norm[s])) and not t.clipped[s]
            elif math.isinf(current):
                assert t.clipped[s]  # scaled by 0: inf·0 is NaN, as norm clipping does
            else:
                assert float(t.post_norm[s]) == pytest.approx(min(current, threshold), rel=1e-5)
                assert bool(t.clipped[s]) == (current > threshold)


def test_autoclip_refuses_more_steps_than_bound_for() -> None:
    clipper = bound("autoclip", 1, is_head=(False,), max_steps=2)
    clip_norms(clipper, [1.0])
    clip_norms(clipper, [1.0])
    with pytest.raises(RuntimeError, match="max_steps=2"):
        clip_norms(clipper, [1.0])


# ---------------------------------------------------------------------------------------------
# zclip


def zclip_posts(params: dict[str, Any], norms: list[float]) -> list[tuple[float, bool]]:
    clipper = bound("zclip", 1, params, is_head=(False,))
    out = []
    for n in norms:
        t = clip_norms(clipper, [n])
        out.append((float(t.post_norm[0]), bool(t.clipped[0])))
    return out


def test_zclip_does_not_clip_during_warm_up() -> None:
    norms = [1.0 + 0.1 * (i % 3) for i in range(25)]
    norms[10] = 1000.0
    assert zclip_posts({}, norms) == [(pytest.approx(n, rel=1e-6), False) for n in norms]


# Warm-up [1, 2, 3, 2]: μ = 2, σ² = (1 + 0 + 1 + 0)/4 = 0.5, σ = √0.5.
# step 4, g = 10: z = 8/√0.5 = 11.31 > 2.5 → g' = μ + 2.5²·σ/z = 2 + 6.25·σ²/(g − μ) = 2 + 6.25·0.5/8 = 2.390625
#   EMA: μ = 0.97·2 + 0.03·2.390625 = 2.01171875; σ² = 0.97·0.5 + 0.03·(2.390625 − 2.01171875)² = 0.4893070984
# step 5, g = 2.1: z = 0.0883/0.6995 = 0.13, not clipped
#   EMA: μ = 0.97·2.01171875 + 0.03·2.1 = 2.0143671875; σ² = 0.97·0.4893070984 + 0.03·(2.1 − 2.0143671875)²
#        = 0.4748478748
# step 6, g = 4.1: z = 2.0856/0.6891 = 3.03 > 2.5 → g' = 2.0143671875 + 6.25·0.4748478748/2.0856328125 = 3.4373402054
#   (with the variance taken against the old μ instead it would be 3.4381680123)
#   EMA: μ = 2.0570563780, σ² = 0.5177579419
# step 7, g = 100: g' = 2.0570563780 + 6.25·0.5177579419/(100 − 2.0570563780) = 2.0900958908
ZCLIP_NORMS = [1.0, 2.0, 3.0, 2.0, 10.0, 2.1, 4.1, 100.0]
ZCLIP_POSTS = [1.0, 2.0, 3.0, 2.0, 2.390625, 2.1, 3.4373402054, 2.0900958908]


def test_zclip_scales_a_spike_to_the_adaptive_threshold() -> None:
    result = zclip_posts({"warmup_steps": 4}, ZCLIP_NORMS)
    assert [post for post, _ in result] == pytest.approx(ZCLIP_POSTS, rel=1e-6)
    assert [clipped for _, clipped in result] == [False] * 4 + [True, False, True, True]


def test_zclip_leaves_non_finite_norms_out_of_its_statistics() -> None:
    """NaN and inf norms, in warm-up and after it, change nothing for the finite steps around them."""
    nan, inf = math.nan, math.inf
    norms = [1.0, nan, 2.0, inf, 3.0, 2.0, 10.0, nan, 2.1, inf, 4.1, 100.0]
    result = zclip_posts({"warmup_steps": 6}, norms)
    finite = [post for (post, _), n in zip(result, norms) if math.isfinite(n)]
    assert finite == pytest.approx(ZCLIP_POSTS, rel=1e-6)
    # A NaN gradient passes through. An infinite one passes through warm-up; after it, it is a spike
    # (z = inf) and is scaled by 0, to NaN, as norm clipping does.
    odd = [(repr(post), clipped) for (post, clipped), n in zip(result, norms) if not math.isfinite(n)]
    assert odd == [("nan", False), ("inf", False), ("nan", False), ("nan", True)]


def test_zclip_hard_cap_applies_after_the_z_clip_and_in_warm_up() -> None:
    """Cap 2.35: it binds on the warm-up 3 and on the z-clipped 2.390625 and 3.437; the EMA still
    takes the z-clipped norms (not the capped ones), so the last step is the uncapped run's."""
    result = zclip_posts({"warmup_steps": 4, "max_grad_norm": 2.35}, ZCLIP_NORMS)
    assert [post for post, _ in result] == pytest.approx([1.0, 2.0, 2.35, 2.0, 2.35, 2.1, 2.35, 2.0900958908],
                                                         rel=1e-6)
    assert [clipped for _, clipped in result] == [False, False, True, False, True, False, True, True]


def test_zclip_identical_warm_up_norms_give_sigma_zero_without_nan() -> None:
    # μ = 2, σ = 0: g = 2 has z = 0 and passes; g = 2.5 is an infinite-z spike cut to μ + 6.25·0/z = 2.
    result = zclip_posts({"warmup_steps": 4}, [2.0, 2.0, 2.0, 2.0, 2.0, 2.5])
    assert result == [(2.0, False)] * 5 + [(2.0, True)]


# ---------------------------------------------------------------------------------------------
# parameter validation


@pytest.mark.parametrize(("method", "key", "value"), [
    ("value", "clip_value", 0.0), ("value", "clip_value", -0.5),
    ("per_layer", "max_norm", 0.0),
    ("agc", "clipping", -0.01), ("agc", "clipping", 0.0), ("agc", "eps", 0.0),
    ("autoclip", "percentile", 0.0), ("autoclip", "percentile", 101.0), ("autoclip", "percentile", -5.0),
    ("zclip", "alpha", 1.0), ("zclip", "alpha", 0.0), ("zclip", "z_thresh", 0.0), ("zclip", "z_thresh", -1.0),
    ("zclip", "warmup_steps", 0), ("zclip", "max_grad_norm", 0.0), ("zclip", "max_grad_norm", -1.0),
])
def test_out_of_range_parameter_names_field_and_value(method: str, key: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        CLIPPERS[method].Params(**{key: value})
    assert info.value.path == key
    assert repr(value) in info.value.message
    with pytest.raises(ConfigError) as info:
        build_clipper(method, {key: value})
    assert info.value.path == f"params.{key}"


@pytest.mark.parametrize(("method", "params"), [
    ("autoclip", {"percentile": 100}), ("autoclip", {"percentile": 0.5}), ("zclip", {"alpha": 0.5}),
    ("zclip", {"max_grad_norm": None}), ("zclip", {"max_grad_norm": 5, "warmup_steps": 1}),
    ("agc", {"clip_head": True}),
])
def test_boundary_parameters_are_accepted(method: str, params: dict[str, Any]) -> None:
    build_clipper(method, params)


@pytest.mark.parametrize(("method", "key", "value", "message"), [
    ("value", "clip_value", "1", "must be a finite number"),
    ("zclip", "warmup_steps", 2.5, "must be an integer"),
    ("zclip", "max_grad_norm", math.inf, "must be a finite number"),
    ("agc", "clip_head", 1, "must be true or false"),
])
def test_wrong_type_is_refused(method: str, key: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_clipper(method, {key: value})
    assert info.value.path == f"params.{key}"
    assert info.value.message.startswith(message)


@pytest.mark.parametrize("method", METHODS)
def test_unknown_parameter_is_refused(method: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_clipper(method, {"lambda_": 0.1})
    assert info.value.path == "params.lambda_"
    assert "unknown parameter" in info.value.message
