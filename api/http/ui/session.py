"""Signing in to the dashboard: a server-side session in a cookie, and refusals as pages.

Signing in with an API token opens a session (:mod:`engine.sessions`); the cookie
(HttpOnly, SameSite=Strict, path ``/ui``) holds the session id, never the token, and
only the id's hash is stored. Signing out ends the session; so does revoking or
re-issuing the token. :func:`signed_in` turns the session into the same
:class:`~api.http.auth.Principal` the API uses, so the dashboard scopes and refuses
exactly like the API. Every POST must come from the dashboard's own origin
(:func:`same_origin`).
:class:`PageRoute` turns those refusals into pages: no sign-in → the sign-in
form; a case or region outside the caller's region → the same 404 page as one
that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import structlog
from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse

from api.http import problems
from api.http.auth import Principal, Unauthenticated
from api.http.refusing_route import RefusingRoute
from api.http.services import Services, services
from api.http.ui.render import page
from domain.errors import DomainError, NotPermitted
from domain.permissions import READ_BOARD
from engine.sessions import SESSION_TTL

COOKIE = "fengqiao_ui"
COOKIE_PATH = "/ui"


def signed_in(request: Request, svc: Annotated[Services, Depends(services)]) -> Principal:
    """The caller whose session the dashboard cookie names, if their role may read boards."""
    principal = session_principal(request, svc)
    if not principal.may(READ_BOARD):
        raise NotPermitted(
            f"the dashboard is for supervisors, auditors and administrators, not a {principal.role}",
            action=READ_BOARD,
            role=principal.role,
        )
    return principal


def session_principal(request: Request, svc: Services) -> Principal:
    """The caller whose session the dashboard cookie names (any role: each page checks its right)."""
    session_id = request.cookies.get(COOKIE)
    if not session_id:
        raise Unauthenticated("sign in with your token")
    user = svc.sessions.user(session_id)  # type: ignore[union-attr]
    if user is None:
        raise Unauthenticated(
            "the session has ended (signed out, expired, or the token was revoked)"
        )
    principal = Principal(user, svc.users.actor(user))
    structlog.contextvars.bind_contextvars(user=user.name)
    request.state.principal = principal
    return principal


SignedIn = Annotated[Principal, Depends(signed_in)]


def same_origin(request: Request) -> None:
    """A dependency of every dashboard POST: refuse (403) one a page of another site sent.
    Browsers send ``Origin`` with every POST; without it, ``Referer`` must be ours. The
    host (and port) must be the one the request was sent to (``Host``); the scheme is not
    compared, so a proxy ending TLS in front needs only to pass ``Host`` through."""
    sent = request.headers.get("origin") or request.headers.get("referer") or ""
    parts = urlsplit(sent)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or _netloc(parts) != _netloc(request.url)
    ):
        raise NotPermitted(
            "a dashboard form must be sent from the dashboard itself (Origin)", action="post"
        )


def _netloc(url: Any) -> str:
    default = {"http": 80, "https": 443}.get(url.scheme)
    port = url.port if url.port not in (None, default) else None
    return f"{(url.hostname or '').lower()}{f':{port}' if port else ''}"


SameOrigin = Depends(same_origin)


def set_session(response: Response, session_id: str, secure: bool) -> None:
    """The session cookie, kept as long as the session itself (``SESSION_TTL``): a grid
    worker who closes the browser within the day finds their outbox still able to send."""
    response.set_cookie(
        COOKIE,
        session_id,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=secure,
        max_age=int(SESSION_TTL.total_seconds()),
    )


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
    return page(
        request,
        "error.html",
        status_code=kind.status,
        title=kind.title,
        status=kind.status,
        detail=error.message,
    )


class PageRoute(RefusingRoute):
    """A route whose domain refusals render as pages instead of problem+json."""

    refused = (DomainError, RequestValidationError)

    @staticmethod
    def refusal(request: Request, error: Exception) -> Response:
        if isinstance(error, DomainError):
            return refusal_page(request, error)
        if isinstance(error, RequestValidationError):
            fields = ", ".join(str(e["loc"][-1]) for e in error.errors())
            return page(
                request,
                "error.html",
                status_code=422,
                title=problems.VALIDATION.title,
                status=422,
                detail=f"请检查 check: {fields}",
            )
        raise error
