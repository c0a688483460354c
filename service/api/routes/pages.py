"""Dashboard pages. They are shells that the browser fills from the JSON API (static/dashboard.js),
so what a page shows is exactly what the API answers, and it updates while a sweep runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from service.api.auth import PUBLIC, READ_PAGE
from service.api.deps import SessionDep
from service.errors import NotFound
from service.queries.runs import get_run
from service.queries.schedules import get_schedule
from service.queries.sweeps import get_sweep
from service.web import PLOTLY_JS, STATIC_DIR, TEMPLATES_DIR

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=TEMPLATES_DIR)




@router.get("/", response_class=HTMLResponse, name="sweeps_page", dependencies=[Depends(READ_PAGE)])
def sweeps_page(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "sweeps.html", {})


def _page(request: Request, template: str, context: Callable[[], dict[str, Any]]) -> HTMLResponse:
    """A page about one stored object: `context` reads it, and an unknown id is a 404 page, not
    an empty shell."""
    try:
        values = context()
    except NotFound as exc:
        return templates.TemplateResponse(request, "not_found.html", {"message": str(exc).capitalize()},
                                          status_code=404)
    return templates.TemplateResponse(request, template, values)


@router.get("/sweeps/{sweep_id}", response_class=HTMLResponse, name="sweep_page", dependencies=[Depends(READ_PAGE)])
def sweep_page(request: Request, sweep_id: int, session: SessionDep) -> HTMLResponse:
    def context() -> dict[str, Any]:
        sweep = get_sweep(session, sweep_id)
        return {"sweep_id": sweep.id, "name": sweep.name}

    return _page(request, "sweep.html", context)


@router.get("/schedules", response_class=HTMLResponse, name="schedules_page", dependencies=[Depends(READ_PAGE)])
def schedules_page(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "schedules.html", {})


@router.get("/schedules/{schedule_id}", response_class=HTMLResponse, name="schedule_page",
            dependencies=[Depends(READ_PAGE)])
def schedule_page(request: Request, schedule_id: int, session: SessionDep) -> HTMLResponse:
    def context() -> dict[str, Any]:
        schedule = get_schedule(session, schedule_id)
        return {"schedule_id": schedule.id, "name": schedule.name}

    return _page(request, "schedule.html", context)


@router.get("/alerts", response_class=HTMLResponse, name="alerts_page", dependencies=[Depends(READ_PAGE)])
def alerts_page(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "alerts.html", {})


@router.get("/runs/{run_id}", response_class=HTMLResponse, name="run_page", dependencies=[Depends(READ_PAGE)])
def run_page(request: Request, run_id: int, session: SessionDep) -> HTMLResponse:
    def context() -> dict[str, Any]:
        detail = get_run(session, run_id)
        return {"run_id": run_id, "seed": detail.run.seed, "sweep_id": detail.run.sweep_id,
                "sweep_name": detail.sweep_name}

    return _page(request, "run.html", context)


@router.get("/sign-in", response_class=HTMLResponse, name="sign_in_page", dependencies=[Depends(PUBLIC)])
def sign_in_page(request: Request) -> HTMLResponse:
    """Where a browser trades an API token for the dashboard's cookie (dashboard.js posts it)."""
    return templates.TemplateResponse(request, "sign_in.html", {})


@router.get("/vendor/plotly.min.js", name="plotly_js", dependencies=[Depends(PUBLIC)])
def plotly_js() -> FileResponse:
    return FileResponse(PLOTLY_JS, media_type="text/javascript", headers={"cache-control": "public, max-age=86400"})


@router.get("/favicon.ico", dependencies=[Depends(PUBLIC)])
def favicon() -> FileResponse:
    """Browsers ask for it on any page, the API's JSON included."""
    return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")
