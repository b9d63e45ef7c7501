"""Benchmark: the server's memory at 1M cases, and its growth over a 10-minute run.

What "at 1M cases" means here (real events for 1M cases would take hours through the
engine): a store whose **read model holds ``--cases`` cases** — the real cases of a real
event store of ``--events`` events (``bench_projections.generate``: disputes and petitions
through the domain, ~6 events a case, projected by the real projector), topped up with
synthetic case rows (``bench_queries.fill``, PostgreSQL only) — so the server answers real
case reads, time travel and commands on real cases, and its board, stats and overdue
queries run over 1M rows.

Then, in this order:

1. **Baseline**: a real ``fengqiao serve`` (with its workers) on an *empty* store, idle:
   its RSS once started.
2. **The run**: ``fengqiao serve`` with every worker it normally runs (projections, timers,
   routing, webhooks, audit: ``--workers``, threads of the one process) on the prepared store,
   on 127.0.0.1; ``--minutes`` of the loopback load of ``api/bench/load.py`` at a fixed
   ``--clients`` (report, read, assign, comment, history, list, feed), each loop adding
   (``extra``): comments on existing cases — a different one each time, so the case cache
   (``FENGQIAO_CASE_CACHE``, 2,000 cases) fills past its bound —, a report with a new
   person as party, a case read, time travel (``/state?version=``), one of the SLA board
   (township, county), region stats (township, county), the overdue list (page 1, page 2
   by cursor), and every 10th loop an SSE stream opened, 20 events read, closed.
   Every ``--interval`` s: VmRSS (``/proc/<pid>/status``) and PSS (``/proc/<pid>/smaps_rollup``)
   of the server and its children. Every ``--report-every`` minutes (default 1; SIGUSR1, the
   server started with ``FENGQIAO_MEMORY_DIR``) the server's own memory report
   (``api.cli.serve.memory_report``): each bounded cache's entry count, glibc malloc's bytes
   in use / free in its arenas / mmapped (``mallinfo2``), RSS by mapping (brk heap,
   anonymous, files), objects by type; printed as a table at the end.
3. **Figures**: RSS after start-up, after warm-up (``--warmup`` minutes of load), at the end,
   the peak; the growth slope after warm-up by least squares (MB/min) and over the last half
   of that window; the verdict (threshold ``--threshold`` MB/min, see below). With
   ``--tracemalloc`` (``FENGQIAO_TRACEMALLOC=1`` in the server: it slows it and costs memory,
   reported) a top-20 ``tracemalloc`` diff between the end of warm-up and the end of the run,
   by line, and the case cache's size at both moments.

Verdict: **no growth** if the slope after warm-up is ≤ the threshold; else **bounded** if
the slope over the last half of that window is ≤ the threshold and the case cache is at or
below its bound (a bounded cache was still filling); else **growth** (a leak to find: the
tracemalloc diff says where).

    .venv/bin/python api/bench/bench_memory.py --store postgres --minutes 10 --tracemalloc
    .venv/bin/python api/bench/bench_memory.py --store sqlite --minutes 2 --events 200000

The prepared store is kept (PostgreSQL schema ``bench_memory``, SQLite
``/tmp/fengqiao_bench_memory.db``) and reused by the next run (``--fresh`` drops it).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("FENGQIAO_LOG_LEVEL", "WARNING")

import aiohttp  # noqa: E402

from api.bench.bench_projections import generate  # noqa: E402
from api.bench.bench_queries import COUNTY, fill  # noqa: E402
from api.bench.bench_write import drop  # noqa: E402
from api.bench.county import DISPUTE, seed  # noqa: E402
from api.bench.load import Answer, Results, Session, ramp, summary  # noqa: E402
from api.bench.server import Server  # noqa: E402
from api.bench.stores import POSTGRES_URL  # noqa: E402
from engine.case_cache import DEFAULT_SIZE as CASE_CACHE_BOUND  # noqa: E402
from engine.service import Fengqiao  # noqa: E402
from engine.store import StoreConfig  # noqa: E402
from engine.time_source import SimulatedClock  # noqa: E402
from engine.users import UserStore  # noqa: E402
from projections import default_projections  # noqa: E402
from projections.runner import ProjectionRunner  # noqa: E402
from workflows.routing import Router  # noqa: E402
from workflows.timers import TimerService  # noqa: E402

TOWNSHIP = f"{COUNTY}-001"
COMMANDS = {"report", "assign", "comment", "stale", "comment_existing", "report_party"}
USERS = [("root", "admin", COUNTY), ("feed", "integrator", COUNTY)]


def default_url(store: str) -> str:
    return (
        f"{POSTGRES_URL}?schema=bench_memory"
        if store == "postgres"
        else "sqlite:////tmp/fengqiao_bench_memory.db"
    )


# -- the store ---------------------------------------------------------------------


def cases_table(runner: ProjectionRunner) -> str:
    generation = runner.db.query("SELECT generation FROM projection_tracking WHERE name = 'cases'")[
        0
    ]["generation"]
    return f"cases__g{generation}"


def prepare(url: str, events: int, cases: int, pool_size: int) -> dict[str, Any]:
    """Events, projections caught up, synthetic rows up to ``cases``; users and a pool of real case ids."""
    config = StoreConfig(url)
    app = Fengqiao(config, clock=SimulatedClock(datetime(2026, 1, 5, tzinfo=UTC)))
    runner = ProjectionRunner(app, default_projections())
    try:
        if app.head_position() == 0:
            seed(app)
        if app.head_position() < events:
            generate(app, events)
        began = time.monotonic()
        runner.ensure()
        runner.rebuild_stale()  # else the server would rebuild it, dropping the synthetic rows
        projected = runner.run_once(batch_size=5000)
        print(f"projected {projected:,} events in {time.monotonic() - began:.0f} s", flush=True)
        catch_up_workflows(app)
        table = cases_table(runner)
        count = runner.db.query(f"SELECT count(*) AS n FROM {table}")[0]["n"]
        if count < cases and config.is_postgres:
            began = time.monotonic()
            fill(runner, cases - count)
            print(
                f"filled {cases - count:,} synthetic case rows in {time.monotonic() - began:.0f} s",
                flush=True,
            )
        # real cases have UUIDs (with dashes), the synthetic ones md5 hex ids
        pool = [
            row["case_id"]
            for row in runner.db.query(
                f"SELECT case_id FROM {table} WHERE case_id LIKE ? AND version >= 3 ORDER BY position DESC LIMIT ?",
                ("%-%", pool_size),
            )
        ]
        figures = {
            "events": app.head_position(),
            "cases": runner.db.query(f"SELECT count(*) AS n FROM {table}")[0]["n"],
            "real_cases": runner.db.query(
                f"SELECT count(*) AS n FROM {table} WHERE case_id LIKE ?", ("%-%",)
            )[0]["n"],
        }
        users = UserStore(app)
        tokens = {name: users.add(name, role, region, by="bench") for name, role, region in USERS}
        return {**figures, "pool": pool, "tokens": tokens}
    finally:
        runner.close()
        app.close()


def catch_up_workflows(app: Fengqiao) -> None:
    """The timer index and the router at the head, as a running server keeps them (else the
    loaded server would spend its run reading the generated history)."""
    began = time.monotonic()
    timers = TimerService(app)
    try:
        indexed = timers.runner.run_once(batch_size=5000)
    finally:
        timers.close()
    router = Router(app)
    try:
        routed = router.run_once(batch=5000)
    finally:
        router.close()
    print(
        f"timer index +{indexed:,} events, router +{routed:,} in {time.monotonic() - began:.0f} s",
        flush=True,
    )


# -- memory of a process tree --------------------------------------------------------


def children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                for child in map(int, f.read().split()):
                    found += [child, *children(child)]
    except (FileNotFoundError, ProcessLookupError):
        pass
    return found


def memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, Pss) of one process in KiB; (0, 0) once it is gone."""
    return field(f"/proc/{pid}/status", "VmRSS:"), field(f"/proc/{pid}/smaps_rollup", "Pss:")


