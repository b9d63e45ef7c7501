"""The HTTP API v1: ``create_app`` builds the FastAPI app over the application service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi import routing as fastapi_routing
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from starlette._utils import get_route_path

from api.http import open311, problems
from api.http.auth import current_user, unchecked_callers
from api.http.docs_page import install_docs
from api.http.evidence import UPLOAD_PATHS
from api.http.metrics import Metrics
from api.http.middleware import BodyLimit, Deadline, RequestContext
from api.http.open311_format import responses as open311_responses
from api.http.openapi_docs import PROBLEM_REF, problem_responses
from api.http.routers import routers
from api.http.schemas import Problem
from api.http.services import Services, Settings
from api.http.threads import request_threads
from engine.logs import configure_logging
from engine.service import Fengqiao
from engine.users import UserStore

DESCRIPTION = """\
Fengqiao 枫桥: report and work grassroots cases (矛盾纠纷 disputes, 安全隐患 hazards, 诉求 petitions)
up the ladder grid → village → township → county, never above the severity's ceiling
(小事不出村、大事不出乡、矛盾不上交).

* **Auth**: `Authorization: Bearer <token>` (tokens from `fengqiao users add`).
* **Scope**: a caller sees and acts only on cases whose current or origin region lies in their
  region's subtree; any other case answers 404 exactly like a missing one.
* **Commands** take `Idempotency-Key` (a repeat returns the first response) and `If-Match: "<version>"`
  (412 when stale); every response carries `version` and `position`.
* **Errors** are RFC 9457 `application/problem+json` with stable `type` URIs under `/problems/`.

See docs/api.md for a walk through every action with curl.
"""


def default_projections(engine: Fengqiao) -> tuple[Any | None, Any | None]:
    """The read models and a projection runner (for ``wait_for`` and ``lag``) on the
    engine's database. This runner only reads positions; workers do the projecting."""
    from projections import default_projections as projections_list
    from projections.queries import ReadModels
    from projections.runner import ProjectionRunner

    runner = ProjectionRunner(engine, projections_list())
    runner.ensure()  # the read models' tables exist before the first query
    models = ReadModels(runner.db)
    engine.earlier_cases = models.earlier_cases  # 重复件: a report reads its parties' earlier cases
    return models, runner


def create_app(
    engine: Fengqiao | None = None,
    *,
    users: UserStore | None = None,
    read_models: Any | None = None,
    runner: Any | None = None,
    settings: Settings | None = None,
) -> FastAPI:
    """The API over ``engine`` (default: the configured store). ``settings`` (default: read
    from the environment, here) hold the HTTP limits; an engine made here gets them too."""
    settings = settings or Settings.from_environment()
    configure_logging(settings=settings)
    engine = engine or Fengqiao(settings=settings)
    if read_models is None and runner is None:
        read_models, runner = default_projections(engine)
    svc = Services(
        engine=engine,
        users=users or UserStore(engine),
        metrics=Metrics(engine, lambda: svc.projection_lag(), lambda: svc.projection_failures()),
        settings=settings,
        read_models=read_models,
        runner=runner,
    )
    app = FastAPI(
        title="Fengqiao API",
        version="1.0.0",
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        openapi_tags=[
            {"name": "cases", "description": "Report, act on and read cases"},
            {"name": "regions", "description": "The ladder, statistics"},
            {"name": "sla", "description": "SLA boards"},
            {"name": "ops", "description": "Health, readiness, metrics"},
            {"name": "problems", "description": "What each problem type URI means"},
        ],
        generate_unique_id_function=operation_id,
        # FastAPI's native OpenTelemetry asks the global providers whether anyone listens on
        # every request (~2% of a list's server CPU, issue 20); Fengqiao exports none
        # (its metrics: /metrics, api/http/metrics.py)
        telemetry={"tracing": False, "metrics": False, "logs": False},
        lifespan=request_threads(settings.request_threads),
    )
    app.state.services = svc
    problems.install(app)
    for router in routers():
        app.include_router(router)
    install_docs(app)  # local assets, no CDN
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        files=UPLOAD_PATHS,  # evidence: a file, up to its own limit
        file_bytes=settings.evidence_max_bytes,
    )
    app.add_middleware(Deadline, seconds=settings.request_deadline_seconds)
    app.add_middleware(RequestContext, metrics=svc.metrics)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    _keep_routes_versions(app)
    _index_routes(app)
    _refuse_unchecked_callers(app)
    _remember_fixed_answers()
    return app


