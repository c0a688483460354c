"""The task zoo (trainers/tasks/): adding's init options, temporal_order, deep_mlp, tiny_transformer
and quadratic — their data, their initializations, their determinism, and that every model trains
as a chunk of seeds under torch.func.vmap exactly as it does alone."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
from torch.func import functional_call, stack_module_state, vmap

from tests.trainers.helpers import SMALL_TASKS
from trainers import TASKS, ConfigError, build_task
from trainers.seeding import generator
from trainers.tasks.rnn import TanhRNN, spectral_radius
from trainers.tasks.temporal_order import relevant_windows

NEW_TASKS = ["temporal_order", "deep_mlp", "tiny_transformer", "quadratic"]


def small(name: str, **overrides: Any):
    return build_task(name, {**SMALL_TASKS[name], **overrides})


def first_batches(task, seed: int, batch_size: int, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    stream = task.batches(seed, batch_size)
    return [next(stream) for _ in range(n)]


def assert_same_batches(a, b) -> None:
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---- registry and interface ------------------------------------------------------------------


def test_registry_holds_every_task() -> None:
    assert set(TASKS) == {"adding", "temporal_order", "deep_mlp", "tiny_transformer", "quadratic"}
    for name, cls in TASKS.items():
        info = cls.describe()
        assert info["name"] == name
        assert info["doc"] and "\n" not in info["doc"], f"{name}: the first docstring paragraph is one line"
        assert info["default_target_loss"] > 0


@pytest.mark.parametrize("name", sorted(SMALL_TASKS))
def test_head_parameters_name_real_parameters(name: str) -> None:
    task = small(name)
    names = [n for n, _ in task.build_model(0).named_parameters()]
    mask = task.head_mask(names)
    for head in task.head_parameters:
        assert any(n == head or n.startswith(head + ".") for n in names), head
    assert sum(mask) == (0 if name == "quadratic" else 2)  # weight and bias of the output layer


@pytest.mark.parametrize("name", sorted(SMALL_TASKS))
def test_shapes_and_scalar_loss(name: str) -> None:
    task = small(name)
    model = task.build_model(0)
    x, y = next(task.batches(0, 5))
    with torch.no_grad():
        out = model(x)
        loss = task.loss(out, y)
        ex, ey = task.eval_batch(0)
        eval_loss = task.loss(model(ex), ey)
    assert loss.shape == () and math.isfinite(float(loss)) and math.isfinite(float(eval_loss))
    expected = {
        "adding": ((10, 5, 2), (5, 1), (5, 1)),
        "temporal_order": ((20, 5, 6), (5,), (5, 4)),
        "deep_mlp": ((5, 8), (5, 1), (5, 1)),
        "tiny_transformer": ((5, 12), (5, 6), (5, 12, 6)),
        "quadratic": ((1,), (1,), (1,)),
    }[name]
    assert (tuple(x.shape), tuple(y.shape), tuple(out.shape)) == expected


@pytest.mark.parametrize("name", NEW_TASKS)
def test_same_seed_same_weights_and_batches_different_seeds_differ(name: str) -> None:
    task = small(name)
    torch.manual_seed(1)  # the global generator plays no part
    a = task.build_model(3)
    torch.manual_seed(2)
    assert same_state(a, small(name).build_model(3))
    assert not same_state(a, task.build_model(4))
    # Across a block boundary of the batch generator (4096 examples per block for batch size 1024).
    assert_same_batches(first_batches(task, 3, 1024, 6), first_batches(small(name), 3, 1024, 6))
    assert_same_batches(first_batches(task, 3, 7, 3), first_batches(task, 3, 7, 3))
    ex, ey = task.eval_batch(3)
    ex2, ey2 = small(name).eval_batch(3)
    assert torch.equal(ex, ex2) and torch.equal(ey, ey2)
    if name != "quadratic":  # quadratic's batches are a constant dummy input
        (xa, _), = first_batches(task, 3, 8, 1)
        (xb, _), = first_batches(task, 4, 8, 1)
        assert not torch.equal(xa, xb)
        assert not torch.equal(xa, ex[..., :8, :] if name == "temporal_order" else ex[:8])


VMAP_CASES = [(name, {}) for name in sorted(SMALL_TASKS)] + [
    ("adding", {"init": "smart_tanh", "recurrent_gain": 1.2}),
    ("tiny_transformer", {"final_norm": False}),
    ("deep_mlp", {"out_dim": 3, "noise_std": 0.1}),
]


@pytest.mark.parametrize(("name", "overrides"), VMAP_CASES)
def test_vmap_over_seeds_equals_separate_forwards(name: str, overrides: dict[str, Any]) -> None:
    """Three seeds' models stacked (torch.func.stack_module_state) and run under vmap give the
    outputs, losses and gradients of the three models run one by one."""
    task = small(name, **overrides)
    seeds = [0, 1, 2]
    models = [task.build_model(s) for s in seeds]
    batches = [next(task.batches(s, 4)) for s in seeds]
    params, buffers = stack_module_state(models)
    skeleton = copy.deepcopy(models[0]).to("meta")
    x = torch.stack([b[0] for b in batches])
    y = torch.stack([b[1] for b in batches])

    def loss_one(p, b, xi, yi):
        out = functional_call(skeleton, (p, b), (xi,))
        return task.loss(out, yi), out

    losses, outs = vmap(loss_one)(params, buffers, x, y)
    grads = torch.autograd.grad(losses.sum(), list(params.values()))
    for i, (model, (xi, yi)) in enumerate(zip(models, batches)):
        out = model(xi)
        loss = task.loss(out, yi)
        torch.testing.assert_close(outs[i], out, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(losses[i], loss, rtol=1e-5, atol=1e-6)
        for g, own in zip(grads, torch.autograd.grad(loss, list(model.parameters()))):
            torch.testing.assert_close(g[i], own, rtol=1e-4, atol=1e-6)


# ---- adding: the default is unchanged ---------------------------------------------------------


def _pre_zoo_adding_weights(seed: int, hidden: int, init_std: float) -> TanhRNN:
    """adding's build_model as it was before the init options (basic_tanh only), verbatim."""
    model = TanhRNN(2, hidden, 1)
    gen = generator(seed, "init")
    with torch.no_grad():
        for param in (model.w_in, model.w_hh, model.w_out):
            param.copy_(torch.randn(param.shape, generator=gen) * init_std)
    return model


