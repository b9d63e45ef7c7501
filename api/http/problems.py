"""RFC 9457 problem details: every refusal is ``application/problem+json``.

The ``type`` URIs are a public contract (add, never rename). Every
:class:`~domain.errors.DomainError` code maps to one; request validation
(pydantic, bad query or path values, a JSON value out of range) is ``/problems/validation``;
a body the JSON parser cannot read (not UTF-8, too deep, over Python's integer digits)
is ``/problems/malformed-body`` (400).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from html import escape
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.http.schemas import ProblemTypePage
from domain.errors import DomainError, NotFound

log = structlog.get_logger("fengqiao.http")

PROBLEM_JSON = "application/problem+json"
RESERVED = frozenset({"type", "title", "status", "detail", "instance"})
"""Problem members a detail may not overwrite: ``status`` of a case becomes ``case_status``."""


@dataclass(frozen=True)
class ProblemType:
    type: str
    status: int
    title: str


VALIDATION = ProblemType("/problems/validation", 422, "The request is not valid")
MALFORMED = ProblemType("/problems/malformed-body", 400, "The body could not be parsed")
INVALID_TRANSITION = ProblemType(
    "/problems/invalid-transition", 409, "The case is not in a state for this action"
)
ESCALATION_CEILING = ProblemType(
    "/problems/escalation-ceiling", 422, "Above the ceiling of the case's severity"
)
VERSION_CONFLICT = ProblemType(
    "/problems/version-conflict", 412, "The case is not at the expected version"
)
FORBIDDEN = ProblemType("/problems/forbidden", 403, "Not permitted")
NOT_FOUND = ProblemType("/problems/not-found", 404, "Not found")
UNAUTHENTICATED = ProblemType("/problems/unauthenticated", 401, "Authentication required")
METHOD_NOT_ALLOWED = ProblemType("/problems/method-not-allowed", 405, "Method not allowed")
PAYLOAD_TOO_LARGE = ProblemType("/problems/payload-too-large", 413, "The request body is too large")
UNSUPPORTED_MEDIA_TYPE = ProblemType(
    "/problems/unsupported-media-type", 415, "The body's media type is not one this operation takes"
)
NOT_READY = ProblemType("/problems/not-ready", 503, "Not ready")
TOO_MANY_FAILURES = ProblemType("/problems/too-many-failures", 429, "Too many failed attempts")
INTERNAL = ProblemType("/problems/internal", 500, "Internal error")
KEY_IN_USE = ProblemType(
    "/problems/idempotency-key-in-use", 409, "The Idempotency-Key is in use; send another"
)

BY_CODE: dict[str, ProblemType] = {
    "validation": VALIDATION,
    "invalid_transition": INVALID_TRANSITION,
    "escalation_ceiling": ESCALATION_CEILING,
    "version_conflict": VERSION_CONFLICT,
    "forbidden": FORBIDDEN,
    "not_found": NOT_FOUND,
    "unauthenticated": UNAUTHENTICATED,
    "not_ready": NOT_READY,
    "too_many_failures": TOO_MANY_FAILURES,
    "idempotency_key_in_use": KEY_IN_USE,
    "payload_too_large": PAYLOAD_TOO_LARGE,
    "unsupported_media_type": UNSUPPORTED_MEDIA_TYPE,
    "evidence_altered": INTERNAL,  # stored bytes that no longer match their hash: not served
}

ALL_TYPES = (
    VALIDATION,
    INVALID_TRANSITION,
    ESCALATION_CEILING,
    VERSION_CONFLICT,
    FORBIDDEN,
    NOT_FOUND,
    UNAUTHENTICATED,
    METHOD_NOT_ALLOWED,
    PAYLOAD_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    NOT_READY,
    INTERNAL,
    TOO_MANY_FAILURES,
    KEY_IN_USE,
    MALFORMED,
)


DESCRIPTIONS: dict[ProblemType, str] = {
    VALIDATION: "A field, query or path value, header or the body itself does not fit what the operation "
    "takes. `field` names the first one; `errors` lists each as {field, in, message, type}.",
    INVALID_TRANSITION: "The action is not one the case's status allows (accept a case not yet assigned, close "
    "one not resolved …). `action` and `case_status` say which.",
    ESCALATION_CEILING: "The case would be handled above the ceiling of its severity at its region "
    "(小事不出村、大事不出乡): reclassify it first, by the ceiling's rank.",
    VERSION_CONFLICT: "If-Match named a version the case is no longer at: read it again (`actual`), then retry.",
    FORBIDDEN: "The caller's role may not do this action, or not on this case.",
    NOT_FOUND: "No such resource, or one outside the caller's region (the same answer on purpose).",
    UNAUTHENTICATED: "No bearer token, or one unknown or revoked: send `Authorization: Bearer <token>`.",
    METHOD_NOT_ALLOWED: "The path exists but does not take this HTTP method.",
    PAYLOAD_TOO_LARGE: "The body is larger than the server takes (FENGQIAO_MAX_BODY_BYTES; an evidence "
    "file, FENGQIAO_EVIDENCE_MAX_BYTES).",
    UNSUPPORTED_MEDIA_TYPE: "The body's Content-Type is not one the operation takes (application/json); "
    "for evidence, the file's content is not a JPEG, PNG, WebP or PDF (`detected`, `allowed`).",
    NOT_READY: "The database or the projections cannot serve now; retry after Retry-After, with the same "
    "Idempotency-Key (a recorded command is not repeated).",
    TOO_MANY_FAILURES: "Too many failed sign-ins from this client; wait Retry-After seconds.",
    INTERNAL: "An unexpected error; it has been logged with the request's id.",
}


def problem(
    kind: ProblemType,
    detail: str,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response of the given type."""
    body = {"type": kind.type, "title": kind.title, "status": kind.status, "detail": detail}
    if instance is not None:
        body["instance"] = instance
    for key, value in extra.items():
        body[f"case_{key}" if key in RESERVED else key] = value
    return JSONResponse(
        jsonable_encoder(body), status_code=kind.status, media_type=PROBLEM_JSON, headers=headers
    )


