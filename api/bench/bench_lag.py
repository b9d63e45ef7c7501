"""Benchmark: projection lag under a steady command rate — target p99 ≤ 500 ms at
500 commands/s for 60 s.

16 writer threads share one engine and issue commands at a fixed total rate (the
``bench_write`` case life: report, assign, accept, comments … close). The
projections run as they do in production: ``fengqiao worker --only projections``
in its own process. A probe polls the ``cases`` projection's position every 5 ms;
a command's lag is the time from its acknowledgement to the first poll that saw the
projection at or past its position. Baseline beside it: the achieved command rate
and the worker's own poll interval.

    .venv/bin/python api/bench/bench_lag.py --store postgres --seconds 60 --rate 500
"""

from __future__ import annotations

import argparse
import bisect
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from itertools import count
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("FENGQIAO_LOG_LEVEL", "WARNING")

from api.bench.bench_write import GRIDS, IN_FLIGHT, REPORT, STEPS, drop  # noqa: E402
from api.bench.county import actor, seed  # noqa: E402
from api.bench.stores import POSTGRES_URL  # noqa: E402
from domain.commands import Envelope, ReportCase  # noqa: E402
from engine.logs import configure_logging  # noqa: E402
from engine.service import Fengqiao  # noqa: E402
from engine.store import StoreConfig  # noqa: E402
from projections import default_projections  # noqa: E402
from projections.runner import ProjectionRunner  # noqa: E402

WRITERS = 16


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def measure(store: StoreConfig, seconds: float, rate: float) -> dict[str, float]:
    configure_logging()
    engine = seed(Fengqiao(store))
    observer = ProjectionRunner(engine, default_projections())
    observer.ensure()
    env = {**os.environ, "FENGQIAO_DATABASE_URL": store.url}
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "fengqiao"), "worker", "--only", "projections"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ready_by = time.perf_counter() + 60
    while observer.position("cases") < engine.head_position() and time.perf_counter() < ready_by:
        time.sleep(0.01)  # the worker is up and caught up before the clock starts
    acked: list[tuple[float, int]] = []
    seen: list[tuple[float, int]] = []  # (time, projection position) polls
    stop = threading.Event()
    ids, run = count(), uuid.uuid4().hex[:8]
    actors = {name: actor(name, engine) for name in ("wang", "zhao", "li")}
    began = time.perf_counter()
    interval = WRITERS / rate  # each writer's share of the rate

    def envelope(name: str) -> Envelope:
        return Envelope(actor=actors[name], command_id=f"lag-{run}-{next(ids)}")

    def writer(i: int) -> None:
        lives: list[list] = []
        due = began + i * interval / WRITERS
        while time.perf_counter() - began < seconds:
            lives = [life for life in lives if life[1] < len(STEPS)]
            due += interval
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            if len(lives) < IN_FLIGHT:
                body = ReportCase(**REPORT, region=GRIDS[(i + len(lives)) % len(GRIDS)])
                result = engine.report(body, envelope("wang"))
                lives.append([result.case_id, 0])
            else:
                life = lives[next(ids) % len(lives)]
                action, body, who = STEPS[life[1]]
                result = engine.do(life[0], action, body, envelope(who))
                life[1] += 1
            assert result.position is not None  # a recorded command has its position
            acked.append((time.perf_counter(), result.position))

    def probe() -> None:
        while not stop.is_set():
            seen.append((time.perf_counter(), observer.position("cases")))
            time.sleep(0.005)

    prober = threading.Thread(target=probe)
    prober.start()
    writers = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    try:
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join()
        wall = time.perf_counter() - began
        head = engine.head_position()
        deadline = time.perf_counter() + 60
        while observer.position("cases") < head and time.perf_counter() < deadline:
            time.sleep(0.01)
        time.sleep(0.02)
    finally:
        stop.set()
        prober.join()
        worker.terminate()
        worker.wait(20)
        observer.close()
        engine.close()
    times = [t for t, _ in seen]
    lags = []
    for acked_at, position in acked:
        start = bisect.bisect_left(times, acked_at)
        reached = next((t for t, p in seen[start:] if p >= position), None)
        lags.append(((reached or times[-1]) - acked_at) * 1000)
    return {
        "commands": len(acked),
        "commands_per_s": len(acked) / wall,
        "p50": percentile(lags, 50),
        "p95": percentile(lags, 95),
        "p99": percentile(lags, 99),
        "max": max(lags),
    }


def run(store: str = "postgres", size: int | None = None, rate: float = 500.0) -> list[dict]:
    seconds = float(size or 60)
    with tempfile.TemporaryDirectory() as folder:
        config = (
            StoreConfig(f"sqlite:///{folder}/lag.db")
            if store == "sqlite"
            else StoreConfig(f"{POSTGRES_URL}?schema=bench_lag_{uuid.uuid4().hex[:8]}")
        )
        try:
            result = measure(config, seconds, rate)
        finally:
            drop(config)
    return [
        {
            "name": f"projection lag {store} at {rate:.0f} commands/s",
            "figure": round(result["p99"], 1),
            "unit": "ms p99",
            "baseline": round(result["commands_per_s"]),
            "baseline_name": "commands/s achieved",
            "target": 500,
            "p50": round(result["p50"], 1),
            "p95": round(result["p95"], 1),
            "max": round(result["max"], 1),
            "commands": result["commands"],
            "seconds": seconds,
        }
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rate", type=float, default=500.0)
    args = parser.parse_args()
    for row in run(args.store, args.seconds, args.rate):
        print(row, flush=True)


if __name__ == "__main__":
    main()
