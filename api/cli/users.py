"""``fengqiao users …``: API users and their bearer tokens."""

from __future__ import annotations

from datetime import timedelta

import typer

from api.cli.common import domain_errors, emit, engine
from domain.errors import ValidationFailed
from domain.permissions import PERSON_ROLES
from domain.policy import parse_duration
from engine.users import UserStore

app = typer.Typer(no_args_is_help=True)


@app.command("add")
def add(
    name: str = typer.Option(
        ..., "--name", help="unique user name; also the person `assign` takes"
    ),
    role: str = typer.Option(..., "--role", help=" | ".join(PERSON_ROLES)),
    region: str = typer.Option(..., "--region", help="region code: the user sees its subtree only"),
    unit: str | None = typer.Option(
        None, "--unit", help="the user's unit (handlers work its cases)"
    ),
    expires_in: str | None = typer.Option(
        None, "--expires-in", help="the token stops working after this long, e.g. 90d, 12h"
    ),
) -> None:
    """Add a user (or issue a new token to one); prints only the token, on stdout."""
    with engine() as app_, domain_errors():
        lifetime = token_lifetime(expires_in) if expires_in else None
        token = UserStore(app_).add(name, role, region, unit, expires_in=lifetime)
    typer.echo(token)


def token_lifetime(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m`` as a timedelta (calendar time, not working time)."""
    try:
        amount, unit = parse_duration(text)
    except ValueError as error:
        raise ValidationFailed(str(error), field="expires_in") from None
    if unit not in ("m", "h", "d"):
        raise ValidationFailed(
            "a token lifetime is in minutes, hours or days, e.g. 90d", field="expires_in"
        )
    return timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[unit]: amount})


@app.command("revoke")
def revoke(name: str = typer.Argument(..., help="the user's name")) -> None:
    """Revoke a user's token at once."""
    with engine() as app_, domain_errors():
        emit(UserStore(app_).revoke(name).as_dict())


@app.command("list")
def list_users() -> None:
    """Every user: name, role, region, unit, created and revoked times (never tokens)."""
    with engine() as app_, domain_errors():
        emit([user.as_dict() for user in UserStore(app_).list()])
