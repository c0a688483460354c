"""Who may call what, with CLIPSWEEP_AUTH=token: a matrix generated from the app's own route table,
every route × {no token, a wrong one, read, write, admin, revoked, expired}. A route without an
auth decision fails it. Tokens live only as hashes."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from starlette.routing import Mount

from service.api.auth import COOKIE, Scope
from service.clock import now
from service.db.models import ApiToken, Schedule, Sweep, Webhook
from service.db.session import session_scope
from service.settings import Settings
from service.tokens import create_token
from tests.factories import SPEC, hand_made_sweep, report, scheduled_regression, store
from tests.harness import in_process

# Framework routes with no handler of ours: the OpenAPI document is public (it holds no data).
FRAMEWORK_PUBLIC = {"/openapi.json"}
PRINCIPALS = ("none", "wrong", "read", "write", "admin", "revoked", "expired")


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str], int, int]]:
    """The API with auth on; a secret per principal; a stored sweep submitted by `write`, and one of its runs."""
    with in_process(Settings(data_dir=tmp_path, auth="token")) as api:
        factory = api.app.state.session_factory
        secrets = {"wrong": "cs_" + "x" * 43}
        with session_scope(factory) as session:
            for name, scopes in (("read", ["read"]), ("write", ["write"]), ("admin", ["admin"]),
                                 ("revoked", ["admin"]), ("expired", ["admin"])):
                secrets[name] = create_token(session, name, scopes)[1]
            session.execute(update(ApiToken).where(ApiToken.name == "revoked").values(revoked_at=now()))
            session.execute(update(ApiToken).where(ApiToken.name == "expired")
                            .values(expires_at=now() - timedelta(seconds=1)))
        sweep_id = hand_made_sweep(factory)
        with session_scope(factory) as session:
            session.execute(update(Sweep).values(created_by="write"))
        run_id = api.get(f"/api/v1/sweeps/{sweep_id}/runs", headers=bearer(secrets["read"])).json()["items"][0]["id"]
        yield api, secrets, sweep_id, run_id


def bearer(secret: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"} if secret else {}


def scopes_of(route: Any) -> list[Scope]:
    return [d.call for d in route.dependant.dependencies if isinstance(d.call, Scope)]


def decision(route: Any) -> str | None:
    """The scope a route declares (None: public); fails if it declares none."""
    scopes = scopes_of(route)
    assert scopes, f"{sorted(route.methods)} {route.path} makes no auth decision: give it a Depends(READ/WRITE/...)"
    return max((s.needed for s in scopes), key=lambda s: -1 if s is None else ("read", "write", "admin").index(s))


def allowed(needed: str | None, principal: str) -> bool:
    if needed is None:
        return True
    return principal in ("read", "write", "admin") and ("read", "write", "admin").index(principal) >= \
        ("read", "write", "admin").index(needed)


def request_for(route: Any, method: str, ids: dict[str, int], secrets: dict[str, str]) -> dict[str, Any]:
    """A request each route accepts from a principal it allows."""
    path = route.path.format(cell_index=0, **ids)
    schedule = {"name": f"matrix-{uuid.uuid4().hex}", "cron": "@daily", "sweep": SPEC}
    body = {("POST", "/api/v1/sweeps"): SPEC, ("POST", "/api/v1/sweeps/plan"): SPEC,
            ("POST", "/api/v1/session"): {"token": secrets["read"]},
            ("POST", "/api/v1/schedules"): schedule,
            ("PATCH", "/api/v1/schedules/{schedule_id}"): {"enabled": True},
            ("POST", "/api/v1/schedules/{schedule_id}/webhooks"): {"url": "https://93.184.215.14/"}}.get(
        (method, route.path))
    params = {"/api/v1/cron/preview": {"cron": "@daily"}}.get(route.path)
    return {"method": method, "url": path, "json": body, "params": params}


def test_every_route_answers_each_principal_as_its_scope_says(secured: Any) -> None:
    api, secrets, sweep_id, run_id = secured
    factory = api.app.state.session_factory
    # A schedule of the write token's with an open alert, a webhook and its deliveries.
    ids = {**scheduled_regression(factory), "sweep_id": sweep_id, "run_id": run_id}
    schedule_id, webhook_id = ids["schedule_id"], ids["webhook_id"]
    with session_scope(factory) as session:
        session.execute(update(Schedule).where(Schedule.id == schedule_id).values(created_by="write"))
        session.execute(update(Webhook).where(Webhook.id == webhook_id).values(created_by="write"))
    checked = 0
    for route in iter_route_contexts(api.app.routes):
        if isinstance(route.route, Mount) or route.path in FRAMEWORK_PUBLIC:
            continue
        assert isinstance(route.route, APIRoute), f"{route.path} is neither an API route nor a known framework route"
        needed = decision(route)
        for method in sorted(route.methods):
            for principal in PRINCIPALS:
                store(factory, sweep_id, [report(3, 1), report(3, 2)])  # keep ids alive
                with session_scope(factory) as session:  # and the schedule and webhook, deleted or not
                    session.execute(update(Schedule).where(Schedule.id == schedule_id)
                                    .values(deleted_at=None, name="matrix", enabled=True))
                    session.execute(update(Webhook).where(Webhook.id == webhook_id)
                                    .values(deleted_at=None, enabled=True))
                response = api.request(**request_for(route, method, ids, secrets),
                                       headers=bearer(secrets.get(principal)), follow_redirects=False)
                where = f"{method} {route.path} as {principal} (needs {needed})"
                if allowed(needed, principal):
                    assert response.status_code < 400 or response.status_code == 409, (where, response.text)
                elif any(scope.page for scope in scopes_of(route)):
                    assert response.status_code == 303 and response.headers["location"].startswith("/sign-in"), where
                elif principal in ("none", "wrong", "revoked", "expired"):
                    assert response.status_code == 401, (where, response.text)
                    assert response.headers["www-authenticate"] == 'Bearer realm="clipsweep"'
                else:
                    assert response.status_code == 403, (where, response.text)
                    assert repr(principal) in response.json()["detail"] and repr(needed) in response.json()["detail"]
                checked += 1
    assert checked > 100


def test_a_read_token_reads_and_is_refused_a_submit_naming_the_scope(secured: Any) -> None:
    api, secrets, sweep_id, _ = secured
    assert api.get(f"/api/v1/sweeps/{sweep_id}/summary", headers=bearer(secrets["read"])).status_code == 200
    refused = api.post("/api/v1/sweeps", json=SPEC, headers=bearer(secrets["read"]))
    assert refused.status_code == 403
    assert refused.json()["detail"] == ("token 'read' has scopes ['read']; POST /api/v1/sweeps needs 'write'")


def test_a_sweep_records_its_token_and_only_it_or_an_admin_cancels_it(secured: Any) -> None:
    api, secrets, _, _ = secured
    with session_scope(api.app.state.session_factory) as session:
        create_token(session, "other", ["write"])[1]
    created = api.post("/api/v1/sweeps", json=SPEC, headers=bearer(secrets["write"])).json()
    with session_scope(api.app.state.session_factory) as session:
        assert session.get(Sweep, created["id"]).created_by == "write"
        other = create_token(session, "other2", ["write"])[1]
    refused = api.post(f"/api/v1/sweeps/{created['id']}/cancel", headers=bearer(other))
    assert refused.status_code == 403 and "created by token 'write'" in refused.json()["detail"]
    assert api.post(f"/api/v1/sweeps/{created['id']}/cancel", headers=bearer(secrets["admin"])).status_code == 202


def test_the_database_holds_no_token_in_clear(secured: Any) -> None:
    api, secrets, _, _ = secured
    engine = api.app.state.session_factory.kw["bind"]
    with engine.connect() as conn:
        stored = " ".join(str(row) for table in ("api_tokens", "sweeps") for row in
                          conn.exec_driver_sql(f"SELECT * FROM {table}"))
    assert not any(secret in stored for secret in secrets.values())
    with session_scope(api.app.state.session_factory) as session:
        prefixes = set(session.scalars(select(ApiToken.prefix)))
    assert {s[:9] for name, s in secrets.items() if name != "wrong"} == prefixes


def test_the_dashboard_signs_in_with_a_cookie_that_reads_and_never_writes(secured: Any) -> None:
    api, secrets, sweep_id, _ = secured
    page = api.get(f"/sweeps/{sweep_id}", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == f"/sign-in?next=%2Fsweeps%2F{sweep_id}"
    assert api.post("/api/v1/session", json={"token": secrets["revoked"]}).status_code == 401
    signed = api.post("/api/v1/session", json={"token": secrets["write"]})
    assert signed.status_code == 200 and signed.json() == {"name": "write", "scopes": ["write"], "auth": "token"}
    cookie = signed.headers["set-cookie"]
    assert COOKIE in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert api.get(f"/sweeps/{sweep_id}").status_code == 200  # the client keeps the cookie
    assert api.get(f"/api/v1/sweeps/{sweep_id}/summary").status_code == 200
    write = api.post("/api/v1/sweeps", json=SPEC)
    assert write.status_code == 401  # a cookie never authorizes a write, even a write token's
    assert write.json()["detail"].startswith("a dashboard sign-in only reads; POST /api/v1/sweeps needs an API token")
    assert api.delete("/api/v1/session").status_code == 204
    assert api.get(f"/api/v1/sweeps/{sweep_id}/summary").status_code == 401


def test_a_token_submitting_too_fast_or_with_too_much_queued_gets_429(tmp_path: Path) -> None:
    with in_process(Settings(data_dir=tmp_path, submit_rate_per_minute=2, max_queued_sweeps_per_token=3)) as api:
        assert [api.post("/api/v1/sweeps", json=SPEC).status_code for _ in range(2)] == [201, 201]
        fast = api.post("/api/v1/sweeps", json=SPEC)
        assert fast.status_code == 429 and 0 < int(fast.headers["retry-after"]) <= 60
        assert "submitted 2 sweeps in the last minute" in fast.json()["detail"]
    with in_process(Settings(data_dir=tmp_path / "queue", max_queued_sweeps_per_token=2)) as api:
        assert [api.post("/api/v1/sweeps", json=SPEC).status_code for _ in range(2)] == [201, 201]
        full = api.post("/api/v1/sweeps", json=SPEC)
        assert full.status_code == 429 and "has 2 sweeps queued" in full.json()["detail"]
        assert api.get("/api/v1/sweeps").json()["total"] == 2
