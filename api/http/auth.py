"""Bearer tokens, roles and region scoping: the dependencies every router reuses.

* :func:`current_user` — the authenticated :class:`Principal` (401 without one).
* :func:`require_right` / :func:`require_role` — 403 for a role without the right
  (rights are the table in :mod:`domain.permissions`).
* :func:`check_case_scope`, :func:`check_region_scope`, :func:`visible_case` — a
  case or region outside the caller's subtree answers 404 exactly like one that
  does not exist.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, get_origin
from uuid import UUID

import structlog
from fastapi import Query, Request, Response, Security
from fastapi import routing as fastapi_routing
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from starlette.concurrency import run_in_threadpool

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
    client = _refuse_too_many(request, svc)
    user, version = svc.users.authenticate_on_case(token, case_id)
    if user is None:
        assert svc.failed_logins is not None  # Services.__post_init__ made it
        svc.failed_logins.failed(client)
        raise Unauthenticated("the token is unknown, revoked or expired")
    return user, version


def _refuse_too_many(request: Request, svc: Services) -> str:
    """The client's address; 429 once it has sent too many bad tokens in a row."""
    client = svc.client_address(request)  # X-Forwarded-For only from FENGQIAO_TRUSTED_PROXIES
    logins = svc.failed_logins
    assert logins is not None  # Services.__post_init__ made it
    wait = logins.retry_after(client)
    if wait is not None:
        raise TooManyFailures(
            "too many bad tokens from this address; wait before trying again",
            retry_after=max(1, round(wait)),
        )
    return client


def _path_case(request: Request) -> UUID | None:
    """The case the request's path names (``{case_id}``), if it is a UUID."""
    text = request.path_params.get("case_id")
    if not isinstance(text, str):
        return None
    try:
        return UUID(text)
    except ValueError:
        return None  # the route's own validation answers 422


CALLER = "fengqiao.caller"
"""The request scope's key for its :class:`Caller`."""


class Caller:
    """The request's caller before its token is looked up: :func:`current_user` makes it on
    the event loop from what needs no database (the header, the failed-login window, the
    path's case), and the lookup runs in the endpoint's own thread-pool hop (:func:`with_caller`),
    not in a hop of its own (issue 20: two hops per request were one more than needed).
    Role checks asked for before then (``require_right``, ``require_role``) run right after
    the lookup, in order, before the endpoint. Nothing is looked up on the event loop, so a
    database that stalls stalls a worker thread, never the loop or the deadline middleware."""

    __slots__ = ("_case_id", "_checks", "_error", "_principal", "_request", "_svc", "_token")

    def __init__(self, request: Request, svc: Services, token: str, case_id: UUID | None) -> None:
        self._request, self._svc, self._token, self._case_id = request, svc, token, case_id
        self._checks: list[Callable[[Principal], None]] = []
        self._principal: Principal | None = None
        self._error: Exception | None = None

    @property
    def done(self) -> bool:
        """Looked up already (or refused)."""
        return self._principal is not None or self._error is not None

    def defer(self, check: Callable[[Principal], None]) -> None:
        """Run ``check`` on the principal once it is looked up (at once if it is)."""
        if self._principal is not None:
            check(self._principal)
        else:
            self._checks.append(check)

    def principal(self) -> Principal:
        """The caller, looked up once (401 or 429 as :func:`authenticated` answers, 403 from a
        deferred check); on a worker thread only."""
        if self._error is not None:
            raise self._error
        if self._principal is None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                pass  # a worker thread: no event loop runs here
            else:
                raise RuntimeError("the caller's token is looked up on a worker thread only")
            try:
                principal = _principal(self._request, self._svc, self._token, self._case_id)
                for check in self._checks:
                    check(principal)
            except Exception as error:
                self._error = error
                raise
            self._principal = principal
        return self._principal


def _principal(request: Request, svc: Services, token: str, case_id: UUID | None) -> Principal:
    user, version = authenticated_on_case(request, svc, token, case_id)
    known = (case_id, version) if case_id is not None and version is not None else None
    principal = Principal(user, svc.users.actor(user), known)
    structlog.contextvars.bind_contextvars(user=user.name)
    request.state.principal = principal
    return principal


