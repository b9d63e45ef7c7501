"""Throughput from more processes: ``fengqiao serve --workers 1`` against ``--workers 2``
(issue 20, target 3), as ratios within one run.

Each run is ``api/bench/load.py`` held at 16 clients for ``size`` seconds (each client
loops report, read, assign, comment, history, list, feed page, one deliberate 412 in 20)
(after 5 s of the same, not counted: a fresh process's first requests are slow) against a
real ``fengqiao serve --workers N`` (background workers in-process, under the
leader election) on a fresh store. The two process counts alternate for ``PAIRS`` pairs
(the host's swings land on both); each figure is the median of its runs. Printed beside
them: ``pgbench``'s single-row insert rate at 16 clients on the same PostgreSQL in the same
run (how fast the database is just now), and the host's load.

Targets: commands/s with 2 processes ≥ 1.5× with 1; command p95 ≤ 3× its p50 at 16 clients.

    fengqiao bench scale --store postgres --size 30     # or: python -m api.bench.bench_scale postgres --size 30
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from api.bench import load
from api.bench.stores import bench_store, drop_schema

CLIENTS = 16
PAIRS = 2
TARGET_SCALE = 1.5
TARGET_TAIL = 3.0
WARMUP = 5.0  # seconds of load before each run's measured part, not counted


def one_run(
    store: str, folder: Path, seconds: float, processes: int, warmup: float
) -> dict[str, Any]:
    config = bench_store(store, folder, f"p{processes}_{len(os.listdir(folder))}", prefix="scale")
    try:
        return load.run(seconds, CLIENTS, CLIENTS, config.url, processes=processes, warmup=warmup)
    finally:
        drop_schema(config)


def pgbench(store: str, folder: Path, seconds: float) -> float | None:
    """pgbench's insert transactions/s at 16 clients (None on SQLite or without pgbench)."""
    if store != "postgres":
        return None
    from api.bench.bench_write import pgbench_rate

    config = bench_store(store, folder, "pgbench", prefix="scale")
    try:
        rate = pgbench_rate(config, CLIENTS, seconds)
    finally:
        drop_schema(config)
    return rate["events_per_s"] if rate else None


def run(
    store: str = "postgres", size: int = 30, pairs: int = PAIRS, warmup: float = WARMUP
) -> list[dict]:
    """``size``: seconds of load per run."""
    load_before = os.getloadavg()[0]
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="fq-bench-scale-") as name:
        folder = Path(name)
        tps = pgbench(store, folder, min(5.0, size))
        for _ in range(pairs):
            for processes in (1, 2):
                runs[processes].append(one_run(store, folder, size, processes, warmup))
    host = round((load_before + os.getloadavg()[0]) / 2, 1)

    def median(processes: int, pick: Any) -> float:
        return statistics.median(pick(r) for r in runs[processes])

    rates = {p: median(p, lambda r: r["commands_per_s"]) for p in runs}
    common = {"clients": CLIENTS, "runs": pairs, "pgbench_tps": tps and round(tps), "load": host}
    rows = [
        {
            "name": f"commands/s, serve --workers 2 vs 1 ({store})",
            "figure": f"{rates[2] / rates[1]:.2f}x",
            "unit": "ratio",
            "baseline": f"{rates[1]:.1f} vs {rates[2]:.1f} commands/s",
            "baseline_name": "serve --workers 1",
            "target": f">= {TARGET_SCALE}x",
            "met": rates[2] / rates[1] >= TARGET_SCALE,
            "requests_per_s": {p: median(p, lambda r: r["requests_per_s"]) for p in runs},
            "server_cores": {p: median(p, lambda r: r["server_cores"]) for p in runs},
            "client_cores": {p: median(p, lambda r: r["client_cores"]) for p in runs},
            "store_cores": {p: median(p, lambda r: r["store_cores"]) for p in runs},
            "errors": sum(r["errors"] for rs in runs.values() for r in rs),
            **common,
        }
    ]
    for processes in (1, 2):
        p50 = median(processes, lambda r: r["command_ms"]["p50"])
        p95 = median(processes, lambda r: r["command_ms"]["p95"])
        rows.append(
            {
                "name": f"command p95 / p50, serve --workers {processes} ({store})",
                "figure": f"{p95 / p50:.2f}x",
                "unit": "ratio",
                "baseline": f"p50 {p50:.0f} ms, p95 {p95:.0f} ms",
                "baseline_name": "command latency at 16 clients",
                "target": f"<= {TARGET_TAIL}x",
                "met": p95 / p50 <= TARGET_TAIL,
                "p99_ms": median(processes, lambda r: r["command_ms"]["p99"]),
                **common,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("store", nargs="?", default="postgres", choices=["sqlite", "postgres"])
    parser.add_argument("--size", type=int, default=30, help="seconds of load per run")
    parser.add_argument("--pairs", type=int, default=PAIRS, help="alternating 1/2-process pairs")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}", flush=True)
    for row in run(args.store, args.size, args.pairs):
        print(row, flush=True)


if __name__ == "__main__":
    main()
