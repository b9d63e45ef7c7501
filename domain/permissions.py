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
import unicodedata
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

HANDLER_ACTIONS = frozenset(
    {
        # every kind
        "accept",
        "send-back",
        "escalate",
        "whistle",
        "check-in",
        "resolve",
        "request-extension",
        "request-suspension",
        "link-duplicate",
        "unlink-duplicate",
        # disputes
        "mediate",
        "refuse-mediation",
        "sign-agreement",
        "seal-agreement",
        "court-confirmation",
        # petitions
        "reply",
        "return-visit",
        # hazards
        "order-rectification",
        "rectify",
        "reinspect",
    }
)
"""Work on a case (签收, 调解, 整改, 反馈, 上报, asking for 延期 or 挂起 …): a handler's,
on cases of their unit."""

SUPERVISOR_ACTIONS = frozenset(
    {
        "assign",
        "reclassify",
        "suspend",
        "resume",
        "extend",
        "supervise",
        "reopen",
        "close",
        "approve-extension",
        "refuse-extension",
        "approve-suspension",
        "refuse-suspension",
    }
)
"""派单, 重新定性, granting, approving or refusing 挂起 and 延期, 督办, 重办, 结案."""

ANYONE_WRITING = frozenset({"comment"})
"""Actions open to every role that may write at all."""

TIMER_ACTIONS = frozenset({"warn-clock", "breach-clock"})
"""Recorded by the timer service only, never through the API."""

ENGINE_ACTIONS = frozenset({"attach-duplicate", "detach-duplicate"})
"""Recorded by the engine itself on a 并案's primary (``CaseAction.follow_up``), never asked for."""

PUBLIC_ACTIONS = HANDLER_ACTIONS | SUPERVISOR_ACTIONS | ANYONE_WRITING
"""Every case action a person may ask for."""