@pytest.mark.parametrize("params", [{}, {"seq_len": 10, "hidden": 8, "eval_size": 32}, {"init_std": 0.3}])
def test_adding_default_weights_unchanged(params: dict[str, Any]) -> None:
    task = build_task("adding", params)
    p = task.params
    for seed in (0, 7):
        assert same_state(task.build_model(seed), _pre_zoo_adding_weights(seed, p.hidden, p.init_std))


def test_adding_seed_0_numbers_pinned() -> None:
    """Seed 0's weights as before the zoo, and its data as since the counter-based streams
    (trainers/counter_rng.py): stored sweeps refer to these numbers."""
    task = build_task("adding")
    model = task.build_model(0)
    torch.testing.assert_close(model.w_hh[0, :4].detach(), torch.tensor([-0.0334, 0.0960, 0.0470, -0.0746]),
                               rtol=0, atol=1e-4)
    torch.testing.assert_close(model.w_in[0].detach(), torch.tensor([0.0283, 0.0077]), rtol=0, atol=1e-4)
    _, y = next(task.batches(0, 4))
    torch.testing.assert_close(y.flatten(), torch.tensor([0.0838, 0.4663, 0.3593, 0.6332]), rtol=0, atol=1e-4)


# ---- tanh RNN initializations -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["adding", "temporal_order"])
def test_smart_tanh_sparse_recurrence_at_spectral_radius_095(name: str) -> None:
    task = build_task(name, {"hidden": 50, "init": "smart_tanh"})
    model = task.build_model(0)
    w_hh = model.w_hh.detach()
    assert torch.equal((w_hh != 0).sum(dim=1), torch.full((50,), 15))
    assert spectral_radius(w_hh) == pytest.approx(0.95, rel=1e-5)
    io = torch.cat([model.w_in.detach().flatten(), model.w_out.detach().flatten()])
    assert float(io.std()) == pytest.approx(0.01, rel=0.25)
    assert torch.equal(model.b, torch.zeros(50)) and not model.b_out.detach().any()
    assert not same_state(model, task.build_model(1))
    assert same_state(model, build_task(name, {"hidden": 50, "init": "smart_tanh"}).build_model(0))


