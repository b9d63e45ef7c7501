"""``fengqiao audit …``: sign a tree head, verify the log or one case, or prove today's log
extends an older tree head; make a case bundle and check one offline."""

from __future__ import annotations

import sys
from pathlib import Path
from uuid import UUID

import typer

from api.cli.common import domain_errors, emit, engine
from engine.audit import checkpoints
from engine.audit.bundle import case_bundle
from engine.audit.verifier import Invalid, verify_bundle
from engine.audit.verify import verify_against, verify_case, verify_log

app = typer.Typer(no_args_is_help=True)


@app.command("checkpoint")
def checkpoint(
    export: Path | None = typer.Option(
        None, "--export", help="also write the checkpoint to this JSON file"
    ),
) -> None:
    """Sign the tree head now (Ed25519, C2SP checkpoint) and store it; --export writes it
    for safekeeping."""
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
        None,
        "--against",
        help="an older tree head exported earlier: prove today's log extends it (consistency proof)",
    ),
) -> None:
    """Re-read the events, recompute the chain, report the first difference; or, with
    --against, prove with a consistency proof that today's log extends an older tree head.
    Exit 1 on any difference."""
    with engine() as app, domain_errors():
        if case is not None:
            result = verify_case(app, case)
        elif against is not None:
            result = verify_against(app, checkpoints.load(against))
        else:
            result = verify_log(app, trusted_keys=checkpoints.trusted_key_ids(app))
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


@app.command("bundle")
def bundle(
    case: UUID = typer.Argument(..., help="the case id"),
    out: Path = typer.Option(..., "--out", help="the bundle file to write"),
) -> None:
    """Write the case bundle: its events, their inclusion proofs, a signed tree head, the key."""
    with engine() as app, domain_errors():
        data = case_bundle(app, case)
        out.write_bytes(data)
        emit({"case": str(case), "bundle": str(out), "bytes": len(data)})


@app.command("verify-bundle")
def verify_bundle_file(
    file: Path = typer.Argument(..., help="a bundle written by `fengqiao audit bundle`"),
    key_id: str | None = typer.Option(
        None, "--key-id", help="the published fingerprint of the log's key (16 hex digits)"
    ),
) -> None:
    """Check a case bundle with no store and no network. Exit 1 when it fails."""
    try:
        summary = verify_bundle(file.read_bytes(), key_id)
    except Invalid as failure:
        emit({"ok": False, "problem": str(failure)})
        print(f"bundle INVALID: {failure}", file=sys.stderr)
        raise typer.Exit(1) from None
    except OSError as error:
        print(f"cannot read {file}: {error}", file=sys.stderr)
        raise typer.Exit(2) from None
    emit({"ok": True, **summary})
