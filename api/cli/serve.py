"""``fengqiao serve``: the HTTP API on the configured store, with uvicorn."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import structlog
import typer

from engine.logs import configure_logging

log = structlog.get_logger("fengqiao.serve")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    workers: bool = typer.Option(True, "--workers/--no-workers",
                                 help="run projections and timers in this process "
                                      "(with --no-workers, run `fengqiao worker` beside it)"),
) -> None:
    """Serve the HTTP API v1 (OpenAPI at /openapi.json)."""
    import uvicorn

    from api.http.app import create_app
    from engine.service import Fengqiao

    configure_logging()
    engine = Fengqiao()
    if os.environ.get("FENGQIAO_TRACEMALLOC") == "1":
        trace_allocations(engine)
    stop = threading.Event()
    thread = None
    if workers:
        from projections.worker import run_workers

        thread = threading.Thread(target=run_workers, args=(engine, stop), name="fengqiao-workers", daemon=True)
        thread.start()
        log.info("workers started in-process")
    try:
        uvicorn.run(create_app(engine), host=host, port=port, log_config=None, access_log=False)
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=10)
        engine.close()


def trace_allocations(engine: object) -> None:
    """``FENGQIAO_TRACEMALLOC=1`` (off by default; it slows the server): trace allocations from
    start-up; each SIGUSR2 writes a ``tracemalloc`` snapshot and the bounded caches' sizes into
    ``FENGQIAO_TRACEMALLOC_DIR`` (``tests/bench/bench_memory.py`` diffs them)."""
    import tracemalloc

    folder = Path(os.environ.get("FENGQIAO_TRACEMALLOC_DIR", "."))
    tracemalloc.start(int(os.environ.get("FENGQIAO_TRACEMALLOC_FRAMES", "1")))
    taken = [0]

    def snapshot(*_: object) -> None:
        taken[0] += 1
        tracemalloc.take_snapshot().dump(str(folder / f"snapshot-{taken[0]}.tracemalloc"))
        sizes = {"traced": tracemalloc.get_traced_memory()[0], "tracemalloc_overhead": tracemalloc.get_tracemalloc_memory(),
                 "case_cache": len(engine.case_cache._entries),  # type: ignore[attr-defined]
                 "person_keys": len(getattr(engine.__dict__.get("_person_keys"), "_cache", ()))}
        (folder / f"snapshot-{taken[0]}.json").write_text(json.dumps(sizes))

    signal.signal(signal.SIGUSR2, snapshot)
