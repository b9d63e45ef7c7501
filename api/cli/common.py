"""What every CLI command shares: the engine, the acting user, error output."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from domain.actors import Actor
from domain.errors import DomainError
from engine.logs import configure_logging
from engine.service import Fengqiao
from engine.settings import Settings, SettingsError


def read_settings(command: str = "fengqiao") -> Settings:
    """The settings from the environment, read once as a command starts; a value that does
    not fit stops the command (exit code 2), naming the variable."""
    try:
        return Settings.from_environment()
    except SettingsError as error:
        typer.echo(f"{command}: {error}", err=True)
        raise typer.Exit(2) from None


@contextmanager
def engine(settings: Settings | None = None) -> Iterator[Fengqiao]:
    """The application service on the configured store, closed afterwards."""
    settings = settings or read_settings()
    configure_logging(settings=settings)
    app = Fengqiao(settings=settings)
    try:
        yield app
    finally:
        app.close()


def cli_actor(app: Fengqiao, name: str | None) -> Actor:
    """The person acting: ``--as NAME`` (or ``FENGQIAO_ACTOR``), a person of the ladder;
    without one, the local administrator."""
    name = name or app.settings.actor
    if not name:
        return Actor(id="cli:admin", role="admin", unit=None, region=None, rank=None)
    tree = app.ladder().tree
    person = tree.person(name)
    return Actor(
        id=person.name,
        role=person.role,
        unit=person.unit,
        region=person.region,
        rank=int(tree.get(person.region).rank),
    )


def input_file(help: str | None = None) -> Any:
    """A command's FILE argument: an existing file, not a folder."""
    return typer.Argument(..., exists=True, dir_okay=False, help=help)


def emit(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def print_table(headings: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A table on stdout; each cell as text."""
    table = Table(*headings)
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    Console().print(table)


@contextmanager
def domain_errors() -> Iterator[None]:
    """Print a refused command as JSON on stderr and exit 1 (2 for bad input)."""
    try:
        yield
    except DomainError as error:
        print(
            json.dumps({"error": error.as_dict()}, ensure_ascii=False, default=str), file=sys.stderr
        )
        raise typer.Exit(2 if error.code == "validation" else 1) from None
