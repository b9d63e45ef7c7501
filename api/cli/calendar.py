"""``fengqiao calendar``: the statutory holiday years the clocks count with."""

from __future__ import annotations

from pathlib import Path

import typer

from api.cli.common import cli_actor, domain_errors, emit, engine, input_file
from domain.errors import NotPermitted
from domain.permissions import MANAGE, may

app = typer.Typer(
    help="Statutory holidays and 调休 days: the years covered, importing a year.",
    no_args_is_help=True,
)


@app.command("import")
def calendar_import(
    file: Path = input_file("TOML: year = 2027, [[holiday]] and [[workday]] (docs/calendar.md)"),
    as_: str | None = typer.Option(
        None,
        "--as",
        help="the administrator importing (a person of the ladder; "
        "default: the local administrator)",
    ),
) -> None:
    """Import one year of the State Council's notice; every open clock counts with it at once."""
    with engine() as app_, domain_errors():
        actor = cli_actor(app_, as_)
        if not may(actor.role, MANAGE):  # as for the ladder and the policy
            raise NotPermitted(
                f"a {actor.role} may not import the calendar", action=MANAGE, role=actor.role
            )
        emit(app_.import_calendar(file.read_text(encoding="utf-8"), actor.id, source=file.name))


@app.command("show")
def calendar_show() -> None:
    """Every year with statutory data and where it came from."""
    with engine() as app_, domain_errors():
        emit({"years": app_.statutory().sources()})
