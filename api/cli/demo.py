"""``fengqiao demo``: a fresh store with the demo county and a season of its traffic, then serve it."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from api.cli.common import read_settings
from api.demo import (
    Census,
    Demo,
    RunStats,
    Season,
    build_demo,
    demo_clock,
    relax_sqlite_durability,
)
from api.demo.county import County
from api.demo.simulator import TIMER_PERIOD
from domain.actors import Actor
from domain.calendar import SHANGHAI
from engine.logs import configure_logging
from engine.service import Fengqiao
from engine.store import StoreConfig

DEFAULT_DB = Path("var") / "demo.db"
RANKS = ("grid", "village", "township", "county")
KINDS = {"dispute": "dispute 矛盾纠纷", "hazard": "hazard 安全隐患", "petition": "petition 诉求"}
STATUSES = ("reported", "assigned", "accepted", "in_progress", "resolved", "closed")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    seed: int = typer.Option(
        1, "--seed", help="the same seed builds the same county and the same season"
    ),
    days: int = typer.Option(90, "--days", min=1, max=730, help="length of the simulated season"),
    scale: float = typer.Option(
        1.0,
        "--scale",
        min=0.001,
        max=20.0,
        help="traffic volume (1.0: about 2,400 cases in 90 days)",
    ),
    db: Path = typer.Option(DEFAULT_DB, "--db", help="the SQLite file to (re)create"),
    end: datetime | None = typer.Option(
        None,
        "--end",
        formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"],
        help="when the season ends, Beijing time (default: now); pin it to reproduce a run exactly",
    ),
    timer_hours: float = typer.Option(
        TIMER_PERIOD / timedelta(hours=1),
        "--timer-hours",
        min=0.0,
        max=168.0,
        help="the timer service ticks every so many simulated hours (0: only once, at the end)",
    ),
    serve: bool = typer.Option(
        True, "--serve/--no-serve", help="serve the API and dashboard afterwards"
    ),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
) -> None:
    """Build the demo county (阳高县-shaped) and a season of traffic in a FRESH SQLite store, then serve it."""
    settings = read_settings("fengqiao demo")
    configure_logging(
        level=None if "log_level" in settings.model_fields_set else "WARNING", settings=settings
    )
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)
    moment = (
        end.replace(tzinfo=SHANGHAI) if end else datetime.now(UTC).replace(second=0, microsecond=0)
    )
    season = Season.ending(moment, days)
    path = fresh_sqlite(db)
    started, cpu = time.perf_counter(), time.process_time()
    clock = demo_clock(season)
    app = Fengqiao(StoreConfig(f"sqlite:///{path}"), clock=clock)
    try:
        relax_sqlite_durability(app)
        period = timedelta(hours=timer_hours) if timer_hours else season.end - season.start
        result = _build(app, clock, season, seed, scale, period, console)
        built = time.perf_counter() - started
        catch_up_projections(app, console)
        tokens = issue_tokens(app, result.county)
    finally:
        app.close()
    total, cpu = time.perf_counter() - started, time.process_time() - cpu
    print_summary(console, result, built, total, cpu)
    print_tokens(console, tokens, result.county)
    url = f"http://{host}:{port}"
    if not serve:
        console.print(
            f"\nStore ready: [bold]{path}[/]. Serve it with "
            f"[bold]FENGQIAO_DATABASE_URL=sqlite:///{path} fengqiao serve[/]"
        )
        return
    serve_store(console, path, host, port, url)


def fresh_sqlite(db: Path) -> Path:
    """Delete the SQLite file (and its WAL and shared-memory files): the demo always starts empty."""
    db = db.expanduser()
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.parent.mkdir(parents=True, exist_ok=True)
    return db


def _build(
    app: Fengqiao,
    clock,
    season: Season,
    seed: int,
    scale: float,
    timer_period: timedelta,
    console: Console,
) -> Demo:
    columns = (
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("县情 loading the county …", total=season.days)

        def on_progress(now: datetime, stats: RunStats) -> None:
            done = (now - season.start) / timedelta(days=1)
            progress.update(
                task,
                completed=min(done, season.days),
                description=f"{now.astimezone(SHANGHAI):%Y-%m-%d} cases {stats.cases:>5} "
                f"commands {stats.commands:>6}",
            )

        return build_demo(
            app,
            clock,
            season,
            seed=seed,
            scale=scale,
            timer_period=timer_period,
            on_progress=on_progress,
        )


def catch_up_projections(app: Fengqiao, console: Console) -> None:
    """Bring the read models (SLA boards, statistics) up to date before serving."""
    from projections import default_projections
    from projections.runner import ProjectionRunner

    with console.status("read models catching up …"):
        runner = ProjectionRunner(app, default_projections())
        try:
            runner.run_once()
        finally:
            runner.close()


ROLES_SHOWN = ("supervisor", "handler", "reporter", "auditor", "integrator", "admin")


def token_holders(county: County) -> dict[str, Actor]:
    """One person per role to sign in as: the supervisor of the largest township, a
    mediator of one of its villages, a grid assistant, the county's auditor,
    integrator and administrator."""
    township = max(county.townships, key=lambda t: len(t.villages))  # the busiest
    village = township.villages[0]
    assistant = next(a for g in county.grids() for a in g.assistants)
    return {
        "supervisor": township.supervisor,
        "handler": village.mediator,
        "reporter": assistant,
        "auditor": county.auditor,
        "integrator": county.integrator,
        "admin": county.admin,
    }


def issue_tokens(app: Fengqiao, county: County) -> dict[str, tuple[Actor, str]]:
    """A bearer token for each role's person."""
    from engine.users import UserStore

    users = UserStore(app)
    tokens = {}
    for role, actor in token_holders(county).items():
        assert actor.region is not None  # every person of the demo county works in a region
        tokens[role] = (
            actor,
            users.add(actor.id, actor.role, actor.region, actor.unit, by="demo:admin"),
        )
    return tokens


