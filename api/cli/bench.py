"""``fengqiao bench [NAME] [--store sqlite|postgres] [--size N]``: the benchmark suite.

Each benchmark is a module in ``api/bench/`` (packaged, outside the test run) that
prints its figure beside a baseline measured in the same run; ``api/bench/benches.toml``
lists them, with their targets and sizes. Some expose ``run(store, size) -> list[dict]``
and are called in-process; the others (and ``http16``: ``api/bench/load.py`` held at 16
clients) are run as they are documented (their own command lines), their output passed
through. Figures and how to read them: ``docs/performance.md`` (the runs:
``docs/performance-log.md``).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tomllib
import uuid
from dataclasses import dataclass
from importlib import resources
from typing import Any

import typer

from api.cli.common import read_settings
from engine.logs import configure_logging
from engine.settings import DEFAULTS


@dataclass(frozen=True)
class Bench:
    """One benchmark of ``api/bench/benches.toml`` (what its fields mean: the file's head)."""

    target: str
    size_means: str
    size: int
    module: str | None = None  # api.bench.<module> has run(store, size)
    script: str | None = None  # else: python -m api.bench.<script> *arguments
    arguments: tuple[str, ...] = ()
    postgres_arguments: tuple[str, ...] = ()
    stores: tuple[str, ...] = ("sqlite", "postgres")

    def command_arguments(
        self, store: str, size: int, postgres_url: str = DEFAULTS.test_postgres_url
    ) -> list[str]:
        """The script's command line, ``{url}`` a fresh store of that kind."""
        url = (
            f"{postgres_url}?schema=bench_{self.script}_{uuid.uuid4().hex[:6]}"
            if store == "postgres"
            else f"sqlite:////tmp/fengqiao_bench_{uuid.uuid4().hex[:6]}.db"
        )
        extra = self.postgres_arguments if store == "postgres" else ()
        return [a.format(url=url, store=store, size=size) for a in (*self.arguments, *extra)]


def _benches() -> dict[str, Bench]:
    text = (resources.files("api.bench") / "benches.toml").read_text(encoding="utf-8")
    benches = {}
    for name, fields in tomllib.loads(text).items():
        given: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()
        }
        benches[name] = Bench(**given)
    return benches


BENCHES = _benches()


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
    return f"api.bench.{bench.module or bench.script}"


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
        # the engine's lines at info (every command of the seeding) would bury the figures
        configure_logging(level="warning")
        _print_rows(importlib.import_module(module_of(bench)).run(store, size or bench.size))
        return 0
    postgres_url = read_settings("fengqiao bench").test_postgres_url  # FENGQIAO_TEST_POSTGRES_URL
    arguments = bench.command_arguments(store, size or bench.size, postgres_url)
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