def for_domain_error(error: DomainError, instance: str | None = None) -> JSONResponse:
    kind = BY_CODE.get(error.code, VALIDATION)
    headers = {"WWW-Authenticate": "Bearer"} if kind is UNAUTHENTICATED else None
    if kind is TOO_MANY_FAILURES:
        headers = {"Retry-After": str(error.details.get("retry_after", 60))}
    return problem(
        kind, error.message, instance=instance, headers=headers, code=error.code, **error.details
    )


def _field_of(loc: tuple | list) -> str:
    """``("body", "parties", 0, "phone")`` → ``parties.0.phone``; a whole-body error → ``body``."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        source, parts = parts[0], parts[1:]
        if not parts:
            return source
    return ".".join(parts) or "body"


def validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic's errors as ``{field, message, type}``."""
    out = []
    for e in errors:
        loc = e.get("loc", ())
        if e.get("type") == "json_invalid":
            field = "body"
        else:
            field = _field_of(loc)
        out.append(
            {
                "field": field,
                "in": str(loc[0]) if loc else "body",
                "message": e.get("msg", ""),
                "type": e.get("type", ""),
            }
        )
    return out


async def _on_domain_error(request: Request, error: DomainError) -> JSONResponse:
    return for_domain_error(error, request.url.path)


async def _on_request_validation(request: Request, error: RequestValidationError) -> JSONResponse:
    errors = validation_errors(list(error.errors()))
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    return problem(
        VALIDATION,
        f"{first['field']}: {first['message']}",
        instance=request.url.path,
        code="validation",
        field=first["field"],
        errors=errors,
    )


async def _on_http_exception(request: Request, error: StarletteHTTPException) -> JSONResponse:
    kind = next((k for k in ALL_TYPES if k.status == error.status_code), None)
    if kind is None:
        kind = ProblemType(
            f"/problems/http-{error.status_code}", error.status_code, str(error.detail)
        )
    detail = str(error.detail) if error.detail else kind.title
    if kind is NOT_FOUND and error.detail == "Not Found":
        detail = f"no resource at {request.url.path}"
    return problem(kind, detail, instance=request.url.path, headers=getattr(error, "headers", None))


def database_errors() -> tuple[type[Exception], ...]:
    """Errors that mean the database cannot serve now (down, restarting, stopped, read-only,
    disk full). A command is one transaction, so it was recorded whole or not at all; a retry
    with the same Idempotency-Key is safe either way."""
    import sqlite3

    from eventsourcing.persistence import InterfaceError, InternalError, OperationalError

    found: list[type[Exception]] = [
        OperationalError,
        InterfaceError,
        InternalError,
        sqlite3.OperationalError,
    ]
    try:
        import psycopg
        from psycopg import errors as pg_errors
    except ImportError:  # pragma: no cover - SQLite-only install
        return tuple(found)
    return (
        *found,
        psycopg.OperationalError,
        psycopg.InterfaceError,
        pg_errors.ReadOnlySqlTransaction,
    )


