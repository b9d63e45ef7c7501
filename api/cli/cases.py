"""``fengqiao case …``: report, act, show, history, time travel."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from uuid import UUID

import typer

from api.cli.common import cli_actor, domain_errors, emit, engine
from domain.actors import Actor
from domain.commands import ACTIONS, Envelope, ReportAt, parse_action, validated
from domain.errors import ValidationFailed
from domain.permissions import PUBLIC_ACTIONS, authorize_action, authorize_report
from engine.idempotency import once, scoped_command_id
from engine.views import event_view

app = typer.Typer(no_args_is_help=True)

AS = typer.Option(
    None, "--as", help="the person acting (a name on the ladder); default: local admin"
)
COMMAND_ID = typer.Option(
    None, "--command-id", help="idempotency id; a repeat has no further effect"
)
IF_VERSION = typer.Option(None, "--if-version", help="refuse unless the case is at this version")
OCCURRED = typer.Option(
    None, "--occurred-at", help="when it happened (RFC 3339), if earlier than now"
)


def _parse_fields(fields: list[str]) -> dict:
    """``key=value`` pairs; values that parse as JSON (numbers, true, lists) are taken as JSON."""
    body = {}
    for field in fields:
        key, sep, value = field.partition("=")
        if not sep:
            raise ValidationFailed(f"expected key=value, got {field!r}", field=field)
        try:
            body[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            body[key.strip()] = value
    return body


def cli_command_id(actor_id: str, key: str | None) -> str:
    """``--command-id`` is scoped to the acting person like an ``Idempotency-Key``."""
    return scoped_command_id(actor_id, key) if key else f"cli-{uuid.uuid4()}"


def _result(app, result) -> None:
    emit(
        {
            "case": app.case_view(result.case_id),
            "version": result.version,
            "position": result.position,
            "repeated": result.repeated,
        }
    )


@app.command("report")
def report(
    context: typer.Context,
    kind: str = typer.Option(..., help="dispute | hazard | petition"),
    category: str = typer.Option(...),
    severity: str = typer.Option("minor", help="minor | major | critical"),
    region: str | None = typer.Option(
        None, help="region code where it was found (or give --lat and --long)"
    ),
    title: str = typer.Option(...),
    description: str = typer.Option(""),
    channel: str = typer.Option("grid"),
    lat: float | None = typer.Option(None, "--lat", help="WGS-84 latitude where it is"),
    long: float | None = typer.Option(
        None,
        "--long",
        help="WGS-84 longitude; with --lat and no --region, the smallest region holding the point",
    ),
    as_: str | None = AS,
    command_id: str | None = COMMAND_ID,
    occurred_at: datetime | None = OCCURRED,
) -> None:
    """上报 a new case."""
    with engine() as app, domain_errors():
        # the options named as the report's fields are its fields (--as and the envelope's are not)
        fields = {k: v for k, v in context.params.items() if k in ReportAt.model_fields}
        body = app.placed(validated(ReportAt, fields))
        actor = cli_actor(app, as_)
        assert body.region is not None  # placed
        authorize_report(actor, body.region)  # exactly the HTTP API's rights and region scope
        envelope = _envelope(actor, command_id, occurred_at)
        _result(app, once(app, actor.id, command_id, lambda: app.report(body, envelope)))


def _envelope(
    actor: Actor, command_id: str | None, occurred_at: datetime | None, version: int | None = None
) -> Envelope:
    """Who, which command (``--command-id`` or a fresh one), when, and the version expected."""
    command = cli_command_id(actor.id, command_id)
    fields = dict(
        actor=actor, command_id=command, expected_version=version, occurred_at=occurred_at
    )
    return validated(Envelope, fields)


def _make_action_command(name: str):
    def run(
        case_id: UUID = typer.Argument(...),
        fields: list[str] = typer.Argument(None, help="key=value fields of the action"),
        as_: str | None = AS,
        command_id: str | None = COMMAND_ID,
        if_version: int | None = IF_VERSION,
        occurred_at: datetime | None = OCCURRED,
    ) -> None:
        with engine() as app, domain_errors():
            body = parse_action(name, _parse_fields(fields or []))
            actor = cli_actor(app, as_)
            authorize_action(
                actor, name, lambda: app.case(case_id), body.model_dump()
            )  # as the HTTP API
            envelope = _envelope(actor, command_id, occurred_at, if_version)
            _result(
                app,
                once(app, actor.id, command_id, lambda: app.act(case_id, body, envelope), case_id),
            )

    fields = ", ".join(f"{n}" for n in ACTIONS[name].model_fields) or "no fields"
    run.__doc__ = f"{name}: {fields}"
    return run


for _name in sorted(PUBLIC_ACTIONS):  # the timer's own actions are not a person's to run
    app.command(_name)(_make_action_command(_name))


@app.command("show")
def show(
    case_id: UUID,
    version: int | None = typer.Option(None, help="the case at this version"),
    as_of: datetime | None = typer.Option(
        None, "--as-of", help="the case as recorded at this moment (RFC 3339)"
    ),
) -> None:
    """The case now, at a version, or as of a moment."""
    with engine() as app, domain_errors():
        emit(app.case_view(case_id, version=None if as_of else version, as_of=as_of))


@app.command("history")
def history(case_id: UUID) -> None:
    """Every event of the case, in order, with actor, times and position."""
    with engine() as app, domain_errors():
        emit([event_view(e.position, e.event) for e in app.history(case_id)])


@app.command("list")
def list_cases(limit: int = typer.Option(50, min=1, max=1000)) -> None:
    """Case ids with status (from the event store; projections give richer queries)."""
    with engine() as app, domain_errors():
        rows = []
        for case_id in app.case_ids():
            case = app.case(case_id)
            rows.append(
                {
                    "id": str(case.id),
                    "kind": str(case.kind),
                    "status": str(case.status),
                    "title": case.title,
                }
            )
            if len(rows) >= limit:
                break
        emit(rows)
