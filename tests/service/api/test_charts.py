"""GET …/cells/{cell}/chart in this process, on SQLite and PostgreSQL: bands over every seed, every
diverged seed's curve and an even sample of the others, thinned to the width; refusals say why."""

from __future__ import annotations

import math

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.factories import SPEC, make_sweep, report, store


def test_a_cells_chart_has_bands_every_diverged_curve_and_a_sample(
        api: TestClient, session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory, {**SPEC, "seeds": 60})
    reports = []
    for seed in range(50):  # seed s: loss s + step at every step of 0..299; every 7th diverges at step 150
        steps = range(300) if seed % 7 else range(151)
        points = [[step, float(seed + step), 1.0 + step, False] for step in steps]
        if seed % 7 == 0:
            points[-1][1:3] = [math.nan, None]
            reports.append(report(0, seed, "diverged", trigger="nonfinite_loss", diverged_at_step=150,
                                  steps_done=150, points=points))
        else:
            reports.append(report(0, seed, steps_done=300, points=points))
    store(session_factory, sweep_id, reports)  # seeds 50-59 still training

    response = api.get(f"/api/v1/sweeps/{sweep_id}/cells/0/chart", params={"width": 100, "others": 10})
    assert response.status_code == 200, response.text
    chart = response.json()
    assert [r["seed"] for r in chart["runs"]] == list(range(60)) and chart["runs"][55]["outcome"] is None
    diverged = [c for c in chart["curves"] if c["outcome"] == "diverged"]
    assert [c["seed"] for c in diverged] == [0, 7, 14, 21, 28, 35, 42, 49]
    assert chart["others"] == 42 and len(chart["curves"]) == 8 + 10
    for curve in chart["curves"]:  # thinned to about two points per unit of width, the last one kept
        assert len(curve["steps"]) <= 4 * 100 + 4
        assert curve["steps"][-1] == (150 if curve["outcome"] == "diverged" else 299)
    assert diverged[0]["loss"][-1] == "NaN" and diverged[0]["grad_norm"][-1] is None
    loss = chart["loss"]
    assert len(loss["steps"]) == 100 and loss["steps"][0] == 0 and loss["steps"][-1] == 299
    at = loss["steps"].index(0)  # step 0: every seed's loss is its seed number
    assert loss["seeds"][at] == 50 and loss["p50"][at] == np.quantile(range(50), 0.5)
    assert loss["p10"][at] == np.quantile(range(50), 0.1) and loss["p90"][at] == np.quantile(range(50), 0.9)

    tag = response.headers["etag"]
    again = api.get(f"/api/v1/sweeps/{sweep_id}/cells/0/chart", params={"width": 100, "others": 10},
                    headers={"if-none-match": tag})
    assert again.status_code == 304
    store(session_factory, sweep_id, [report(0, 55)])
    assert api.get(f"/api/v1/sweeps/{sweep_id}/cells/0/chart", params={"width": 100, "others": 10},
                   headers={"if-none-match": tag}).status_code == 200


def test_a_chart_refuses_what_it_cannot_draw(api: TestClient, session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory)
    for params in ({"width": 10}, {"width": 10**6}, {"others": -1}, {"others": 10**6}):
        response = api.get(f"/api/v1/sweeps/{sweep_id}/cells/0/chart", params=params)
        assert response.status_code == 422 and next(iter(params)) in response.text
    missing = api.get(f"/api/v1/sweeps/{sweep_id}/cells/9/chart")
    assert missing.status_code == 422 and "cells are 0 to 3" in missing.text
    assert api.get("/api/v1/sweeps/999999/cells/0/chart").status_code == 404
    empty = api.get(f"/api/v1/sweeps/{sweep_id}/cells/0/chart").json()  # nothing trained yet
    assert empty["curves"] == [] and empty["loss"]["steps"] == [] and len(empty["runs"]) == 3


def test_every_seeds_points_are_reachable_a_page_at_a_time(api: TestClient,
                                                           session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory, {**SPEC, "seeds": 25})
    store(session_factory, sweep_id, [report(0, seed) for seed in range(25)])
    pages = [api.get(f"/api/v1/sweeps/{sweep_id}/cells/0/series", params={"limit": 10, "offset": offset}).json()
             for offset in (0, 10, 20)]
    assert [p["total"] for p in pages] == [25] * 3
    assert [r["seed"] for p in pages for r in p["runs"]] == list(range(25))
    assert all(r["steps"] == [0, 9] for p in pages for r in p["runs"])
    assert api.get(f"/api/v1/sweeps/{sweep_id}/cells/0/series", params={"limit": 1001}).status_code == 422
