"""No request, however large or strange, may take the service down or get a 500: each finding of
the review that asked for this, as a regression test. Requests run in process, and the memory
they may allocate is bounded (tracemalloc's peak over the request)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from service.db import schema
from service.settings import Settings
from tests.factories import SPEC
from tests.harness import POSTGRES_ADMIN_URL, fresh_postgres_database, in_process

MEMORY_BOUND = 32 * 2**20  # bytes a refused request may allocate


def post(api: TestClient, body: Any) -> Any:
    tracemalloc.start()
    try:
        response = api.post("/api/v1/sweeps", json=body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"the request allocated {peak / 2**20:.0f} MB"
    return response


def refused(api: TestClient, body: Any, *words: str) -> list[dict[str, Any]]:
    before = api.get("/api/v1/sweeps").json()["total"]
    response = post(api, body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert any(all(w in e["msg"] for w in words) for e in detail), detail
    assert api.get("/api/v1/sweeps").json()["total"] == before
    return detail


QUADRATIC: dict[str, Any] = {"task": {"name": "quadratic"}, "learning_rates": [0.01]}


@pytest.mark.parametrize("seeds", [100_000_000, 10**9])
def test_a_huge_seed_count_is_refused_before_anything_is_expanded(api: TestClient, seeds: int) -> None:
    refused(api, {**QUADRATIC, "seeds": seeds}, "runs", "CLIPSWEEP_MAX_RUNS_PER_SWEEP")
    assert api.get("/api/v1/healthz").status_code == 200


@pytest.mark.parametrize("seeds", [10**10, 2**63, [2**31], [0, 2**63]])
def test_seeds_beyond_what_the_database_stores_are_refused(api: TestClient, seeds: Any) -> None:
    refused(api, {**QUADRATIC, "seeds": seeds}, "2147483647")


def test_a_trial_over_the_memory_budget_is_refused_naming_the_figure(api: TestClient) -> None:
    body = {"task": {"name": "adding"}, "learning_rates": [0.1], "clipping": [{"method": "autoclip"}],
            "seeds": 100, "budget": {"max_steps": 10_000_000}, "resources": {"max_seeds_per_trial": 100}}
    [error] = refused(api, body, "a trial of 100 seeds of arm autoclip", "MB", "CLIPSWEEP_MAX_TRIAL_MEMORY_MB")
    assert error["loc"] == ["body"]


def test_a_sweep_over_the_step_budget_is_refused(tmp_path: Path) -> None:
    with in_process(Settings(data_dir=tmp_path, max_sweep_steps=1000)) as api:
        assert post(api, SPEC).status_code == 201  # 12 runs × 10 steps
        refused(api, {**SPEC, "budget": {"max_steps": 100}}, "1200 training steps (12 runs × 100 steps)",
                "limit of 1000", "CLIPSWEEP_MAX_SWEEP_STEPS")


@pytest.mark.parametrize(("change", "field"), [
    ({"task": {"name": "adding", "params": {"hidden": 1_000_000}}}, "hidden"),
    ({"task": {"name": "adding", "params": {"seq_len": 100_000_000}}}, "seq_len"),
    ({"task": {"name": "adding", "params": {"eval_size": 1_000_000_000}}}, "eval_size"),
    ({"optimizer": {"warmup_steps": 10**12}}, "warmup_steps"),
    ({"resources": {"max_seeds_per_trial": 2**70}}, "max_seeds_per_trial"),
    ({"resources": {"cpus_per_trial": 1e-7}}, "cpus_per_trial"),
    ({"resources": {"gpus_per_trial": 1e-7}}, "gpus_per_trial"),
    ({"clipping": [{"method": "zclip", "warmup_steps": 2**40}]}, "warmup_steps"),
    ({"budget": {"max_steps": 10**12}}, "max_steps"),
])
def test_every_size_has_an_upper_bound(api: TestClient, change: dict[str, Any], field: str) -> None:
    response = post(api, {**SPEC, **change})
    assert response.status_code == 422, response.text
    assert any(e["loc"][-1] == field for e in response.json()["detail"]), response.json()


@pytest.mark.parametrize("body", [
    {**SPEC, "name": "a\x00b"},
    {**SPEC, "task": {"name": "add\x00ing"}},
    {**SPEC, "clipping": [{"method": "norm\x00"}]},
    {**SPEC, "task": {"name": "adding", "params": {"init": "basic\x00tanh"}}},
])
def test_text_with_a_nul_character_is_refused(api: TestClient, body: dict[str, Any]) -> None:
    refused(api, body, "NUL")


@pytest.mark.parametrize("path", [
    "/api/v1/sweeps/9223372036854775808", "/api/v1/sweeps/2147483648", "/api/v1/sweeps/-1",
    "/api/v1/sweeps/2147483648/summary", "/api/v1/sweeps/1/cells/2147483648/series",
    "/api/v1/runs/9223372036854775808", "/api/v1/runs/2147483648/points",
    "/api/v1/sweeps?offset=9223372036854775808", "/api/v1/sweeps/1/runs?cell=2147483648",
    "/api/v1/sweeps/1/summary?tolerance=nan", "/api/v1/sweeps/1/summary?tolerance=inf",
    "/api/v1/sweeps/1/summary?tolerance=5e-324",  # found by bench/fuzz.py: its frontier overflowed
])
def test_numbers_out_of_range_in_paths_and_queries_are_a_422(api: TestClient, path: str) -> None:
    api.post("/api/v1/sweeps", json=SPEC)
    response = api.get(path)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"][0] in ("path", "query") and "less than 1" not in error["msg"]


@pytest.mark.parametrize("path", ["/sweeps/9223372036854775808", "/runs/2147483648"])
def test_a_page_for_an_id_out_of_range_is_a_404_page(api: TestClient, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 404 and "text/html" in response.headers["content-type"]


@pytest.mark.parametrize("lr", ["NaN", "Infinity", "-Infinity"])
def test_a_non_finite_learning_rate_is_refused(api: TestClient, lr: str) -> None:
    body = '{"task": {"name": "quadratic"}, "learning_rates": [%s], "seeds": 1}' % lr  # Python's json reads these
    response = api.post("/api/v1/sweeps", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["detail"][0]["msg"] == "Input should be a finite number"


def test_a_body_over_the_limit_is_a_413_whether_declared_or_streamed(api: TestClient) -> None:
    big = b'{"name": "' + b"x" * (2**20) + b'"}'
    declared = api.post("/api/v1/sweeps", content=big, headers={"content-type": "application/json"})
    assert declared.status_code == 413 and "CLIPSWEEP_MAX_BODY_BYTES" in declared.json()["detail"]
    streamed = api.post("/api/v1/sweeps", content=iter([big[i:i + 65536] for i in range(0, len(big), 65536)]),
                        headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    assert api.get("/api/v1/sweeps").json()["total"] == 0


@pytest.fixture
def outage() -> Iterator[TestClient]:
    """The API on a PostgreSQL database that then disappears (dropped, its connections ended)."""
    with fresh_postgres_database() as url:
        schema.upgrade(url)
        with in_process(Settings(database_url=url)) as client:
            assert client.get("/api/v1/healthz").status_code == 200
            admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
            admin.dispose()
            yield client


def test_while_the_database_is_away_every_endpoint_answers_503_json(outage: TestClient) -> None:
    health = outage.get("/api/v1/healthz")
    assert health.status_code == 503 and health.json() == {"status": "unavailable", "database": "OperationalError"}
    assert outage.get("/api/v1/readyz").status_code == 503
    for response in (outage.get("/api/v1/sweeps"), outage.get("/api/v1/sweeps/1/summary"),
                     outage.post("/api/v1/sweeps", json=SPEC), outage.post("/api/v1/sweeps/1/cancel")):
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "5"
        assert "the database is unavailable (OperationalError)" in response.json()["detail"]


def test_ready_when_the_database_answers_at_the_right_revision(api: TestClient) -> None:
    assert api.get("/api/v1/readyz").json() == {"status": "ok"}
