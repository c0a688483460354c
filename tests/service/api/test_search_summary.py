"""A searched sweep's summary: each arm's answer with the probe above that bounds it, the probes in
the order they ran, the runs it took against the grid's, and a frontier by the anytime-valid test."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.service.worker.test_execute import ScriptedRunner, claimed, execute
from tests.service.worker.test_search import SEARCH, SEEDS, cliff


def test_the_summary_tells_how_the_search_got_its_answer(api: TestClient,
                                                         session_factory: sessionmaker[Session]) -> None:
    sweep_id = claimed(session_factory, learning_rates=SEARCH, seeds=SEEDS, resources={"max_seeds_per_trial": 64})
    execute(session_factory, sweep_id, ScriptedRunner(*[cliff] * 40))
    summary = api.get(f"/api/v1/sweeps/{sweep_id}/summary").json()
    search = summary["search"]
    none, norm = search["arms"]
    assert (none["highest_stable_lr"], none["next_lr_not_stable"]) == (0.008, 0.016)
    assert (norm["highest_stable_lr"], norm["next_lr_not_stable"]) == (0.064, 0.128)
    assert [p["lr"] for p in none["probes"]] == [0.016, 0.002, 0.004, 0.008]  # bisection, in order
    assert not none["searching"] and none["breaks"] == []
    assert search["grid_runs"] == 10 * 2 * 73 and search["runs"] == sum(c["runs"] for c in summary["cells"])
    assert search["runs"] < search["grid_runs"] / 2
    assert {f["clipping"].split("(")[0]: f["stable_lr"]["value"] for f in summary["frontier"]} == {
        "none": 0.008, "norm": 0.064}
    assert "highest stable lr 0.064" in summary["headline"]
    assert summary["headline"].endswith(
        f"Each verdict is wrong with probability at most 5%, however often the search looked; it took "
        f"{search['runs']:,} runs, a grid of the same points {search['grid_runs']:,}.")