class BearerCaller(HTTPBearer):
    """``Authorization: Bearer <token>``: the OpenAPI document's ``HTTPBearer`` scheme, and
    itself the dependency that makes the request's :class:`Caller` (:data:`current_user`).
    One dependency, not FastAPI's ``HTTPBearer`` under a dependency of ours: FastAPI solving
    a level of dependencies costs ~2% of a command's instructions (issue 20)."""

    async def __call__(self, request: Request) -> Caller:  # type: ignore[override]
        """The caller named by ``Authorization: Bearer <token>``: 401 at once without one,
        429 at once from an address that sent too many bad tokens; the token itself is looked
        up in the endpoint's thread (:class:`Caller`; the endpoint gets the :class:`Principal`)."""
        made = request.scope.get(CALLER)
        if made is not None:  # made before the route's dependencies (CallerRoute)
            return made
        scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
        if not token or scheme.lower() != "bearer":  # as HTTPBearer reads it
            raise Unauthenticated("send Authorization: Bearer <token>")
        svc: Services = request.app.state.services  # not a dependency: one fewer to solve
        _refuse_too_many(request, svc)
        caller = Caller(request, svc, token, _path_case(request))
        request.scope[CALLER] = caller
        return caller


current_user = BearerCaller(
    scheme_name="HTTPBearer",
    auto_error=False,
    bearerFormat="opaque token",
    description="A token from `fengqiao users add`.",
)
"""The request's :class:`Caller` (401/429 before anything else is read), and the API's
security scheme in the OpenAPI document."""


CurrentUser = Annotated[Principal, Security(current_user)]


def _depends_on(annotation: Any, dependency: Any) -> bool:
    """Is this ``Annotated[..., Depends(dependency)]`` (or ``Security``)?"""
    return get_origin(annotation) is Annotated and any(
        getattr(meta, "dependency", None) is dependency for meta in annotation.__metadata__
    )


def with_caller(call: Callable[..., Any]) -> Callable[..., Any]:
    """``call`` (an endpoint, or a plain ``def`` dependency that takes the caller) with the
    request's caller looked up first, in ``call``'s own thread-pool hop (an ``async`` one:
    in one hop before it, as before), its deferred role checks run, and each argument that
    is the :class:`Caller` given as its :class:`Principal`. FastAPI reads the same signature
    (plus the request, if ``call`` does not take it already, and less a ``Services``
    parameter — ``Depends(services)`` —, which is given from the app: neither is in the OpenAPI
    document, and FastAPI solving a dependency costs ~4% of a case read, issue 20)."""
    if getattr(call, "with_caller", False):
        return call
    try:
        signature = inspect.signature(call, eval_str=True)
    except NameError:
        signature = inspect.signature(call)
    params = list(signature.parameters.values())
    held = [p.name for p in params if _depends_on(p.annotation, services)]
    callers = tuple(p.name for p in params if _depends_on(p.annotation, current_user))
    params = [p for p in params if p.name not in held]
    own = next((p.name for p in params if p.annotation is Request), None)
    name = own or "fengqiao_request"
    if own is None:
        extra = inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Request)
        keywords = bool(params) and params[-1].kind is inspect.Parameter.VAR_KEYWORD
        at = len(params) - int(keywords)
        params.insert(at, extra)

    def arguments(kwargs: dict[str, Any]) -> tuple[Caller | None, dict[str, Any]]:
        request = kwargs[name] if own else kwargs.pop(name)
        for held_name in held:
            kwargs[held_name] = request.app.state.services
        caller = request.scope.get(CALLER)
        for caller_name in callers:  # not solved by FastAPI on a CallerRoute: made before
            kwargs.setdefault(caller_name, caller)
        return caller, kwargs

    def given(caller: Caller, kwargs: dict[str, Any]) -> dict[str, Any]:
        principal = caller.principal()
        return {k: principal if v is caller else v for k, v in kwargs.items()}

    run: Callable[..., Any]
    if inspect.iscoroutinefunction(call):

        @functools.wraps(call)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            caller, kwargs = arguments(kwargs)
            if caller is not None:
                if not caller.done:
                    await run_in_threadpool(caller.principal)
                kwargs = given(caller, kwargs)
            return await call(*args, **kwargs)

        run = run_async
    else:
        assert not inspect.isgeneratorfunction(call) and not inspect.isasyncgenfunction(call)

        @functools.wraps(call)
        def run_sync(*args: Any, **kwargs: Any) -> Any:
            caller, kwargs = arguments(kwargs)
            if caller is not None:
                kwargs = given(caller, kwargs)
            return call(*args, **kwargs)

        run = run_sync
    marked: Any = run
    marked.__signature__ = signature.replace(parameters=params)
    marked.with_caller = True
    marked.caller_params = callers
    return run