async def _on_database_error(request: Request, error: Exception) -> JSONResponse:
    log.warning(
        "database unavailable", path=request.url.path, error=f"{type(error).__name__}: {error}"
    )
    svc = getattr(request.app.state, "services", None)
    if svc is not None:
        svc.database_error_at = time.monotonic()  # /readyz turns false for a while
    return problem(
        NOT_READY,
        "the database is unavailable (down, restarting, read-only or full); "
        "retry with the same Idempotency-Key (a recorded command is not repeated)",
        instance=request.url.path,
        headers={"Retry-After": "1"},
        code="database_unavailable",
    )


async def _on_unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error", path=request.url.path)
    return problem(
        INTERNAL, "an unexpected error occurred; it has been logged", instance=request.url.path
    )


def install(app: FastAPI) -> None:
    """Register the handlers that turn every refusal into problem+json."""
    # Starlette types every handler as taking Exception, though it calls each with its own class
    app.add_exception_handler(DomainError, _on_domain_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _on_request_validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)  # type: ignore[arg-type]
    for error_class in database_errors():
        app.add_exception_handler(error_class, _on_database_error)
    app.add_exception_handler(Exception, _on_unexpected)


PROBLEM_EXAMPLES: dict[str, dict[str, Any]] = {
    "validation": {
        "type": VALIDATION.type,
        "title": VALIDATION.title,
        "status": 422,
        "detail": "severity: Input should be 'minor', 'major' or 'critical'",
        "code": "validation",
        "field": "severity",
        "errors": [
            {
                "field": "severity",
                "in": "body",
                "type": "enum",
                "message": "Input should be 'minor', 'major' or 'critical'",
            }
        ],
    },
    "invalid-transition": {
        "type": INVALID_TRANSITION.type,
        "title": INVALID_TRANSITION.title,
        "status": 409,
        "detail": "cannot accept a case that is reported",
        "code": "invalid_transition",
        "action": "accept",
        "case_status": "reported",
    },
    "escalation-ceiling": {
        "type": ESCALATION_CEILING.type,
        "title": ESCALATION_CEILING.title,
        "status": 422,
        "detail": "a minor case may not be handled above village unless it is first "
        "reclassified by the ceiling rank",
        "code": "escalation_ceiling",
        "action": "escalate",
        "severity": "minor",
        "ceiling": "village",
        "requested": "township",
    },
    "version-conflict": {
        "type": VERSION_CONFLICT.type,
        "title": VERSION_CONFLICT.title,
        "status": 412,
        "detail": "the case is at version 4, not 3",
        "code": "version_conflict",
        "expected": 3,
        "actual": 4,
    },
    "forbidden": {
        "type": FORBIDDEN.type,
        "title": FORBIDDEN.title,
        "status": 403,
        "detail": "a reporter may not assign",
        "code": "forbidden",
        "action": "assign",
    },
    "not-found": {
        "type": NOT_FOUND.type,
        "title": NOT_FOUND.title,
        "status": 404,
        "detail": "no case 3f1c…",
        "code": "not_found",
        "resource": "case",
    },
    "unauthenticated": {
        "type": UNAUTHENTICATED.type,
        "title": UNAUTHENTICATED.title,
        "status": 401,
        "detail": "send Authorization: Bearer <token>",
        "code": "unauthenticated",
    },
}


router = APIRouter(tags=["problems"])
BY_NAME = {kind.type.removeprefix("/problems/"): kind for kind in ALL_TYPES}


@router.get(
    "/problems/{name}",
    summary="What a problem type means (its `type` URI dereferenced)",
    response_model=ProblemTypePage,
    responses={
        200: {"content": {"text/html": {"schema": {"type": "string"}}}},
        404: {
            "description": "No such problem type",
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        },
    },
)
def describe_problem(name: str, request: Request) -> Response:
    """JSON (``ProblemTypePage``), or a short HTML page for a browser (``Accept: text/html``)."""
    kind = BY_NAME.get(name)
    if kind is None:
        raise NotFound(f"no problem type {name!r}", resource="problem type")
    page = ProblemTypePage(
        type=kind.type, title=kind.title, status=kind.status, description=DESCRIPTIONS[kind]
    )
    if _prefers_html(request.headers.get("accept", "")):
        return HTMLResponse(
            f'<!doctype html><html lang="en"><meta charset="utf-8"><title>{escape(page.title)}'
            f"</title><h1>{escape(page.title)}</h1><p>HTTP {page.status}, "
            f"<code>{escape(page.type)}</code></p><p>{escape(page.description)}</p></html>"
        )
    return JSONResponse(page.model_dump())


def _prefers_html(accept: str) -> bool:
    """``text/html`` named before any JSON type in ``Accept``."""
    kinds = [part.split(";")[0].strip() for part in accept.split(",")]
    html = kinds.index("text/html") if "text/html" in kinds else None
    json_at = [i for i, k in enumerate(kinds) if k.endswith("json")]
    return html is not None and (not json_at or html < min(json_at))
