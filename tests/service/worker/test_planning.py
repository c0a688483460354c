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
    assert plan_trials(CONFIGS, [], max_seeds_per_trial=4, free_slots=8) == []


def sizes(plans: list) -> list[tuple[int, int]]:
    return [(p.cell_index, len(p.seeds)) for p in plans]


def test_idle_slots_get_a_share_of_the_seeds_while_each_chunk_keeps_eight() -> None:
    one_cell = [(2, seed) for seed in range(52)]
    assert sizes(plan_trials(CONFIGS, one_cell, max_seeds_per_trial=128)) == [(2, 52)]
    assert sizes(plan_trials(CONFIGS, one_cell, max_seeds_per_trial=128, free_slots=2)) == [(2, 26), (2, 26)]
    assert sizes(plan_trials(CONFIGS, one_cell, max_seeds_per_trial=128, free_slots=4)) == [(2, 13)] * 4
    # 52 seeds hold six chunks of 8 at most, however many slots are idle.
    assert sizes(plan_trials(CONFIGS, one_cell, max_seeds_per_trial=128, free_slots=16)) == [(2, 9)] * 4 + [(2, 8)] * 2
    assert sizes(plan_trials(CONFIGS, one_cell[:15], max_seeds_per_trial=128, free_slots=2)) == [(2, 15)]
    plans = plan_trials(CONFIGS, one_cell, max_seeds_per_trial=128, free_slots=3)
    assert sorted(s for p in plans for s in p.seeds) == list(range(52))  # every seed once


def test_the_largest_chunks_are_cut_first_and_enough_chunks_are_left_alone() -> None:
    pending = [(0, seed) for seed in range(40)] + [(3, seed) for seed in range(20)]
    assert sizes(plan_trials(CONFIGS, pending, max_seeds_per_trial=64, free_slots=3)) == [(0, 20), (0, 20), (3, 20)]
    assert sizes(plan_trials(CONFIGS, pending, max_seeds_per_trial=64, free_slots=4)) == [
        (0, 14), (0, 13), (0, 13), (3, 20)]
    # Two chunks for two slots, or more chunks than slots: as the limit alone cuts them.
    assert sizes(plan_trials(CONFIGS, pending, max_seeds_per_trial=64, free_slots=2)) == [(0, 40), (3, 20)]
    assert sizes(plan_trials(CONFIGS, pending, max_seeds_per_trial=16, free_slots=2)) == [
        (0, 14), (0, 13), (0, 13), (3, 10), (3, 10)]
