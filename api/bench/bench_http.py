"""Server CPU per HTTP request, as ratios within one run (issue 20).

Starts a bare FastAPI app (``GET /healthz`` only) and a real ``fengqiao serve``
(``--no-workers``: the request's own work, not the projections' catching up) under
the same uvicorn settings on loopback, drives each with sequential keep-alive
requests, and reads each server's CPU (user + system, every thread) from ``/proc``.
Every figure is a ratio to a baseline measured in the same run, so a noisy host
moves both sides:

* flat in case length: ``GET /v1/cases/{id}`` and ``POST …/comment`` on a long case
  (``size`` events, 1,000 by default) ≤ 1.3× the same on a 10-event case;
* per-request overhead: that ``GET`` ≤ 3×, a command ≤ 5×, the case list and the SLA
  board ≤ 4× the bare ``GET /healthz``.

    fengqiao bench http --store sqlite            # or: python -m api.bench.bench_http sqlite --size 1000
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

from api.bench.server import FENGQIAO, ROOT, Server, free_port

TICKS = os.sysconf("SC_CLK_TCK")
SHORT = 10
ROUNDS = 6
TARGETS = {
    "get_long": 1.3,
    "comment_long": 1.3,
    "get": 3.0,
    "comment": 5.0,
    "list": 4.0,
    "board": 4.0,
}
USERS = [("root", "admin", "410928")]


def process_cpu(pid: int) -> float:
    """CPU seconds a process's threads have run so far: each thread's ``schedstat``
    (nanoseconds; ``/proc/<pid>/stat`` counts in clock ticks, too coarse for a request),
    else ``stat``'s user + system."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except (FileNotFoundError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS


