"""Trial planning: one trial per (cell, chunk of seeds), over pending runs only, from the cells'
stored configs."""

from __future__ import annotations

from service.grid import cells
from service.spec import ResourcesSpec, parse_spec
from service.worker.planning import plan_trials
from service.worker.runner import trial_slots

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


def test_a_round_of_few_cells_is_split_to_keep_every_slot_busy() -> None:
    """One cell of 52 seeds on a cluster that runs two trials at once: two trials of 26, not one
    of 52 while the second slot waits. Enough chunks already: unchanged. Never below one seed."""
    one_cell = [(0, seed) for seed in range(52)]
    assert [len(p.seeds) for p in plan_trials(CONFIGS, one_cell, max_seeds_per_trial=128, slots=2)] == [26, 26]
    two_cells = one_cell + [(1, seed) for seed in range(16)]
    assert [len(p.seeds) for p in plan_trials(CONFIGS, two_cells, max_seeds_per_trial=128, slots=2)] == [52, 16]
    assert [len(p.seeds) for p in plan_trials(CONFIGS, two_cells, max_seeds_per_trial=128, slots=3)] == [26, 26, 16]
    assert len(plan_trials(CONFIGS, [(0, 1), (0, 2)], max_seeds_per_trial=128, slots=8)) == 2
    pending = [(cell, seed) for cell in range(4) for seed in range(10)]
    assert plan_trials(CONFIGS, pending, max_seeds_per_trial=4, slots=2) == plan_trials(CONFIGS, pending, 4)


def test_the_slots_are_what_fits_on_each_node_within_the_cap() -> None:
    nodes = [{"CPU": 2.0, "GPU": 0.0}, {"CPU": 16.0, "GPU": 1.0}]
    assert trial_slots(ResourcesSpec(), nodes) == 18
    assert trial_slots(ResourcesSpec(cpus_per_trial=4), nodes) == 4
    assert trial_slots(ResourcesSpec(gpus_per_trial=0.5), nodes) == 2  # the GPU node only
    assert trial_slots(ResourcesSpec(max_concurrent_trials=3), nodes) == 3
    assert trial_slots(ResourcesSpec(cpus_per_trial=64), nodes) == 1
