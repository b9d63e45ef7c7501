"""Evidence: ``POST /v1/evidence`` keeps a photo or document, ``GET
/v1/cases/{id}/evidence/{sha256}`` serves it to those who may read the case.

The body of an upload is the file itself (any ``Content-Type``: the type is judged
by the content, :mod:`engine.evidence`). The answer is its ``sha256``, which a report
or a comment then names in ``attachments``.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from api.http.auth import CallerRoute, CurrentUser, Principal, visible_case
from api.http.openapi_docs import problem_responses
from api.http.services import Services, services
from domain.errors import NotFound, NotPermitted
from domain.permissions import READ
from engine.evidence import attached_to

router = APIRouter(tags=["cases"], route_class=CallerRoute)
Svc = Annotated[Services, Depends(services)]
SHA256_PATH = Path(pattern=r"^[0-9a-f]{64}$", description="the file's SHA-256, lower-case hex")
UPLOAD_PATHS = ("/v1/evidence", "/ui/work/evidence")
"""Where a body is a file, not JSON (:class:`api.http.middleware.BodyLimit`)."""
BINARY = {
    t: {"schema": {"type": "string", "format": "binary"}}
    for t in ("image/jpeg", "image/png", "image/webp", "application/pdf")
}


class Evidence(BaseModel):
    """An evidence file as kept: name its ``sha256`` in a report's or comment's ``attachments``."""

    sha256: str
    media_type: str
    size: int


SERVED_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Content-Disposition": "inline",
}


def store_upload(svc: Services, principal: Principal, content: bytes) -> dict[str, Any]:
    """Keep an uploaded file for ``principal`` (who must be one who may comment)."""
    if not principal.may("comment"):
        raise NotPermitted(
            f"a {principal.role} may not upload evidence", action="evidence", role=principal.role
        )
    return dict(svc.engine.evidence.put(content, principal.name, svc.engine.clock.now()))


def served_file(svc: Services, principal: Principal, case_id: UUID, sha256: str) -> Response:
    """The file, if the caller may read the case and an event of the case names it; else 404."""
    if not principal.may(READ):
        raise NotPermitted(f"a {principal.role} may not read cases", role=principal.role)
    visible_case(svc, principal, case_id)
    if not attached_to(svc.engine, case_id, sha256):
        raise NotFound(f"no evidence {sha256} on case {case_id}", resource="evidence", id=sha256)
    media_type, content = svc.engine.evidence.read(sha256)
    return Response(content, media_type=media_type, headers=SERVED_HEADERS)


@router.post(
    "/v1/evidence",
    status_code=201,
    summary="Upload a photo or document (JPEG, PNG, WebP, PDF); answers its sha256",
    response_model=None,
    responses={
        201: {"model": Evidence, "description": "Kept: name the sha256 in `attachments`"},
        **problem_responses(401, 403, 413, 415),
    },
    openapi_extra={"requestBody": {"required": True, "content": BINARY}},
)
async def upload_evidence(request: Request, principal: CurrentUser, svc: Svc) -> JSONResponse:
    content = await request.body()
    stored = await run_in_threadpool(store_upload, svc, principal, content)
    return JSONResponse(stored, status_code=201)


@router.get(
    "/v1/cases/{case_id}/evidence/{sha256}",
    summary="An evidence file of the case (to those who may read the case)",
    response_class=Response,
    responses={
        200: {"description": "The file as uploaded", "content": BINARY},
        **problem_responses(401, 403, 404),
    },
)
def case_evidence(
    principal: CurrentUser,
    svc: Svc,
    case_id: UUID,
    sha256: Annotated[str, SHA256_PATH],
) -> Response:
    return served_file(svc, principal, case_id, sha256)