def test_smart_tanh_with_fewer_than_15_units_is_dense() -> None:
    w_hh = build_task("adding", {"hidden": 6, "init": "smart_tanh"}).build_model(0).w_hh.detach()
    assert bool((w_hh != 0).all())
    assert spectral_radius(w_hh) == pytest.approx(0.95, rel=1e-5)


@pytest.mark.parametrize("init", ["basic_tanh", "smart_tanh"])
def test_recurrent_gain_scales_only_the_recurrent_matrix(init: str) -> None:
    base = build_task("temporal_order", {"hidden": 30, "init": init}).build_model(2)
    gained = build_task("temporal_order", {"hidden": 30, "init": init, "recurrent_gain": 1.5}).build_model(2)
    assert torch.equal(gained.w_hh, base.w_hh * 1.5)
    assert torch.equal(gained.w_in, base.w_in) and torch.equal(gained.w_out, base.w_out)
    if init == "smart_tanh":
        assert spectral_radius(gained.w_hh) == pytest.approx(0.95 * 1.5, rel=1e-5)


@pytest.mark.parametrize(("name", "params", "key"), [
    ("adding", {"recurrent_gain": 0.0}, "recurrent_gain"), ("adding", {"init": "orthogonal"}, "init"),
    ("temporal_order", {"seq_len": 9}, "seq_len"), ("temporal_order", {"recurrent_gain": -1.0}, "recurrent_gain"),
    ("deep_mlp", {"depth": 1}, "depth"), ("deep_mlp", {"depth": 65}, "depth"),
    ("deep_mlp", {"noise_std": -0.1}, "noise_std"),
    ("tiny_transformer", {"d_model": 30, "n_heads": 4}, "n_heads"), ("tiny_transformer", {"seq_len": 1}, "seq_len"),
    ("quadratic", {"lambda_min": 0.0}, "lambda_min"),
    ("quadratic", {"lambda_min": 10.0, "lambda_max": 5.0}, "lambda_max"), ("quadratic", {"dim": 0}, "dim"),
])
def test_bad_params_are_refused_with_their_name(name: str, params: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_task(name, params)
    assert info.value.path == f"params.{key}"
    assert str(params[key]) in info.value.message


# ---- temporal_order ---------------------------------------------------------------------------


@pytest.mark.parametrize("seq_len", [10, 23, 50])
def test_temporal_order_data(seq_len: int) -> None:
    """One-hot over 6 symbols; exactly one relevant symbol (A or B) in [10%, 20%) and one in
    [50%, 60%), distractors everywhere else; the label is 2·first + second (AA, AB, BA, BB)."""
    task = build_task("temporal_order", {"seq_len": seq_len, "hidden": 4})
    x, y = next(task.batches(0, 256))
    assert x.shape == (seq_len, 256, 6) and y.shape == (256,) and y.dtype == torch.int64
    assert torch.equal(x.sum(dim=-1), torch.ones(seq_len, 256))
    symbols = x.argmax(dim=-1)  # (T, batch)
    relevant = symbols < 2
    first_window, second_window = relevant_windows(seq_len)
    assert first_window.start == seq_len // 10 and len(first_window) == seq_len // 10
    assert second_window.start == seq_len // 2 and len(second_window) == seq_len // 10
    in_first, in_second = relevant[list(first_window)], relevant[list(second_window)]
    assert torch.equal(in_first.sum(dim=0), torch.ones(256, dtype=torch.long))
    assert torch.equal(in_second.sum(dim=0), torch.ones(256, dtype=torch.long))
    assert int(relevant.sum()) == 2 * 256  # none outside the windows
    first = (symbols[list(first_window)] * in_first).sum(dim=0)
    second = (symbols[list(second_window)] * in_second).sum(dim=0)
    assert torch.equal(y, 2 * first + second)
    # All four classes, all positions of the windows and all four distractors occur.
    assert set(y.tolist()) == {0, 1, 2, 3}
    assert set(in_first.float().argmax(dim=0).tolist()) == set(range(len(first_window)))
    assert set(symbols[~relevant].tolist()) == {2, 3, 4, 5}


def test_temporal_order_loss_is_mean_cross_entropy() -> None:
    task = build_task("temporal_order")
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [10.0, 0.0, 0.0, 0.0]])
    expected = (math.log(4) + -torch.log_softmax(logits[1], 0)[0].item()) / 2
    assert float(task.loss(logits, torch.tensor([2, 0]))) == pytest.approx(expected)
    assert TASKS["temporal_order"].default_target_loss == 0.05


