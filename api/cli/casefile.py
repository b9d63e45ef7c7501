"""``fengqiao case file ID --out FILE.html|FILE.pdf``: the printable case file (案件卷宗)."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import typer

from api.cli.common import domain_errors, emit, engine
from engine.casefile import write_case_file, write_case_file_pdf


def file(
    case_id: UUID = typer.Argument(...),
    out: Path = typer.Option(
        ..., "--out", help="the file to write: HTML, or PDF if it ends in .pdf"
    ),
    masked: bool = typer.Option(
        False, "--masked", help="mask personal fields (as integrators see them)"
    ),
) -> None:
    """Write the printable case file: timeline, clocks, parties, leaf hashes, verification,
    the signed tree head. A name ending in .pdf writes a PDF (CJK font embedded)."""
    write = write_case_file_pdf if out.suffix.lower() == ".pdf" else write_case_file
    with engine() as app, domain_errors():
        data = write(app, case_id, out, role="integrator" if masked else "auditor")
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
