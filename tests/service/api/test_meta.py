"""Health, the registries a spec may name, and the dashboard's pages, in this process."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.factories import hand_made_sweep


def test_health_answers_when_the_database_does(api: TestClient) -> None:
    assert api.get("/api/v1/healthz").json() == {"status": "ok"}


def test_registries_are_listed(api: TestClient) -> None:
    listing = api.get("/api/v1/tasks").json()
    tasks, errors = listing["tasks"], listing["plugin_errors"]
    assert errors == {}
    assert {"adding", "temporal_order", "deep_mlp", "tiny_transformer", "quadratic"} <= {t["name"] for t in tasks}
    methods = {m["name"]: m for m in api.get("/api/v1/clipping-methods").json()}
    assert {"none", "norm", "value", "per_layer", "agc", "autoclip", "zclip"} <= set(methods)
    assert {"name": "max_norm", "type": "float", "default": 1.0} in methods["norm"]["params"]
    assert all(m["doc"] and "\n" not in m["doc"] for m in methods.values())


def test_pages_are_served_and_an_unknown_id_is_a_404_page(api: TestClient,
                                                          session_factory: sessionmaker[Session]) -> None:
    sweep_id = hand_made_sweep(session_factory)
    assert "store-test" in api.get(f"/sweeps/{sweep_id}").text
    run_id = api.get(f"/api/v1/sweeps/{sweep_id}/runs", params={"limit": 1}).json()["items"][0]["id"]
    assert api.get(f"/runs/{run_id}").status_code == 200
    for path in ("/sweeps/999999", "/runs/999999"):
        missing = api.get(path)
        assert missing.status_code == 404 and "999999" in missing.text
    assert api.get("/").status_code == 200
    plotly = api.get("/vendor/plotly.min.js")
    assert plotly.headers["content-type"].startswith("text/javascript")
    # the partial bundle scripts/vendor-plotly.sh puts there, not a CDN's or the full one
    assert plotly.text.startswith("/**\n* plotly.js (cartesian - minified) v") and len(plotly.content) < 2_000_000
    # and no default in it names a server outside this one (scripts/vendor-plotly.sh)
    assert not re.search(r'dflt:"https?://', plotly.text)


def test_the_openapi_schema_names_the_contract(api: TestClient) -> None:
    schema = api.get("/openapi.json").json()
    assert {"/api/v1/sweeps", "/api/v1/sweeps/{sweep_id}/summary", "/api/v1/runs/{run_id}"} <= set(schema["paths"])
    assert "finished" in schema["components"]["schemas"]["SweepOut"]["properties"]
