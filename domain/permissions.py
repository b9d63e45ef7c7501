"""Who may do what: the one table of roles and their rights, and region scoping.

Pure rules, used by the HTTP API, the CLI and the dashboard alike.

* **Rights by role.** ``RIGHTS[role]`` is the set of things a role may do: the API
  name of each case action (``assign``, ``send-back`` …) plus a few named rights
  (``report``, ``read``, ``read_history``, ``read_board``, ``read_feed``).
* **Handlers work their own cases.** A handler's work actions apply only to cases
  assigned to their unit or to them (``check-in`` also to a department that is
  their unit). Supervisors and admins may do handler actions on any case in scope.
* **Region scoping.** A user sees and acts only on cases whose *current* region or
  *origin* region lies in the subtree of the user's own region: the village that
  reported a case keeps following it after it is escalated to the township, and
  the township sees what was escalated to it. Anything else answers exactly as a
  case that does not exist.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from domain.actors import Actor, Role
from domain.errors import NotFound, NotPermitted
from domain.ladder import RegionTree

# -- named rights besides the case actions -----------------------------------------

REPORT = "report"  # 上报 a new case
READ = "read"  # case views and lists
READ_HISTORY = "read_history"  # every event of a case; the case at a version or a moment
READ_BOARD = "read_board"  # SLA boards and region statistics
READ_FEED = "read_feed"  # the event feed and subscriptions (integrators)
MANAGE = "manage"  # users, the ladder, the policy

# -- the case actions, grouped by who does them -------------------------------------

HANDLER_ACTIONS = frozenset({
    "accept", "send-back", "mediate", "refuse-mediation", "sign-agreement", "seal-agreement",
    "court-confirmation", "order-rectification", "rectify",
    "reinspect", "reply", "return-visit", "escalate", "whistle", "check-in", "resolve",
    "request-extension", "request-suspension",
})
"""Work on a case (签收, 调解, 整改, 反馈, 上报, asking for 延期 or 挂起 …): a handler's,
on cases of their unit."""

SUPERVISOR_ACTIONS = frozenset({
    "assign", "reclassify", "suspend", "resume", "extend", "supervise", "reopen", "close",
    "approve-extension", "refuse-extension", "approve-suspension", "refuse-suspension",
})
"""派单, 重新定性, granting, approving or refusing 挂起 and 延期, 督办, 重办, 结案."""

ANYONE_WRITING = frozenset({"comment"})
"""Actions open to every role that may write at all."""

TIMER_ACTIONS = frozenset({"warn-clock", "breach-clock"})
"""Recorded by the timer service only, never through the API."""

PUBLIC_ACTIONS = HANDLER_ACTIONS | SUPERVISOR_ACTIONS | ANYONE_WRITING
"""Every case action a person may ask for."""

RIGHTS: dict[str, frozenset[str]] = {
    Role.REPORTER: frozenset({REPORT, READ}) | ANYONE_WRITING,
    Role.HANDLER: frozenset({REPORT, READ}) | ANYONE_WRITING | HANDLER_ACTIONS,
    Role.SUPERVISOR: frozenset({REPORT, READ, READ_HISTORY, READ_BOARD}) | PUBLIC_ACTIONS,
    Role.AUDITOR: frozenset({READ, READ_HISTORY, READ_BOARD}),
    Role.INTEGRATOR: frozenset({READ, READ_HISTORY, READ_FEED}),
    Role.ADMIN: frozenset({REPORT, READ, READ_HISTORY, READ_BOARD, READ_FEED, MANAGE}) | PUBLIC_ACTIONS,
    Role.SYSTEM: TIMER_ACTIONS | frozenset({READ}),
}

PERSON_ROLES = tuple(r.value for r in Role if r != Role.SYSTEM)
"""The roles a user account may have."""

MASKED_ROLES = frozenset({Role.INTEGRATOR})
"""Roles that see personal fields (names, phones, ID numbers of parties) masked."""


def may(role: str, right: str) -> bool:
    """Does ``role`` carry ``right`` (a named right or a case action's API name)?"""
    return right in RIGHTS.get(role, frozenset())


def needs_assignment(role: str, action: str) -> bool:
    """Must the case be assigned to the actor (or their unit) for this action?"""
    return role == Role.HANDLER and action in HANDLER_ACTIONS


def works_on(*, name: str, unit: str | None, case_assignee: str | None, case_unit: str | None,
             action: str = "", body: dict[str, Any] | None = None) -> bool:
    """Is the case this handler's to work: assigned to them or to their unit? A
    summoned department checks in under its own name (吹哨报到)."""
    if case_assignee is not None and case_assignee == name:
        return True
    if unit is not None and case_unit == unit:
        return True
    return action == "check-in" and unit is not None and (body or {}).get("department") == unit


def region_in_scope(code: str, root: str) -> bool:
    """Is region ``code`` inside the subtree of the user's region ``root``?"""
    return RegionTree.is_within(code, root)


def case_in_scope(regions: Iterable[str | None], root: str) -> bool:
    """A case is in scope when its current or its origin region is in the subtree."""
    return any(code is not None and region_in_scope(code, root) for code in regions)


C = TypeVar("C")


def require_right(actor: Actor, right: str) -> None:
    """403 unless the actor's role carries ``right``."""
    if not may(actor.role, right):
        raise NotPermitted(f"a {actor.role} may not {right}", action=right, role=actor.role)


def authorize_report(actor: Actor, region: str) -> None:
    """May the actor report a case in ``region``: the right, and the region in their subtree
    (outside it answers as a region that does not exist)."""
    require_right(actor, REPORT)
    if actor.region is not None and not region_in_scope(region, actor.region):
        raise NotFound(f"no region {region!r}", resource="region", id=region)


def authorize_action(actor: Actor, action: str, load_case: Callable[[], C], body: dict[str, Any] | None) -> C:
    """The one check of a person's case action, for the HTTP API and the CLI alike: the
    role's right (403), the case in the actor's region (404, as a case that does not
    exist), and for a handler's work the case assigned to them or their unit (403).
    Returns the case ``load_case`` gave. An actor without a region (the local
    administrator of the CLI) is not region-scoped."""
    require_right(actor, action)
    case: Any = load_case()
    if actor.region is not None and not case_in_scope((case.region, case.origin_region), actor.region):
        raise NotFound(f"no case {case.id}", resource="case", id=str(case.id))
    if needs_assignment(actor.role, action) and not works_on(
        name=actor.id, unit=actor.unit, case_assignee=case.assignee, case_unit=case.unit,
        action=action, body=body,
    ):
        raise NotPermitted(f"the case is not assigned to {actor.id} or their unit", action=action, role=actor.role)
    return case


PERSONAL_FIELDS = ("name", "phone", "id_number")
FREE_TEXT_FIELDS = ("title", "description", "text", "reason", "note", "summary", "resolution", "measures")
"""The fields of case events that hold free text, where a number may have been typed."""


def mask_text(value: str) -> str:
    """``张三`` → ``张*``; ``13812345678`` → ``138****5678``; ID → first 6, last 4."""
    value = str(value)
    if len(value) >= 15:
        return value[:6] + "*" * (len(value) - 10) + value[-4:]
    if len(value) >= 11:
        return value[:3] + "*" * (len(value) - 7) + value[-4:]
    return value[:1] + "*" * max(len(value) - 1, 1)


NUMBER_IN_TEXT = re.compile(r"(?<![\dA-Za-zＡ-Ｚａ-ｚ])(?:\d{17}[\dXxＸｘ]|[1１][3-9３-９]\d{9})(?![\dA-Za-zＡ-Ｚａ-ｚ])")
"""A resident ID number or a mainland mobile number written into free text, in ASCII or
full-width digits (１３８…, as a Chinese input method types them)."""


def replace_numbers(text: str, replace: Callable[[str], str]) -> str:
    """``text`` with each personal number found in it replaced by ``replace(number)``:
    the one place the number forms are looked for (masking, and sealing at write time)."""
    return NUMBER_IN_TEXT.sub(lambda m: replace(m.group(0)), text)


def mask_numbers(value: Any) -> Any:
    """Every string inside ``value`` with ID and mobile numbers masked as :func:`mask_text`
    does (for integrators: titles, descriptions and comments are free text)."""
    if isinstance(value, str):
        return replace_numbers(value, mask_text)
    if isinstance(value, dict):
        return {k: mask_numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(mask_numbers(v) for v in value)
    return value


def mask_parties(parties: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Parties with their personal fields masked (for integrators)."""
    return [
        {k: (mask_text(v) if k in PERSONAL_FIELDS and v else v) for k, v in party.items()}
        for party in parties
    ]
