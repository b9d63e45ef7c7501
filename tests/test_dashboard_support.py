"""Shared set-up for the dashboard's browser test and page-time bench (no tests here):
a real uvicorn server on a free 127.0.0.1 port, and a small demo county to serve."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import uvicorn
from fastapi import FastAPI

from api.demo import CountyShape, Season, build_demo, demo_clock
from api.demo.county import County
from engine.service import Fengqiao
from engine.store import StoreConfig

SMALL_SEASON = Season.ending(datetime(2026, 10, 30, 10, 0, tzinfo=UTC), 14)
SMALL_SEED = 11


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(http: FastAPI) -> Iterator[str]:
    """Serve ``http`` with uvicorn in a thread on 127.0.0.1; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            http, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, name="dashboard-server", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the dashboard server did not start")
        time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class SmallDemo:
    engine: Fengqiao
    county: County


def small_demo(store: StoreConfig, scale: float = 0.5) -> SmallDemo:
    """The demo generator's small county (3 townships and a subdistrict), two weeks of traffic, projected."""
    from projections import default_projections
    from projections.runner import ProjectionRunner

    clock = demo_clock(SMALL_SEASON)
    engine = Fengqiao(store, clock=clock)
    demo = build_demo(
        engine, clock, SMALL_SEASON, seed=SMALL_SEED, scale=scale, shape=CountyShape.small()
    )
    runner = ProjectionRunner(engine, default_projections())
    try:
        runner.run_once()
    finally:
        runner.close()
    return SmallDemo(engine, demo.county)


def ui_session(base: str, token: str) -> str:
    """Sign in to the dashboard of a live server; the session id its cookie carries."""
    response = httpx.post(
        f"{base}/ui/login", data={"token": token}, headers={"Origin": base}, timeout=30
    )
    assert response.status_code == 303, response.text
    return response.cookies["fengqiao_ui"]


def get_ok(base: str, path: str, token: str) -> httpx.Response:
    response = httpx.get(base + path, cookies={"fengqiao_ui": ui_session(base, token)}, timeout=30)
    response.raise_for_status()
    return response
