"""Every task × every clipping method, trained by the Ray adapter's trainable, reported, checked
at the service's door and stored: what a worker does with each trial's reports, without Ray (the
adapter's `tune.report` hands each report to the test). tests/service/test_end_to_end.py runs
one task through a real service and Ray."""

from __future__ import annotations

import math
from typing import Any, Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.analysis.statistics import Telemetry
from service.analysis.summary import summarize
from service.db.session import session_scope
from service.grid import cells
from service.lifecycle.report import parse_report
from service.queries.sweeps import summary_rows
from service.spec import parse_spec
from tests.factories import make_sweep, store
from tests.trainers.helpers import SMALL_TASKS
from trainers import CLIPPERS, TASKS, ray_adapter


@pytest.fixture
def db_url(tmp_path: Any) -> Iterator[str]:
    """SQLite only: what is tested here is the hand-off, which the database does not change."""
    yield f"sqlite:///{tmp_path / 'test.sqlite3'}"


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_with_every_clipping_method_trains_and_is_stored(
        task: str, session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    spec = {"name": f"all-methods-{task}", "task": {"name": task, "params": SMALL_TASKS.get(task, {})},
            "learning_rates": [0.01], "clipping": [{"method": name} for name in CLIPPERS], "seeds": 2,
            "budget": {"max_steps": 30, "batch_size": 8}, "resources": {"device": "cpu"}}
    sweep_id = make_sweep(session_factory, spec)
    sent: list[Any] = []
    monkeypatch.setattr(ray_adapter.tune, "report", lambda payload: sent.append(payload["report"]))
    monkeypatch.setattr(ray_adapter, "PROGRESS_SECONDS", math.inf)  # results only, however slow the machine
    for cell in cells(parse_spec(spec)):
        ray_adapter.train_chunk({"chunk": {"train": cell.config.to_dict(), "cell_index": cell.index,
                                           "seeds": [0, 1], "threads": 1, "keep_freed_memory": False}})
    assert store(session_factory, sweep_id, [parse_report(payload) for payload in sent]) == 2 * len(CLIPPERS)
    with session_scope(session_factory) as session:
        summary = summarize(summary_rows(session, sweep_id))
    assert {c.clip_method for c in summary} == set(CLIPPERS)
    assert all(c.finished == 2 and isinstance(c.telemetry, Telemetry) for c in summary)
