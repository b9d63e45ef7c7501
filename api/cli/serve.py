"""``fengqiao serve``: the HTTP API on the configured store, with uvicorn."""

from __future__ import annotations

import threading

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
