"""HTTP command latency: p50/p95 over 1,000 commands, on SQLite and PostgreSQL.

Drives the real ASGI app in-process (``fastapi.testclient``: the whole stack —
middleware, auth lookup, validation, the engine, the store — without a network
hop). 100 disputes, each taken through 10 commands: report, assign, accept,
comment ×2, whistle, check-in, mediate, resolve, close. The same 1,000 commands are
then sent straight to the application service, to show what the HTTP layer adds.

    .venv/bin/python api/bench/bench_api.py            # both stores
    .venv/bin/python api/bench/bench_api.py sqlite     # one
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("FENGQIAO_LOG_LEVEL", "WARNING")

from fastapi.testclient import TestClient  # noqa: E402

from api.bench.county import PLAIN_DISPUTE, seed  # noqa: E402
from api.http.app import create_app  # noqa: E402
from engine.service import Fengqiao  # noqa: E402
from engine.store import StoreConfig  # noqa: E402

POSTGRES_URL = os.environ.get(
    "FENGQIAO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
CASES = 100

STEPS = [
    ("assign", {"assignee": "zhao"}, "li"),
    ("accept", None, "zhao"),
    ("comment", {"text": "已电话联系当事人"}, "zhao"),
    ("comment", {"text": "已上门走访"}, "wang"),
    ("whistle", {"departments": ["wz-tjh"], "reason": "联合处置"}, "zhao"),
    ("check-in", {"department": "wz-tjh"}, "zhao"),
    ("mediate", {"outcome": "agreed", "summary": "协商一致", "agreement": "停止施工"}, "zhao"),
    ("resolve", {"resolution": "协议履行"}, "zhao"),
    ("close", None, "li"),
]
REPORT = PLAIN_DISPUTE
USERS = [
    ("wang", "reporter", "410928-001-007-03", None),
    ("zhao", "handler", "410928-001-007", "wz-tjh"),
    ("li", "supervisor", "410928-001-007", "wz-cwh"),
]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run(store: StoreConfig) -> dict[str, float]:
    engine = seed(Fengqiao(store))
    app = create_app(engine)
    svc = app.state.services
    headers = {n: {"Authorization": f"Bearer {svc.users.add(n, r, g, u)}"} for n, r, g, u in USERS}
    timings: list[float] = []
    with TestClient(app) as client:
        for _ in range(CASES):
            started = time.perf_counter()
            response = client.post("/v1/cases", json=REPORT, headers=headers["wang"])
            timings.append(time.perf_counter() - started)
            assert response.status_code == 201, response.text
            case_id = response.json()["id"]
            for action, body, who in STEPS:
                started = time.perf_counter()
                response = client.post(
                    f"/v1/cases/{case_id}/{action}", json=body, headers=headers[who]
                )
                timings.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text
    direct = engine_only(engine)
    if svc.runner is not None:
        svc.runner.close()
    engine.close()
    ms = [t * 1000 for t in timings]
    return {
        "commands": len(ms),
        "p50": percentile(ms, 50),
        "p95": percentile(ms, 95),
        "mean": statistics.fmean(ms),
        "max": max(ms),
        "engine_p50": percentile(direct, 50),
        "engine_p95": percentile(direct, 95),
    }


def engine_only(engine: Fengqiao) -> list[float]:
    """The same 1,000 commands straight to the application service (no HTTP, no auth, no view)."""
    from api.bench.county import actor
    from domain.commands import Envelope, ReportCase

    timings: list[float] = []
    for n in range(CASES):
        started = time.perf_counter()
        result = engine.report(
            ReportCase(**REPORT), Envelope(actor=actor("wang", engine), command_id=f"direct-{n}")
        )
        timings.append(time.perf_counter() - started)
        for action, body, who in STEPS:
            started = time.perf_counter()
            engine.do(
                result.case_id,
                action,
                body or {},
                Envelope(actor=actor(who, engine), command_id=str(uuid.uuid4())),
            )
            timings.append(time.perf_counter() - started)
    return [t * 1000 for t in timings]


def main(kinds: list[str]) -> None:
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    print("| store | commands | p50 ms | p95 ms | mean ms | max ms | engine only p50 / p95 ms |")
    print("|---|---|---|---|---|---|---|")
    for kind in kinds:
        if kind == "sqlite":
            with tempfile.TemporaryDirectory() as folder:
                result = run(StoreConfig(f"sqlite:///{folder}/bench.db"))
        else:
            import psycopg

            schema = f"bench_{uuid.uuid4().hex[:10]}"
            try:
                result = run(StoreConfig(f"{POSTGRES_URL}?schema={schema}"))
            finally:
                with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        print(
            f"| {kind} | {result['commands']} | {result['p50']:.1f} | {result['p95']:.1f} | "
            f"{result['mean']:.1f} | {result['max']:.1f} | "
            f"{result['engine_p50']:.1f} / {result['engine_p95']:.1f} |",
            flush=True,
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["sqlite", "postgres"])