def field(path: str, name: str) -> int:
    """The first number on the line of ``path`` that starts with ``name`` (0 if none)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(name):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


class Sampler:
    """Every ``interval`` s in a thread: (seconds since start, RSS MB, PSS MB, children's RSS MB)."""

    def __init__(self, pid: int, interval: float) -> None:
        self.pid, self.interval = pid, interval
        self.began = time.monotonic()
        self.samples: list[tuple[float, float, float, float]] = []
        self.threads: list[int] = []  # the server's thread count at each sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> tuple[float, float, float, float]:
        rss, pss = memory_kb(self.pid)
        kids = sum(memory_kb(child)[0] for child in children(self.pid))
        row = (time.monotonic() - self.began, rss / 1024, pss / 1024, kids / 1024)
        self.samples.append(row)
        self.threads.append(field(f"/proc/{self.pid}/status", "Threads:"))
        return row

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> Sampler:
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def at(self, seconds: float) -> float:
        """RSS (MB, with children) of the sample nearest ``seconds``."""
        row = min(self.samples, key=lambda s: abs(s[0] - seconds))
        return round(row[1] + row[3], 1)

    def slope(self, start: float, end: float) -> float:
        """Least-squares growth of RSS (with children), MB per minute, over [start, end] s."""
        window = [s for s in self.samples if start <= s[0] <= end]
        if len(window) < 3:
            return float("nan")
        fitted = statistics.linear_regression(
            [s[0] / 60 for s in window], [s[1] + s[3] for s in window]
        )
        return round(fitted.slope, 2)


# -- the load ------------------------------------------------------------------------


def extra_requests(pool: list[str], tokens: dict[str, str], comments: int):
    """The requests each load loop adds to api/bench/load.py's mix (see the module doc)."""
    admin = {"Authorization": f"Bearer {tokens['root']}"}
    feed = {"Authorization": f"Bearer {tokens['feed']}"}
    turn = itertools.count()
    cursor: dict[str, str | None] = {"next": None}
    queries: list[tuple[str, str | None]] = [
        ("board_township", f"/v1/sla/board?region={TOWNSHIP}"),
        ("overdue_page1", f"/v1/cases?region={COUNTY}&overdue=true&limit=50"),
        ("stats_township", f"/v1/regions/{TOWNSHIP}/stats?from=2025-01-01&to=2025-12-31"),
        ("overdue_page2", None),
        ("board_county", f"/v1/sla/board?region={COUNTY}"),
        ("stats_county", f"/v1/regions/{COUNTY}/stats?from=2025-01-01&to=2025-12-31"),
    ]

    async def extra(client: aiohttp.ClientSession, results: Results, n: int, i: int) -> None:
        session = Session(client, results, admin)
        for _ in range(
            comments
        ):  # a different existing case each time: the case cache passes its bound
            case_id = pool[next(turn) % len(pool)]
            comment = {"text": f"回访 {n}-{i}"}
            await session.post(
                "comment_existing", f"/v1/cases/{case_id}/comment", comment, uuid.uuid4().hex
            )
        person = f"{n:03d}{i:07d}"  # a new person each time: their key enters the key cache
        party = {
            "name": f"当事人{person}",
            "role": "applicant",
            "phone": f"138{person[-8:]}",
            "id_number": f"41092819900101{person[-4:]}",
        }
        report = {**DISPUTE, "title": f"纠纷 {person}", "parties": [party]}
        created = await session.post("report_party", "/v1/cases", report, uuid.uuid4().hex)
        if created is not None and created.status_code == 201:
            await session.get("read_party", f"/v1/cases/{created.json()['id']}")
        case_id = pool[next(turn) % len(pool)]
        await session.get("read_existing", f"/v1/cases/{case_id}")
        await session.get("time_travel", f"/v1/cases/{case_id}/state?version=3")
        name, path = queries[(n + i) % len(queries)]
        if path is None:
            path = (
                f"/v1/cases?region={COUNTY}&overdue=true&limit=50&cursor={cursor['next']}"
                if cursor["next"]
                else queries[1][1]
            )
            assert path is not None  # queries[1] has its path
        answer = await session.get(name, path)
        if name == "overdue_page1" and answer is not None and answer.status_code == 200:
            cursor["next"] = answer.json().get("next_cursor")
        if i % 10 == 0:
            await sse(client, results, feed, after=(n * 997 + i * 131) % 50_000)

    return extra


async def sse(
    client: aiohttp.ClientSession, results: Results, headers: dict[str, str], after: int
) -> None:
    """Open the event stream, read 20 events (at most 5 s), close it."""
    started = time.perf_counter()
    try:
        async with client.get(f"/v1/events/stream?after={after}", headers=headers) as response:
            seen = 0

            async def read() -> None:
                nonlocal seen
                async for line in response.content:
                    if line.startswith(b"id:"):
                        seen += 1
                        if seen >= 20:
                            return

            if response.status == 200:
                try:
                    await asyncio.wait_for(read(), timeout=5)
                except TimeoutError:
                    pass
            results.record("sse", started, Answer(response.status, b""), (200,))
    except aiohttp.ClientError as error:
        results.record("sse", started, None, (200,), type(error).__name__)


# -- the runs ----------------------------------------------------------------------------


def baseline(store: str, seconds: float = 20) -> dict[str, Any]:
    """An idle server with its workers on an empty store: RSS once started."""
    url = (
        f"{POSTGRES_URL}?schema=bench_memory_empty_{uuid.uuid4().hex[:6]}"
        if store == "postgres"
        else f"sqlite:///{tempfile.mkdtemp(prefix='fq-mem-')}/empty.db"
    )
    server = Server(url, env={"FENGQIAO_LOG_LEVEL": "warning"})
    server.start(timeout=60)
    sampler = Sampler(server.pid, 2).start()
    try:
        time.sleep(seconds)
    finally:
        sampler.stop()
        server.stop()
        drop(StoreConfig(url))
    return {
        "rss_mb_started": sampler.at(0),
        "rss_mb_idle": sampler.at(seconds),
        "pss_mb_idle": round(sampler.samples[-2][2], 1),
    }


def run(
    store: str,
    url: str,
    minutes: float,
    clients: int,
    interval: float,
    warmup: float,
    comments: int,
    use_tracemalloc: bool,
    prepared: dict[str, Any],
    server_env: dict[str, str],
    report_every: float = 1.0,
) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="fq-mem-trace-"))
    env = {"FENGQIAO_LOG_LEVEL": "warning", "FENGQIAO_MEMORY_DIR": str(folder), **server_env}
    if use_tracemalloc:
        env |= {"FENGQIAO_TRACEMALLOC": "1", "FENGQIAO_TRACEMALLOC_DIR": str(folder)}
    server = Server(url, env=env)
    server.start(timeout=180)
    pid = server.pid
    sampler = Sampler(pid, interval).start()
    time.sleep(10)  # idle, started
    started_rss = sampler.at(10)
    load_began = sampler.sample()[0]
    timer = (
        threading.Timer(warmup * 60, lambda: os.kill(pid, signal.SIGUSR2))
        if use_tracemalloc
        else None
    )
    if timer is not None:
        timer.start()
    reporter = Reporter(pid, sampler, report_every * 60).start() if report_every > 0 else None
    try:
        results, elapsed = asyncio.run(
            ramp(
                server.base,
                prepared["tokens"],
                clients,
                clients,
                minutes * 60,
                extra_requests(prepared["pool"], prepared["tokens"], comments),
            )
        )
        load_ended = sampler.sample()[0]
        if reporter is not None:
            reporter.stop()
        if use_tracemalloc:
            os.kill(pid, signal.SIGUSR2)
            wait_for(folder / "snapshot-2.json", 300)
    finally:
        if timer is not None:
            timer.cancel()
        if reporter is not None:
            reporter.stop()
        sampler.stop()
        server.stop()
    load = summary(results, elapsed, store, clients, clients)
    warm = load_began + warmup * 60
    half = warm + (load_ended - warm) / 2
    slope, late_slope = sampler.slope(warm, load_ended), sampler.slope(half, load_ended)
    figures = {
        "rss_mb_started": started_rss,
        "rss_mb_after_warmup": sampler.at(warm),
        "rss_mb_end": sampler.at(load_ended),
        "rss_mb_peak": round(max(s[1] + s[3] for s in sampler.samples), 1),
        "pss_mb_end": round(min(sampler.samples, key=lambda s: abs(s[0] - load_ended))[2], 1),
        "children_rss_mb_max": round(max(s[3] for s in sampler.samples), 1),
        "threads_started_max": (sampler.threads[1], max(sampler.threads)),
        "slope_mb_per_min": slope,
        "slope_window_min": round((load_ended - warm) / 60, 1),
        "late_slope_mb_per_min": late_slope,
        "samples": [(round(t, 1), round(rss + kids, 1)) for t, rss, _, kids in sampler.samples],
        "load": {
            k: load[k]
            for k in (
                "requests",
                "requests_per_s",
                "commands_per_s",
                "errors",
                "first_errors",
                "load_avg",
            )
        },
        "latency_p95_ms": {op: v["p95"] for op, v in load["latency_ms"].items()},
        "requests_by_op": {op: v["n"] for op, v in load["latency_ms"].items()},
        "all_commands_per_s": round(
            sum(v["n"] for op, v in load["latency_ms"].items() if op in COMMANDS) / elapsed, 1
        ),
    }
    if use_tracemalloc:
        figures["tracemalloc"] = traced_diff(folder)
    if reporter is not None:
        figures["reports"] = reporter.collect(folder)
    return figures


