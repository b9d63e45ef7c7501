"""What one HTTP request costs, counted (load-independent; issue 20): thread-pool hops,
PostgreSQL round trips or SQLite statements, and — under callgrind — instructions.

    PYTHONPATH=. .venv/bin/python tests/bench/count_http.py sqlite [get,list,board,comment]
    PYTHONPATH=. valgrind --tool=callgrind --instr-atstart=no \\
        .venv/bin/python tests/bench/count_http.py postgres --callgrind /tmp/libcg.so
    PYTHONPATH=. valgrind --tool=callgrind --instr-atstart=no \\
        .venv/bin/python tests/bench/count_http.py sqlite healthz --bare --callgrind /tmp/libcg.so

The store is seeded as ``fengqiao bench http`` seeds it (``bench_http.prepare``, a 30-event
long case), the app is the one ``fengqiao serve`` builds (``serving_app``, no background
workers), called in-process with one ASGI scope per request on uvloop (no uvicorn: its HTTP
parsing and socket writes, the same for every app, are not counted). Per request kind: 20
requests of warm-up, then ``--requests`` counted. Round trips are psycopg ``Cursor.execute``
calls; SQLite statements each connection's trace callback (``BEGIN`` and ``ROLLBACK``
included); hops ``anyio.to_thread.run_sync`` calls.

``--bare``: the yardstick instead — a bare ``FastAPI()`` app with one sync ``GET /healthz``
answering ``{"status": "ok"}`` (kind ``healthz``), called the same way; issue 20's ratio is
a request kind's instructions over this one's.

``--callgrind LIB``: a shared library exporting ``cg_start`` (``CALLGRIND_START_INSTRUMENTATION;
CALLGRIND_ZERO_STATS``), ``cg_dump`` (``CALLGRIND_DUMP_STATS``), ``cg_stop``
(``CALLGRIND_STOP_INSTRUMENTATION``) and ``cg_toggle`` (``CALLGRIND_TOGGLE_COLLECT``), built
from ``<valgrind/callgrind.h>``; each kind's dump's ``totals:`` divided by the requests is its
instructions per request. The library (build it outside the repo):

    printf '#include <valgrind/callgrind.h>\nvoid cg_start(void){CALLGRIND_START_INSTRUMENTATION;CALLGRIND_ZERO_STATS;}\nvoid cg_dump(void){CALLGRIND_DUMP_STATS;}\nvoid cg_stop(void){CALLGRIND_STOP_INSTRUMENTATION;}\nvoid cg_toggle(void){CALLGRIND_TOGGLE_COLLECT;}\n' > /tmp/cg.c
    gcc -shared -fPIC -O2 -o /tmp/libcg.so /tmp/cg.c

A breakdown: ``EXCLUDE=module:Qualified.name,...`` (with ``--callgrind``) wraps each named
function (or method, or ``async`` function: each step of its coroutine) so that callgrind
does not collect inside it; a kind's total less the total with ``EXCLUDE`` is what those
calls cost (nested and repeated calls counted once), e.g.
``EXCLUDE=api.http.auth:BearerCaller.__call__,fastapi.routing:serialize_response``. Only a
name looked up when called (a module's global, a class's method) is wrapped; a function that
something kept before the app was built (a route's endpoint or dependency) is not.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import functools
import importlib
import inspect
import json
import os
import sqlite3
import tempfile
import threading
import types
import uuid
from collections.abc import Callable, Generator
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


def exclude(callgrind: ctypes.CDLL, spec: str) -> None:
    """``spec`` (``module:Qualified.name,...``): callgrind collects nothing inside those calls."""
    depth, lock = [0], threading.Lock()

    def off() -> None:
        with lock:
            depth[0] += 1
            if depth[0] == 1:
                callgrind.cg_toggle()

    def on() -> None:
        with lock:
            depth[0] -= 1
            if depth[0] == 0:
                callgrind.cg_toggle()

    @types.coroutine
    def drive(coro: Any) -> Generator[Any, Any, Any]:
        """Await ``coro`` with collection off during each of its steps (not while it waits)."""
        value: Any = None
        error: BaseException | None = None
        while True:
            off()
            try:
                step = coro.throw(error) if error is not None else coro.send(value)
            except StopIteration as stop:
                return stop.value
            finally:
                on()
            value, error = None, None
            try:
                value = yield step
            except BaseException as raised:
                error = raised

    def wrap(call: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(call):

            @functools.wraps(call)
            async def wrapped_async(*args: Any, **kwargs: Any) -> Any:
                off()
                try:
                    coro = call(*args, **kwargs)
                finally:
                    on()
                return await drive(coro)

            return wrapped_async

        @functools.wraps(call)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            off()
            try:
                return call(*args, **kwargs)
            finally:
                on()

        return wrapped

    for item in spec.split(","):
        module, qualified = item.split(":")
        *path, name = qualified.split(".")
        owner: Any = importlib.import_module(module)
        for part in path:
            owner = getattr(owner, part)
        call = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        setattr(owner, name, wrap(call))


def bare_app() -> Any:
    """The yardstick: a bare FastAPI app with one sync ``GET /healthz``."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("store", choices=["sqlite", "postgres"])
    parser.add_argument("kinds", nargs="?", default="get,list,board,comment")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--callgrind", metavar="LIB", help="the callgrind client library")
    parser.add_argument("--bare", action="store_true", help="a bare FastAPI GET /healthz")
    args = parser.parse_args()
    os.environ.setdefault("FENGQIAO_REFERENCE_RECHECK", "3600")  # no timed re-check in the window
    os.environ.setdefault("FENGQIAO_LOG_LEVEL", "warning")
    url = bench_http.store_url(args.store, tempfile.mkdtemp(prefix="fq-count-http-"))
    count_statements()
    count_hops()
    callgrind = ctypes.CDLL(args.callgrind) if args.callgrind else None
    if callgrind is not None and os.environ.get("EXCLUDE"):
        exclude(callgrind, os.environ["EXCLUDE"])
    if args.bare:
        app, close, case_id = bare_app(), lambda: None, ""
        auth = [(b"host", b"bench")]
    else:
        tokens, case_id, _ = bench_http.prepare(url, 30)
        os.environ["FENGQIAO_DATABASE_URL"] = url
        from api.cli.serve import serving_app
        from engine.settings import Settings

        app, close = serving_app(Settings.from_environment(), False, process_id=False)
        auth = [(b"authorization", f"Bearer {tokens['root']}".encode()), (b"host", b"bench")]

    def request(kind: str) -> tuple[dict[str, Any], bytes]:
        method, path, query, headers, body = "GET", f"/v1/cases/{case_id}", b"", [], b""
        if kind == "list":
            path, query = "/v1/cases", b"limit=20"
        elif kind == "board":
            path = "/v1/sla/board"
        elif kind == "healthz":
            path = "/healthz"
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
        if args.store == "postgres" and not args.bare:
            bench_http.drop_schema(url)


if __name__ == "__main__":
    main()
