"""``fengqiao case file ID --out FILE.html``: the printable case file (案件卷宗)."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import typer

from api.cli.common import domain_errors, emit, engine
from engine.casefile import write_case_file


def file(
    case_id: UUID = typer.Argument(...),
    out: Path = typer.Option(..., "--out", help="the HTML file to write"),
    masked: bool = typer.Option(
        False, "--masked", help="mask personal fields (as integrators see them)"
    ),
) -> None:
    """Write the printable case file: timeline, clocks, parties, chain hashes, verification."""
    with engine() as app, domain_errors():
        data = write_case_file(app, case_id, out, role="integrator" if masked else "auditor")
        emit(
            {
                "case": str(case_id),
                "out": str(out),
                "events": len(data["timeline"]),
                "verified": data["verification"]["ok"],
            }
        )


def register(cases_app: typer.Typer) -> None:
    """Add ``file`` to the ``case`` command group."""
    cases_app.command("file")(file)
