"""``fengqiao bench [NAME] [--store sqlite|postgres] [--size N]``: the benchmark suite.

Each benchmark is a module in ``api/bench/`` (packaged, outside the test run) that
prints its figure beside a baseline measured in the same run. ``write``, ``notify``, ``replay``,
``geometry``, ``lag`` and ``queries`` expose ``run(store, size) -> list[dict]`` and are called in-process; the
others (and ``http16``: ``api/bench/load.py`` held at 16 clients) are run as they
are documented (their own command lines), their output passed through. Figures and
how to read them: ``docs/performance.md`` (the runs: ``docs/performance-log.md``).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass

import typer

from api.cli.common import read_settings
from engine.settings import DEFAULTS


@dataclass(frozen=True)
class Bench:
    target: str
    size_means: str
    default_size: int
    module: str | None = None  # has run(store, size)
    script: str | None = None  # else: python -m api.bench.<script> with these arguments
    stores: tuple[str, ...] = ("sqlite", "postgres")

    def arguments(
        self, store: str, size: int, postgres_url: str = DEFAULTS.test_postgres_url
    ) -> list[str]:
        url = (
            f"{postgres_url}?schema=bench_{(self.script or '').removesuffix('.py')}_{uuid.uuid4().hex[:6]}"
            if store == "postgres"
            else f"sqlite:////tmp/fengqiao_bench_{uuid.uuid4().hex[:6]}.db"
        )
        if self.script == "bench_projections.py":
            return ["--url", url, "--events", str(size)]
        if self.script == "bench_feed.py":
            return ["--url", url, "--events", str(size), "--fresh"]
        if self.script == "bench_timers.py":
            return ["--url", url, "--rows", str(size)]
        if self.script == "bench_memory.py":  # its prepared 1M-case store is kept and reused
            return ["--store", store, "--minutes", str(size), "--tracemalloc"]
        if self.script == "bench_audit.py":
            return ["--store", store, "--events", str(size)]
        if self.script == "bench_insert.py":
            return ["--repeat", str(size)]
        if self.script == "bench_rollup.py":
            return ["--store", store, "--events", str(size), "--runs", "3"]
        if self.script == "load":
            return [
                "--seconds",
                str(size),
                "--start",
                "16",
                "--end",
                "16",
                *(["--url", url] if store == "postgres" else []),
            ]
        return [store]  # bench_api.py


BENCHES: dict[str, Bench] = {
    "write": Bench(
        "≥ 3,000 events/s with 16 writers on PostgreSQL",
        "seconds per measurement",
        10,
        module="api.bench.bench_write",
    ),
    "replay": Bench(
        "p95 ≤ 5 ms for a 30-event case", "replays timed", 300, module="api.bench.bench_replay"
    ),
    "notify": Bench(
        "the NOTIFY's cost on the PostgreSQL write path: events/s with / without, in one run",
        "seconds per measurement",
        5,
        module="api.bench.bench_notify",
        stores=("postgres",),
    ),
    "geometry": Bench(
        "a map point to its grid among 10,000 grid polygons: p95 ≤ 1 ms",
        "grid polygons",
        10_000,
        module="api.bench.bench_geometry",
    ),
    "lag": Bench(
        "projection lag p99 ≤ 500 ms at 500 commands/s", "seconds", 60, module="api.bench.bench_lag"
    ),
    "queries": Bench(
        "supervisor queries p95 ≤ 20 ms each at 1M cases (PostgreSQL)",
        "cases (synthetic rows)",
        100_000,
        module="api.bench.bench_queries",
        stores=("postgres",),
    ),
    "projections": Bench(
        "≥ 20,000 events/s rebuild on PostgreSQL", "events", 100_000, script="bench_projections.py"
    ),
    "feed": Bench(
        "≥ 20,000 events/s through GET /v1/events", "events", 100_000, script="bench_feed.py"
    ),
    "api": Bench(
        "p50/p95 with the engine alone beside", "(fixed: 1,000 commands)", 0, script="bench_api.py"
    ),
    "timers": Bench(
        "due lookup ≤ 100 ms per tick at 1M open clocks",
        "index rows",
        100_000,
        script="bench_timers.py",
    ),
    "http16": Bench(
        "p50/p95/p99 and commands/s, 16 concurrent HTTP clients (loopback)",
        "seconds",
        30,
        script="load",
    ),
    "http": Bench(
        "server CPU per request, as ratios in one run: GET and comment on a long case <= 1.3x a "
        "10-event case; GET <= 3x, a command <= 5x, list and board <= 4x a bare FastAPI GET /healthz",
        "events in the long case",
        1000,
        module="api.bench.bench_http",
    ),
    "scale": Bench(
        "serve --workers 2 vs 1, 16 clients: commands/s >= 1.5x; command p95 <= 3x p50 "
        "(pgbench beside)",
        "seconds per run",
        30,
        module="api.bench.bench_scale",
    ),
    "memory": Bench(
        "server RSS at 1M cases; no growth over 10 minutes of load",
        "minutes",
        10,
        script="bench_memory.py",
    ),
    "audit": Bench(
        "chain insert overhead; verification events/s", "events", 100_000, script="bench_audit.py"
    ),
    "proofs": Bench(
        "Merkle tree upkeep per event beside the chain alone (ratio); inclusion and consistency "
        "proof p95 <= 5 ms at 1M events",
        "events in the tree",
        1_000_000,
        module="api.bench.bench_proofs",
    ),
    "insert": Bench(
        "one PostgreSQL batch (events + hash chain) alone: wall and CPU per event, batches of 1/8/50",
        "batches timed",
        300,
        script="bench_insert.py",
        stores=("postgres",),
    ),
    "rollup": Bench(
        "province roll-up over 4 county stores: catch-up events/s, CPU/event, stats p95 (beside one "
        "county's own rebuild)",
        "events per county",
        25_000,
        script="bench_rollup.py",
    ),
}


def _print_rows(rows: list[dict]) -> None:
    for row in rows:
        target = f"   target {row['target']}" if row.get("target") is not None else ""
        extra = {
            k: v
            for k, v in row.items()
            if k not in {"name", "figure", "unit", "baseline", "baseline_name", "target"}
        }
        typer.echo(
            f"{row['name']:<40} {row['figure']:>10} {row['unit']:<9} | baseline {row['baseline']} "
            f"({row['baseline_name']}){target}  {extra}"
        )


def module_of(bench: Bench) -> str:
    """The packaged module that runs ``bench``."""
    return bench.module or f"api.bench.{(bench.script or '').removesuffix('.py')}"


def run_one(name: str, store: str, size: int | None) -> int:
    bench = BENCHES[name]
    if store not in bench.stores:
        typer.echo(f"== {name}: {store} not measured (only {', '.join(bench.stores)})")
        return 0
    typer.echo(
        f"== {name} on {store} (target: {bench.target}; size = {bench.size_means}) "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    if bench.module is not None:
        _print_rows(importlib.import_module(bench.module).run(store, size or bench.default_size))
        return 0
    postgres_url = read_settings("fengqiao bench").test_postgres_url  # FENGQIAO_TEST_POSTGRES_URL
    arguments = bench.arguments(store, size or bench.default_size, postgres_url)
    command = [sys.executable, "-m", module_of(bench), *arguments]
    return subprocess.run(command, check=False).returncode


def bench(
    name: str = typer.Argument(None, help=f"one of: {', '.join(BENCHES)} (default: all)"),
    store: str = typer.Option("postgres", "--store", help="sqlite or postgres"),
    size: int = typer.Option(
        None, "--size", help="data size; what it counts depends on the benchmark"
    ),
) -> None:
    """Run one benchmark, or all of them, printing each figure beside its baseline."""
    if name is not None and name not in BENCHES:
        raise typer.BadParameter(
            f"unknown benchmark {name!r}; one of {', '.join(BENCHES)}", param_hint="NAME"
        )
    if store not in ("sqlite", "postgres"):
        raise typer.BadParameter("sqlite or postgres", param_hint="--store")
    failed = [n for n in ([name] if name else list(BENCHES)) if run_one(n, store, size) != 0]
    if failed:
        typer.echo(f"failed: {', '.join(failed)}", err=True)
        raise typer.Exit(1)


def register(root: typer.Typer) -> None:
    root.command("bench")(bench)
