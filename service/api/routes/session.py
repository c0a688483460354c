"""/api/v1/session: the dashboard's sign-in. A browser posts an API token once and keeps it as an
HttpOnly, SameSite=Strict cookie, which then authorizes its reads (never a write)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from service.api.auth import COOKIE, PUBLIC
from service.api.deps import SessionDep, SettingsDep
from service.errors import NotAuthenticated
from service.tokens import authenticate

router = APIRouter(prefix="/api/v1/session", tags=["session"], dependencies=[Depends(PUBLIC)])


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(max_length=200, description="An API token (cs_…).")


@router.post("", responses={401: {"description": "The token is unknown, revoked or expired."}})
def sign_in(*, body: SignIn, session: SessionDep, settings: SettingsDep, request: Request,
            response: Response) -> dict[str, Any]:
    """Check the token and set the dashboard's cookie; answers who it is."""
    if settings.auth == "off":
        return {"name": None, "scopes": ["admin"], "auth": "off"}
    principal = authenticate(session, body.token)
    if principal is None:
        raise NotAuthenticated("the token is unknown, revoked or expired; `clipsweep token list` shows the tokens")
    response.set_cookie(COOKIE, body.token, max_age=int(settings.session_days * 86400), httponly=True,
                        samesite="strict", secure=request.url.scheme == "https", path="/")
    return {"name": principal.name, "scopes": sorted(principal.scopes), "auth": "token"}


@router.delete("", status_code=204)
def sign_out(response: Response) -> Response:
    """Forget the dashboard's cookie."""
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    response.status_code = 204
    return response
