"""The OpenAPI document, true to the answers: besides what FastAPI declares from the handlers
(bodies, 422s, the statuses a route names itself), every operation lists the errors the layers
around it give, derived from the route table so a new route cannot forget them: 401 and 403 from
the scope it needs, 403 for a write a browser sends from another site, 404 for an object named in
its path, 400 and 413 for a body, and 503 while the database is away."""

from __future__ import annotations

from typing import Any, Callable

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from service.api.auth import Scope
from service.api.guards import UNSAFE_METHODS
from service.api.schemas import ErrorOut

ERRORS = {
    400: "The body is not JSON.",
    401: "No API token, or an unknown, revoked or expired one (with auth on); see WWW-Authenticate.",
    403: "The token lacks the scope this needs, or a browser sent a write from another site.",
    404: "No object with that id.",
    413: "The body is larger than CLIPSWEEP_MAX_BODY_BYTES.",
    503: "The database is unavailable; try again after Retry-After seconds.",
}
ERROR_REF = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}


def error_statuses(route: APIRoute, method: str) -> set[int]:
    """The error statuses the layers around a handler may answer it with."""
    codes = {503}
    if any(isinstance(d.call, Scope) and d.call.needed for d in route.dependant.dependencies):
        codes |= {401, 403}
    if method in UNSAFE_METHODS:
        codes.add(403)
    if route.dependant.path_params:
        codes.add(404)
    if route.dependant.body_params:
        codes |= {400, 413}
    return codes


def with_errors(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """`app.openapi` that adds the error statuses to FastAPI's own document (built once)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        document.setdefault("components", {}).setdefault("schemas", {})["ErrorOut"] = ErrorOut.model_json_schema()
        for ctx in iter_route_contexts(app.routes):
            route = ctx.route
            if not isinstance(route, APIRoute) or not route.include_in_schema:
                continue
            for method in ctx.methods:
                responses = document["paths"][ctx.path][method.lower()]["responses"]
                for code in error_statuses(route, method):
                    responses.setdefault(str(code), {"description": ERRORS[code]})
                for code, answer in responses.items():  # the handler's own errors have the same body
                    if code != "422" and code >= "400":
                        answer.setdefault("content", ERROR_REF)
        return document

    return openapi
