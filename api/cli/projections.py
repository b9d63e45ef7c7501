"""``fengqiao projections …`` (status, rebuild, worker) and ``fengqiao worker``."""

from __future__ import annotations

import getpass
import signal
import threading
import time

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from api.cli.common import emit, engine, read_settings
from projections.runner import RebuildInProgress

app = typer.Typer(no_args_is_help=True)


def _runner(application):
    from projections import default_projections
    from projections.runner import ProjectionRunner

    return ProjectionRunner(application, default_projections())


@app.command()
def status(
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """Each projection's generation, position and lag behind the event log; a projection
    stopped on an event with the position and the error; every skip recorded."""
    with engine() as application:
        runner = _runner(application)
        try:
            statuses, skips = runner.statuses(), runner.skips()
        finally:
            runner.close()
    if as_json:
        emit(
            [
                {
                    **_status_json(s),
                    "skips": [
                        {
                            "position": k.position,
                            "reason": k.reason,
                            "by": k.skipped_by,
                            "at": k.skipped_at,
                        }
                        for k in skips
                        if k.name == s.name
                    ],
                }
                for s in statuses
            ]
        )
        return
    table = Table("projection", "generation", "position", "head", "lag", "state")
    for s in statuses:
        table.add_row(
            s.name, str(s.generation), str(s.position), str(s.head), str(s.lag), _state(s)
        )
    Console().print(table)
    if skips:
        skipped = Table("skipped position", "projection", "reason", "by", "at")
        for k in skips:
            skipped.add_row(str(k.position), k.name, k.reason, k.skipped_by, k.skipped_at)
        Console().print(skipped)


def _status_json(s) -> dict:
    failure = s.failure
    return {
        "name": s.name,
        "generation": s.generation,
        "position": s.position,
        "head": s.head,
        "lag": s.lag,
        "stale": s.stale,
        "stopped": None
        if failure is None
        else {
            "position": failure.position,
            "error": failure.error,
            "since": failure.failed_at,
            "attempts": failure.attempts,
        },
    }


def _state(s) -> str:
    if s.failure is not None:
        return (
            f"STOPPED at {s.failure.position}: {s.failure.error} (since {s.failure.failed_at}; "
            f"fengqiao projections skip {s.failure.position} --reason …)"
        )
    return "stale: rebuild it" if s.stale else ("caught up" if s.lag == 0 else "behind")


@app.command()
def skip(
    position: int = typer.Argument(
        ..., min=1, help="the event position the projection is stopped on"
    ),
    reason: str = typer.Option(..., "--reason", help="why (kept with the skip, listed by status)"),
    projection: list[str] = typer.Option(
        None, "--projection", help="the projections to skip it in (default: those stopped at it)"
    ),
    by: str = typer.Option(
        None, "--by", help="who decided (default: $FENGQIAO_ACTOR, else your login)"
    ),
) -> None:
    """Let a projection stopped on one event pass over it (the rest flows while the fix ships).
    The skip is kept: rebuilds pass over the event too."""
    with engine() as application:
        who = by or application.settings.actor or getpass.getuser()
        runner = _runner(application)
        try:
            skipped = runner.skip(position, reason, who, projection or None)
        except (KeyError, LookupError, ValueError) as error:
            typer.echo(str(error).strip("'\""), err=True)
            raise typer.Exit(2) from None
        finally:
            runner.close()
    emit({"position": position, "projections": skipped, "reason": reason.strip(), "by": who})


@app.command()
def rebuild(
    name: str = typer.Argument(None, help="one projection (default: all)"),
    batch_size: int = typer.Option(5000, "--batch-size", min=1),
    force: bool = typer.Option(
        False, "--force", help="even if another rebuild seems to be running"
    ),
) -> None:
    """Replay from zero into new tables beside the live ones, then swap them in."""
    with engine() as application:
        runner = _runner(application)
        try:
            names = [name] if name else list(runner.projections)
            unknown = [n for n in names if n not in runner.projections]
            if unknown:
                typer.echo(
                    f"unknown projection {unknown[0]!r}; known: {', '.join(runner.projections)}",
                    err=True,
                )
                raise typer.Exit(2)
            for projection in names:
                try:
                    _rebuild_with_progress(runner, projection, batch_size, force)
                except RebuildInProgress as error:
                    typer.echo(str(error), err=True)
                    raise typer.Exit(1) from None
        finally:
            runner.close()


def _rebuild_with_progress(runner, name: str, batch_size: int, force: bool) -> None:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"),
        TextColumn("{task.fields[rate]:,.0f} events/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    started = time.monotonic()
    with Progress(*columns) as progress:
        task = progress.add_task(name, total=max(runner.app.head_position(), 1), rate=0.0)

        def report(position: int, head: int) -> None:
            elapsed = max(time.monotonic() - started, 1e-6)
            progress.update(task, completed=position, total=max(head, 1), rate=position / elapsed)

        events = runner.rebuild(name, progress=report, batch_size=batch_size, force=force)
        progress.update(task, completed=progress.tasks[0].total)
    elapsed = time.monotonic() - started
    typer.echo(
        f"{name}: {events:,} events in {elapsed:.1f}s ({events / max(elapsed, 1e-6):,.0f} events/s)"
    )


@app.command("worker")
def projections_worker() -> None:
    """Keep the read models caught up (the projections worker alone)."""
    _run(["projections"])


def _run(names: list[str] | None) -> None:
    from api.workers import run_workers
    from engine.memory import limit_malloc_arenas

    settings = read_settings("fengqiao worker")
    limit_malloc_arenas(settings.malloc_arenas)  # before any thread starts: see engine/memory.py
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with engine(settings) as application:
        run_workers(application, stop, names)


def register(root: typer.Typer) -> None:
    """Mount ``projections`` and the top-level ``worker`` command."""
    root.add_typer(app, name="projections", help="Read models: status, rebuild, worker.")

    @root.command("worker")
    def worker(
        only: list[str] = typer.Option(
            None, "--only", help="run only these workers (repeat: --only timers --only webhooks)"
        ),
    ) -> None:
        """Run every background worker (projections, timers, routing, webhooks, checkpoints).

        Several may run on one store: of each kind one leads, the others stand by (docs/operations.md)."""
        _run(only or None)