REMEMBERED: dict[str, Callable[[tuple[Any, ...], dict[str, Any]], tuple[Any, ...] | None]] = {
    "field_annotation_is_sequence": lambda args, named: None if named else args,
    "_get_param_model": lambda args, named: None if named else args,
    "_is_json_field": lambda args, named: None if named else args,
    "_get_param_aliases": lambda args, named: (
        (*args, named.get("convert_underscores", False))
        if len(args) == 1 and set(named) <= {"convert_underscores"}
        else None
    ),
    "_get_cache_key": lambda args, named: (
        (named["dependant"],)
        if not args and set(named) in ({"dependant"}, {"dependant", "uses_scopes_cache"})
        else None
    ),
}
"""What FastAPI's request path asks again on every request whose answer depends only on
a route's fixed parts, and how a call names the part it asks about (None: a call this
FastAPI makes otherwise, answered by FastAPI itself)."""


def _remember_fixed_answers() -> None:
    """FastAPI (0.165) asks on every request what only depends on the routes, fixed once
    they are built: whether each query, header and path parameter's annotation is a
    sequence, whether it is a model or JSON, its names in the request (walks through
    ``typing``'s ``get_origin``, ``get_args`` and ``issubclass``: a third of a case list's
    event-loop time, issue 20), and each dependency's cache key (its OAuth scopes, sorted,
    twice per command). Each answer is kept, keyed by the part asked about (kept with it,
    so its ``id`` is never another's) and the call's flags (:data:`REMEMBERED`)."""
    from fastapi.dependencies import utils

    for name, key_of in REMEMBERED.items():
        ask = getattr(utils, name, None)
        if callable(ask) and not getattr(ask, "remembers", False):
            setattr(utils, name, _remembering(ask, key_of))
    read = getattr(utils, "request_params_to_args", None)
    if (
        callable(read)
        and not getattr(read, "remembers", False)
        and all(callable(getattr(utils, name, None)) for name in PLAN_NEEDS)
        and hasattr(utils, "Undefined")
    ):
        utils.request_params_to_args = _planned_params(read, utils)


PLAN_NEEDS = (
    "_get_param_model",
    "_get_param_aliases",
    "_is_json_field",
    "field_annotation_is_sequence",
    "_validate_value_with_model_field",
)
"""FastAPI's own functions that :func:`_planned_params` reads parameters with: a FastAPI
without any of them reads its parameters itself (unpatched), never a 500."""


def _planned_params(read: Callable[..., Any], utils: Any) -> Callable[..., Any]:
    """FastAPI's ``request_params_to_args`` (path, query, header and cookie parameters), with
    what it works out per parameter on every request — whether it is a model, its names in
    the request, whether it is a sequence or JSON, where an error is located — worked out
    once per list of parameters (a route's, fixed once built). A list with a parameter that
    is a model, a sequence, JSON or has more than one name in the request, and a form's
    values, are read by FastAPI itself. Each parameter is then read as FastAPI reads such a
    one: its one name's value (absent: ``Undefined``), validated by FastAPI (a third of a
    command's parameter reading was working these out again, issue 20)."""
    from fastapi import params as fastapi_params
    from starlette.datastructures import FormData

    Plan = tuple[tuple[Any, str, str, tuple[str, str]], ...] | None
    plans: dict[int, tuple[Any, int, Plan]] = {}

    def plan_of(fields: Any) -> Plan:
        plan = []
        for field in fields:
            info = field.field_info
            if utils._get_param_model(field) is not None or not isinstance(
                info, fastapi_params.Param
            ):
                return None
            aliases = utils._get_param_aliases(field)
            if (
                len(aliases) != 1
                or utils._is_json_field(field)
                or utils.field_annotation_is_sequence(info.annotation)
            ):
                return None
            alias = aliases[0][1]
            plan.append((field, field.name, alias, (info.in_.value, alias)))
        return tuple(plan)

    def request_params_to_args(fields: Any, received_params: Any) -> Any:
        if not fields:
            return {}, []
        kept = plans.get(id(fields))
        if kept is None or kept[0] is not fields or kept[1] != len(fields):
            kept = plans[id(fields)] = (fields, len(fields), plan_of(fields))
        plan = kept[2]
        if plan is None or isinstance(received_params, FormData):
            return read(fields, received_params)
        values: dict[str, Any] = {}
        errors: list[Any] = []
        for field, name, alias, loc in plan:
            value = received_params.get(alias, None)
            found, field_errors = utils._validate_value_with_model_field(
                field=field,
                value=utils.Undefined if value is None else value,
                values=values,
                loc=loc,
            )
            if field_errors:
                errors.extend(field_errors)
            else:
                values[name] = found
        return values, errors

    request_params_to_args.remembers = True  # type: ignore[attr-defined]
    return request_params_to_args