class Reporter:
    """Every ``every`` s of the load (and at its start): SIGUSR1 to the server, which writes
    its memory report (``api.cli.serve.memory_report``: cache sizes, malloc totals, RSS by
    mapping, traced heap) as ``report-<n>.json``; the RSS sampled at that moment is kept
    beside it."""

    def __init__(self, pid: int, sampler: Sampler, every: float) -> None:
        self.pid, self.sampler, self.every = pid, sampler, every
        self.sent: list[tuple[float, float]] = []  # (seconds since the sampler began, RSS MB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _send(self) -> None:
        t, rss, _, kids = self.sampler.sample()
        self.sent.append((round(t, 1), round(rss + kids, 1)))
        os.kill(self.pid, signal.SIGUSR1)

    def _run(self) -> None:
        self._send()
        while not self._stop.wait(self.every):
            self._send()

    def start(self) -> Reporter:
        self._thread.start()
        return self

    def stop(self) -> None:
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            self._send()  # the last, at the end of the load
            time.sleep(3)

    def collect(self, folder: Path) -> list[dict[str, Any]]:
        rows = []
        for n, (t, rss) in enumerate(self.sent, 1):
            path = folder / f"report-{n}.json"
            wait_for(path, 30)
            if path.exists():
                rows.append({"t_s": t, "rss_mb": rss, **json.loads(path.read_text())})
        return rows


