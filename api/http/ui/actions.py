"""Supervisors act where they look: the dashboard's forms, through the API's one command path.

* ``POST /ui/cases/{id}/act/{action}`` — 派单, 督办, 重新定性, 结案, 重办 and the approvals
  (批准/不批准 延期, 挂起) from the case page or the approvals queue.
* ``POST /ui/board/supervise`` — 督办 several overdue cases at once: one command each,
  and a page reporting each outcome.
* ``GET /ui/approvals`` — 待审批: the requests awaiting approval in the region.

Every action goes through :func:`api.http.cases.perform_action` (the right, the region
scope, ``Fengqiao.act``) like the API's. Each form carries an idempotency key made when
the page was rendered (a double click records once) and the case version the page
showed, sent as the expected version: a page gone stale is refused with the events
since, in words. A refusal is a page in words, never a stack trace; the session's
Origin check (:data:`~api.http.ui.session.SameOrigin`) guards every POST.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from api.http.auth import Principal, Unauthenticated
from api.http.cases import perform_action
from api.http.readmodels import read_models
from api.http.services import Services, services
from api.http.ui import data
from api.http.ui.render import page
from api.http.ui.session import PageRoute, SameOrigin, SignedIn
from domain.commands import ACTIONS, parse_action
from domain.errors import DomainError, NotFound, ValidationFailed, VersionConflict
from domain.permissions import case_in_scope
from engine.views import event_view

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=PageRoute)
Svc = Annotated[Services, Depends(services)]

UI_ACTIONS = frozenset(
    {
        "assign",
        "supervise",
        "reclassify",
        "close",
        "reopen",
        "approve-extension",
        "refuse-extension",
        "approve-suspension",
        "refuse-suspension",
    }
)
"""The case actions the dashboard offers (the rest stay with the API and the workbench)."""

KEY = re.compile(r"^[\x21-\x7e]{1,100}$")  # as the API's Idempotency-Key, room for a suffix
BULK_LIMIT = 200  # cases one 督办 form may name


async def form_fields(request: Request) -> dict[str, list[str]]:
    """The url-encoded form body, every value of every field."""
    return parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)


def _one(fields: dict[str, list[str]], name: str) -> str:
    return fields.get(name, [""])[-1].strip()


def form_key(fields: dict[str, list[str]]) -> str:
    key = _one(fields, "key")
    if not KEY.match(key):
        raise ValidationFailed(
            "这张表单缺少编号，请重新载入页面 the form has no key: reload the page", field="key"
        )
    return key


def form_version(value: str) -> int:
    """The case version the page showed (the form's expected version)."""
    if not value.isdigit() or not 1 <= int(value) <= 2**31:
        raise ValidationFailed(
            "这张表单缺少版本，请重新载入页面 the form has no version: reload the page",
            field="version",
        )
    return int(value)


def action_body(name: str, fields: dict[str, list[str]]) -> dict[str, Any]:
    """The action's body from the form: the model's own fields as filled in; for 派单, the
    picker's ``to`` (``unit:<id>`` or ``person:<name>``)."""
    body = {f: _one(fields, f) for f in ACTIONS[name].model_fields if _one(fields, f) not in ("",)}
    if name == "assign":
        kind, _, target = _one(fields, "to").partition(":")
        if kind not in ("unit", "person") or not target:
            raise ValidationFailed("请选择承办单位或人员 choose a unit or a person", field="to")
        body = {"unit": target} if kind == "unit" else {"assignee": target}
    return body


def back_to(fields: dict[str, list[str]], fallback: str) -> str:
    """Where the form came from (a dashboard path only, as after sign-in)."""
    target = _one(fields, "back")
    ok = target.startswith("/ui/") and not target.startswith("/ui//") and "\\" not in target
    return target if ok else fallback


def changes_since(svc: Services, case_id: UUID, version: int) -> list[dict[str, Any]]:
    """What happened to the case after ``version``: its later events as timeline rows."""
    return [
        data.timeline_entry(event_view(r.position, r.event), version)
        for r in svc.engine.history(case_id)
        if r.event.originator_version > version
    ]


def refused(
    request: Request,
    svc: Services,
    error: DomainError,
    case_id: UUID,
    shown: int | None,
    back: str,
    name: str = "",
    written: tuple[str, ...] = (),
) -> Response:
    """The refusal as a page in words; a stale page also lists what changed since."""
    if isinstance(error, NotFound | Unauthenticated):
        raise error  # the same 404 page as a case that does not exist; the sign-in form
    since = (
        changes_since(svc, case_id, shown)
        if isinstance(error, VersionConflict) and shown is not None
        else []
    )
    words = data.refusal_words(error)
    return page(
        request,
        "refused.html",
        status_code=words["status"],
        words=words,
        since=since,
        shown=shown,
        back=back,
        case_id=case_id,
        attempted=data.ACTION_NAMES.get(name),
        written=[t for t in written if t],  # what was typed is shown back, never lost
    )


def with_query(path: str, **params: Any) -> str:
    base, _, fragment = path.partition("#")
    joiner = "&" if "?" in base else "?"
    return f"{base}{joiner}{urlencode(params)}" + (f"#{fragment}" if fragment else "")


@router.post("/cases/{case_id}/act/{name}", dependencies=[SameOrigin])
async def act(
    request: Request, principal: SignedIn, svc: Svc, case_id: UUID, name: str
) -> Response:
    """One action from a form: recorded once per key, at the version the page showed."""
    if name not in UI_ACTIONS:
        raise NotFound(f"no dashboard action {name!r}", resource="action", id=name)
    fields = await form_fields(request)
    back = back_to(fields, f"/ui/cases/{case_id}")
    shown = None
    try:
        key = form_key(fields)
        shown = form_version(_one(fields, "version"))
        body = parse_action(name, action_body(name, fields))
        result = perform_action(svc, principal, name, case_id, body, key, shown)
    except DomainError as error:
        written = tuple(_one(fields, f) for f in ("note", "reason"))
        return refused(request, svc, error, case_id, shown, back, name, written)
    done = {"done": name, "case": str(case_id), "v": result.version}
    if result.repeated:
        done["repeated"] = 1
    return RedirectResponse(with_query(back, **done), status_code=303)


def supervise_one(
    svc: Services, principal: Principal, key: str, note: str, case_id: UUID, shown: int
) -> dict[str, Any]:
    """督办 one case of a bulk form: its outcome in words, never an exception."""
    try:
        body = parse_action("supervise", {"note": note})
        result = perform_action(
            svc, principal, "supervise", case_id, body, f"{key}:{case_id}", shown
        )
    except DomainError as error:
        if isinstance(error, Unauthenticated):
            raise
        return {"case_id": case_id, "ok": False, "words": data.refusal_words(error)}
    return {"case_id": case_id, "ok": True, "version": result.version, "repeated": result.repeated}


def visible_title(svc: Services, principal: Principal, case_id: UUID) -> str | None:
    """The case's title for the outcome page, if the caller's region covers the case (a
    case outside it is named by its id only, like one that does not exist)."""
    row = read_models(svc).get_case(case_id)
    if row is None or not case_in_scope((row["region"], row["origin_region"]), principal.region):
        return None
    return row["title"]


def _picked(values: list[str]) -> list[tuple[UUID, int]]:
    """The cases ticked on the board: ``<case id>:<version shown>`` each."""
    picked: dict[UUID, int] = {}
    for value in values:
        case, _, version = value.partition(":")
        try:
            picked.setdefault(UUID(case), form_version(version))
        except ValueError:
            raise ValidationFailed(
                f"not a case of the board: {value[:80]!r}", field="case"
            ) from None
    return list(picked.items())


@router.post("/board/supervise", dependencies=[SameOrigin])
async def supervise_many(request: Request, principal: SignedIn, svc: Svc) -> Response:
    """督办 the cases ticked on the SLA board, each its own command; a page of outcomes."""
    fields = await form_fields(request)
    key = form_key(fields)
    note = _one(fields, "note")
    picked = _picked(fields.get("case", []))
    if not picked:
        raise ValidationFailed("请勾选案件 tick at least one case", field="case")
    if len(picked) > BULK_LIMIT:
        raise ValidationFailed(f"at most {BULK_LIMIT} cases at once", field="case")
    parse_action("supervise", {"note": note})  # an empty note refuses the form, not each case
    outcomes = [supervise_one(svc, principal, key, note, c, v) for c, v in picked]
    titles = {str(o["case_id"]): visible_title(svc, principal, o["case_id"]) for o in outcomes}
    return page(
        request,
        "outcomes.html",
        outcomes=outcomes,
        titles=titles,
        note=note,
        back=back_to(fields, "/ui/board"),
        recorded=sum(1 for o in outcomes if o["ok"]),
    )
