"""Trial planning: one trial per (cell, chunk of seeds), over pending runs only, from the cells'
stored configs."""

from __future__ import annotations

from service.grid import cells
from service.spec import parse_spec
from service.worker.planning import plan_trials

SPEC = {
    "task": {"name": "adding", "params": {"seq_len": 20}},
    "learning_rates": [0.1, 0.5],
    "clipping": [{"method": "none"}, {"method": "norm"}],
    "seeds": 10,
}
CONFIGS = {cell.index: cell.config.to_dict() for cell in cells(parse_spec(SPEC))}


def test_chunks_are_as_even_as_the_limit_allows() -> None:
    pending = [(cell, seed) for cell in range(4) for seed in range(10)]
    plans = plan_trials(CONFIGS, pending, max_seeds_per_trial=4)
    assert len(plans) == 12  # 4 cells × ceil(10 / 4) chunks
    assert [len(p.seeds) for p in plans if p.cell_index == 0] == [4, 3, 3]
    for cell in range(4):
        assert sorted(s for p in plans if p.cell_index == cell for s in p.seeds) == list(range(10))


def test_a_resumed_sweep_plans_only_the_runs_without_an_outcome() -> None:
    plans = plan_trials(CONFIGS, [(1, 3), (1, 7), (3, 9)], max_seeds_per_trial=4)
    assert [(p.cell_index, p.seeds) for p in plans] == [(1, [3, 7]), (3, [9])]
    assert plans[0].train_config["lr"] == 0.1 and plans[0].train_config["clipping"]["method"] == "norm"
    assert plans[1].train_config == CONFIGS[3]


def test_nothing_pending_plans_nothing() -> None:
    assert plan_trials(CONFIGS, [], max_seeds_per_trial=4) == []
