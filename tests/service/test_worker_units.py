"""Pure decisions of the worker: where a trial fits, what counts as lost infrastructure."""

from __future__ import annotations

import ray.exceptions

from service.spec import SweepSpec
from service.tune_runner import is_infrastructure_error
from service.worker import _waiting_for
from trainers.allocator import allocator_environment


def spec(cpus: float, gpus: float) -> SweepSpec:
    return SweepSpec.model_validate({"task": {"name": "quadratic"}, "learning_rates": [0.1], "seeds": 1,
                                     "resources": {"cpus_per_trial": cpus, "gpus_per_trial": gpus}})


def test_a_trial_must_fit_on_one_node_not_on_the_sum_of_them() -> None:
    two_small = [{"CPU": 4.0, "GPU": 1.0}, {"CPU": 4.0, "GPU": 1.0}]
    assert _waiting_for(spec(2, 1), two_small) is None
    assert _waiting_for(spec(2, 0.25), two_small) is None
    assert _waiting_for(spec(2, 2), two_small) == ("waiting for resources: needs 2 CPU and 2 GPU per trial on "
                                                   "one node, and no node of the cluster has that much")
    assert _waiting_for(spec(1, 0.25), [{"CPU": 2.0, "GPU": 0.0}]) == \
        "waiting for resources: needs 0.25 GPU per trial, the cluster has 0"
    assert _waiting_for(spec(3, 0), [{"CPU": 2.0, "GPU": 0.0}]) == \
        "waiting for resources: needs 3 CPU per trial, the cluster has 2"
    assert _waiting_for(spec(1, 0), []) == "waiting for resources: needs 1 CPU per trial, the cluster has 0"


def test_lost_infrastructure_is_told_apart_from_the_code_raising() -> None:
    assert is_infrastructure_error(ray.exceptions.ActorDiedError())
    assert is_infrastructure_error(ray.exceptions.NodeDiedError("gone"))
    assert is_infrastructure_error(ray.exceptions.RayTaskError("train", "tb", ray.exceptions.ActorDiedError()))
    assert not is_infrastructure_error(ray.exceptions.RayTaskError("train", "tb", ValueError("bad config")))
    assert not is_infrastructure_error(ValueError("bad config"))
    assert not is_infrastructure_error(None)


def test_training_processes_are_started_with_the_allocator_settings(monkeypatch) -> None:
    env = allocator_environment()
    assert env["MALLOC_MMAP_MAX_"] == "0" and env["MALLOC_ARENA_MAX"] == "1"
    monkeypatch.setenv("CLIPSWEEP_KEEP_FREED_MEMORY", "0")
    assert allocator_environment() == {}
