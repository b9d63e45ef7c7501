"""Auditors over HTTP: verify the log or a case, sign and fetch checkpoints, the case file.

* ``GET /v1/audit/verify[?case=ID]`` — 200 with the verification when it passes,
  409 with the same body (``ok: false`` and the first finding) when it does not. Scoped
  like the cases: a case outside the caller's region is 404, like a missing one; a finding
  of the whole log that names such a case keeps only its problem and position.
* ``POST /v1/audit/checkpoints`` — sign the head now; ``GET /v1/audit/checkpoints/latest``
  — the latest checkpoint as the file an auditor keeps (same JSON as
  ``fengqiao audit checkpoint --export``).
* ``GET /v1/audit/proofs/inclusion?position=P&tree_size=N`` — the RFC 9162 inclusion
  proof of the event at global position P in the tree of the first N entries (default:
  the latest signed tree head); the event's case must be in the caller's region.
* ``GET /v1/audit/proofs/consistency?from=M&to=N`` — the consistency proof between the
  trees of M and N entries (default ``to``: the latest signed tree head).
* ``GET /v1/cases/{id}/file`` — the printable case file (HTML), personal fields
  masked for masked roles.
* ``GET /v1/cases/{id}/file.pdf`` — the same as a PDF to archive (CJK font embedded, page
  numbers, the signed tree head and each event's leaf hash).
* ``GET /v1/cases/{id}/bundle`` — the case bundle an outside auditor checks offline
  (``fengqiao audit verify-bundle``, or the script in docs/auditors.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any, TypeVar
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, Response

from api.http.auth import CallerRoute, CurrentUser, Principal, require, require_role, visible_case
from api.http.openapi_docs import problem_responses
from api.http.schemas import (
    AuditVerification,
    CaseBundle,
    ConsistencyProof,
    InclusionProof,
    SignedCheckpoint,
)
from api.http.services import Services, services
from domain.errors import NotFound
from domain.permissions import READ_HISTORY
from engine.audit import checkpoints, proofs
from engine.audit.bundle import case_bundle
from engine.audit.verify import Finding, verify_case, verify_log
from engine.casefile import case_file, case_file_pdf, render_case_file
from engine.feed import MAX_POSITION

F = TypeVar("F", bound=Callable[..., Any])
router = APIRouter(tags=["auditors"], route_class=CallerRoute)

Svc = Annotated[Services, Depends(services)]
Auditor = Annotated[Principal, Depends(require_role("auditor", "admin"))]
Admin = Annotated[Principal, Depends(require_role("admin"))]


@router.get(
    "/v1/audit/verify",
    summary="Re-read the events and recompute the hash chain",
    response_model=AuditVerification,
    responses={
        409: {
            "description": "verification failed: the body names the first difference",
            "model": AuditVerification,
        },
        **problem_responses(403, 404),
    },
)
def audit_verify(
    principal: Auditor,
    svc: Svc,
    case: Annotated[UUID | None, Query(description="verify this case alone")] = None,
) -> JSONResponse:
    if case is not None:
        visible_case(svc, principal, case)  # out of region: 404, exactly like a missing case
        result = verify_case(svc.engine, case)
    else:
        result = verify_log(svc.engine, trusted_keys=checkpoints.trusted_key_ids(svc.engine))
        result = replace(result, finding=scoped_finding(svc, principal, result.finding))
    return JSONResponse(jsonable_encoder(result.as_dict()), status_code=200 if result.ok else 409)


def scoped_finding(svc: Services, principal: Principal, finding: Finding | None) -> Finding | None:
    """A finding of the whole log, as the caller may see it: one naming a case outside
    their region (or one that no longer reads back) keeps its problem and position only."""
    if finding is None:
        return None
    named = [str(finding.details[k]) for k in ("case", "recorded_case") if k in finding.details]
    if all(_sees(svc, principal, case_id) for case_id in named):
        return finding
    return Finding(
        finding.problem,
        finding.position,
        f"the event at position {finding.position} failed verification ({finding.problem}); "
        "its case is outside your region: ask an auditor of the county",
        finding.after,
    )


def _sees(svc: Services, principal: Principal, case_id: str) -> bool:
    if any(root.code == principal.region for root in svc.engine.ladder().tree.roots()):
        return True
    try:
        visible_case(svc, principal, UUID(case_id))
    except Exception:  # noqa: BLE001 - out of region, missing, or no longer readable: not shown
        return False
    return True


def _found(checkpoint: checkpoints.Checkpoint | None, missing: str) -> dict[str, Any]:
    """The checkpoint as JSON, or 404 saying why there is none."""
    if checkpoint is None:
        raise NotFound(missing, resource="checkpoint")
    return checkpoint.as_dict()


@router.post(
    "/v1/audit/checkpoints",
    summary="Sign the chain head now (Ed25519)",
    status_code=201,
    response_model=SignedCheckpoint,
    responses=problem_responses(403, 404),
)
def audit_checkpoint(principal: Admin, svc: Svc) -> JSONResponse:
    signed = _found(checkpoints.checkpoint(svc.engine), "the log is empty: nothing to sign")
    return JSONResponse(signed, status_code=201)


@router.get(
    "/v1/audit/checkpoints/latest",
    summary="The latest signed checkpoint, to keep outside the database",
    response_model=SignedCheckpoint,
    responses=problem_responses(403, 404),
)
def audit_latest_checkpoint(principal: Auditor, svc: Svc) -> JSONResponse:
    latest = checkpoints.latest_checkpoint(svc.engine)
    return JSONResponse(_found(latest, "no checkpoint has been signed yet"))


@router.get(
    "/v1/cases/{case_id}/file",
    summary="The printable case file (案件卷宗, HTML)",
    response_class=HTMLResponse,
    responses=problem_responses(403, 404),
)
def case_file_page(principal: CurrentUser, svc: Svc, case_id: UUID) -> HTMLResponse:
    require(principal, READ_HISTORY)
    visible_case(svc, principal, case_id)
    data = case_file(svc.engine, case_id, role=principal.role)
    return HTMLResponse(render_case_file(data))


def proof_route(path: str, summary: str, model: type) -> Callable[[F], F]:
    """An RFC 9162 proof for auditors (422: a size out of range)."""
    responses = problem_responses(403, 404, 422)
    return router.get(path, summary=summary, response_model=model, responses=responses)


def size(alias: str | None, what: str) -> Any:
    """A tree size (≥ 1) as a query parameter; ``None``: the latest signed head's."""
    return Query(
        alias=alias, ge=1, le=MAX_POSITION, description=f"{what} (default: the latest signed head)"
    )


