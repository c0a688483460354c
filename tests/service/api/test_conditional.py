"""Conditional GETs of what the dashboard polls, in this process on SQLite and PostgreSQL: the
summary and a cell's series answer 304 with no body while nothing they come from changed, and
the full answer with a new ETag once a run of theirs finishes."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.factories import make_sweep, report, store


def test_polls_that_find_nothing_new_get_304_and_a_finished_run_a_new_answer(
        api: TestClient, session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory)
    store(session_factory, sweep_id, [report(0, 0), report(1, 0)])
    for path in (f"/api/v1/sweeps/{sweep_id}/summary", f"/api/v1/sweeps/{sweep_id}/cells/0/series"):
        first = api.get(path)
        assert first.status_code == 200 and first.headers["cache-control"] == "no-cache"
        tag = first.headers["etag"]
        again = api.get(path, headers={"if-none-match": tag})
        assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", tag)
        assert api.get(path, headers={"if-none-match": f'"other", {tag}'}).status_code == 304  # one of a list
        assert api.get(path, headers={"if-none-match": '"other"'}).status_code == 200
    summary = f"/api/v1/sweeps/{sweep_id}/summary"
    series = [f"/api/v1/sweeps/{sweep_id}/cells/{cell}/series" for cell in (0, 1)]
    tags = {path: api.get(path).headers["etag"] for path in (summary, *series)}
    assert api.get(summary, params={"tolerance": 0.1}, headers={"if-none-match": tags[summary]}).status_code == 200

    store(session_factory, sweep_id, [report(0, 1, "diverged", trigger="loss_explosion", diverged_at_step=3)])
    assert api.get(series[1], headers={"if-none-match": tags[series[1]]}).status_code == 304  # cell 1 unchanged
    for path in (summary, series[0]):
        changed = api.get(path, headers={"if-none-match": tags[path]})
        assert changed.status_code == 200 and changed.headers["etag"] != tags[path]
    cells = api.get(summary).json()["cells"]
    assert next(c for c in cells if c["cell_index"] == 0)["diverged"] == 1


def test_a_polled_sweep_keeps_its_counts_only_until_another_run_finishes(
        api: TestClient, session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory)
    store(session_factory, sweep_id, [report(0, 0), report(1, 0, "diverged", trigger="loss_explosion")])
    for _ in range(2):  # computed, then kept
        sweep = api.get(f"/api/v1/sweeps/{sweep_id}").json()
        assert sweep["progress"]["by_outcome"]["diverged"] == 1 and sweep["progress"]["done"] == 2
        assert sweep["nodes"] == [{"node": "test", "device": "cpu", "runs": 2}]
    store(session_factory, sweep_id, [report(2, 0, "diverged", trigger="loss_explosion")])
    sweep = api.get(f"/api/v1/sweeps/{sweep_id}").json()
    assert sweep["progress"]["by_outcome"]["diverged"] == 2 and sweep["nodes"][0]["runs"] == 3
