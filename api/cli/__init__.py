"""The ``fengqiao`` command line.

Each area has its own module with a ``typer.Typer`` named ``app``; they are
mounted here. The store is chosen by ``FENGQIAO_DATABASE_URL`` (default: the
SQLite file ``var/fengqiao.db``).
"""

from __future__ import annotations

import typer

from api.cli import audit as audit_cli
from api.cli import bench as bench_cli
from api.cli import calendar as calendar_cli
from api.cli import casefile as casefile_cli
from api.cli import cases, setup
from api.cli import demo as demo_cli
from api.cli import privacy as privacy_cli
from api.cli import projections as projections_cli
from api.cli import province as province_cli
from api.cli import serve as serve_cli
from api.cli import timers as timers_cli
from api.cli import users as users_cli

app = typer.Typer(
    name="fengqiao",
    help="Fengqiao 枫桥: an event-sourced case-workflow engine for grassroots governance.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

setup.register(app)
app.add_typer(cases.app, name="case", help="Report and drive cases; history and time travel.")
# -- more areas mount here, one line each (keep this block sorted) --
app.add_typer(
    audit_cli.app, name="audit", help="Tamper evidence: signed checkpoints and verification."
)
app.add_typer(
    calendar_cli.app, name="calendar", help="Statutory holiday years: show, import a year."
)
bench_cli.register(
    app
)  # `fengqiao bench [NAME] [--store] [--size]`: api/bench/ figures beside baselines
casefile_cli.register(cases.app)  # `fengqiao case file ID --out FILE.html`
demo_cli.register(app)  # `fengqiao demo`: the demo county and a season of traffic
app.add_typer(privacy_cli.app, name="privacy", help="Personal data: find a person, erase them.")
projections_cli.register(app)  # `fengqiao projections …` and `fengqiao worker`
app.add_typer(
    province_cli.app,
    name="province",
    help="Province roll-up over county stores: add, follow, status, stats.",
)
serve_cli.register(app)  # `fengqiao serve`: the HTTP API
app.add_typer(
    timers_cli.app, name="timers", help="Clocks of a case, the timer index, ticks and routing."
)
app.add_typer(users_cli.app, name="users", help="API users and their bearer tokens.")
# -- end of mounts --


def main() -> None:
    app()