def _remembering(
    ask: Callable[..., Any],
    key_of: Callable[[tuple[Any, ...], dict[str, Any]], tuple[Any, ...] | None],
) -> Callable[..., Any]:
    known: dict[tuple[Any, ...], tuple[object, Any]] = {}
    alone: dict[int, tuple[object, Any]] = {}  # the call with one argument and no keyword

    def remembered(*args: Any, **named: Any) -> Any:
        if len(args) == 1 and not named:  # most calls: asked without building a key
            kept = alone.get(id(args[0]))
            if kept is not None and kept[0] is args[0]:
                return kept[1]
            if key_of(args, named) is not None:
                kept = alone[id(args[0])] = (args[0], ask(*args))
                return kept[1]
        key = key_of(args, named)
        if key is None:
            return ask(*args, **named)
        subject, slot = key[0], (id(key[0]), *key[1:])
        kept = known.get(slot)
        if kept is None or kept[0] is not subject:
            kept = known[slot] = (subject, ask(*args, **named))
        return kept[1]

    remembered.remembers = True  # type: ignore[attr-defined]
    return remembered


def _refuse_unchecked_callers(app: FastAPI) -> None:
    """Every route that authenticates by token looks the token up before its endpoint
    runs (``api.http.auth.CallerRoute``, ``with_caller``): an app where one would not is
    not built (tests/e2e/test_request_overhead.py)."""
    unchecked = [
        f"{route.path_format}: {', '.join(found)}"
        for route in iter_route_contexts(app.routes)
        if isinstance(route.original_route, APIRoute)
        and (found := unchecked_callers(route.dependant, route.original_route))
    ]
    if unchecked:
        raise RuntimeError(f"routes that would not look up their caller's token: {unchecked}")


def _keep_routes_versions(app: FastAPI) -> None:
    """FastAPI (0.165) finds a request's route in an included router only after summing
    that router's "routes version", a walk over all its routes, to see whether its cached
    route list is stale: for every router tried, and again for the one that matches (8% of
    a command's server CPU, issue 20). The routers are complete once the app is built and
    never change while it serves: each one's version is read once, here, and kept."""
    for route in app.router.routes:
        router = getattr(route, "original_router", None)
        if router is not None and callable(getattr(router, "_get_routes_version", None)):
            version = router._get_routes_version()
            router._get_routes_version = lambda seen=None, version=version: version


def _index_routes(app: FastAPI) -> None:
    """FastAPI (0.165) finds a request's route in an included router by trying each of its
    routes in order, twice (once to pick the router, once to pick the route): a command on
    a case, 12th of the cases router's 38 routes, was tried against 29 routes at ~5 us
    each, a quarter of its server CPU outside the engine (issue 20). A route whose path
    ends in a fixed segment (``/v1/cases/{case_id}/comment``) matches only a request whose
    path ends in that segment: each included router keeps, per last segment, the routes
    that may match it (in their order: those ending in it, and every one that does not end
    in a fixed segment), and tries only those, as FastAPI would (``_match_among``)."""
    included = getattr(fastapi_routing, "_IncludedRouter", None)
    if (
        included is None
        or not callable(getattr(included, "_match", None))
        or not all(hasattr(fastapi_routing, name) for name in MATCH_NEEDS)
    ):
        return  # another FastAPI: it finds its routes its own way
    for route in app.router.routes:
        if isinstance(route, included):
            _index_router(route, included)


MATCH_NEEDS = (
    "_get_fastapi_scope",
    "_FASTAPI_EFFECTIVE_ROUTE_CONTEXT_KEY",
    "_SCOPE_MISSING",
    "_restore_fastapi_scope_key",
)
"""What :func:`_match_among` reads of FastAPI's routing module besides ``_IncludedRouter``."""


def _fixed_last_segment(candidate: Any) -> str | None:
    """The last segment of a route's path, if fixed (no parameter in it); None for any other
    candidate (an included router, a mount, a route of Starlette's), which is always tried."""
    route = getattr(candidate, "original_route", None)
    if not isinstance(route, APIRoute):
        return None
    path = getattr(candidate, "path", None)
    if not isinstance(path, str) or not path.startswith("/"):
        return None
    last = path.rsplit("/", 1)[1]
    return None if "{" in last or "}" in last else last


def _index_router(router: Any, included: type) -> None:
    candidates = router.effective_candidates()
    for candidate in candidates:
        if isinstance(candidate, included):
            _index_router(candidate, included)
    lasts = [_fixed_last_segment(candidate) for candidate in candidates]
    anywhere = [c for c, last in zip(candidates, lasts, strict=True) if last is None]
    by_last = {
        fixed: [c for c, last in zip(candidates, lasts, strict=True) if last in (fixed, None)]
        for fixed in set(lasts) - {None}
    }

    def indexed(scope: Any) -> Any:
        path = get_route_path(scope)
        return _match_among(router, scope, by_last.get(path[path.rfind("/") + 1 :], anywhere))

    router._match = indexed


