"""/api/v1/cron/preview in this process: the fire times a schedule would have, and a 422 that
names the query field and says what is wrong."""

from __future__ import annotations

from datetime import datetime, timezone

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
