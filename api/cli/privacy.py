"""``fengqiao privacy …``: find a person's id, erase their personal data."""

from __future__ import annotations

import typer

from api.cli.common import cli_actor, domain_errors, emit, engine
from engine import privacy

app = typer.Typer(no_args_is_help=True)


@app.command("find")
def find(
    id_number: str | None = typer.Option(None, "--id-number"),
    name: str | None = typer.Option(None, "--name"),
    phone: str | None = typer.Option(None, "--phone"),
) -> None:
    """The person id for an ID number, or for a name with a phone number."""
    with engine() as app, domain_errors():
        emit({"person_id": privacy.find_person(app, id_number=id_number, name=name, phone=phone)})


@app.command("erase")
def erase(
    person_id: str = typer.Argument(..., help="the person id (p-…), see `privacy find`"),
    as_: str | None = typer.Option(None, "--as", help="who asks (default: local admin)"),
) -> None:
    """Crypto-shred a person: destroy their key; history then shows [erased]."""
    with engine() as app, domain_errors():
        erasure = privacy.erase(app, person_id, cli_actor(app, as_).id)
        emit(
            {
                "person_id": erasure.person_id,
                "erased_at": erasure.erased_at,
                "erased_by": erasure.erased_by,
                "already_erased": erasure.already,
            }
        )
