"""GeoReport v2's wire forms: XML or JSON by the path's extension, and the spec's errors.

Every Open311 route ends ``.{fmt}``: ``xml`` (the spec's required, default format:
``text/xml``, UTF-8 with its declaration) or ``json``. An answer is a list (or, for
discovery and a service definition, one object); in XML the list is a root element
(``services``, ``service_requests``) of items (``service``, ``request``), nested lists
likewise (``attributes``/``attribute``, ``values``/``value``, ``endpoints``/``endpoint``,
``formats``/``format``), a null an empty element and a boolean ``true``/``false``.

Errors on these routes are the spec's, never problem+json: ``[{"code": 403,
"description": "…"}]`` or ``<errors><error><code>403</code><description>…</description>
</error></errors>``, ``code`` being the HTTP status. Statuses as the spec lists them:
400 a missing or invalid parameter (a ``service_code`` or region that does not exist in a
POST or a filter, a point outside every region), 403 ``api_key`` missing, invalid or
without the right, 404 an unknown service definition, request id or ``jurisdiction_id``.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.http.refusing_route import RefusingRoute
from domain.errors import DomainError, NotFound

XML = "text/xml; charset=utf-8"
FORMATS = ("xml", "json")
ITEMS = {
    "services": "service",
    "service_requests": "request",
    "errors": "error",
    "endpoints": "endpoint",
    "formats": "format",
    "attributes": "attribute",
    "values": "value",
}
NOT_FOUND_RESOURCES = ("service_request", "jurisdiction", "open311_format")
ERROR_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["code", "description"],
        "properties": {"code": {"type": "integer"}, "description": {"type": "string"}},
    },
}


def _xml(name: str, value: Any) -> str:
    if isinstance(value, dict):
        inner = "".join(_xml(key, item) for key, item in value.items())
    elif isinstance(value, (list, tuple)):
        inner = "".join(_xml(ITEMS.get(name, "item"), item) for item in value)
    elif value is None:
        return f"<{name}/>"
    elif isinstance(value, bool):
        inner = "true" if value else "false"
    else:
        inner = escape(str(value))
    return f"<{name}>{inner}</{name}>"


def to_xml(root: str, value: Any) -> str:
    """``value`` as the spec's XML document under ``root``."""
    return '<?xml version="1.0" encoding="utf-8"?>' + _xml(root, jsonable_encoder(value))


def answer(
    fmt: str, root: str, value: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """The answer in the asked format (``root``: the XML root element)."""
    if fmt == "json":
        return JSONResponse(jsonable_encoder(value), status_code=status_code, headers=headers)
    return Response(to_xml(root, value), status_code=status_code, media_type=XML, headers=headers)


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise NotFound(f"no format {fmt!r}: use .xml or .json", resource="open311_format", id=fmt)
    return fmt


def status_of(request: Request, error: Exception) -> tuple[int, str]:
    """The spec's status and description for a refusal on an Open311 route."""
    if isinstance(error, RequestValidationError):
        first = (list(error.errors()) or [{}])[0]
        loc = [str(p) for p in first.get("loc", ())]
        field = (
            ".".join(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
            or "request"
        )
        return 400, f"{field}: {first.get('msg', 'invalid')}"
    if isinstance(error, StarletteHTTPException):
        return error.status_code, str(error.detail)
    assert isinstance(error, DomainError)
    if error.code == "unauthenticated":
        return 403, f"api_key was not provided or is invalid ({error.message})"
    if error.code == "too_many_failures":
        return 429, error.message
    if error.code == "forbidden":
        return 403, error.message
    if isinstance(error, NotFound):
        resource = error.details.get("resource")
        definition = resource == "service" and "code" in request.path_params
        return (404 if resource in NOT_FOUND_RESOURCES or definition else 400), error.message
    return 400, error.message


def spec_error(request: Request, error: Exception) -> Response:
    status, description = status_of(request, error)
    headers = (
        {"Retry-After": str(error.details.get("retry_after", 60))}
        if status == 429 and isinstance(error, DomainError)
        else None
    )
    return open311_error(request.url.path, status, description, headers)


def open311_error(
    path: str, status: int, description: str, headers: dict[str, str] | None = None
) -> Response:
    """The spec's error answer, in the format of the path's extension (XML by default)."""
    fmt = path.rpartition(".")[2]
    return answer(
        fmt if fmt in FORMATS else "xml",
        "errors",
        [{"code": status, "description": description}],
        status,
        headers,
    )


class Open311Route(RefusingRoute):
    """A route whose refusals (its dependencies' too) are the spec's errors."""

    refused = (DomainError, RequestValidationError, StarletteHTTPException)

    @staticmethod
    def refusal(request: Request, error: Exception) -> Response:
        return spec_error(request, error)


def responses(
    model: dict[str, Any] | None = None, *statuses: int
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI: the answer in both formats, and the spec's errors in both."""
    xml_doc = {"schema": {"type": "string", "description": "the same document as XML"}}
    documented: dict[int | str, dict[str, Any]] = {
        200: {"content": {"application/json": {"schema": model or {}}, "text/xml": xml_doc}}
    }
    for status in statuses:
        documented[status] = {
            "description": "a GeoReport v2 error",
            "content": {"application/json": {"schema": ERROR_SCHEMA}, "text/xml": xml_doc},
        }
    return documented