RIGHTS: dict[str, frozenset[str]] = {
    Role.REPORTER: frozenset({REPORT, READ}) | ANYONE_WRITING,
    Role.HANDLER: frozenset({REPORT, READ}) | ANYONE_WRITING | HANDLER_ACTIONS,
    Role.SUPERVISOR: frozenset({REPORT, READ, READ_HISTORY, READ_BOARD}) | PUBLIC_ACTIONS,
    Role.AUDITOR: frozenset({READ, READ_HISTORY, READ_BOARD}),
    Role.INTEGRATOR: frozenset({READ, READ_HISTORY, READ_FEED}),
    Role.ADMIN: frozenset({REPORT, READ, READ_HISTORY, READ_BOARD, READ_FEED, MANAGE})
    | PUBLIC_ACTIONS,
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


def works_on(
    *,
    name: str,
    unit: str | None,
    case_assignee: str | None,
    case_unit: str | None,
    action: str = "",
    body: dict[str, Any] | None = None,
) -> bool:
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


def authorize_action(
    actor: Actor, action: str, load_case: Callable[[], C], body: dict[str, Any] | None
) -> C:
    """The one check of a person's case action, for the HTTP API and the CLI alike: the
    role's right (403), the case in the actor's region (404, as a case that does not
    exist), and for a handler's work the case assigned to them or their unit (403).
    Returns the case ``load_case`` gave. An actor without a region (the local
    administrator of the CLI) is not region-scoped."""
    require_right(actor, action)
    loaded = load_case()
    case: Any = loaded  # read for its region, origin_region, id, assignee and unit
    if actor.region is not None and not case_in_scope(
        (case.region, case.origin_region), actor.region
    ):
        raise NotFound(f"no case {case.id}", resource="case", id=str(case.id))
    if needs_assignment(actor.role, action) and not works_on(
        name=actor.id,
        unit=actor.unit,
        case_assignee=case.assignee,
        case_unit=case.unit,
        action=action,
        body=body,
    ):
        raise NotPermitted(
            f"the case is not assigned to {actor.id} or their unit", action=action, role=actor.role
        )
    return loaded


PERSONAL_FIELDS = ("name", "phone", "id_number")
FREE_TEXT_FIELDS = (
    "title",
    "description",
    "text",
    "reason",
    "note",
    "summary",
    "resolution",
    "measures",
)
"""The fields of case events that hold free text, where a number may have been typed."""


def mask_text(value: str) -> str:
    """``张三`` → ``张*``; ``13812345678`` → ``138****5678``; ID → first 6, last 4."""
    value = str(value)
    if len(value) >= 15:
        return value[:6] + "*" * (len(value) - 10) + value[-4:]
    if len(value) >= 11:
        return value[:3] + "*" * (len(value) - 7) + value[-4:]
    return value[:1] + "*" * max(len(value) - 1, 1)


SEPARATORS = (
    " \t\n\r\u00a0\u00ad\u1680\u2000-\u200f\u2010-\u2015\u2028-\u202f\u205f-\u2064\u2212\u3000"
    "\ufeff\ufe58\ufe63\uff0d\uff0e\uff0f\u30fb\u00b7\u3002\\-./_,\uff0c()\uff08\uff09"
)
"""What may split the digits of one number: spaces of every width, zero-width and other
invisible format characters, dashes and hyphens, dots, slashes, commas, brackets (ASCII
and full-width). At most three in a row."""

DIGIT_GROUP = re.compile(rf"\d(?:[{SEPARATORS}]{{0,3}}\d)*(?:[{SEPARATORS}]{{0,3}}[XxＸｘ])?")
"""Digits (any script: ASCII, full-width …) joined by separators, and an ID's final X.
Letters do not end a group's search: ``Tel13866667777`` and ``13899990000abc`` hold one."""

_CHUNK = re.compile(r"\d+|[XxＸｘ]")
MAX_NUMBER_DIGITS = 19  # the longest reading: 17 digits and X, one over for a stray X
MIN_NUMBER_DIGITS = 10  # the shortest: a landline with its area code (0 and nine digits)
_DIGIT = re.compile(r"\d")
PERSONAL_NUMBER = re.compile(r"(?:(?:00)?86)?1[3-9]\d{9}|\d{17}[\dX]|\d{15}|0\d{9,11}")
"""After the separators are removed and the digits read as ASCII: a mainland mobile number
(with or without the 86 / 0086 country code), an 18- or 15-digit resident ID number, or a
landline with its area code (0393-1234567)."""

UNMASKED_KEYS = frozenset(
    {
        "case_id",
        "person",
        "region",
        "to_region",
        "from_region",
        "origin_region",
        "address_id",
        "service_request_id",
    }
)
"""Keys whose values are ids the engine made or region codes checked against the ladder
(never typed text): a region code ``410928-001-007-003`` is left as it is."""

_OPAQUE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?::\d+)?"
    r"|p-[0-9a-f]{20}"
)
"""A case id (with ``:version``) or a person id: never masked."""


def _ascii(chunk: str) -> str:
    return "".join("X" if ch in "XxＸｘ" else str(unicodedata.digit(ch)) for ch in chunk)


def _personal(chunks: list[re.Match[str]], start: int, end: int) -> bool:
    digits = "".join(_ascii(c.group(0)) for c in chunks[start:end])
    if PERSONAL_NUMBER.fullmatch(digits):
        return True
    return digits.endswith("X") and PERSONAL_NUMBER.fullmatch(digits[:-1]) is not None