def _match_among(router: Any, scope: Any, candidates: list[Any]) -> Any:
    """FastAPI 0.165's ``_IncludedRouter._match`` over ``candidates`` instead of all the
    router's routes (tests/e2e/test_request_overhead.py: every route found as before)."""
    r = fastapi_routing
    partial = None
    route: Any
    for candidate in candidates:
        if isinstance(candidate, r._IncludedRouter):
            match, child_scope = candidate.matches(scope)
            route = candidate
            route_context = None
        elif isinstance(candidate.original_route, APIRoute):
            route_context = candidate
            fastapi_scope = r._get_fastapi_scope(scope)
            key = r._FASTAPI_EFFECTIVE_ROUTE_CONTEXT_KEY
            previous_context = fastapi_scope.get(key, r._SCOPE_MISSING)
            fastapi_scope[key] = route_context
            try:
                match, child_scope = candidate.original_route.matches(scope)
            finally:
                r._restore_fastapi_scope_key(scope, key, previous_context)
            route = candidate.original_route
        else:
            route_context = candidate
            match, child_scope = candidate.matches(scope)
            route = candidate.starlette_route or candidate.original_route
        if match == r.Match.FULL:
            return match, child_scope, route, route_context
        if match == r.Match.PARTIAL and partial is None:
            partial = (child_scope, route, route_context)
    if partial is not None:
        child_scope, route, route_context = partial
        return r.Match.PARTIAL, child_scope, route, route_context
    return r.Match.NONE, {}, None, None


def operation_id(route: APIRoute) -> str:
    """``<tag>.<name>``: ``cases.accept``, ``cases.report``, ``regions.stats`` (the route's
    name without the tag's own noun: ``case_accept`` in ``cases`` is ``accept``)."""
    tag = str(route.tags[0]) if route.tags else route.path_format.strip("/").split("/")[0] or "api"
    noun = tag.removesuffix("s")
    name = route.name
    for affix in (f"{noun}_", f"_{noun}", f"{tag}_", f"_{tag}"):
        trimmed = name.removeprefix(affix) if affix.endswith("_") else name.removesuffix(affix)
        if trimmed and trimmed != name:
            name = trimmed
            break
    return f"{tag}.{name}"


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = Problem.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        _problems_as_sent(schema)
        _answers_of_every_route(schema, app)
        app.openapi_schema = schema
    return app.openapi_schema


VALIDATION_REF = "#/components/schemas/HTTPValidationError"
AUTHENTICATING = (current_user, open311.caller)
"""Dependencies that check a token: a route using one may answer 429 (too many bad tokens)."""


def _authenticates(dependant: Any) -> bool:
    return any(d.call in AUTHENTICATING or _authenticates(d) for d in dependant.dependencies)


def _answers_of_every_route(schema: dict[str, Any], app: FastAPI) -> None:
    """The answers a route gets from around its handler, declared where they apply: 503
    (the request deadline, a database not answering) on every operation; 413 and 415 (the
    body limit) on every POST; 400 on a JSON body that does not parse; 401 and 429 where a
    token is checked. On Open311's routes they are the spec's errors (its 403 for a missing
    key, its 400 for FastAPI's 422), elsewhere problem+json."""
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        path = str(route.path_format)
        open311_route = path.startswith("/open311/")
        statuses = {503}
        if _authenticates(route.dependant):
            statuses |= {429} if open311_route else {401, 429}
        if route.body_field is not None:
            statuses.add(400)
        for method in route.methods or ():
            operation = schema["paths"][path][method.lower()]
            own = statuses | ({413, 415} if method == "POST" else set())
            if open311_route:
                declared = open311_responses(None, *sorted(own))
                operation["responses"].pop("422", None)  # the spec's 400 instead
            else:
                declared = problem_responses(*sorted(own))
            answers = operation.setdefault("responses", {})
            for status in own:
                known = answers.setdefault(str(status), declared[status])
                known.setdefault("content", {}).update(declared[status]["content"])


def _problems_as_sent(schema: dict[str, Any]) -> None:
    """FastAPI's own 422 (``application/json`` ``HTTPValidationError``) as what the server
    sends: ``application/problem+json`` :class:`~api.http.schemas.Problem` (see
    ``problems._on_request_validation``); its unused schemas go."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            answer = operation.get("responses", {}).get("422")
            content = (answer or {}).get("content", {})
            if content.get("application/json", {}).get("schema", {}).get("$ref") == VALIDATION_REF:
                answer["description"] = "The request is not valid"
                answer["content"] = {
                    problems.PROBLEM_JSON: {
                        "schema": PROBLEM_REF,
                        "examples": {
                            "validation": {"value": problems.PROBLEM_EXAMPLES["validation"]}
                        },
                    }
                }
    text = str(schema["paths"])
    for name in ("HTTPValidationError", "ValidationError"):
        if f"#/components/schemas/{name}'" not in text:
            schema["components"]["schemas"].pop(name, None)
