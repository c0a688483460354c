"""/api/v1/cron/preview in this process: the fire times a schedule would have, and a 422 that
names the query field and says what is wrong."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient


def preview(api: TestClient, **params: object) -> dict:
    response = api.get("/api/v1/cron/preview", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_fire_times_in_utc_across_the_night_clocks_jump(api: TestClient) -> None:
    answer = preview(api, cron="30 2 * * *", timezone="Europe/Berlin", after="2026-03-27T12:00:00Z", count=3)
    assert answer == {"cron": "30 2 * * *", "timezone": "Europe/Berlin",
                      "description": "At 02:30 every day (Europe/Berlin)",
                      "fire_times": ["2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]}


def test_a_macro_from_now_in_utc_by_default(api: TestClient) -> None:
    before = datetime.now(timezone.utc)
    answer = preview(api, cron="@hourly")
    times = [datetime.fromisoformat(t) for t in answer["fire_times"]]
    assert answer["cron"] == "0 * * * *" and answer["timezone"] == "UTC" and len(times) == 5
    assert before < times[0] and all(t.minute == 0 and t.second == 0 for t in times)
    assert [(b - a).total_seconds() for a, b in zip(times, times[1:])] == [3600.0] * 4


def test_an_offset_free_moment_is_utc(api: TestClient) -> None:
    answer = preview(api, cron="0 2 * * *", after="2026-01-01T01:59:00", count=1)
    assert answer["fire_times"] == ["2026-01-01T02:00:00Z"]


def test_a_bad_expression_or_zone_is_a_422_that_says_what_is_wrong(api: TestClient) -> None:
    cases = [({"cron": "0 25 * * *"}, ["query", "cron"], "hour 25 is out of range 0–23"),
             ({"cron": "0 2 * * *", "timezone": "Europe/Berln"}, ["query", "timezone"],
              "unknown time zone 'Europe/Berln'; did you mean 'Europe/Berlin'?"),
             ({"cron": "0 2 * * *", "after": "9999-12-31T00:00:00Z"}, ["query", "after"],
              "give a moment between the years 1970 and 2999"),
             ({"cron": "0 2 * * *", "count": 101}, ["query", "count"], "Input should be less than or equal to 100")]
    for params, loc, message in cases:
        response = api.get("/api/v1/cron/preview", params=params)
        assert response.status_code == 422, response.text
        (error,) = response.json()["detail"]
        assert error["loc"] == loc and error["msg"].startswith(message), error


NIGHTLY = {"name": "nightly", "cron": "0 2 * * *", "timezone": "Europe/Berlin", "starting_deadline": "2h",
           "sweep": {"task": {"name": "quadratic"}, "learning_rates": [0.1], "seeds": 2, "budget": {"max_steps": 10}}}


def test_a_schedule_is_created_with_its_next_fire_times_and_refused_with_reasons(api: TestClient) -> None:
    created = api.post("/api/v1/schedules", json=NIGHTLY)
    assert created.status_code == 201, created.text
    schedule = created.json()
    assert (schedule["cron"], schedule["timezone"], schedule["description"]) == (
        "0 2 * * *", "Europe/Berlin", "At 02:00 every day (Europe/Berlin)")
    assert (schedule["concurrency"], schedule["catch_up"], schedule["seed_policy"]) == ("skip", "latest", "same")
    assert schedule["starting_deadline"] == 7200 and schedule["enabled"] and schedule["sweeps_made"] == 0
    assert schedule["sweep"]["optimizer"]["momentum"] == 0.0  # resolved, defaults spelled out
    times = [datetime.fromisoformat(t) for t in schedule["next_fire_times"]]
    assert len(times) == 5 and all(t.astimezone(ZoneInfo("Europe/Berlin")).hour == 2 for t in times)
    assert api.get(f"/api/v1/schedules/{schedule['id']}").json() == schedule
    assert api.get("/api/v1/schedules").json()["total"] == 1
    refusals = [({**NIGHTLY}, 409, None),
                ({**NIGHTLY, "name": "b", "cron": "0 25 * * *"}, 422, ["body", "cron"]),
                ({**NIGHTLY, "name": "c", "timezone": "Europe/Berln"}, 422, ["body", "timezone"]),
                ({**NIGHTLY, "name": "d", "sweep": {**NIGHTLY["sweep"], "task": {"name": "mnist"}}}, 422,
                 ["body", "sweep", "task", "name"]),
                ({**NIGHTLY, "name": "e", "starting_deadline": "2 weeks"}, 422, ["body", "starting_deadline"])]
    for body, code, loc in refusals:
        response = api.post("/api/v1/schedules", json=body)
        assert response.status_code == code, response.text
        if loc:
            assert response.json()["detail"][0]["loc"] == loc, response.text
    assert api.get("/api/v1/schedules").json()["total"] == 1  # nothing stored for a refusal


def test_trigger_pause_resume_change_and_delete(api: TestClient) -> None:
    schedule_id = api.post("/api/v1/schedules", json=NIGHTLY).json()["id"]
    url = f"/api/v1/schedules/{schedule_id}"
    manual = api.post(f"{url}/trigger").json()
    assert manual["outcome"] == "manual" and manual["sweep_status"] == "queued" and manual["runs_total"] == 4
    sweep = api.get(f"/api/v1/sweeps/{manual['sweep_id']}").json()
    assert sweep["name"].startswith("nightly ") and sweep["spec"]["seeds"] == 2
    skipped = api.post(f"{url}/trigger").json()  # the first is still queued: concurrency skip
    assert skipped["outcome"] == "skipped" and skipped["sweep_id"] is None
    assert skipped["detail"] == f"sweep {manual['sweep_id']} of this schedule is still queued (concurrency skip)"
    history = api.get(f"{url}/sweeps").json()
    assert [f["outcome"] for f in history["items"]] == ["skipped", "manual"] and history["total"] == 2
    assert api.patch(url, json={"enabled": False}).json()["next_fire_times"] == []
    resumed = api.patch(url, json={"enabled": True, "cron": "@hourly", "timezone": "UTC", "concurrency": "queue"})
    assert resumed.status_code == 200, resumed.text
    hourly = resumed.json()
    assert (hourly["cron"], hourly["concurrency"]) == ("0 * * * *", "queue")
    assert datetime.fromisoformat(hourly["next_fire_times"][0]).minute == 0
    assert api.patch(url, json={"cron": "61 * * * *"}).status_code == 422
    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404 and api.get("/api/v1/schedules").json()["total"] == 0
    assert api.get(f"/api/v1/sweeps/{manual['sweep_id']}").status_code == 200  # its sweeps stay
    assert api.post("/api/v1/schedules", json=NIGHTLY).status_code == 201  # and its name is free


def test_a_new_spec_is_a_new_version_and_its_fires_say_which(api: TestClient) -> None:
    schedule_id = api.post("/api/v1/schedules", json=NIGHTLY).json()["id"]
    url = f"/api/v1/schedules/{schedule_id}"
    first = api.post(f"{url}/trigger").json()
    api.post(f"/api/v1/sweeps/{first['sweep_id']}/cancel")  # out of the way of concurrency skip
    assert api.patch(url, json={"sweep": NIGHTLY["sweep"]}).json()["version"] == 1  # the same spec
    bad = api.patch(url, json={"sweep": {**NIGHTLY["sweep"], "task": {"name": "mnist"}}})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "sweep", "task", "name"]
    changed = api.patch(url, json={"sweep": {**NIGHTLY["sweep"], "seeds": 3}}).json()
    assert (changed["version"], changed["sweep"]["seeds"]) == (2, 3)
    second = api.post(f"{url}/trigger").json()
    assert (first["schedule_version"], second["schedule_version"]) == (1, 2)
    assert api.get(f"/api/v1/sweeps/{second['sweep_id']}").json()["spec"]["seeds"] == 3