@proof_route(
    "/v1/audit/proofs/inclusion",
    "RFC 9162 inclusion proof of one event in the log's Merkle tree",
    InclusionProof,
)
def inclusion_proof(
    principal: Auditor,
    svc: Svc,
    position: Annotated[
        int, Query(ge=1, le=MAX_POSITION, description="the event's global position")
    ],
    tree_size: Annotated[int | None, size(None, "the tree's size")] = None,
) -> JSONResponse:
    case_id = proofs.case_at(svc.engine, position)
    visible_case(svc, principal, case_id)  # out of region: 404, exactly like a missing event
    return JSONResponse(proofs.inclusion(svc.engine, position, tree_size))


@proof_route(
    "/v1/audit/proofs/consistency",
    "RFC 9162 consistency proof between two sizes of the log's Merkle tree",
    ConsistencyProof,
)
def consistency_proof(
    principal: Auditor,
    svc: Svc,
    first: Annotated[
        int, Query(alias="from", ge=1, le=MAX_POSITION, description="the older tree's size")
    ],
    second: Annotated[int | None, size("to", "the newer size")] = None,
) -> JSONResponse:
    return JSONResponse(proofs.consistency(svc.engine, first, second))


@router.get(
    "/v1/cases/{case_id}/bundle",
    summary="The case bundle: its events, their inclusion proofs, the signed tree head, the key",
    response_class=Response,
    responses={
        200: {"model": CaseBundle, "description": "the bundle (canonical JSON)"},
        **problem_responses(403, 404),
    },
)
def case_bundle_file(principal: Auditor, svc: Svc, case_id: UUID) -> Response:
    visible_case(svc, principal, case_id)
    return Response(
        case_bundle(svc.engine, case_id),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="case-{case_id}.bundle.json"'},
    )


@router.get(
    "/v1/cases/{case_id}/file.pdf",
    summary="The case file (案件卷宗) as PDF, with leaf hashes and the signed tree head",
    response_class=Response,
    responses={
        200: {
            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
            "description": "the PDF",
        },
        **problem_responses(403, 404),
    },
)
def case_file_pdf_page(principal: CurrentUser, svc: Svc, case_id: UUID) -> Response:
    require(principal, READ_HISTORY)
    visible_case(svc, principal, case_id)
    pdf, _ = case_file_pdf(svc.engine, case_id, role=principal.role)
    return Response(pdf, media_type="application/pdf")
