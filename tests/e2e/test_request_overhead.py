"""Per-request work that does not depend on the request is done once (issue 20)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from uuid import UUID, uuid4

import anyio.to_thread
import pytest
from fastapi import Depends
from fastapi import routing as fastapi_routing
from fastapi.dependencies import utils as fastapi_utils
from fastapi.routing import APIRouter

from api.bench.county import envelope
from api.http.auth import (
    CallerRoute,
    CurrentUser,
    current_user,
    require_right,
    unchecked_callers,
    with_caller,
)
from domain.clocks import clocks_under
from engine.case_clocks import current_clocks
from engine.service import Fengqiao
from engine.store import StoreConfig
from engine.users import UserStore
from tests.test_api_support import DISPUTE, Api


def test_finding_a_route_does_not_walk_the_routers_on_each_request(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    case_id = api.report(DISPUTE, who="wang")["id"]
    walks = []
    walk = APIRouter._get_routes_version
    monkeypatch.setattr(
        APIRouter,
        "_get_routes_version",
        lambda self, seen=None: walks.append(self) or walk(self, seen),
    )
    assert api.get(f"/v1/cases/{case_id}", "wang").status_code == 200
    assert api.post(f"/v1/cases/{case_id}/comment", {"text": "一"}, "wang").status_code == 200
    assert api.get("/problems/not-found", None).status_code == 200  # a router further down
    assert walks == []


def test_a_command_reads_back_none_of_the_events_it_wrote(api: Api) -> None:
    """The case view a command answers with folds its clocks from the cached fold and the
    command's own stored events, decoded as a read would; the scope check finds the cached
    case current by the version the token's query read (nothing newer to look for)."""
    case_id = api.report(DISPUTE, who="wang")["id"]
    assert api.get(f"/v1/cases/{case_id}", "wang").status_code == 200  # the clocks folded
    reads = []
    events = api.engine.events
    read = events.get
    events.get = lambda *a, **kw: reads.append(kw) or read(*a, **kw)
    try:
        done = api.post(f"/v1/cases/{case_id}/comment", {"text": "一"}, "wang")
    finally:
        events.get = read
    assert done.status_code == 200
    assert reads == []
    app = api.engine
    case = app.case(UUID(case_id))
    now = app.clock.now()
    kept = current_clocks(app, case, now)  # the fold the command advanced
    assert kept == clocks_under(
        app.policy(case.policy_version), app.events.get(case.id), now, app.statutory()
    )


def _counting_reads(engine: Fengqiao) -> list[dict]:
    reads: list[dict] = []
    read = engine.events.get
    engine.events.get = lambda *a, **kw: reads.append(kw) or read(*a, **kw)  # type: ignore[method-assign]
    return reads


def test_a_case_read_by_the_version_read_with_the_token(api: Api, store: StoreConfig) -> None:
    """The token's query also reads the case's last version in the store: a cached case at
    that version is shown without a look for newer events; one another process (here a
    second engine on the same store) wrote past is brought up to date, by GET and by command."""
    case_id = api.report(DISPUTE, who="wang")["id"]
    assert api.get(f"/v1/cases/{case_id}", "wang").json()["version"] == 1
    reads = _counting_reads(api.engine)
    assert api.get(f"/v1/cases/{case_id}", "wang").json()["version"] == 1
    assert reads == []  # current: nothing to look for
    other = Fengqiao(store, clock=api.engine.clock)
    try:
        other.do(
            UUID(case_id),
            "comment",
            {"text": "另一进程"},
            envelope("wang", other, command_id="x-1"),
        )
        seen = api.get(f"/v1/cases/{case_id}", "wang")
        assert seen.json()["version"] == 2 and seen.headers["etag"] == '"2"'
        assert reads[0] == {"gt": 1}  # brought up to date with the other's event (then its clocks)
        other.do(
            UUID(case_id), "comment", {"text": "又一条"}, envelope("wang", other, command_id="x-2")
        )
        done = api.post(f"/v1/cases/{case_id}/comment", {"text": "本进程"}, "wang")
        assert done.status_code == 200 and done.json()["version"] == 4
        history = [e["data"].get("text") for e in api.get(f"/v1/cases/{case_id}/history").json()]
        assert history[1:] == ["另一进程", "又一条", "本进程"]
    finally:
        other.close()


