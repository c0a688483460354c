"""schemathesis against the API on SQLite and PostgreSQL: every operation of the OpenAPI document,
with valid and invalid inputs, ids of real objects mixed in. No answer may be a 5xx, and every answer
must be one the document declares (status, content type, body schema). Auth is on and requests carry
an admin token, so the fuzzing reaches the handlers; test_auth.py covers who may call what.

The example count is small and the examples are fixed (derandomized) so CI stays fast and a failure
reproduces; `python bench/fuzz.py` runs the same tests with many random examples
(CLIPSWEEP_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from service.api.app import create_app
from service.clock import now
from service.db import schema
from service.db.session import session_scope
from service.lifecycle.schedules import create_schedule
from service.lifecycle.submit import Limits
from service.scheduler.cron import Cron
from service.settings import Settings
from service.spec import parse_spec
from service.tokens import create_token
from tests.factories import SPEC, hand_made_sweep, scheduled_regression
from tests.harness import fresh_postgres_database, in_process


def _takes_input(operation: dict[str, Any]) -> bool:
    return bool(operation.get("parameters") or operation.get("requestBody"))


# A longer run (bench/fuzz.py) sets an example count and draws them at random.
EXAMPLES = int(os.environ.get("CLIPSWEEP_FUZZ_EXAMPLES", "25"))
DERANDOMIZE = "CLIPSWEEP_FUZZ_EXAMPLES" not in os.environ
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
NEGATIVE_CHECKS = [*CHECKS, negative_data_rejection]
# The document needs no database: the operations are known when the tests are collected.
DOCUMENT = create_app(Settings()).openapi()
OPERATIONS = [(path, method.upper()) for path, item in DOCUMENT["paths"].items() for method in item]
# Invalid input needs some input: an operation that takes none is fuzzed with valid requests only.
CASES = [(path, method, mode) for path, method in OPERATIONS for mode in GenerationMode
         if mode is GenerationMode.POSITIVE or _takes_input(DOCUMENT["paths"][path][method.lower()])]


@dataclass
class Target:
    schema: Any
    headers: dict[str, str]
    real: dict[str, int]  # path parameter → the id of an object that exists
    # ids that go together with a webhook_id or delivery_id (its schedule)
    with_webhook: dict[str, int]


def fuzz_settings(data_dir: Path, database_url: str) -> Settings:
    # `testserver` is the host schemathesis sends to fetch the document; limits on submits are
    # raised so the fuzzed POSTs reach validation instead of the rate limit.
    return Settings(data_dir=data_dir, database_url=database_url, auth="token",
                    allowed_hosts="localhost,testserver", submit_rate_per_minute=1_000_000,
                    max_queued_sweeps_per_token=1_000_000)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    data_dir = tmp_path_factory.mktemp("fuzz")
    if request.param == "sqlite":
        yield from _serve(data_dir, f"sqlite:///{data_dir / 'fuzz.sqlite3'}")
    else:
        with fresh_postgres_database() as url:
            yield from _serve(data_dir, url)


def _serve(data_dir: Path, database_url: str) -> Iterator[Target]:
    schema.upgrade(database_url)
    with in_process(fuzz_settings(data_dir, database_url)) as client:
        factory = client.app.state.session_factory
        with session_scope(factory) as session:
            secret = create_token(session, "fuzz", ["admin"])[1]
        headers = {"Authorization": f"Bearer {secret}"}
        sweep_id = hand_made_sweep(factory)
        run_id = client.get(f"/api/v1/sweeps/{sweep_id}/runs", headers=headers).json()["items"][0]["id"]
        document = schemathesis.openapi.from_asgi("/openapi.json", client.app)
        with session_scope(factory) as session:
            schedule_id = create_schedule(session, name="fuzzed", cron=Cron.parse("@daily"), spec=parse_spec(SPEC),
                                          limits=Limits(max_runs=1000), at=now()).id
        # A schedule with two compared sweeps, an open alert, a webhook and its deliveries; the
        # schedule with a webhook stands in for schedule_id where an operation takes a webhook_id.
        alerting = scheduled_regression(factory)
        yield Target(document, headers, {"sweep_id": sweep_id, "run_id": run_id, "cell_index": 2,
                                         "schedule_id": schedule_id, "baseline_id": alerting["baseline_id"],
                                         "alert_id": alerting["alert_id"], "webhook_id": alerting["webhook_id"],
                                         "delivery_id": alerting["delivery_id"]},
                     {"schedule_id": alerting["schedule_id"]})


@pytest.mark.parametrize(("path", "method", "mode"), CASES, ids=[f"{m} {p} {g.value}" for p, m, g in CASES])
def test_operation(target: Target, path: str, method: str, mode: GenerationMode) -> None:
    operation = target.schema[path][method]
    checks = NEGATIVE_CHECKS if mode is GenerationMode.NEGATIVE else CHECKS

    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=DERANDOMIZE, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case: Any, data: st.DataObject) -> None:
        # Half the time, a real object's id where the operation takes one: the handlers behind
        # a found object (summary, series, cancel) are fuzzed too, not only their 404.
        if mode is GenerationMode.POSITIVE:
            names = case.path_parameters or {}
            together = target.with_webhook if "webhook_id" in names else {}
            for name in names:
                if name in target.real and data.draw(st.booleans()):
                    case.path_parameters[name] = together.get(name, target.real[name])
        case.call_and_validate(base_url="http://localhost", headers=target.headers, checks=checks)

    check()