def store_cpu() -> float:
    """CPU seconds used so far by this host's PostgreSQL processes (0 without one): a
    backend that exits during a run takes its share with it, so this counts low, never high."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError, IndexError, ValueError):  # exited meanwhile
            if Path(f"/proc/{pid}/comm").read_text().strip() == "postgres":
                total += process_cpu(int(pid))
    return total


def bare_app() -> None:
    """The baseline: FastAPI with one route, served as ``fengqiao serve`` serves (api/cli/serve.py)."""
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[-1]), log_config=None, access_log=False)


class Bare:
    """The bare app in a subprocess."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "api.bench.bench_http", "--bare", str(self.port)]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(300):
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise TimeoutError("the bare FastAPI app did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def prepare(url: str, long_events: int) -> tuple[dict[str, str], str, str]:
    """The county, its users, a 10-event case and a ``long_events``-event one, written
    through the engine (projections caught up); (tokens, short id, long id)."""
    from api.bench.county import act, report, seed
    from engine.service import Fengqiao
    from engine.store import StoreConfig
    from engine.users import UserStore
    from projections import default_projections
    from projections.runner import ProjectionRunner

    engine = seed(Fengqiao(StoreConfig(url)))
    try:
        tokens = {
            name: UserStore(engine).add(name, role, region, by="bench")
            for name, role, region in USERS
        }
        ids = []
        for events in (SHORT, long_events):
            case_id = report(engine, "dispute").case_id
            for i in range(events - 1):
                act(engine, case_id, "comment", "wang", text=f"进展 {i}")
            ids.append(str(case_id))
        runner = ProjectionRunner(engine, default_projections())
        try:
            while runner.run_once():
                pass
        finally:
            runner.close()
    finally:
        engine.close()
    return tokens, ids[0], ids[1]


def cpu_per_request(pid: int, send: Callable[[], httpx.Response], requests: int) -> float:
    """The server's CPU per request (ms) over ``requests`` sequential requests, after a warm-up."""
    for _ in range(max(5, requests // 10)):
        send().raise_for_status()
    before = process_cpu(pid)
    for _ in range(requests):
        send().raise_for_status()
    return (process_cpu(pid) - before) / requests * 1000


def measure(url: str, long_events: int, requests: int) -> dict[str, float]:
    tokens, short_id, long_id = prepare(url, long_events)
    bare, server = Bare(), Server(url, workers=False)
    server.start(timeout=60)
    figures: dict[str, float] = {"load": os.getloadavg()[0]}
    try:
        headers = {"Authorization": f"Bearer {tokens['root']}"}
        with (
            httpx.Client(base_url=bare.base) as plain,
            httpx.Client(base_url=server.base, headers=headers, timeout=60) as client,
        ):
            assert server.process is not None
            pid, n = server.process.pid, iter(range(10**9))

            def comment(case_id: str) -> httpx.Response:
                return client.post(
                    f"/v1/cases/{case_id}/comment",
                    json={"text": "督办"},
                    headers={"Idempotency-Key": f"bench-{uuid.uuid4().hex}-{next(n)}"},
                )

            ops = [
                ("get", lambda: client.get(f"/v1/cases/{short_id}")),
                ("get_long", lambda: client.get(f"/v1/cases/{long_id}")),
                ("comment", lambda: comment(short_id)),
                ("comment_long", lambda: comment(long_id)),
                ("list", lambda: client.get("/v1/cases", params={"limit": 20})),
                ("board", lambda: client.get("/v1/sla/board")),
            ]
            # Interleaved rounds, the least figure of each: host noise lands on both sides of a
            # ratio. The first request kind after a pause costs more (measured: either case first
            # looked ~20% dearer), so each round starts the server's requests at another one.
            for round_ in range(ROUNDS):
                figures["bare"] = min(
                    figures.get("bare", float("inf")),
                    cpu_per_request(bare.process.pid, lambda: plain.get("/healthz"), requests),
                )
                turn = round_ % len(ops)
                for name, send in ops[turn:] + ops[:turn]:
                    figures[name] = min(
                        figures.get(name, float("inf")), cpu_per_request(pid, send, requests)
                    )
    finally:
        server.stop()
        bare.stop()
    figures["load"] = (figures["load"] + os.getloadavg()[0]) / 2
    return figures


def rows(figures: dict[str, float], store: str, long_events: int) -> list[dict]:
    """Each ratio with its baseline and target, as ``fengqiao bench`` prints them."""
    out = []
    for name, target in TARGETS.items():
        base = name.removesuffix("_long") if name.endswith("_long") else "bare"
        ratio = figures[name] / figures[base]
        out.append(
            {
                "name": f"{name} ({store})",
                "figure": f"{ratio:.2f}x",
                "unit": "server CPU",
                "baseline": f"{figures[base]:.2f} ms",
                "baseline_name": "10-event case" if base != "bare" else "bare FastAPI GET /healthz",
                "target": f"<= {target}x",
                "ms": round(figures[name], 3),
                "met": ratio <= target,
                "long_events": long_events,
                "load": round(figures["load"], 1),
            }
        )
    return out


def store_url(store: str, folder: str) -> str:
    if store == "postgres":
        from engine.settings import Settings

        return f"{Settings.from_environment().test_postgres_url}?schema=bench_http_{uuid.uuid4().hex[:6]}"
    return f"sqlite:///{folder}/bench_http.db"


def run(store: str = "sqlite", size: int = 1000, requests: int = 300) -> list[dict]:
    """``size``: events in the long case."""
    with tempfile.TemporaryDirectory(prefix="fq-bench-http-") as folder:
        url = store_url(store, folder)
        try:
            return rows(measure(url, size, requests), store, size) + pgbench_row(store)
        finally:
            if store == "postgres":
                drop_schema(url)


def pgbench_row(store: str) -> list[dict]:
    """PostgreSQL's own speed just now, beside the ratios: ``pgbench`` single-row inserts, one
    client (as the benchmark's one client), 3 s. Nothing on SQLite or without pgbench."""
    if store != "postgres":
        return []
    from api.bench.bench_write import pgbench_rate
    from engine.store import StoreConfig

    url = store_url(store, "")
    try:
        rate = pgbench_rate(StoreConfig(url), 1, 3)
    finally:
        drop_schema(url)
    if rate is None:
        return []
    return [
        {
            "name": "pgbench, 1 client (postgres)",
            "figure": round(rate["events_per_s"]),
            "unit": "tx/s",
            "baseline": "-",
            "baseline_name": "single-row INSERT transactions, same run",
            "target": None,
            "load": round(os.getloadavg()[0], 1),
        }
    ]


def drop_schema(url: str) -> None:
    import psycopg

    from engine.store import StoreConfig

    config = StoreConfig(url)
    with psycopg.connect(config.psycopg_url(), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{config.schema}" CASCADE')


def main() -> None:
    if "--bare" in sys.argv:
        bare_app()
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("store", nargs="?", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--size", type=int, default=1000, help="events in the long case")
    parser.add_argument("--requests", type=int, default=300, help="requests timed per figure")
    args = parser.parse_args()
    print(
        f"load average {os.getloadavg()[0]:.1f}; {' '.join(FENGQIAO)} serve --no-workers",
        flush=True,
    )
    for row in rows(
        measure(store_url(args.store, tempfile.mkdtemp()), args.size, args.requests),
        args.store,
        args.size,
    ) + pgbench_row(args.store):
        print(row, flush=True)


if __name__ == "__main__":
    main()
