"""Idempotency keys, scoped to whoever sends them — one derivation for every path.

A client's ``Idempotency-Key`` (``/v1``, Open311) or ``--command-id`` (CLI) never
becomes a command id as sent: the command id is ``key:`` and the SHA-256 of the
pair ``[actor id, key]`` (JSON-encoded, so no text of either can imitate the
other's boundary). Two users sending the same key get two command ids, and no key
text can produce another user's id, a timer's (``timer:…``) or a route's
(``route:…``): those never start with ``key:`` followed by a digest of their own.

**Upgrade.** Before this derivation, ``/v1`` sent ``<user>:<key>`` and Open311 the
key as sent. So that a retry in flight across an upgrade stays idempotent,
:func:`earlier` also looks under those two legacy ids — and counts a hit only if
the command recorded there was sent by the same actor (a squatted legacy id is
someone else's case: it is neither returned nor revealed, the request is new).
Cases reported before keep their ids; only new commands use the new derivation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any
from uuid import UUID

from domain.cases import case_id_for
from domain.errors import NotFound
from engine.service import CommandResult

PREFIX = "key:"


def scoped_command_id(actor_id: str, key: str) -> str:
    """The command id of ``key`` sent by ``actor_id``: a digest of the pair."""
    pair = json.dumps([actor_id, key], ensure_ascii=False, separators=(",", ":"))
    return PREFIX + hashlib.sha256(pair.encode("utf-8")).hexdigest()


def legacy_command_ids(actor_id: str, key: str) -> tuple[str, ...]:
    """The ids a key became before :func:`scoped_command_id` (``/v1``, then Open311)."""
    return (f"{actor_id}:{key}", key)


def earlier(
    engine: Any, actor_id: str, key: str, case_id: UUID | None = None, case: Any = None
) -> CommandResult | None:
    """The result of this actor's command recorded under a legacy id of ``key``, if any:
    a report (``case_id`` None) or an action on ``case_id``. ``case``: that case as the
    caller just read it now (the API's scope check), else it is read here — from the
    engine's cached copy brought up to date, not replayed from its snapshot."""
    legacy_ids = legacy_command_ids(actor_id, key)
    wanted = [case_id] if case_id is not None else [case_id_for(legacy) for legacy in legacy_ids]
    for target in wanted:
        try:
            if case is None or case.id != target:
                case = engine.current_case(target)
        except NotFound:
            continue
        for legacy in legacy_ids:
            version = case.processed_commands.get(legacy)
            if version is not None and _sender(engine, case, version) == actor_id:
                return CommandResult(
                    case.id, version, engine.position_of(case.id, version), repeated=True
                )
    return None


def _sender(engine: Any, case: Any, version: int) -> str | None:
    if version == 1:
        return case.reporter.id
    events = list(engine.events.get(case.id, gt=version - 1, lte=version))
    return events[0].actor.id if events else None


def once(
    engine: Any,
    actor_id: str,
    key: str | None,
    run: Callable[[], CommandResult],
    case_id: UUID | None = None,
    case: Any = None,
) -> CommandResult:
    """``run()`` — unless ``key`` (if any) was recorded for this actor under a legacy id
    (``case``: the case ``case_id`` as just read, if the caller has it)."""
    done = earlier(engine, actor_id, key, case_id, case) if key else None
    return done if done is not None else run()
