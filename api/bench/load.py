"""Loopback load test: a real `fengqiao serve` and asyncio aiohttp clients ramping
from ``--start`` to ``--end`` clients over ``--seconds``, mixing commands and queries.

Each client loops: report a case (Idempotency-Key), assign and accept it, comment on
it, and in between read the case, the case list, its history and a feed page. One
request in twenty is a deliberate conflict (a stale ``If-Match``) that must answer
412; every other answer must be 2xx. Prints a JSON summary: throughput, latencies per
operation (p50/p95/p99/max ms), status counts and errors.

    .venv/bin/python -m api.bench.load --seconds 300 --start 16 --end 64            # SQLite
    .venv/bin/python -m api.bench.load --seconds 300 --url 'postgresql://postgres@127.0.0.1:5432/test?schema=load1'
    .venv/bin/python -m api.bench.load --seconds 30 --start 16 --end 16 --servers 2 --url '…?schema=load2'
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

try:
    import aiohttp
except ImportError:  # an install without the extra
    raise SystemExit("the load benchmarks need aiohttp: pip install 'fengqiao[bench]'") from None

from api.bench.bench_http import process_cpu, store_cpu
from api.bench.county import DISPUTE, HAZARD, PETITION
from api.bench.server import Server, seeded_store

REPORTS: list[dict[str, Any]] = [DISPUTE, HAZARD, PETITION]
# More requests each loop, from a caller (api/bench/bench_memory.py): (client, results, client no., loop no.)
Extra = Callable[[aiohttp.ClientSession, "Results", int, int], Awaitable[None]]
# A client's CPU is on the same 2 cores as the servers and PostgreSQL: aiohttp took 0.10 ms of
# CPU a request where httpx took 1.65 (2026-12-07, 16 clients on a bare FastAPI route), a
# sixth of what the server itself spends on a command.


@dataclass(frozen=True)
class Answer:
    """A response as read whole: what the load checks of it."""

    status_code: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    conflicts: int = 0

    def record(
        self,
        op: str,
        started: float,
        response: Answer | None,
        expect: tuple[int, ...],
        error: str | None = None,
    ) -> None:
        self.latencies[op].append((time.perf_counter() - started) * 1000)
        status = response.status_code if response is not None else error
        self.statuses[f"{op} {status}"] += 1
        if response is None or response.status_code not in expect:
            text = response.text[:200] if response is not None else error
            self.errors.append(f"{op}: {status} {text}")
        elif response.status_code == 412:
            self.conflicts += 1


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 2) if ordered else 0.0


async def call(
    client: aiohttp.ClientSession,
    results: Results,
    op: str,
    method: str,
    path: str,
    expect: tuple[int, ...] = (200, 201),
    **kw: Any,
) -> Answer | None:
    started = time.perf_counter()
    try:
        async with client.request(method, path, **kw) as response:
            answer = Answer(response.status, await response.read())
    except (aiohttp.ClientError, TimeoutError) as error:
        results.record(op, started, None, expect, type(error).__name__)
        return None
    results.record(op, started, answer, expect)
    return answer


@dataclass
class Session:
    """One load client's calls, each timed and recorded under its operation's name, sent
    with ``auth`` unless ``headers`` are given; a ``key`` makes a POST idempotent."""

    client: aiohttp.ClientSession
    results: Results
    auth: dict[str, str]

    async def get(self, op: str, path: str, headers: dict[str, str] | None = None) -> Answer | None:
        return await call(self.client, self.results, op, "GET", path, headers=headers or self.auth)

    async def post(
        self, op: str, path: str, body: Any, key: str | None = None, **kw: Any
    ) -> Answer | None:
        keyed = {**self.auth, "Idempotency-Key": key} if key else self.auth
        headers = kw.pop("headers", None) or keyed
        return await call(
            self.client, self.results, op, "POST", path, json=body, headers=headers, **kw
        )


def client_session(base: str) -> aiohttp.ClientSession:
    """One load client's connection to ``base`` (kept alive), each request given 30 s."""
    return aiohttp.ClientSession(base, timeout=aiohttp.ClientTimeout(total=30))


async def one_client(
    n: int,
    base: str,
    tokens: dict[str, str],
    stop_at: float,
    results: Results,
    extra: Extra | None = None,
) -> None:
    admin = {"Authorization": f"Bearer {tokens['root']}"}
    feed = {"Authorization": f"Bearer {tokens['feed']}"}
    async with client_session(base) as client:
        session = Session(client, results, admin)
        i = 0
        while time.monotonic() < stop_at:
            i += 1
            if extra is not None:
                await extra(client, results, n, i)
            key = f"load-{n}-{i}-{uuid.uuid4().hex[:6]}"
            body = {**REPORTS[i % 3], "title": f"负载 {n}-{i}"}
            created = await session.post("report", "/v1/cases", body, key)
            if created is None or created.status_code != 201:
                continue
            case_id = created.json()["id"]
            await session.get("read", f"/v1/cases/{case_id}")
            await session.post(
                "assign", f"/v1/cases/{case_id}/assign", {"assignee": "zhao"}, key + "-a"
            )
            if i % 20 == 0:  # a deliberate conflict: the case is at version 2, not 1
                await session.post(
                    "stale",
                    f"/v1/cases/{case_id}/comment",
                    {"text": "stale"},
                    expect=(412,),
                    headers={**admin, "If-Match": '"1"'},
                )
            comment = {"text": f"进展 {i}"}
            await session.post("comment", f"/v1/cases/{case_id}/comment", comment, key + "-c")
            await session.get("history", f"/v1/cases/{case_id}/history")
            await session.get("list", "/v1/cases?limit=20")
            await session.get("feed", f"/v1/events?after={max(0, i * 7)}&limit=50", feed)


