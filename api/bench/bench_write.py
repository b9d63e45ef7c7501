"""Benchmark: write throughput — commands through the application service.

Each writer (a thread sharing one ``Fengqiao``, as the HTTP server's workers do)
takes cases through a realistic life, four cases interleaved at a time: report,
assign, accept, comments, whistle, check-in, mediate, resolve, close (18 commands,
18 events a case). Measured with 1 writer, 16 writers in one process, and 16
writers in two engine processes (as ``uvicorn --workers 2`` would run the API);
figures are events/s (the head position moved, over wall time), with the engine
process's and its PostgreSQL backends' CPU per event.

Baselines in the same run, on the same store:

* the eventsourcing library's own Application saving a trivial aggregate, one
  event per save (its recorder takes the same EXCLUSIVE table lock);
* PostgreSQL only: ``pgbench`` single-row inserts (``-c 1`` and ``-c 16``).

    .venv/bin/python api/bench/bench_write.py --store postgres --seconds 10
    .venv/bin/fengqiao bench write --store sqlite
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from itertools import count
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("FENGQIAO_LOG_LEVEL", "WARNING")

from eventsourcing.application import Application  # noqa: E402
from eventsourcing.domain import Aggregate, event  # noqa: E402

from api.bench.county import PLAIN_DISPUTE, actor, seed  # noqa: E402
from api.bench.stores import bench_store, drop_schema  # noqa: E402
from domain.commands import Envelope, ReportCase  # noqa: E402
from engine.logs import configure_logging  # noqa: E402
from engine.service import Fengqiao  # noqa: E402
from engine.store import StoreConfig  # noqa: E402

IN_FLIGHT = 4  # cases each writer interleaves
GRIDS = ["410928-001-007-03", "410928-001-008-01", "410928-002-001-01"]
REPORT = {k: v for k, v in PLAIN_DISPUTE.items() if k != "region"}  # each writer its grid
STEPS = [
    ("assign", {"assignee": "zhao"}, "li"),
    ("accept", {}, "zhao"),
    *[("comment", {"text": f"第{n}次走访：已电话联系当事人"}, "zhao") for n in range(1, 10)],
    ("whistle", {"departments": ["wz-tjh"], "reason": "联合处置"}, "zhao"),
    ("check-in", {"department": "wz-tjh"}, "zhao"),
    ("comment", {"text": "已上门走访"}, "wang"),
    ("mediate", {"outcome": "agreed", "summary": "协商一致", "agreement": "停止施工"}, "zhao"),
    ("resolve", {"resolution": "协议履行"}, "zhao"),
    ("close", {}, "li"),
]
WRITERS = ((1, 1), (16, 1), (16, 2))  # (writer threads, engine processes)


# -- stores ---------------------------------------------------------------------


def drop(store: StoreConfig) -> None:
    drop_schema(store)
    if not store.is_postgres:
        store.sqlite_path.unlink(missing_ok=True)


def threads(writers: int, work) -> float:
    """Run ``work(i)`` on ``writers`` threads; return the wall seconds."""
    failures: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            work(i)
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)

    pool = [threading.Thread(target=guarded, args=(i,)) for i in range(writers)]
    began = time.perf_counter()
    if writers == 1:  # on this thread (profilers see it)
        work(0)
        return time.perf_counter() - began
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if failures:
        raise failures[0]
    return time.perf_counter() - began


# -- the engine -------------------------------------------------------------------


def backend_cpu(engine: Fengqiao) -> dict[int, float]:
    """CPU seconds so far of the PostgreSQL backends behind the engine's idle pooled
    connections and its writing connection (the server runs on this host; {} for SQLite)."""
    pool = getattr(engine.recorder.datastore, "pool", None)
    if pool is None or not engine.store.is_postgres:
        return {}
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    held = getattr(
        engine.recorder, "_held", None
    )  # the connection kept out of the pool for writing
    for conn in [*pool._pool, *([held] if held is not None else [])]:  # noqa: SLF001 - a benchmark's look inside
        try:
            stat = Path(f"/proc/{conn.info.backend_pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[conn.info.backend_pid] = (int(stat[11]) + int(stat[12])) / ticks
    return seconds


def engine_rate(
    store: StoreConfig,
    writers: int,
    seconds: float,
    seeded: bool = False,
    tune: Callable[[Fengqiao], None] | None = None,
) -> dict[str, float]:
    """Events/s written by ``writers`` threads driving cases through one engine (``tune``:
    a change to the engine before it writes, for a comparison such as bench_notify's)."""
    configure_logging()
    engine = (
        Fengqiao(store, env={"CREATE_TABLE": "n"}) if seeded else seed(Fengqiao(store))
    )  # no DDL races
    if tune is not None:
        tune(engine)
    envelopes = {name: actor(name, engine) for name in ("wang", "zhao", "li")}
    ids = count()
    run = uuid.uuid4().hex[:8]
    before = engine.head_position()
    commands = [0] * writers
    deadline = time.perf_counter() + seconds

    def envelope(name: str) -> Envelope:
        return Envelope(actor=envelopes[name], command_id=f"w-{run}-{next(ids)}")

    def writer(i: int) -> None:
        lives: list[list] = []
        while True:
            lives = [life for life in lives if life[1] < len(STEPS)]
            if time.perf_counter() < deadline:
                while len(lives) < IN_FLIGHT:
                    body = ReportCase(**REPORT, region=GRIDS[(i + len(lives)) % len(GRIDS)])
                    lives.append([engine.report(body, envelope("wang")).case_id, 0])
                    commands[i] += 1
            if not lives:
                return
            for life in lives:
                action, body, who = STEPS[life[1]]
                engine.do(life[0], action, body, envelope(who))
                life[1] += 1
                commands[i] += 1

    groups, members, cpu = (
        engine.group_commit.groups,
        engine.group_commit.members,
        time.process_time(),
    )
    backends = backend_cpu(engine)
    wall = threads(writers, writer)
    cpu = time.process_time() - cpu
    backends_after = backend_cpu(engine)
    pg_cpu = sum(t - backends.get(pid, 0.0) for pid, t in backends_after.items())
    events = engine.head_position() - before
    groups, members = engine.group_commit.groups - groups, engine.group_commit.members - members
    engine.close()
    return {
        "events": events,
        "commands": sum(commands),
        "seconds": wall,
        "events_per_s": events / wall,
        "cpu_us_per_event": 1e6 * cpu / max(events, 1),
        "saves_per_commit": members / max(groups, 1),
        "pg_cpu_us_per_event": 1e6 * pg_cpu / max(events, 1),
        "cpu_seconds": cpu,
        "pg_cpu_seconds": pg_cpu,
        "groups": groups,
        "members": members,
    }


def engine_rate_processes(
    store: StoreConfig, writers: int, seconds: float, processes: int
) -> dict[str, float]:
    """The same, with the writers split over ``processes`` engine processes (as
    ``uvicorn --workers`` would run the API); each process groups its own commits."""
    import multiprocessing

    engine = seed(Fengqiao(store))
    before = engine.head_position()
    engine.close()  # no open connections across the fork
    began = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        parts = pool.starmap(
            engine_rate, [(store, writers // processes, seconds, True)] * processes
        )
    wall = time.perf_counter() - began
    engine = Fengqiao(store)
    events = engine.head_position() - before
    engine.close()
    cpu, pg_cpu = sum(p["cpu_seconds"] for p in parts), sum(p["pg_cpu_seconds"] for p in parts)
    return {
        "events": events,
        "commands": sum(p["commands"] for p in parts),
        "seconds": wall,
        "events_per_s": events / wall,
        "cpu_us_per_event": 1e6 * cpu / max(events, 1),
        "saves_per_commit": sum(p["members"] for p in parts)
        / max(sum(p["groups"] for p in parts), 1),
        "pg_cpu_us_per_event": 1e6 * pg_cpu / max(events, 1),
    }


# -- baselines --------------------------------------------------------------------


class Counter(Aggregate):
    """The library baseline's trivial aggregate."""

    @event("Incremented")
    def increment(self) -> None:
        pass


def library_rate(store: StoreConfig, writers: int, seconds: float) -> dict[str, float]:
    """Events/s of eventsourcing's own Application and recorder, one event per save."""
    store.prepare()
    env = {k: v for k, v in store.eventsourcing_env().items() if k != "APPLICATION_RECORDER_TOPIC"}
    if not store.is_postgres:
        env["SQLITE_DBNAME"] = str(store.sqlite_path.with_name("library.db"))
    library: Application[uuid.UUID] = Application(env=env)
    saved = [0] * writers
    deadline = time.perf_counter() + seconds

    def writer(i: int) -> None:
        counters = [Counter() for _ in range(IN_FLIGHT)]
        while time.perf_counter() < deadline:
            for counter in counters:
                library.save(counter)
                counter.increment()
                saved[i] += 1

    wall = threads(writers, writer)
    library.close()
    return {"events": sum(saved), "seconds": wall, "events_per_s": sum(saved) / wall}


def pgbench_rate(store: StoreConfig, clients: int, seconds: float) -> dict[str, float] | None:
    """Single-row insert transactions per second (``pgbench``), or None without it."""
    if shutil.which("pgbench") is None:
        return None
    import psycopg

    table = f'"{store.schema}".pgbench_rows'
    with psycopg.connect(store.psycopg_url(), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{store.schema}"')
        conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (id BIGSERIAL PRIMARY KEY, body TEXT)")
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(f"INSERT INTO {table} (body) VALUES ('x');\n")
    try:
        done = subprocess.run(
            [
                "pgbench",
                "-n",
                "-f",
                script.name,
                "-c",
                str(clients),
                "-j",
                str(min(clients, 2)),
                "-T",
                str(max(1, round(seconds))),
                store.psycopg_url(),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.unlink(script.name)
    for line in done.stdout.splitlines():
        if line.startswith("tps ="):
            return {"events_per_s": float(line.split()[2])}
    return None


# -- the suite entry point ---------------------------------------------------------


def run(store: str = "postgres", size: int | None = None, seconds: float = 10.0) -> list[dict]:
    """Rows of figures: the engine, the library and pgbench, for 1 and 16 writers."""
    seconds = float(size) if size else seconds  # --size is the seconds per measurement here
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for writers, processes in WRITERS:
            stores = [
                bench_store(store, Path(folder), f"e{writers}", prefix="bench_w"),
                bench_store(store, Path(folder), f"l{writers}", prefix="bench_w"),
            ]
            try:
                engine = (
                    engine_rate(stores[0], writers, seconds)
                    if processes == 1
                    else engine_rate_processes(stores[0], writers, seconds, processes)
                )
                library = library_rate(stores[1], writers, seconds)
                pg = pgbench_rate(stores[1], writers, seconds) if store == "postgres" else None
            finally:
                for one in stores:
                    drop(one)
            rows.append(
                {
                    "name": f"write {store} {writers} writer{'s' if writers > 1 else ''}"
                    + (f" in {processes} processes" if processes > 1 else ""),
                    "figure": round(engine["events_per_s"]),
                    "unit": "events/s",
                    "baseline": round(library["events_per_s"]),
                    "baseline_name": "eventsourcing default",
                    "ratio": engine["events_per_s"] / library["events_per_s"],
                    "pgbench_tps": round(pg["events_per_s"]) if pg else None,
                    "commands": engine["commands"],
                    "events": engine["events"],
                    "cpu_us_per_event": round(engine["cpu_us_per_event"]),
                    "pg_cpu_us_per_event": round(engine["pg_cpu_us_per_event"])
                    if store == "postgres"
                    else None,
                    "saves_per_commit": round(engine["saves_per_commit"], 1),
                    "target": 3000 if (store, writers) == ("postgres", 16) else None,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    for row in run(args.store, seconds=args.seconds):
        print(row, flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