def test_a_token_revoked_elsewhere_fails_at_once_on_case_routes(
    api: Api, store: StoreConfig
) -> None:
    """The token's query on a case route (which reads the case's version too) still refuses
    a token revoked by another process the moment it is revoked."""
    case_id = api.report(DISPUTE, who="wang")["id"]
    assert api.get(f"/v1/cases/{case_id}", "wang").status_code == 200
    other = Fengqiao(store, clock=api.engine.clock)
    try:
        UserStore(other).revoke("wang")
    finally:
        other.close()
    assert api.get(f"/v1/cases/{case_id}", "wang").status_code == 401
    assert api.post(f"/v1/cases/{case_id}/comment", {"text": "一"}, "wang").status_code == 401


def _counting_hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The thread-pool hops a request makes (each ``anyio.to_thread.run_sync``)."""
    hops: list[str] = []
    run_sync = anyio.to_thread.run_sync

    async def counted(function: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(function, "__name__", repr(function)))
        return await run_sync(function, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    return hops


def test_the_token_is_looked_up_in_the_endpoints_own_hop(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One thread-pool hop per request on a token route, reads and commands alike (the
    token's lookup had a hop of its own before the endpoint's), also where a role check
    or a dependency taking the caller comes first; the lookup itself never runs on the
    event loop (a stalled database stalls a worker thread, not every request)."""
    case_id = api.report(DISPUTE, who="wang")["id"]
    lookups: list[bool] = []
    lookup = api.http.state.services.users.authenticate_on_case

    def off_the_loop(*args: Any) -> Any:
        try:
            asyncio.get_running_loop()
            lookups.append(False)
        except RuntimeError:
            lookups.append(True)
        return lookup(*args)

    monkeypatch.setattr(api.http.state.services.users, "authenticate_on_case", off_the_loop)
    hops = _counting_hops(monkeypatch)
    requests = [
        (1, lambda: api.get(f"/v1/cases/{case_id}", "wang")),
        (1, lambda: api.get("/v1/cases?limit=5", "wang")),
        (1, lambda: api.post(f"/v1/cases/{case_id}/comment", {"text": "一"}, "wang")),
        (1, lambda: api.get("/v1/sla/board", "zhou")),  # the endpoint checks the role
        (1, lambda: api.get("/v1/audit/checkpoints/latest", "audit")),  # require_role's
        # a plain-def dependency has its own hop; one taking the caller looks it up (was 3)
        (2, lambda: api.get("/v1/regions/410928-001/stats", "zhou")),
        (2, lambda: api.get("/v1/events?limit=1", "feed")),  # require_right's check, feed_of
    ]
    for expected, send in requests:
        hops.clear()
        response = send()
        assert response.status_code in (200, 404), response.text  # 404: no checkpoint yet
        assert len(hops) == expected, (response.request.url, hops)
    assert lookups == [True] * len(requests)


def test_a_refused_token_or_role_answers_before_what_the_request_got_wrong(api: Api) -> None:
    """The token's lookup moved into the endpoint's hop; its refusals still come first, as
    when it was a dependency of its own: a bad token or a role without the right, with a
    body or a parameter that does not validate, answers 401 / 403 (not 422)."""
    case_id = api.report(DISPUTE, who="wang")["id"]
    bad = {"Authorization": "Bearer fq_nobody"}
    comment = f"/v1/cases/{case_id}/comment"
    assert api.client.post(comment, json={"text": 5}, headers=bad).status_code == 401
    assert api.client.get("/v1/cases?limit=0", headers=bad).status_code == 401
    assert api.client.get("/v1/cases/not-a-uuid", headers=bad).status_code == 401
    assert api.get("/v1/events?limit=0", "wang").status_code == 403  # require_right
    assert api.get("/v1/audit/checkpoints/latest", "wang").status_code == 403  # require_role
    assert api.get("/v1/regions/410928-001/stats?from=x", "wang").status_code == 403
    assert api.post(comment, {"text": 5}, "wang").status_code == 422  # a good token: 422
    assert api.get("/v1/events?limit=0", "feed").status_code == 422
    unreadable = {"Content-Type": "application/json"}  # a body the JSON parser cannot read
    for headers in ({}, bad):
        refused = api.client.post(comment, content=b"{", headers={**unreadable, **headers})
        assert refused.status_code == 401, refused.text
    readable = api.client.post(comment, content=b"{", headers={**unreadable, **api.headers("wang")})
    assert readable.status_code == 422, readable.text  # a good token: what it got wrong


