"""``fengqiao audit …``: sign a checkpoint, verify the log or one case."""

from __future__ import annotations

import sys
from pathlib import Path
from uuid import UUID

import typer

from api.cli.common import domain_errors, emit, engine
from engine.audit import checkpoints
from engine.audit.verify import verify_case, verify_log

app = typer.Typer(no_args_is_help=True)


@app.command("checkpoint")
def checkpoint(
    export: Path | None = typer.Option(
        None, "--export", help="also write the checkpoint to this JSON file"
    ),
) -> None:
    """Sign the chain head now (Ed25519) and store it; --export writes it for safekeeping."""
    with engine() as app, domain_errors():
        signed = checkpoints.checkpoint(app)
        if signed is None:
            emit({"checkpoint": None, "reason": "the log is empty"})
            raise typer.Exit(1)
        if export is not None:
            checkpoints.export(signed, export)
        emit({"checkpoint": signed.as_dict(), "exported_to": str(export) if export else None})


@app.command("verify")
def verify(
    case: UUID | None = typer.Option(None, "--case", help="verify this case alone"),
    against: Path | None = typer.Option(
        None, "--against", help="a checkpoint file exported earlier"
    ),
) -> None:
    """Re-read the events, recompute the chain, report the first difference. Exit 1 on any."""
    with engine() as app, domain_errors():
        if case is not None:
            result = verify_case(app, case)
        else:
            result = verify_log(
                app,
                against=checkpoints.load(against) if against else None,
                trusted_keys=checkpoints.trusted_key_ids(app),
            )
        emit(
            {
                **result.as_dict(),
                "events_per_second": round(result.events_per_second)
                if result.seconds > 0
                else None,
            }
        )
        if not result.ok:
            assert result.finding is not None  # not ok: a finding says why
            print(
                f"verification FAILED at position {result.finding.position}: {result.finding.message}",
                file=sys.stderr,
            )
            raise typer.Exit(1)
