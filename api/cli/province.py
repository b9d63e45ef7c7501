"""``fengqiao province …``: the province roll-up over county stores (``projections/province.py``).

The province database is ``--url`` or ``FENGQIAO_PROVINCE_URL``; each county's store is
registered once with ``add``. See docs/scaling.md.
"""

from __future__ import annotations

import signal
import threading

import typer

from api.cli.common import domain_errors, emit, print_table, read_settings
from engine.logs import configure_logging
from engine.settings import Settings
from projections.province import province

app = typer.Typer(no_args_is_help=True)
URL = typer.Option(
    ...,
    "--url",
    envvar=Settings.variable("province_url"),
    help="the province database (sqlite:/// or postgresql://)",
)


@app.command()
def add(
    county: str = typer.Argument(..., help="the county's id (its code, e.g. 410928)"),
    store_url: str = typer.Argument(..., help="the county's event store"),
    url: str = URL,
) -> None:
    """Follow a county's store from now on (from its first event)."""
    with domain_errors(), province(url, read_settings("fengqiao province")) as rollup:
        added = rollup.add(county, store_url)
    typer.echo(f"{county}: {'added' if added else 'already followed'}")


@app.command()
def follow(
    url: str = URL,
    once: bool = typer.Option(False, "--once", help="catch every county up, then exit"),
    batch_size: int = typer.Option(1000, "--batch-size", min=1, help="events per transaction"),
    poll: float = typer.Option(
        1.0, "--poll", min=0.01, help="seconds between polls when caught up"
    ),
) -> None:
    """Keep the province's read models caught up with every county (until SIGINT/SIGTERM)."""
    settings = read_settings("fengqiao province")
    configure_logging(settings=settings)
    with domain_errors(), province(url, settings) as rollup:
        if once:
            applied = rollup.run_once(batch_size)
            typer.echo(
                ", ".join(f"{county}: {n:,} events" for county, n in applied.items())
                or "no counties"
            )
            return
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        rollup.follow(stop, poll=poll, batch_size=batch_size)


@app.command()
def status(
    url: str = URL, as_json: bool = typer.Option(False, "--json", help="print JSON")
) -> None:
    """Each county's position, head and lag."""
    with domain_errors(), province(url, read_settings("fengqiao province")) as rollup:
        rows = rollup.statuses()
    if as_json:
        emit(rows)
        return
    columns = ("county", "projection", "position", "head", "lag")
    print_table(columns, ([row[c] for c in columns] for row in rows))


@app.command()
def stats(
    first: str = typer.Option(..., "--from", help="first month, YYYY-MM"),
    last: str = typer.Option(..., "--to", help="last month, YYYY-MM (inclusive)"),
    url: str = URL,
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Received, resolved, within the ceiling and the 小事不出村 rate, per county and month."""
    with domain_errors(), province(url, read_settings("fengqiao province")) as rollup:
        figures = rollup.stats(first, last)
    if as_json:
        emit(figures)
        return
    columns = ("county", "month", "received", "resolved", "resolved_within_ceiling")
    rows = [*figures["counties"], *({"county": "province", **r} for r in figures["province"])]
    print_table(
        ("county", "month", "received", "resolved", "within ceiling", "小事不出村"),
        ([*(row[c] for c in columns), _rate(row["within_ceiling_rate"])] for row in rows),
    )


def _rate(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:.1%}"


@app.command()
def rebuild(
    county: str = typer.Argument(None, help="one county (default: all)"), url: str = URL
) -> None:
    """Rebuild a county's province read models from its first event, beside the live ones."""
    with domain_errors(), province(url, read_settings("fengqiao province")) as rollup:
        events = rollup.rebuild(county)
    typer.echo(f"{events:,} events replayed")
