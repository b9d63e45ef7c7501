"""The HTTP API v1: ``create_app`` builds the FastAPI app over the application service."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from api.http import problems
from api.http.docs_page import install_docs
from api.http.evidence import UPLOAD_PATHS
from api.http.metrics import Metrics
from api.http.middleware import BodyLimit, Deadline, RequestContext
from api.http.openapi_docs import PROBLEM_REF
from api.http.routers import routers
from api.http.schemas import Problem
from api.http.services import Services, Settings
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
    return ReadModels(runner.db), runner


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
    return app


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
        app.openapi_schema = schema
    return app.openapi_schema


VALIDATION_REF = "#/components/schemas/HTTPValidationError"


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
