"""POST /api/v1/sweeps/plan: what a spec's seeds can show, answered without training or storing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from service.analysis.planning import paired_power, seeds_to_decide
from service.analysis.statistics import wilson_interval
from service.cli import main
from service.cli.output import plan_text
from service.db.session import session_scope
from service.lifecycle.queue import finish_sweep
from tests.factories import SPEC, make_sweep, report, store


def test_a_plan_says_what_the_seeds_can_rule_out_and_how_many_a_difference_needs(api: TestClient) -> None:
    answer = api.post("/api/v1/sweeps/plan", json=SPEC, params={"none_rate": 0.3, "arm_rate": 0.05})
    assert answer.status_code == 200, answer.text
    plan = answer.json()
    assert plan["seeds_for_stable"] == 73 and len(plan["cells"]) == 4
    bound = wilson_interval(0, 3)[1]
    assert all(c["seeds"] == 3 and c["smallest_rate_ruled_out"] == pytest.approx(bound) and not c["can_show_stable"]
               for c in plan["cells"])
    d = plan["difference"]
    assert paired_power(0.3, 0.05, d["seeds_needed"]) >= 0.8 > paired_power(0.3, 0.05, d["seeds_needed"] - 1)
    assert d["power_with_these_seeds"] == pytest.approx(paired_power(0.3, 0.05, 3))
    assert plan_text(plan).splitlines()[1].startswith(
        f"Telling 30% without clipping from 5% with it (paired, exact McNemar at 5%) with 80% power takes "
        f"{d['seeds_needed']} seeds")
    assert api.get("/api/v1/sweeps").json()["total"] == 0  # nothing stored


def test_enough_seeds_can_show_a_cell_stable(api: TestClient) -> None:
    plan = api.post("/api/v1/sweeps/plan", json={**SPEC, "seeds": 80}).json()
    assert all(c["can_show_stable"] for c in plan["cells"]) and plan["difference"] is None
    assert "enough to show it stable at 5%" in plan_text(plan)


def test_a_bad_spec_gets_every_problem_at_once(api: TestClient) -> None:
    answer = api.post("/api/v1/sweeps/plan", json={"task": {"name": "nope"}, "learning_rates": [0.1]})
    assert answer.status_code == 422
    assert {tuple(e["loc"]) for e in answer.json()["detail"]} == {("body", "seeds"), ("body", "task", "name")}


def test_a_finished_sweep_says_how_many_seeds_an_undecided_cell_would_need(
        api: TestClient, session_factory: sessionmaker[Session]) -> None:
    """1 of 40 diverged at lr 0.1 unclipped: 2.5% [0.4%–13%] straddles 5%; at that rate the bound
    clears 5% from seeds_to_decide(0.025) seeds on. A cell with 0 of 40 needs 73; 30 of 40 is decided."""
    sweep_id = make_sweep(session_factory, {**SPEC, "seeds": 40})
    store(session_factory, sweep_id, [report(0, s, "diverged" if s == 0 else "unconverged") for s in range(40)]
          + [report(1, s) for s in range(40)]
          + [report(c, s, "diverged" if s < 30 else "unconverged") for c in (2, 3) for s in range(40)])
    with session_scope(session_factory) as session:
        finish_sweep(session, sweep_id)
    cells = api.get(f"/api/v1/sweeps/{sweep_id}/summary").json()["cells"]
    assert [c["seeds_to_settle"] for c in cells] == [seeds_to_decide(0.025, 0.05), 73, None, None]


def test_an_adaptive_spec_is_planned_by_the_test_it_will_be_judged_by(api: TestClient) -> None:
    """At most 68 seeds, none diverging, show a cell under 5% by the anytime-valid test (67 do not),
    where Wilson's bound at 0 of 68 is still over 5%."""
    plan = api.post("/api/v1/sweeps/plan", json={**SPEC, "seeds": {"adaptive": {"min": 16, "max": 68}}}).json()
    assert plan["seeds_for_stable"] == 68 and all(c["can_show_stable"] for c in plan["cells"])
    assert all(c["smallest_rate_ruled_out"] < 0.05 < wilson_interval(0, 68)[1] for c in plan["cells"])
    short = api.post("/api/v1/sweeps/plan", json={**SPEC, "seeds": {"adaptive": {"min": 16, "max": 67}}}).json()
    assert not any(c["can_show_stable"] for c in short["cells"])


def test_a_search_is_planned_over_its_whole_grid(api: TestClient) -> None:
    spec = {**SPEC, "learning_rates": {"search": {"low": 0.001, "high": 1.0, "ratio": 2.0}},
            "seeds": {"adaptive": {"min": 16, "max": 128}}}
    plan = api.post("/api/v1/sweeps/plan", json=spec).json()
    assert len(plan["cells"]) == 10 * 2 and plan["cells"][0]["lr"] == 0.001 and plan["cells"][-1]["lr"] == 0.512


def test_the_cli_asks_for_both_rates_before_sending_anything(tmp_path: Path) -> None:
    """No server is listening: the bad option is refused before any request."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    result = CliRunner().invoke(main, ["plan", str(spec), "--none-rate", "0.3", "--server", "http://127.0.0.1:9"])
    assert result.exit_code == 2 and "give --none-rate and --arm-rate together" in result.output
