"""Signing in to the dashboard: the API token kept in a cookie, and refusals as pages.

The cookie holds the same bearer token the API takes (HttpOnly, SameSite=Strict,
path ``/ui``); :func:`signed_in` hands it to :func:`api.http.auth.current_user`,
so the dashboard authenticates, scopes and refuses exactly like the API.
:class:`PageRoute` turns those refusals into pages: no sign-in → the sign-in
form; a case or region outside the caller's region → the same 404 page as one
that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials

from api.http import problems
from api.http.auth import Principal, Unauthenticated, current_user
from api.http.services import Services, services
from api.http.ui.render import page
from domain.errors import DomainError, NotPermitted
from domain.permissions import READ_BOARD

COOKIE = "fengqiao_ui"
COOKIE_PATH = "/ui"


def signed_in(request: Request, svc: Annotated[Services, Depends(services)]) -> Principal:
    """The caller named by the dashboard cookie, if their role may read boards."""
    token = request.cookies.get(COOKIE)
    if not token:
        raise Unauthenticated("sign in with your token")
    principal = current_user(request, HTTPAuthorizationCredentials(scheme="Bearer", credentials=token), svc)
    if not principal.may(READ_BOARD):
        raise NotPermitted(f"the dashboard is for supervisors, auditors and administrators, not a {principal.role}",
                           action=READ_BOARD, role=principal.role)
    return principal


SignedIn = Annotated[Principal, Depends(signed_in)]


def set_token(response: Response, token: str, secure: bool) -> None:
    response.set_cookie(COOKIE, token, path=COOKIE_PATH, httponly=True, samesite="strict", secure=secure)


def clear_token(response: Response) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")


def refusal_page(request: Request, error: DomainError) -> Response:
    """A domain refusal as the dashboard shows it."""
    if isinstance(error, Unauthenticated):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response = RedirectResponse(f"/ui/login?next={quote(target, safe='')}", status_code=303)
        if request.cookies.get(COOKIE):
            clear_token(response)  # a revoked or unknown token: forget it
        return response
    kind = problems.BY_CODE.get(error.code, problems.VALIDATION)
    return page(request, "error.html", status_code=kind.status, title=kind.title, status=kind.status,
                detail=error.message)


class PageRoute(APIRoute):
    """A route whose domain refusals render as pages instead of problem+json."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except DomainError as error:
                return refusal_page(request, error)
            except RequestValidationError as error:
                fields = ", ".join(str(e["loc"][-1]) for e in error.errors())
                return page(request, "error.html", status_code=422, title=problems.VALIDATION.title,
                            status=422, detail=f"请检查 check: {fields}")

        return handle
