"""The FastAPI application: `create_app(settings)` assembles routers, errors and the dashboard."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from service import __version__
from service.api import guards, openapi
from service.api.answers import AnswerCache
from service.api.auth import SignInRequired
from service.api.deps import DB_SESSIONS
from service.api.quotas import SubmitRate
from service.api.routes import (
    alerts,
    charts,
    meta,
    metrics,
    pages,
    plan,
    runs,
    schedules,
    session,
    sweeps,
    webhooks,
)
from service.db.open import open_database
from service.errors import ServiceError
from service.queries.summaries import KeptCells
from service.settings import Settings, get_settings
from service.spec import SweepSpec, registry_errors
from service.spec_errors import format_validation_errors
from service.web import STATIC_DIR

# Encoded answers (summaries, charts, counts) kept in memory, at most (service/api/answers.py).
SUMMARY_CACHE_BYTES = 32 * 1024 * 1024
# Cell summaries kept in memory, by the runs they summarize (service/queries/summaries.py): ten
# sweeps of 100,000 runs; and the runs of the cells summarized last, to bring a changed cell up to
# date from its new runs alone (about 1 KB each: ~100 MB at most).
KEPT_CELL_RUNS = 1_000_000
KEPT_RUN_ROWS = 100_000


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine, factory = open_database(settings, pool_size=DB_SESSIONS)
        app.state.session_factory = factory
        yield
        engine.dispose()

    # No /docs or /redoc: FastAPI serves them with scripts from a CDN, and pages here load nothing
    # from outside. The document itself is at /openapi.json.
    app = FastAPI(title="clipsweep", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="How often does training blow up, and does gradient clipping stop it?")
    app.state.settings = settings
    app.state.submit_rate = SubmitRate(settings.submit_rate_per_minute)
    app.state.answers = AnswerCache(max_bytes=SUMMARY_CACHE_BYTES)
    app.state.cells = KeptCells(max_runs=KEPT_CELL_RUNS, max_rows=KEPT_RUN_ROWS)
    app.include_router(plan.router)  # before sweeps: /sweeps/plan is not a sweep's id
    app.include_router(sweeps.router)
    app.include_router(charts.router)
    app.include_router(session.router)
    app.include_router(runs.router)
    app.include_router(schedules.router)
    app.include_router(webhooks.router)
    app.include_router(alerts.router)
    app.include_router(meta.router)
    app.include_router(metrics.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.openapi = openapi.with_errors(app)  # type: ignore[method-assign]
    guards.install(app, max_body_bytes=settings.max_body_bytes, allowed_hosts=settings.allowed_host_list)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for err in exc.errors():
            loc = list(err["loc"])
            if loc[:1] == ["body"]:
                errors += format_validation_errors([{**err, "loc": loc[1:]}], prefix=["body"], root=SweepSpec)
            else:
                errors += format_validation_errors([err])
        # A sweep spec's task and arms checked too where they are well formed: every problem at once.
        body = exc.body if isinstance(exc.body, dict) else {}
        spec, where = ((body, ["body"]) if request.url.path in ("/api/v1/sweeps", "/api/v1/sweeps/plan")
                       else (body.get("sweep"), ["body", "sweep"]) if request.url.path.startswith("/api/v1/schedules")
                       else (None, []))
        seen = {tuple(e["loc"]) for e in errors}
        errors += [e for e in ({**e, "loc": [*where, *e["loc"]]} for e in registry_errors(spec))
                   if tuple(e["loc"]) not in seen]
        return JSONResponse(status_code=422, content={"detail": errors})

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> RedirectResponse:
        """A dashboard page without a valid sign-in goes to the sign-in page, and back after it."""
        return RedirectResponse(f"/sign-in?{urlencode({'next': request.url.path})}", status_code=303)

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        """Every error of the tree in service/errors.py, by its branch's status."""
        return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail}, headers=exc.headers)

    return app