def _replace_chunks(text: str, replace: Callable[[str], str]) -> str:
    """One digit group with every personal number in it replaced by ``replace(span)``. The
    group's chunks (digit runs between separators) that take part in any reading as a
    personal number are replaced together: ``ID … / 138 2345 6789`` run together cannot hide one number in another, and
    ``2026-09-28 13812345678`` keeps the year."""
    chunks = list(_CHUNK.finditer(text))
    sizes = [len(c.group(0)) for c in chunks]
    marked = [False] * len(chunks)
    for i in range(len(chunks)):
        total = 0
        for j in range(i + 1, len(chunks) + 1):
            total += sizes[j - 1]
            if total > MAX_NUMBER_DIGITS:
                break
            if _personal(chunks, i, j):
                marked[i:j] = [True] * (j - i)
    out, done, i = [], 0, 0
    while i < len(chunks):
        if not marked[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(chunks) and marked[j + 1]:
            j += 1
        begin, finish = chunks[i].start(), chunks[j].end()
        out += [text[done:begin], replace(text[begin:finish])]
        done, i = finish, j + 1
    return "".join(out) + text[done:]


def _mask_span(span: str) -> str:
    """A number as :func:`mask_text` masks it, counting only its digits (and X): the
    separators stay where they were, each hidden digit becomes ``*``."""
    count = sum(1 for ch in span if ch.isdigit() or ch in "XxＸｘ")
    keep_head = 6 if count >= 15 else 3 if count >= 11 else 1
    keep_tail = 4 if count >= 11 else 0
    out, seen = [], 0
    for ch in span:
        if ch.isdigit() or ch in "XxＸｘ":
            out.append(ch if seen < keep_head or seen >= count - keep_tail else "*")
            seen += 1
        else:
            out.append(ch)
    return "".join(out)


def normalised_number(text: str) -> str | None:
    """A phone or ID number as typed (``+86 138-1234-5678``, full-width digits, a small
    x) in one form: its ASCII digits (and a final ``X``), a mobile number without its
    country code. None: ``text`` is not one personal number."""
    plain = "".join(
        "X" if ch in "XxＸｘ" else str(unicodedata.digit(ch))
        for ch in unicodedata.normalize("NFKC", str(text)).replace("+", "")
        if ch.isdigit() or ch in "XxＸｘ"
    )
    if len(plain) in (13, 15) and plain.startswith(("86", "0086")) and plain[-11] == "1":
        plain = plain[-11:]  # a mobile number with its country code
    if not plain or not _personal(list(_CHUNK.finditer(plain)), 0, 1 + plain.endswith("X")):
        return None
    stripped = str(text).strip()
    if any(not (ch.isdigit() or ch in "XxＸｘ+" or ch in SEPARATORS) for ch in stripped):
        return None  # words around it: free text, not a number
    return plain


def replace_numbers(text: str, replace: Callable[[str], str]) -> str:
    """``text`` with each personal number typed into it replaced by ``replace(span)``: the
    one place the number forms are looked for (masking for integrators, and sealing at
    write time in ``engine.privacy``). A text with fewer digits than the shortest
    personal number (a landline's ten) holds none: it is given back without a search."""
    if len(_DIGIT.findall(text)) < MIN_NUMBER_DIGITS:
        return text
    return DIGIT_GROUP.sub(lambda m: _replace_chunks(m.group(0), replace), text)


def mask_numbers(value: Any, key: str | None = None) -> Any:
    """Every string inside ``value`` with the personal numbers typed into it masked
    (for integrators: titles, descriptions, comments and reasons are free text). The one
    masking of free text: every output an integrator reads goes through it
    (:func:`shown_to`)."""
    if isinstance(value, str):
        if key in UNMASKED_KEYS or _OPAQUE.fullmatch(value):
            return value
        return replace_numbers(value, _mask_span)
    if isinstance(value, dict):
        return {k: mask_numbers(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(mask_numbers(v, key) for v in value)
    return value


def shown_to(role: str, value: Any) -> Any:
    """``value`` (JSON-ready) as ``role`` may read it: numbers in free text masked for
    the masked roles (integrators), as it is for everyone else."""
    return mask_numbers(value) if role in MASKED_ROLES else value


def mask_parties(parties: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Parties with their personal fields masked (for integrators)."""
    return [
        {k: (mask_text(v) if k in PERSONAL_FIELDS and v else v) for k, v in party.items()}
        for party in parties
    ]