def report_table(rows: list[dict[str, Any]]) -> str:
    """The memory reports as a table (MB; cache entry counts)."""
    lines = [
        "t min | RSS | traced+tm | malloc in use / free / mmapped | rss heap / anon / file | "
        "case cache | person keys | feed whereabouts | decoder values | gc objects"
    ]
    mb = 1024 * 1024
    for r in rows:
        m, k, c = r.get("malloc", {}), r.get("rss_kb", {}), r.get("caches", {})
        traced = (
            f"{r['traced'] / mb:.1f}+{r['tracemalloc_overhead'] / mb:.1f}" if "traced" in r else "-"
        )
        lines.append(
            f"{r['t_s'] / 60:5.1f} | {r['rss_mb']:.1f} | {traced} | {m.get('uordblks', 0) / mb:.1f} / "
            f"{m.get('fordblks', 0) / mb:.1f} / {m.get('hblkhd', 0) / mb:.1f} | {k.get('heap', 0) / 1024:.1f} / "
            f"{k.get('anon', 0) / 1024:.1f} / {k.get('file', 0) / 1024:.1f} | {r.get('case_cache')} | "
            f"{r.get('person_keys')} | {c.get('feed_whereabouts')} | {c.get('decoder_values')} | {r.get('gc_objects')}"
        )
    return "\n".join(lines)


def wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.5)


def traced_diff(folder: Path) -> dict[str, Any]:
    """Top 20 lines by growth of live traced memory from snapshot 1 (warm-up) to 2 (end)."""
    sizes = [json.loads((folder / f"snapshot-{n}.json").read_text()) for n in (1, 2)]
    ignore = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
        tracemalloc.Filter(False, "<unknown>"),
    ]
    first, last = (
        tracemalloc.Snapshot.load(str(folder / f"snapshot-{n}.tracemalloc")).filter_traces(ignore)
        for n in (1, 2)
    )
    top = last.compare_to(first, "lineno")[:20]
    return {
        "warmup": sizes[0],
        "end": sizes[1],
        "top20": [
            {
                "where": f"{stat.traceback[0].filename.removeprefix(str(Path.cwd()) + '/')}:{stat.traceback[0].lineno}",
                "kb_diff": round(stat.size_diff / 1024, 1),
                "kb": round(stat.size / 1024, 1),
                "blocks_diff": stat.count_diff,
            }
            for stat in top
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument(
        "--url", default=None, help="default: schema bench_memory / /tmp/fengqiao_bench_memory.db"
    )
    parser.add_argument(
        "--cases", type=int, default=1_000_000, help="case rows in the read model (PostgreSQL)"
    )
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="events in the real event store"
    )
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument(
        "--warmup", type=float, default=None, help="minutes (default: 2, or a fifth of the run)"
    )
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument(
        "--comments", type=int, default=3, help="comments on existing cases each loop"
    )
    parser.add_argument("--interval", type=float, default=5, help="seconds between RSS samples")
    parser.add_argument("--threshold", type=float, default=1.0, help="MB/min: more is growth")
    parser.add_argument(
        "--tracemalloc", action="store_true", help="FENGQIAO_TRACEMALLOC=1 in the server"
    )
    parser.add_argument(
        "--report-every",
        type=float,
        default=1.0,
        help="minutes between the server's memory reports (SIGUSR1; 0: none)",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="more environment for the loaded server (e.g. MALLOC_ARENA_MAX=2)",
    )
    parser.add_argument("--prepare-only", action="store_true")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--fresh", action="store_true", help="drop the prepared store first")
    args = parser.parse_args()
    url = args.url or default_url(args.store)
    if args.fresh:
        drop(StoreConfig(url))
    warmup = args.warmup if args.warmup is not None else min(2.0, args.minutes / 5)
    prepared = prepare(url, args.events, args.cases, pool_size=50_000)
    info = {k: v for k, v in prepared.items() if k not in ("pool", "tokens")}
    print(
        f"store {args.store}: {info['events']:,} events, {info['cases']:,} cases in the read model "
        f"({info['real_cases']:,} from events)",
        flush=True,
    )
    if args.prepare_only:
        return
    print(f"uptime before: {os.getloadavg()}", flush=True)
    base = {} if args.no_baseline else baseline(args.store)
    figures = run(
        args.store,
        url,
        args.minutes,
        args.clients,
        args.interval,
        warmup,
        args.comments,
        args.tracemalloc,
        prepared,
        dict(item.split("=", 1) for item in args.server_env),
        args.report_every,
    )
    last_report = (figures.get("reports") or [{}])[-1]
    bounded = (
        figures["late_slope_mb_per_min"] <= args.threshold
        and figures.get("tracemalloc", {}).get("end", last_report).get("case_cache", 0)
        <= CASE_CACHE_BOUND
    )
    verdict = (
        "no growth"
        if figures["slope_mb_per_min"] <= args.threshold
        else "bounded (a bounded cache still filling)"
        if bounded
        else "growth"
    )
    result = {
        "store": args.store,
        **info,
        "minutes": args.minutes,
        "warmup_min": warmup,
        "clients": args.clients,
        "tracemalloc_on": args.tracemalloc,
        "server_env": args.server_env,
        "baseline_idle_empty_store": base,
        **figures,
        "threshold_mb_per_min": args.threshold,
        "verdict": verdict,
        "load_average_after": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    json.dump(result, sys.stdout, ensure_ascii=False, indent=1)
    print()
    if figures.get("reports"):
        print(report_table(figures["reports"]), flush=True)
    print(
        f"RESULT store={args.store} cases={info['cases']} events={info['events']} "
        f"baseline_idle_rss_mb={base.get('rss_mb_idle')} started={figures['rss_mb_started']} "
        f"warm={figures['rss_mb_after_warmup']} end={figures['rss_mb_end']} peak={figures['rss_mb_peak']} "
        f"slope={figures['slope_mb_per_min']} MB/min over {figures['slope_window_min']} min "
        f"(late {figures['late_slope_mb_per_min']}) threshold={args.threshold} verdict={verdict} "
        f"requests={figures['load']['requests']} errors={figures['load']['errors']}",
        flush=True,
    )


if __name__ == "__main__":
    main()
