"""What one HTTP request costs, counted (load-independent; issue 20): thread-pool hops,
PostgreSQL round trips or SQLite statements, and — under callgrind — instructions.

    PYTHONPATH=. .venv/bin/python tests/bench/count_http.py sqlite [get,list,board,comment]
    PYTHONPATH=. valgrind --tool=callgrind --instr-atstart=no \\
        .venv/bin/python tests/bench/count_http.py postgres --callgrind tests/bench/libcg.so

The store is seeded as ``fengqiao bench http`` seeds it (``bench_http.prepare``, a 30-event
long case), the app is the one ``fengqiao serve`` builds (``serving_app``, no background
workers), called in-process with one ASGI scope per request on uvloop (no uvicorn: its HTTP
parsing and socket writes, the same for every app, are not counted). Per request kind: 20
requests of warm-up, then ``--requests`` counted. Round trips are psycopg ``Cursor.execute``
calls; SQLite statements each connection's trace callback (``BEGIN`` and ``ROLLBACK``
included); hops ``anyio.to_thread.run_sync`` calls.

``--callgrind LIB``: a shared library exporting ``cg_start`` (``CALLGRIND_START_INSTRUMENTATION;
CALLGRIND_ZERO_STATS``), ``cg_dump`` (``CALLGRIND_DUMP_STATS``) and ``cg_stop``
(``CALLGRIND_STOP_INSTRUMENTATION``), built from ``<valgrind/callgrind.h>``; each kind's dump's
``totals:`` divided by the requests is its instructions per request. The library:

    printf '#include <valgrind/callgrind.h>\nvoid cg_start(void){CALLGRIND_START_INSTRUMENTATION;CALLGRIND_ZERO_STATS;}\nvoid cg_dump(void){CALLGRIND_DUMP_STATS;}\nvoid cg_stop(void){CALLGRIND_STOP_INSTRUMENTATION;}\n' > cg.c
    gcc -shared -fPIC -O2 -o tests/bench/libcg.so cg.c
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import sqlite3
import tempfile
import uuid
from typing import Any

import anyio.to_thread
import uvloop

from api.bench import bench_http

COUNTS = {"statements": 0, "hops": 0}


def count_statements() -> None:
    """Count each statement sent: psycopg's executes, SQLite's traced statements."""
    import psycopg

    execute = psycopg.Cursor.execute

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        COUNTS["statements"] += 1
        return execute(self, *args, **kwargs)

    psycopg.Cursor.execute = counted  # type: ignore[method-assign]
    connect = sqlite3.connect

    def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection = connect(*args, **kwargs)
        connection.set_trace_callback(
            lambda _: COUNTS.__setitem__("statements", COUNTS["statements"] + 1)
        )
        return connection

    sqlite3.connect = traced  # type: ignore[assignment]


def count_hops() -> None:
    run_sync = anyio.to_thread.run_sync

    async def counted(*args: Any, **kwargs: Any) -> Any:
        COUNTS["hops"] += 1
        return await run_sync(*args, **kwargs)

    anyio.to_thread.run_sync = counted  # type: ignore[assignment]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("store", choices=["sqlite", "postgres"])
    parser.add_argument("kinds", nargs="?", default="get,list,board,comment")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--callgrind", metavar="LIB", help="the callgrind client library")
    args = parser.parse_args()
    os.environ.setdefault("FENGQIAO_REFERENCE_RECHECK", "3600")  # no timed re-check in the window
    os.environ.setdefault("FENGQIAO_LOG_LEVEL", "warning")
    url = bench_http.store_url(args.store, tempfile.mkdtemp(prefix="fq-count-http-"))
    tokens, case_id, _ = bench_http.prepare(url, 30)
    os.environ["FENGQIAO_DATABASE_URL"] = url
    from api.cli.serve import serving_app
    from engine.settings import Settings

    count_statements()
    count_hops()
    app, close = serving_app(Settings.from_environment(), False, process_id=False)
    callgrind = ctypes.CDLL(args.callgrind) if args.callgrind else None
    auth = [(b"authorization", f"Bearer {tokens['root']}".encode()), (b"host", b"bench")]

    def request(kind: str) -> tuple[dict[str, Any], bytes]:
        method, path, query, headers, body = "GET", f"/v1/cases/{case_id}", b"", [], b""
        if kind == "list":
            path, query = "/v1/cases", b"limit=20"
        elif kind == "board":
            path = "/v1/sla/board"
        elif kind == "comment":
            method, path = "POST", f"/v1/cases/{case_id}/comment"
            headers = [
                (b"content-type", b"application/json"),
                (b"idempotency-key", f"count-{uuid.uuid4().hex}".encode()),
            ]
            body = json.dumps({"text": "督办"}).encode()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query,
            "root_path": "",
            "headers": auth + headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
            "state": {},
        }
        return scope, body

    async def send_one(kind: str) -> None:
        scope, body = request(kind)
        given, status = False, 0

        async def receive() -> dict[str, Any]:
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        assert status in (200, 201), (kind, status)

    async def run() -> None:
        for kind in args.kinds.split(","):
            for _ in range(20):
                await send_one(kind)
            COUNTS["statements"] = COUNTS["hops"] = 0
            if callgrind is not None:
                callgrind.cg_start()
            for _ in range(args.requests):
                await send_one(kind)
            if callgrind is not None:
                callgrind.cg_dump()
                callgrind.cg_stop()
            n = args.requests
            print(
                f"{args.store} {kind}: statements {COUNTS['statements'] / n:.2f}, "
                f"hops {COUNTS['hops'] / n:.2f} per request",
                flush=True,
            )

    try:
        uvloop.run(run())
    finally:
        close()
        if args.store == "postgres":
            bench_http.drop_schema(url)


if __name__ == "__main__":
    main()