async def ramp(
    base: str | list[str],
    tokens: dict[str, str],
    start: int,
    end: int,
    seconds: float,
    extra: Extra | None = None,
) -> tuple[Results, float]:
    """Clients ramping from ``start`` to ``end``; with several ``base`` URLs (servers), client n
    talks to server n mod their number, as a round-robin proxy would spread connections."""
    bases = [base] if isinstance(base, str) else base
    results = Results()
    began = time.monotonic()
    stop_at = began + seconds
    tasks = []
    step = seconds / max(1, end - start + 1)
    for n in range(end):
        if n >= start:  # clients beyond the first ``start`` join evenly over the run
            await asyncio.sleep(max(0.0, began + (n - start + 1) * step - time.monotonic()))
        tasks.append(
            asyncio.create_task(
                one_client(n, bases[n % len(bases)], tokens, stop_at, results, extra)
            )
        )
    await asyncio.gather(*tasks)
    return results, time.monotonic() - began


COMMANDS = ("report", "assign", "comment", "stale")


def summary(results: Results, elapsed: float, store: str, start: int, end: int) -> dict[str, Any]:
    total = sum(len(v) for v in results.latencies.values())
    command_latencies = [ms for op in COMMANDS for ms in results.latencies.get(op, ())]
    commands = len(command_latencies)
    return {
        "store": store,
        "clients": f"{start}→{end}",
        "seconds": round(elapsed, 1),
        "requests": total,
        "requests_per_s": round(total / elapsed, 1),
        "commands_per_s": round(commands / elapsed, 1),
        "command_ms": {
            "p50": percentile(command_latencies, 50),
            "p95": percentile(command_latencies, 95),
            "p99": percentile(command_latencies, 99),
        },
        "latency_ms": {
            op: {
                "n": len(v),
                "p50": percentile(v, 50),
                "p95": percentile(v, 95),
                "p99": percentile(v, 99),
                "max": round(max(v), 1),
            }
            for op, v in sorted(results.latencies.items())
        },
        "deliberate_conflicts": results.conflicts,
        "errors": len(results.errors),
        "first_errors": results.errors[:10],
        "cpus": os.cpu_count(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }


def run(
    seconds: float,
    start: int,
    end: int,
    url: str | None = None,
    servers: int = 1,
    processes: int = 1,
    warmup: float = 0,
) -> dict[str, Any]:
    """Start ``servers`` servers on a fresh store (the first with the workers, the others
    ``--no-workers``, as docs/operations.md runs them), each of ``processes`` processes
    (``serve --workers N``), run the ramp (after ``warmup`` seconds of it not counted: a
    fresh process's first requests import and build what later ones reuse), stop; the summary."""
    folder = tempfile.mkdtemp(prefix="fq-load-")
    url = url or f"sqlite:///{folder}/fengqiao.db"
    tokens = seeded_store(url, [("root", "admin", "410928"), ("feed", "integrator", "410928")])
    started = []
    try:
        for n in range(servers):
            started.append(
                Server(
                    url,
                    workers=n == 0,
                    env={"FENGQIAO_LOG_LEVEL": "warning"},
                    processes=processes,
                )
            )
            started[-1].start(timeout=90)  # every process listening
        bases = [server.base for server in started]
        if warmup > 0:
            asyncio.run(ramp(bases, tokens, end, end, warmup))
        serving = [pid for server in started for pid in server.children()]
        cpu = (time.process_time(), sum(process_cpu(pid) for pid in serving), store_cpu())
        results, elapsed = asyncio.run(ramp(bases, tokens, start, end, seconds))
        used = (
            time.process_time() - cpu[0],
            sum(process_cpu(pid) for pid in serving) - cpu[1],
            store_cpu() - cpu[2],
        )
    finally:
        for server in started:
            server.stop()
    return {
        **summary(
            results, elapsed, "postgres" if url.startswith("postgres") else "sqlite", start, end
        ),
        "servers": servers,
        "processes": processes,
        # cores busy on average: is the server (or this one client process) what bounds the run?
        "client_cores": round(used[0] / elapsed, 2),
        "server_cores": round(used[1] / elapsed, 2),
        "store_cores": round(used[2] / elapsed, 2),  # PostgreSQL's processes on this host
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--start", type=int, default=16)
    parser.add_argument("--end", type=int, default=64)
    parser.add_argument("--url", default=None, help="store URL (default: a fresh SQLite file)")
    parser.add_argument(
        "--servers",
        type=int,
        default=1,
        help="`fengqiao serve` processes on the one store, clients spread over them",
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="processes of each server (serve --workers N)"
    )
    args = parser.parse_args()
    result = run(args.seconds, args.start, args.end, args.url, args.servers, args.processes)
    json.dump(result, sys.stdout, ensure_ascii=False, indent=2)
    print()
    sys.exit(1 if result["errors"] else 0)


if __name__ == "__main__":
    main()