def test_the_caller_is_not_a_dependency_fastapi_solves(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An endpoint whose first dependency is the caller has it made before FastAPI solves
    the rest (CallerRoute): FastAPI solves one level of dependencies for a command, not two;
    a route whose role check takes the caller (``require_right``) still gets the caller."""
    case_id = api.report(DISPUTE, who="wang")["id"]
    solved: list[object] = []
    solve = fastapi_routing.solve_dependencies

    async def counted(*args: Any, **kwargs: Any) -> Any:
        solved.append(kwargs["dependant"].call)
        return await solve(*args, **kwargs)

    monkeypatch.setattr(fastapi_routing, "solve_dependencies", counted)
    monkeypatch.setattr(fastapi_utils, "solve_dependencies", counted)
    assert api.post(f"/v1/cases/{case_id}/comment", {"text": "一"}, "wang").status_code == 200
    assert len(solved) == 1
    solved.clear()
    assert api.get("/v1/events?limit=1", "feed").status_code == 200
    assert solved.count(current_user) == 1  # under require_right: solved by FastAPI, once


def takes_caller(principal: CurrentUser) -> str:
    return principal.name


def endpoint(name: Annotated[str, Depends(takes_caller)]) -> str:
    return name


def wrapped(name: Annotated[str, Depends(with_caller(takes_caller))]) -> str:
    return name


def test_an_app_whose_route_would_skip_the_token_lookup_is_not_built() -> None:
    """A route that takes the caller must look its token up before the endpoint runs: one
    not built by ``CallerRoute``, or a plain ``def`` dependency taking the caller that is
    not ``with_caller``, is found (``create_app`` refuses such an app)."""

    plain, checked = APIRouter(), APIRouter(route_class=CallerRoute)
    for router in (plain, checked):
        router.get("/x")(endpoint)
        router.get("/y", dependencies=[Depends(require_right("read"))])(lambda: "y")
        router.get("/z")(lambda principal: "z")  # noqa: ARG005 - no caller: nothing to check
    found = {
        (router is checked, route.path): unchecked_callers(route.dependant, route)
        for router in (plain, checked)
        for route in router.routes
    }
    assert found[(False, "/x")] == ["route /x", "takes_caller"]
    assert found[(True, "/x")] == ["takes_caller"]
    assert found[(False, "/y")] == ["route /y"]
    assert found[(True, "/y")] == [] and found[(True, "/z")] == [] and found[(False, "/z")] == []
    fixed = APIRouter(route_class=CallerRoute)
    fixed.get("/v")(wrapped)
    assert unchecked_callers(fixed.routes[-1].dependant, fixed.routes[-1]) == []


def test_a_read_of_a_cached_case_opens_no_transaction(
    api: Api, store: StoreConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token's query (with the case's version) is one statement on an autocommit
    connection on both stores: no BEGIN and ROLLBACK around it on SQLite either."""
    case_id = api.report(DISPUTE, who="wang")["id"]
    assert api.get(f"/v1/cases/{case_id}", "wang").status_code == 200
    if not store.is_postgres:
        from eventsourcing.sqlite import SQLiteTransaction

        opened: list[object] = []
        enter = SQLiteTransaction.__enter__
        monkeypatch.setattr(
            SQLiteTransaction, "__enter__", lambda self: opened.append(self) or enter(self)
        )
        assert api.get(f"/v1/cases/{case_id}", "wang").status_code == 200
        assert opened == []


def test_request_metrics_keep_counting_each_label_set(api: Api) -> None:
    """The request counter's series are looked up once per label set and kept: each
    request still counts, in its own series."""
    case_id = api.report(DISPUTE, who="wang")["id"]
    for _ in range(3):
        assert api.get(f"/v1/cases/{case_id}", "wang").status_code == 200
    assert api.get(f"/v1/cases/{uuid4()}", "wang").status_code == 404
    text = api.client.get("/metrics").text
    route = 'method="GET",route="/v1/cases/{case_id}"'
    assert f'fengqiao_http_requests_total{{{route},status="200"}} 3.0' in text
    assert f'fengqiao_http_requests_total{{{route},status="404"}} 1.0' in text
    assert f"fengqiao_http_request_duration_seconds_count{{{route}}} 4.0" in text


def test_a_parameters_annotation_is_not_taken_apart_on_each_request(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether a parameter's annotation is a sequence is asked once per annotation, not on
    every request (FastAPI walked each one's ``typing`` structure per request); the list's
    query still validates as before."""
    from fastapi._compat import shared

    assert api.get("/v1/cases?limit=5&status=reported&overdue=false", "wang").status_code == 200
    walks: list[object] = []
    origin = shared.get_origin
    monkeypatch.setattr(shared, "get_origin", lambda a: walks.append(a) or origin(a))
    assert api.get("/v1/cases?limit=5&status=reported&overdue=false", "wang").status_code == 200
    assert api.get("/v1/cases?limit=0", "wang").status_code == 422
    assert walks == []


def test_an_endpoint_gets_its_services_without_a_dependency_to_solve(api: Api) -> None:
    """An API endpoint's ``svc: Svc`` is given from the app by ``with_caller``, not solved by
    FastAPI as a dependency on every request (~4% of a case read); it still works."""
    from fastapi.routing import iter_route_contexts

    from api.http.services import services

    def solves_services(dependant: Any) -> bool:
        return any(d.call is services or solves_services(d) for d in dependant.dependencies)

    paths = {"/v1/cases/{case_id}", "/v1/cases", "/v1/sla/board", "/v1/cases/{case_id}/comment"}
    routes = [r for r in iter_route_contexts(api.http.routes) if r.path_format in paths]
    assert len(routes) == 5  # GET and POST /v1/cases
    assert not any(solves_services(route.dependant) for route in routes)
    case_id = api.report(DISPUTE, who="wang")["id"]
    assert api.get(f"/v1/cases/{case_id}", "wang").json()["id"] == case_id


def test_a_route_is_found_among_the_routes_that_may_match_its_last_segment(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each included router tries only the routes whose path may end as the request's does
    (``api.http.app._index_routes``): every route's path, with each method and one FastAPI
    does not take there, and paths no route has, find what FastAPI's own walk finds; a
    command on a case tries its own route and the case read's (whose last segment is the
    case id), not the 11 actions before it."""
    from fastapi import routing as fastapi_routing

    included = fastapi_routing._IncludedRouter
    routers = [r for r in api.http.router.routes if isinstance(r, included)]
    assert routers and all("_match" in vars(router) for router in routers)
    paths = {"/", "/v1", "/v1/cases/", "/v1/cases/x/y/z", "/v1/nothing", "/ui/", "/ui/nothing"}
    for router in routers:
        for candidate in router.effective_candidates():
            path = getattr(candidate, "path", None)
            if isinstance(path, str):
                paths.add(path.replace("{", "").replace("}", ""))
                paths.add(
                    path.replace("{case_id}", str(uuid4())).replace("{", "a").replace("}", "")
                )
    for path in sorted(paths):
        for method in ("GET", "POST", "PUT", "DELETE"):
            scope = {"type": "http", "method": method, "path": path, "root_path": ""}
            for router in routers:
                own = router._match(dict(scope))
                walked = included._match(router, dict(scope))
                assert own == walked, (path, method)
    tried: list[str] = []
    matches = fastapi_routing.APIRoute.matches
    monkeypatch.setattr(
        fastapi_routing.APIRoute,
        "matches",
        lambda self, scope: tried.append(self.path) or matches(self, scope),
    )
    case_id = api.report(DISPUTE, who="wang")["id"]
    tried.clear()
    assert api.post(f"/v1/cases/{case_id}/comment", {"text": "一"}, "wang").status_code == 200
    evidence = "/v1/cases/{case_id}/evidence/{sha256}"  # the router before the cases'
    assert tried == [evidence, *["/v1/cases/{case_id}", "/v1/cases/{case_id}/comment"] * 2]


def test_a_parameters_names_and_a_dependencys_cache_key_are_not_worked_out_on_each_request(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parameter's names in the request and a dependency's cache key depend only on the
    route: worked out once, not on every request; a command and a read still take their
    headers (an Idempotency-Key's repeat is answered as the first) and validate them."""
    from fastapi.dependencies import models, utils

    case_id = api.report(DISPUTE, who="wang")["id"]
    comment = f"/v1/cases/{case_id}/comment"
    first = api.post(comment, {"text": "一"}, "wang", headers={"Idempotency-Key": "k-1"})
    assert api.get(f"/v1/cases/{case_id}", "wang").status_code == 200
    worked: list[str] = []
    alias, scope = utils.get_validation_alias, models._get_computed_scope
    monkeypatch.setattr(utils, "get_validation_alias", lambda f: worked.append("alias") or alias(f))
    monkeypatch.setattr(
        models, "_get_computed_scope", lambda **kw: worked.append("scope") or scope(**kw)
    )
    again = api.post(comment, {"text": "一"}, "wang", headers={"Idempotency-Key": "k-1"})
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["version"] == first.json()["version"]
    assert api.get(f"/v1/cases/{case_id}", "wang").status_code == 200
    long_key = api.post(comment, {"text": "一"}, "wang", headers={"Idempotency-Key": "k" * 129})
    assert long_key.status_code == 422
    assert worked == []


def test_a_routes_parameters_are_read_by_a_plan_made_once(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether each path, query and header parameter is a model, its name in the request and
    where its error is located are worked out once per route, not on every request (here a
    command's path and headers); they are still read and validated as before."""
    from fastapi.dependencies import utils

    case_id = api.report(DISPUTE, who="wang")["id"]
    comment = f"/v1/cases/{case_id}/comment"
    version = api.post(comment, {"text": "一"}, "wang").json()["version"]
    asked: list[str] = []
    for name in ("_get_param_model", "_get_param_aliases", "_get_multidict_value"):
        ask = getattr(utils, name)
        monkeypatch.setattr(
            utils, name, lambda *a, _name=name, _ask=ask, **k: asked.append(_name) or _ask(*a, **k)
        )
    matched = {"Idempotency-Key": "plan-1", "If-Match": f'"{version}"'}
    assert api.post(comment, {"text": "二"}, "wang", headers=matched).status_code == 200
    stale = api.post(comment, {"text": "三"}, "wang", headers={"If-Match": f'"{version}"'})
    assert stale.status_code == 412
    for headers, field in (
        ({"Idempotency-Key": "k" * 129}, "Idempotency-Key"),
        ({"Idempotency-Key": "a b"}, "Idempotency-Key"),
        ({"If-Match": "x" * 41}, "If-Match"),
    ):
        refused = api.post(comment, {"text": "四"}, "wang", headers=headers)
        assert refused.status_code == 422 and refused.json()["field"] == field, refused.text
        assert refused.json()["errors"][0]["in"] == "header"
    not_a_case = api.post("/v1/cases/not-a-uuid/comment", {"text": "五"}, "wang")
    assert not_a_case.status_code == 422 and not_a_case.json()["field"] == "case_id"
    assert asked == []


def test_a_fastapi_without_what_the_shortcuts_use_is_left_as_it_is(
    app: Fengqiao, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FastAPI lacking one of the internals the parameter plan or the route index calls is
    not patched (it reads parameters and finds routes its own way), never a 500 later."""
    from api.http.app import MATCH_NEEDS, PLAN_NEEDS, _remember_fixed_answers, create_app

    def own_reader(fields: Any, received: Any) -> Any:
        return {}, []

    for missing in PLAN_NEEDS:
        with monkeypatch.context() as patch:
            patch.setattr(fastapi_utils, "request_params_to_args", own_reader)
            patch.delattr(fastapi_utils, missing)
            _remember_fixed_answers()
            assert fastapi_utils.request_params_to_args is own_reader, missing
    with monkeypatch.context() as patch:  # the control: with every one, it is patched
        patch.setattr(fastapi_utils, "request_params_to_args", own_reader)
        _remember_fixed_answers()
        assert fastapi_utils.request_params_to_args is not own_reader
    included = fastapi_routing._IncludedRouter
    for missing in MATCH_NEEDS:
        with monkeypatch.context() as patch:
            patch.delattr(fastapi_routing, missing)
            http = create_app(app)
            routers = [r for r in http.router.routes if isinstance(r, included)]
            assert routers and not any("_match" in vars(router) for router in routers), missing
