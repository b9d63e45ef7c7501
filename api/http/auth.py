"""Bearer tokens, roles and region scoping: the dependencies every router reuses.

* :func:`current_user` — the authenticated :class:`Principal` (401 without one).
* :func:`require_right` / :func:`require_role` — 403 for a role without the right
  (rights are the table in :mod:`domain.permissions`).
* :func:`check_case_scope`, :func:`check_region_scope`, :func:`visible_case` — a
  case or region outside the caller's subtree answers 404 exactly like one that
  does not exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

import structlog
from fastapi import Depends, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.http.services import Services, services
from domain.actors import Actor
from domain.cases import Case
from domain.errors import DomainError, NotFound, NotPermitted
from domain.ladder import Region
from domain.permissions import (
    MASKED_ROLES,
    READ_BOARD,
    READ_HISTORY,
    case_in_scope,
    may,
    region_in_scope,
)
from engine.users import User

bearer = HTTPBearer(
    auto_error=False, bearerFormat="opaque token", description="A token from `fengqiao users add`."
)


@dataclass(frozen=True)
class Principal:
    """The caller: their account and the actor their commands are recorded under."""

    user: User
    actor: Actor
    case_version: tuple[UUID, int] | None = None
    """The request's case (its path's ``case_id``) and its last version in the store, read
    with the token in one query (``UserStore.authenticate_on_case``)."""

    def stored_version(self, case_id: UUID) -> int | None:
        """``case_id``'s last version in the store when this request's token was checked
        (None if the request named another case or none): a cached copy of the case at
        that version is current, without a look for newer events (``Fengqiao.current_case``)."""
        if self.case_version is None or self.case_version[0] != case_id:
            return None
        return self.case_version[1]

    @property
    def name(self) -> str:
        return self.user.name

    @property
    def role(self) -> str:
        return self.user.role

    @property
    def region(self) -> str:
        return self.user.region

    @property
    def unit(self) -> str | None:
        return self.user.unit

    @property
    def masked(self) -> bool:
        """Does this caller see personal fields masked?"""
        return self.role in MASKED_ROLES

    def may(self, right: str) -> bool:
        return may(self.role, right)


class Unauthenticated(DomainError, code="unauthenticated"):
    """No valid token or session (401)."""


class TooManyFailures(DomainError, code="too_many_failures"):
    """Too many bad tokens from one client address in a row (429)."""


def authenticated(request: Request, svc: Services, token: str) -> User:
    """The user holding ``token``; 401 if none, 429 once a client address has sent too
    many bad tokens in a row (brute force), until the window has passed."""
    return authenticated_on_case(request, svc, token, None)[0]


def authenticated_on_case(
    request: Request, svc: Services, token: str, case_id: UUID | None
) -> tuple[User, int | None]:
    """:func:`authenticated`, and ``case_id``'s last version in the store, read in the
    same query (``UserStore.authenticate_on_case``)."""
    client = svc.client_address(request)  # X-Forwarded-For only from FENGQIAO_TRUSTED_PROXIES
    logins = svc.failed_logins
    assert logins is not None  # Services.__post_init__ made it
    wait = logins.retry_after(client)
    if wait is not None:
        raise TooManyFailures(
            "too many bad tokens from this address; wait before trying again",
            retry_after=max(1, round(wait)),
        )
    user, version = svc.users.authenticate_on_case(token, case_id)
    if user is None:
        logins.failed(client)
        raise Unauthenticated("the token is unknown, revoked or expired")
    return user, version


def _path_case(request: Request) -> UUID | None:
    """The case the request's path names (``{case_id}``), if it is a UUID."""
    text = request.path_params.get("case_id")
    if not isinstance(text, str):
        return None
    try:
        return UUID(text)
    except ValueError:
        return None  # the route's own validation answers 422


def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    svc: Annotated[Services, Depends(services)],
) -> Principal:
    """The caller named by ``Authorization: Bearer <token>``."""
    if credentials is None:
        raise Unauthenticated("send Authorization: Bearer <token>")
    case_id = _path_case(request)
    user, version = authenticated_on_case(request, svc, credentials.credentials, case_id)
    known = (case_id, version) if case_id is not None and version is not None else None
    principal = Principal(user, svc.users.actor(user), known)
    structlog.contextvars.bind_contextvars(user=user.name)
    request.state.principal = principal
    return principal


CurrentUser = Annotated[Principal, Depends(current_user)]
RegionParam = Annotated[
    str | None, Query(max_length=200, description="default: the caller's region")
]
"""``?region=``: a region code in the caller's scope."""


RIGHT_WORDS = {READ_HISTORY: "read case history", READ_BOARD: "read boards and statistics"}
"""How a refusal says a right in words (else its name)."""


def forbid(principal: Principal, right: str) -> NotPermitted:
    words = RIGHT_WORDS.get(right, right)
    return NotPermitted(f"a {principal.role} may not {words}", action=right, role=principal.role)


def require(principal: Principal, right: str) -> None:
    """403 unless the caller's role carries ``right``."""
    if not principal.may(right):
        raise forbid(principal, right)


def require_right(right: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller, if their role carries ``right``; else 403."""

    async def dependency(principal: CurrentUser) -> Principal:  # no blocking: no thread hop
        require(principal, right)
        return principal

    dependency.__name__ = f"require_{right}"
    return dependency


def require_role(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller, if their role is one of ``roles``; else 403."""

    async def dependency(principal: CurrentUser) -> Principal:  # no blocking: no thread hop
        if principal.role not in roles:
            raise NotPermitted(
                f"this needs one of the roles {', '.join(roles)}",
                role=principal.role,
                allowed=list(roles),
            )
        return principal

    return dependency


def case_not_found(case_id: UUID) -> NotFound:
    """The refusal for a missing case, and for one outside the caller's region."""
    return NotFound(f"no case {case_id}", resource="case", id=str(case_id))


def region_not_found(code: str) -> NotFound:
    return NotFound(f"no region {code!r}", resource="region", id=code)


def check_case_scope(principal: Principal, case: Case) -> None:
    """404 unless the case's current or origin region is in the caller's subtree."""
    if not case_in_scope((case.region, case.origin_region), principal.region):
        raise case_not_found(case.id)


def check_view_scope(principal: Principal, view: dict[str, Any]) -> None:
    """:func:`check_case_scope` for a case view (``Fengqiao.case_view``)."""
    if not case_in_scope((view["region"], view["origin_region"]), principal.region):
        raise case_not_found(view["id"])


def check_region_scope(principal: Principal, code: str, svc: Services) -> Region:
    """The region, if it exists and is in the caller's subtree; else 404."""
    if not region_in_scope(code, principal.region):
        raise region_not_found(code)
    return svc.engine.region(code)


def visible_case(svc: Services, principal: Principal, case_id: UUID) -> Case:
    """The current case, if the caller may see it; else 404 (same as a missing one)."""
    case = svc.engine.case(case_id)
    check_case_scope(principal, case)
    return case
