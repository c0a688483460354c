"""Dashboard pages. They are shells that the browser fills from the JSON API (static/dashboard.js),
so what a page shows is exactly what the API answers, and it updates while a sweep runs."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from service.api.deps import SessionDep
from service.sweeps import SweepNotFound, get_sweep
from service.web import STATIC_DIR, TEMPLATES_DIR

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=TEMPLATES_DIR)


@router.get("/", response_class=HTMLResponse, name="sweeps_page")
def sweeps_page(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "sweeps.html", {})


@router.get("/sweeps/{sweep_id}", response_class=HTMLResponse, name="sweep_page")
def sweep_page(request: Request, sweep_id: int, session: SessionDep) -> HTMLResponse:
    try:
        sweep = get_sweep(session, sweep_id)
    except SweepNotFound as exc:  # an unknown id is a 404 page, not an empty shell
        return templates.TemplateResponse(request, "not_found.html", {"message": str(exc).capitalize()},
                                          status_code=404)
    return templates.TemplateResponse(request, "sweep.html", {"sweep_id": sweep.id, "name": sweep.name})


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    """Browsers ask for it on any page, the API's JSON included."""
    return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")