class CallerRoute(APIRoute):
    """The API's routes: each endpoint :func:`with_caller` (the token looked up in the
    endpoint's own thread hop). A refusal raised before the endpoint ran — a body or a
    parameter that does not validate, a dependency's — answers after the token's lookup,
    whose own refusal (401, 429, a role's 403) comes first, as it did when the lookup was
    a dependency of its own.

    An endpoint whose first dependency is the caller (``principal: CurrentUser``) has it
    made before FastAPI reads the request (:data:`current_user`: 401 or 429 at once, as
    when it was solved first; a body the JSON parser cannot read, which FastAPI refuses
    before solving anything, now answers after the token too, like every other refusal),
    not solved by FastAPI: the dependant FastAPI runs has one
    level fewer (each level it solves costs ~2% of a command's instructions, issue 20).
    The route's own dependant, which the OpenAPI document is made from, keeps it."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, with_caller(endpoint), **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        context = fastapi_routing._effective_route_context_var.get()
        route: Any = context if context is not None and context.original_route is self else self
        full = route.dependant
        first = full.dependencies[0] if full.dependencies else None
        made_first = (
            first is not None
            and first.call is current_user
            and first.name in getattr(full.call, "caller_params", ())
        )
        if made_first:
            route.dependant = dataclasses.replace(full, dependencies=full.dependencies[1:])
        try:
            handler = super().get_route_handler()
        finally:
            route.dependant = full

        async def handle(request: Request) -> Response:
            if made_first:
                await current_user(request)
            try:
                return await handler(request)
            except Exception:
                caller = request.scope.get(CALLER)
                if caller is not None and not caller.done:
                    await run_in_threadpool(caller.principal)  # its refusal, if any, first
                raise

        return handle


def unchecked_callers(dependant: Any, route: Any) -> list[str]:
    """What in a route's dependencies would take the :class:`Caller` without looking it up
    (empty: none): an endpoint not built by :class:`CallerRoute`, or a dependency taking
    the caller that is not :func:`with_caller` (only ``async`` role checks may, as
    :func:`require_right` does). ``create_app`` refuses to build an app with any."""
    found = []

    def takes_caller(node: Any) -> bool:
        return any(d.call is current_user or takes_caller(d) for d in node.dependencies)

    def walk(node: Any) -> None:
        for sub in node.dependencies:
            if sub.call is current_user or not takes_caller(sub):
                continue
            deferring = getattr(sub.call, "defers_checks", False)
            if not deferring and not getattr(sub.call, "with_caller", False):
                found.append(getattr(sub.call, "__name__", repr(sub.call)))
            walk(sub)

    if takes_caller(dependant):
        if not isinstance(route, CallerRoute):
            found.append(f"route {getattr(route, 'path', route)}")
        walk(dependant)
    return found


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
        return _checked(principal, lambda known: require(known, right))

    dependency.__name__ = f"require_{right}"
    dependency.defers_checks = True  # type: ignore[attr-defined]
    return dependency


def require_role(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller, if their role is one of ``roles``; else 403."""

    def check(principal: Principal) -> None:
        if principal.role not in roles:
            raise NotPermitted(
                f"this needs one of the roles {', '.join(roles)}",
                role=principal.role,
                allowed=list(roles),
            )

    async def dependency(principal: CurrentUser) -> Principal:  # no blocking: no thread hop
        return _checked(principal, check)

    dependency.defers_checks = True  # type: ignore[attr-defined]
    return dependency


def _checked(principal: Principal | Caller, check: Callable[[Principal], None]) -> Principal:
    """``principal`` after ``check``, or the caller with ``check`` deferred until its token
    is looked up (in the endpoint's thread: :class:`Caller`)."""
    if isinstance(principal, Caller):
        principal.defer(check)
    else:
        check(principal)
    return principal  # type: ignore[return-value]  # a Caller: the endpoint gets its Principal


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