# ---- deep_mlp ---------------------------------------------------------------------------------


def test_deep_mlp_he_init_and_depth() -> None:
    task = build_task("deep_mlp", {"depth": 6, "width": 128, "in_dim": 32})
    model = task.build_model(0)
    linears = [*model.layers, model.head]
    assert len(linears) == 6
    assert [tuple(m.weight.shape) for m in linears] == [(128, 32)] + [(128, 128)] * 4 + [(1, 128)]
    for m in linears[:-1]:
        fan_in = m.weight.shape[1]
        assert float(m.weight.detach().std()) == pytest.approx(math.sqrt(2 / fan_in), rel=0.05)
        assert float(m.weight.detach().mean()) == pytest.approx(0.0, abs=0.1 * math.sqrt(2 / fan_in))
    for m in linears:
        assert not m.bias.detach().any()
    # A ReLU stack's hidden layers only: no normalization layers, no skip connections.
    assert {type(m).__name__ for m in model.modules()} == {"DeepMLP", "ModuleList", "Linear"}


def test_deep_mlp_teacher_is_fixed_per_seed_with_unit_variance() -> None:
    task = build_task("deep_mlp", {"eval_size": 4000})
    x, y = task.eval_batch(0)
    assert x.shape == (4000, 32) and y.shape == (4000, 1)
    assert float(x.std()) == pytest.approx(1.0, rel=0.05)
    assert float(y.var()) == pytest.approx(1.0, rel=0.15)
    # The teacher is a function of the seed: the same x gives the same y in training batches, and
    # a different seed has a different teacher.
    xb, yb = next(task.batches(0, 64))
    t0 = task._sampler(0)
    gen = generator(0, "data")
    xs, ys = t0(gen, 4096)
    assert torch.equal(xb, xs[:64]) and torch.equal(yb, ys[:64])
    _, y_other = task._sampler(1)(generator(0, "eval"), 4000)
    assert not torch.allclose(y, y_other)


def test_deep_mlp_noise() -> None:
    clean = build_task("deep_mlp", {"eval_size": 4000}).eval_batch(0)
    noisy = build_task("deep_mlp", {"eval_size": 4000, "noise_std": 0.5}).eval_batch(0)
    assert torch.equal(clean[0], noisy[0])
    assert float((noisy[1] - clean[1]).std()) == pytest.approx(0.5, rel=0.1)


# ---- tiny_transformer -------------------------------------------------------------------------


def test_tiny_transformer_copy_data() -> None:
    task = build_task("tiny_transformer", {"seq_len": 8, "vocab": 10})
    x, y = next(task.batches(0, 32))
    assert x.shape == (32, 16) and y.shape == (32, 8) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, :8], y) and torch.equal(x[:, 8], torch.full((32,), 10))
    assert torch.equal(x[:, 9:], y[:, :-1])
    assert int(y.min()) >= 0 and int(y.max()) < 10


def test_tiny_transformer_is_causal() -> None:
    """Changing the token at position j changes no output before j, and does change outputs from j on."""
    task = build_task("tiny_transformer", {"seq_len": 8, "vocab": 10})
    model = task.build_model(0)
    x, _ = next(task.batches(0, 4))
    out = model(x)
    for j in (3, 9, 15):
        changed = x.clone()
        changed[:, j] = (changed[:, j] + 1) % 10
        out2 = model(changed)
        torch.testing.assert_close(out2[:, :j], out[:, :j], rtol=0, atol=1e-6)
        assert (out2[:, j:] - out[:, j:]).abs().amax() > 1e-4


