"""``fengqiao serve --workers 2``: two server processes on one socket and one store (issue 20,
target 3). Requests are answered by both; each background worker kind is led by one of
them while the other stands by (``engine.leadership``), so nothing runs twice.

No timing is asserted (hosts are noisy): the throughput it buys is measured by
``fengqiao bench scale`` (docs/performance.md).
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import structlog

from api.bench.county import DISPUTE
from api.bench.server import Server, seeded_store
from engine.store import StoreConfig

LEADER_KINDS = ("projections", "timers", "routing", "checkpoints")


def log_lines(server: Server) -> list[dict]:
    """The server's JSON log lines; one that is not a whole JSON object fails the test (two
    processes' lines merged: ``test_a_log_line_is_one_write``)."""
    lines = []
    for line in server.log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                raise AssertionError(f"not one JSON log line: {line!r}") from None
    return lines


def until(condition, what: str, seconds: float = 60) -> None:
    """Poll ``condition`` (a bound on the wait, not a timing assertion)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not seen within {seconds} s: {what}"
        time.sleep(0.2)


def test_serve_with_two_workers_answers_from_both_and_leads_each_worker_once(
    store: StoreConfig,
) -> None:
    tokens = seeded_store(store.url, [("root", "admin", "410928")])
    headers = {"Authorization": f"Bearer {tokens['root']}"}
    server = Server(
        store.url,
        processes=2,
        env={
            "FENGQIAO_LOG_LEVEL": "info",
            "FENGQIAO_LOG_FORMAT": "json",
            "FENGQIAO_LEASE_POLL_SECONDS": "0.2",
        },
    )
    server.start(timeout=90)
    try:
        children = server.children()
        assert len(children) == 2 and server.pid not in children

        created = httpx.post(
            server.base + "/v1/cases",
            json=DISPUTE,
            headers={**headers, "Idempotency-Key": f"serve2-{uuid.uuid4().hex}"},
            timeout=30,
        )
        assert created.status_code == 201, created.text
        case_id = created.json()["id"]

        def served_by() -> set[int]:
            return {
                line["pid"]
                for line in log_lines(server)
                if line.get("event") == "request" and line.get("path") == f"/v1/cases/{case_id}"
            }

        def read(_: int) -> int:  # a new connection each: the kernel hands them to either process
            return httpx.get(
                f"{server.base}/v1/cases/{case_id}", headers=headers, timeout=30
            ).status_code

        def both_answered() -> bool:
            with ThreadPoolExecutor(8) as pool:
                assert set(pool.map(read, range(16))) == {200}
            return served_by() == set(children)

        until(both_answered, "reads answered by both processes")

        # each kind led by exactly one process, the other standing by
        def roles() -> dict[str, dict[str, set[int]]]:
            found: dict[str, dict[str, set[int]]] = {
                kind: {"leading": set(), "standing by": set()} for kind in LEADER_KINDS
            }
            for line in log_lines(server):
                event, kind = line.get("event", ""), line.get("worker")
                if kind in found and event in ("worker leading", "worker standing by"):
                    found[kind][event.removeprefix("worker ")].add(line["pid"])
            return found

        until(
            lambda: all(r["leading"] and r["standing by"] for r in roles().values()),
            "every kind led by one process and stood by in the other",
        )
        for kind, role in roles().items():
            assert len(role["leading"]) == 1, (kind, role)
            assert role["leading"] | role["standing by"] == set(children), (kind, role)
            assert not role["leading"] & role["standing by"], (kind, role)

        # the one projections leader brings the case into the list, once
        def listed() -> list[str]:
            page = httpx.get(server.base + "/v1/cases", headers=headers, timeout=30).json()
            return [case["case_id"] for case in page["items"]]

        until(lambda: case_id in listed(), "the case in the read model")
        assert listed().count(case_id) == 1
    finally:
        server.stop()
    assert server.process is not None and server.process.returncode is not None


CONNECTIONS = 32


def test_a_burst_of_keep_alive_connections_is_spread_over_the_processes(
    store: StoreConfig,
) -> None:
    """32 connections opened at once, as a proxy's or a load client's keep-alive pool opens
    them, then one request on each: both processes hold a fair share. On one shared socket
    the process that woke first accepted nearly all (15 of 16 seen); each process's own
    ``SO_REUSEPORT`` socket gets a share by the kernel's hash (more than 26 of 32 on one side
    has odds of about 1 in 9,000 for a fair coin)."""
    tokens = seeded_store(store.url, [("root", "admin", "410928")])
    server = Server(
        store.url,
        processes=2,
        workers=False,
        env={"FENGQIAO_LOG_LEVEL": "info", "FENGQIAO_LOG_FORMAT": "json"},
    )
    server.start(timeout=90)
    try:
        host, port = server.base.removeprefix("http://").split(":")
        children = server.children()  # each listening (Server.start waits for that)
        # the mechanism: each process listens on a socket of its own, none shared
        first, second = server.listening()
        assert first and second and not first & second, (first, second)
        connections = [socket.create_connection((host, int(port))) for _ in range(CONNECTIONS)]
        paths = [f"/v1/cases/{uuid.uuid4()}" for _ in connections]
        try:
            for connection, path in zip(connections, paths, strict=True):
                connection.sendall(
                    f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
                    f"Authorization: Bearer {tokens['root']}\r\n\r\n".encode()
                )
            for connection in connections:
                assert connection.recv(65536).startswith(b"HTTP/1.1 404")
        finally:
            for connection in connections:
                connection.close()

        def holders() -> Counter[int]:
            wanted = set(paths)
            return Counter(
                line["pid"]
                for line in log_lines(server)
                if line.get("event") == "request" and line.get("path") in wanted
            )

        until(lambda: sum(holders().values()) == CONNECTIONS, "every request logged")
        shares = holders()
        assert set(shares) == set(children), shares
        assert max(shares.values()) <= 26, shares
    finally:
        server.stop()


def test_a_log_line_is_one_write(monkeypatch) -> None:
    """Several processes write one stream (``serve --workers N``): each line must reach it in
    one ``write``, newline included, or two processes' lines merge (seen: two JSON objects
    on one line, then an empty one). Python's stderr passes each ``write`` straight through,
    so the message and its newline must not be two calls (structlog's ``print``-based logger)."""
    from engine.logs import configure_logging

    configure_logging(json=True)
    writes: list[str] = []

    class Recorder:
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

        def flush(self) -> None:
            pass

    monkeypatch.setattr("sys.stderr", Recorder())
    structlog.get_logger("fengqiao.test").error("one line", n=1)
    assert len(writes) == 1 and writes[0].endswith("}\n") and writes[0].count("\n") == 1, writes