def print_summary(console: Console, result: Demo, built: float, total: float, cpu: float) -> None:
    census, run, county = result.census, result.run, result.county
    console.print(
        f"\n[bold]{county.name}[/]: {len(county.townships)} townships/subdistrict, "
        f"{sum(1 for _ in county.villages())} villages/communities, {sum(1 for _ in county.grids())} grids, "
        f"{len(county.people)} people. Season {result.season.start.astimezone(SHANGHAI):%Y-%m-%d} → "
        f"{result.season.end.astimezone(SHANGHAI):%Y-%m-%d %H:%M} (Beijing time)."
    )
    console.print(
        f"{run.cases} cases, {run.commands} commands by people, {run.timer_commands} by the timer "
        f"service (disputes taken over after its automatic escalation: {run.taken_over}); built in "
        f"{built:.1f} s, ready in {total:.1f} s ({cpu:.1f} s of CPU)."
    )
    if run.refused:
        console.print(f"[red]refused steps: {dict(run.refused)}[/]")
    console.print(status_table(census))
    console.print(rank_table(census))
    console.print(
        f"escalated cases {census.escalated_cases} ({census.escalations} escalations), "
        f"reclassified upwards (矛盾上交) {census.reclassified_up}, open and overdue "
        f"{sum(census.overdue.values())} {dict(census.overdue)}, resolved above the ceiling {census.above_ceiling}; "
        f"return visits {dict(census.satisfaction)}."
    )
    events = census.events
    console.print(
        f"disputes ended referred {census.referred['dispute']} (parties refused mediation "
        f"{events['MediationRefused']}); written agreements signed {events['AgreementSigned']} and sealed "
        f"{events['AgreementSealed']}, court confirmation applied for {events['CourtConfirmationApplied']}; "
        f"extensions requested {events['ExtensionRequested']}, granted {events['Extended']}; "
        f"suspensions {events['Suspended']}; sent back (退单) {events['SentBack']}."
    )
    if census.minor_disputes_resolved_at or census.minor_disputes_referred_at:
        console.print(minor_dispute_table(census))


def counts_table(title: str, first: str, columns: Iterable[str]) -> Table:
    """A table titled ``title``: a left column ``first``, then one right-justified column per count."""
    table = Table(title=title)
    table.add_column(first)
    for column in columns:
        table.add_column(column, justify="right")
    return table


def minor_dispute_table(census: Census) -> Table:
    """小事不出村: minor disputes ended at each rank, settled (化解) or referred (调解不成 or
    refused, told of the other routes: never counted as resolved within the ceiling)."""
    settled, referred = census.minor_disputes_resolved_at, census.minor_disputes_referred_at
    ended = sum(settled.values()) + sum(referred.values())
    table = counts_table(
        "minor disputes (小事不出村): settled at each rank, and referred", "", [*RANKS, "referred"]
    )
    table.add_row("cases", *(str(settled.get(r, 0)) for r in RANKS), str(sum(referred.values())))
    table.add_row(
        "share",
        *(f"{settled.get(r, 0) / ended:.0%}" for r in RANKS),
        f"{sum(referred.values()) / ended:.0%}",
    )
    return table


def status_table(census: Census) -> Table:
    table = counts_table("cases by kind and status", "kind", [*STATUSES, "total"])
    for kind, label in KINDS.items():
        counts = [census.cases.get((kind, s), 0) for s in STATUSES]
        table.add_row(label, *map(str, counts), str(sum(counts)))
    return table


def rank_table(census: Census) -> Table:
    table = counts_table("resolved at each rank", "kind", RANKS)
    for kind, label in KINDS.items():
        table.add_row(label, *(str(census.resolved_at.get((kind, r), 0)) for r in RANKS))
    return table


def print_tokens(console: Console, tokens: dict[str, tuple[Actor, str]], county: County) -> None:
    """One line per role on stdout (the tokens are the command's output): role, name, region, token."""
    console.print(
        "\nSign in with one of these tokens (dashboard sign-in, or Authorization: Bearer …):"
    )
    names = {r.code: r.name for r in county.regions()}
    for role, (actor, token) in tokens.items():
        region = actor.region or ""  # every holder works in a region (issue_tokens)
        typer.echo(f"{role:<11} {actor.id} ({names.get(region, region)})\t{token}")


def serve_store(console: Console, path: Path, host: str, port: int, url: str) -> None:
    """Serve the API and dashboard on the demo store with the real clock (``fengqiao serve``)."""
    from api.cli.serve import run_server

    os.environ["FENGQIAO_DATABASE_URL"] = f"sqlite:///{path}"
    console.print(
        f"\nServing on [bold]{url}/ui/[/] (dashboard) and {url}/docs (API). Ctrl-C to stop."
    )
    run_server(host, port)