def test_tiny_transformer_loss_scores_the_copy_only() -> None:
    task = build_task("tiny_transformer", {"seq_len": 4, "vocab": 5})
    _, y = next(task.batches(0, 3))
    logits = torch.full((3, 8, 6), -30.0)
    logits[torch.arange(3)[:, None], torch.arange(4, 8)[None, :], y] = 30.0  # the copy, perfect
    assert float(task.loss(logits, y)) < 1e-20
    logits[:, :4] = torch.randn(3, 4, 6)  # the unscored first half does not matter
    assert float(task.loss(logits, y)) < 1e-20
    uniform = torch.zeros(3, 8, 6)
    assert float(task.loss(uniform, y)) == pytest.approx(math.log(6))


def test_tiny_transformer_without_final_norm() -> None:
    with_norm = build_task("tiny_transformer").build_model(0)
    without = build_task("tiny_transformer", {"final_norm": False}).build_model(0)
    names = {n for n, _ in without.named_parameters()}
    assert names == {n for n, _ in with_norm.named_parameters()} - {"ln_f.weight", "ln_f.bias"}
    for name, param in without.named_parameters():  # the same draws: ln_f takes none
        assert torch.equal(param, with_norm.get_parameter(name)), name


def test_tiny_transformer_init() -> None:
    task = build_task("tiny_transformer", {"d_model": 64, "n_layers": 2, "seq_len": 16})
    model = task.build_model(0)
    params = {name: p.detach() for name, p in model.named_parameters()}
    assert float(params["tok.weight"].std()) == pytest.approx(0.02, rel=0.1)
    assert float(params["blocks.0.attn.proj.weight"].std()) == pytest.approx(0.01, rel=0.1)
    assert torch.equal(params["ln_f.weight"], torch.ones(64)) and not params["head.bias"].any()
    assert {type(m).__name__ for m in model.modules()}.isdisjoint({"MultiheadAttention", "TransformerEncoderLayer"})


# ---- quadratic --------------------------------------------------------------------------------


def test_quadratic_loss_is_half_lambda_x_squared() -> None:
    task = build_task("quadratic")
    model = task.build_model(0)
    lambdas = torch.tensor([1.0, 10.0, 100.0])
    assert torch.equal(model.lambdas, lambdas)
    x0 = torch.randn(3, generator=generator(0, "init"))
    assert torch.equal(model.x.detach(), x0)
    x, y = next(task.batches(0, 32))
    by_hand = 0.5 * torch.sum(lambdas * x0 * x0)
    ex, ey = task.eval_batch(0)
    with torch.no_grad():
        assert float(task.loss(model(x), y)) == float(by_hand)
        assert float(task.loss(model(ex), ey)) == float(by_hand)


def test_quadratic_eigenvalues_are_geometric() -> None:
    model = build_task("quadratic", {"dim": 5, "lambda_min": 0.5, "lambda_max": 8.0}).build_model(0)
    torch.testing.assert_close(model.lambdas, torch.tensor([0.5, 1.0, 2.0, 4.0, 8.0]))
    assert torch.equal(build_task("quadratic", {"dim": 1}).build_model(0).lambdas, torch.tensor([100.0]))


def _gd_losses(lr: float, steps: int, seed: int = 0) -> list[float]:
    task = build_task("quadratic")
    model = task.build_model(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    x, y = task.eval_batch(seed)
    losses = []
    for _ in range(steps):
        loss = task.loss(model(x), y)
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return losses


def test_quadratic_gd_diverges_exactly_above_two_over_lambda_max() -> None:
    """|1 − lr·λmax| > 1 iff lr > 2/λmax = 0.02: just above, the loss grows without bound; just
    below, it shrinks."""
    above = _gd_losses(0.02 * (1 + 1e-2), 300)
    assert above[-1] > 100 * above[0]
    assert above[-1] > above[-2] > above[-3]
    below = _gd_losses(0.02 * (1 - 1e-2), 300)
    assert below[-1] < 1e-2 * below[0]
    assert below[-1] <= below[-2]
