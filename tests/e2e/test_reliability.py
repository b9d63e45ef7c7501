"""Faults with real processes and a real PostgreSQL: nothing acknowledged is lost or
doubled, no wrong answer is given, and the server recovers by itself.

The PostgreSQL faults use a private cluster (``private_pg``), never the shared one.
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.bench.server import seeded_store
from api.http.app import create_app
from api.http.services import Settings
from engine.audit.verify import verify_log
from engine.idempotency import scoped_command_id
from engine.service import Fengqiao
from engine.store import StoreConfig
from projections import default_projections
from projections.runner import ProjectionRunner
from tests.integration.test_projections_properties import snapshot
from tests.support import seed
from tests.test_api_support import DISPUTE
from tests.test_reliability_support import PrivatePostgres, Server

ALLOWED_DURING_FAULTS = {200, 201, 503}  # anything else is a wrong answer


@dataclass
class Ledger:
    """What the clients were told: per idempotency key, every status they got."""

    statuses: dict[str, list[int | str]] = field(default_factory=dict)
    acknowledged: set[str] = field(default_factory=set)
    wrong: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, key: str, status: int | str) -> None:
        with self.lock:
            self.statuses.setdefault(key, []).append(status)

    @property
    def retried(self) -> set[str]:
        return {k for k, s in self.statuses.items() if len(s) > 1}


def send_until_acknowledged(
    base: str, token: str, key: str, path: str, body: dict, ledger: Ledger, check, give_up: float
) -> None:
    """POST with an Idempotency-Key, retrying on any error until acknowledged (or ``give_up``)."""
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
    while time.monotonic() < give_up:
        try:
            response = httpx.post(base + path, json=body, headers=headers, timeout=10)
        except httpx.HTTPError as error:
            ledger.note(key, type(error).__name__)
            time.sleep(0.2)
            continue
        ledger.note(key, response.status_code)
        if response.status_code not in ALLOWED_DURING_FAULTS:
            ledger.wrong.append(f"{key}: {response.status_code} {response.text[:300]}")
            return
        if response.status_code == 503:
            assert response.headers["content-type"].startswith("application/problem+json"), (
                response.text
            )
            time.sleep(0.05)
            continue
        problem = check(response.json())
        if problem:
            ledger.wrong.append(f"{key}: {problem}")
        with ledger.lock:
            ledger.acknowledged.add(key)
        return


def run_clients(
    base: str, tokens: dict[str, str], clients: int, per_client: int, ledger: Ledger, give_up: float
) -> list[threading.Thread]:
    """``clients`` threads, each reporting cases and commenting on one case of its own, with
    its own idempotency keys."""
    headers = {"Authorization": f"Bearer {tokens['root']}"}
    cases = [
        httpx.post(base + "/v1/cases", json=DISPUTE, headers=headers, timeout=30).json()["id"]
        for _ in range(clients)
    ]

    def client(n: int) -> None:
        rng = random.Random(n)
        case_for_comments = cases[n]
        for i in range(per_client):
            key = f"c{n}-{i}"
            if rng.random() < 0.5:
                title = f"故障测试 {key}"
                send_until_acknowledged(
                    base,
                    tokens["root"],
                    key,
                    "/v1/cases",
                    {**DISPUTE, "title": title},
                    ledger,
                    lambda body, t=title: None if body["title"] == t else f"title {body['title']}",
                    give_up,
                )
            else:
                send_until_acknowledged(
                    base,
                    tokens["root"],
                    key,
                    f"/v1/cases/{case_for_comments}/comment",
                    {"text": key},
                    ledger,
                    lambda body, c=case_for_comments: None if body["id"] == c else "other case",
                    give_up,
                )

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    return threads


def recorded_command_ids(engine: Fengqiao) -> Counter:
    """How many times each command id was recorded (over every case event)."""
    counts: Counter = Counter()
    position = 0
    while True:
        batch = engine.recorder.select_notifications(start=position + 1, limit=500)
        if not batch:
            return counts
        for notification in batch:
            event = engine.mapper.to_domain_event(notification)
            command = getattr(event, "command_id", None)
            if command and not type(event).__name__.startswith(("Clock", "Supervised")):
                counts[command] += 1
        position = batch[-1].id


def assert_exactly_once(engine: Fengqiao, ledger: Ledger) -> None:
    counts = recorded_command_ids(engine)
    for key in ledger.acknowledged:
        assert counts[scoped_command_id("root", key)] == 1, (key, ledger.statuses[key])
    for key in ledger.retried:
        assert counts[scoped_command_id("root", key)] <= 1, (key, ledger.statuses[key])


def assert_projections_equal_rebuild(engine: Fengqiao) -> None:
    observer = ProjectionRunner(engine, default_projections())
    try:
        observer.ensure()
        head = engine.head_position()
        deadline = time.monotonic() + 30
        while observer.position("cases") < head and time.monotonic() < deadline:
            observer.run_once()  # the server's own worker may have died with it; finish the job
        incremental = snapshot(observer.db)
        observer.rebuild("cases")
        assert snapshot(observer.db) == incremental
    finally:
        observer.close()


@pytest.fixture(params=["sqlite", "postgres"])
def fault_url(request, tmp_path, private_pg: PrivatePostgres) -> str:
    """A fresh store for a server subprocess: a SQLite file, or a schema on the private cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fengqiao.db'}"
    return private_pg.url(schema=f"t_{uuid.uuid4().hex[:12]}")


@pytest.mark.parametrize(
    "kills, per_client",
    [
        pytest.param(2, 4, id="2-kills"),
        pytest.param(6, 40, id="6-kills-long", marks=pytest.mark.slow),
    ],
)
def test_kill_9_the_server_under_16_clients_loses_and_doubles_nothing(
    fault_url: str, kills: int, per_client: int
):
    tokens = seeded_store(fault_url, [("root", "admin", "410928")])
    server = Server(fault_url)
    server.start(timeout=120)
    try:
        ledger = Ledger()
        give_up = time.monotonic() + 400
        threads = run_clients(server.base, tokens, 16, per_client, ledger, give_up)
        done = 0
        while any(t.is_alive() for t in threads) and done < kills:
            acknowledged = len(ledger.acknowledged)
            while len(ledger.acknowledged) < acknowledged + 8 and any(
                t.is_alive() for t in threads
            ):
                time.sleep(
                    0.02
                )  # kill mid-traffic: some commands acknowledged since the last start
            server.kill9()
            done += 1
            server.start(timeout=120)
        for thread in threads:
            thread.join(max(0.0, give_up - time.monotonic()))
        assert done == kills, "the clients finished before every kill: send more"
        cut = Counter(
            s for statuses in ledger.statuses.values() for s in statuses if s not in (200, 201)
        )
        print(
            f"kills={kills} acknowledged={len(ledger.acknowledged)} retried={len(ledger.retried)} "
            f"refusals={dict(cut)}"
        )  # the figures in docs/reliability.md (pytest -s)
        assert not ledger.wrong, ledger.wrong[:5]
        assert len(ledger.acknowledged) == 16 * per_client  # every client got through in the end
        assert any(
            not isinstance(s, int) for statuses in ledger.statuses.values() for s in statuses
        ), "no request was cut off by a kill"
    finally:
        server.stop()
    engine = Fengqiao(StoreConfig(fault_url))
    try:
        assert_exactly_once(engine, ledger)
        assert_projections_equal_rebuild(engine)
        assert verify_log(engine).ok
    finally:
        engine.close()


def test_postgres_restarts_under_load_and_the_server_recovers_by_itself(
    private_pg: PrivatePostgres,
):
    url = private_pg.url(schema=f"t_{uuid.uuid4().hex[:12]}")
    tokens = seeded_store(url, [("root", "admin", "410928")])
    server = Server(url)
    server.start(timeout=120)
    try:
        headers = {"Authorization": f"Bearer {tokens['root']}"}
        case_id = httpx.post(server.base + "/v1/cases", json=DISPUTE, headers=headers).json()["id"]
        ledger = Ledger()
        give_up = time.monotonic() + 400
        threads = run_clients(server.base, tokens, 8, 15, ledger, give_up)
        for _ in range(2):
            acknowledged = len(ledger.acknowledged)
            while len(ledger.acknowledged) < acknowledged + 10 and any(
                t.is_alive() for t in threads
            ):
                time.sleep(0.02)  # restart mid-traffic
            private_pg.restart()
        for thread in threads:
            thread.join(max(0.0, give_up - time.monotonic()))
        assert not ledger.wrong, ledger.wrong[:5]
        assert len(ledger.acknowledged) == 8 * 15
        assert server.process.poll() is None  # the same process throughout
        deadline = time.monotonic() + 30  # ready again once the last refusal is a few seconds old
        while httpx.get(server.base + "/readyz", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "not ready again after the restarts"
            time.sleep(0.2)
        assert httpx.get(f"{server.base}/v1/cases/{case_id}", headers=headers).status_code == 200
    finally:
        server.stop()
    engine = Fengqiao(StoreConfig(url))
    try:
        assert_exactly_once(engine, ledger)
        assert verify_log(engine).ok
    finally:
        engine.close()


# -- a database that refuses writes (disk full, read-only) ----------------------------------------


@contextlib.contextmanager
def small_disk() -> Iterator[Path]:
    """A 4 MiB tmpfs (as root), else a plain temp dir (made read-only instead of full)."""
    where = Path(tempfile.mkdtemp(prefix="fq-disk-"))
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)], capture_output=True
        ).returncode
        == 0
    )
    try:
        yield where
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)
        os.chmod(where, 0o755)
        subprocess.run(["rm", "-rf", str(where)], capture_output=True)


class SqliteDiskFull:
    """Fill the SQLite file's disk (tmpfs, as root) or make file and folder read-only."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.url = f"sqlite:///{folder / 'fengqiao.db'}"
        self.full = os.geteuid() == 0

    @contextlib.contextmanager
    def fault(self) -> Iterator[None]:
        if self.full:
            filler = self.folder / "filler"
            subprocess.run(
                ["dd", "if=/dev/zero", f"of={filler}", "bs=4k", "count=100000"], capture_output=True
            )
            try:
                yield
            finally:
                filler.unlink()
        else:
            files = [self.folder, *self.folder.iterdir()]
            for f in files:
                os.chmod(f, 0o555 if f.is_dir() else 0o444)
            try:
                yield
            finally:
                for f in files:
                    os.chmod(f, 0o755 if f.is_dir() else 0o644)


class PostgresReadOnly:
    """``default_transaction_read_only`` on a database of the private cluster; open sessions end."""

    def __init__(self, cluster: PrivatePostgres) -> None:
        self.cluster = cluster
        self.db = f"fq_{uuid.uuid4().hex[:10]}"
        cluster.sql(f"CREATE DATABASE {self.db}")
        self.url = cluster.url(db=self.db)

    def _set(self, value: str) -> None:
        self.cluster.sql(f"ALTER DATABASE {self.db} SET default_transaction_read_only = {value}")
        self.cluster.sql(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{self.db}' AND pid <> pg_backend_pid()"
        )

    @contextlib.contextmanager
    def fault(self) -> Iterator[None]:
        self._set("on")
        try:
            yield
        finally:
            self._set("off")


@pytest.fixture(params=["sqlite-disk-full", "postgres-read-only"])
def refusing_store(
    request, private_pg: PrivatePostgres
) -> Iterator[SqliteDiskFull | PostgresReadOnly]:
    if request.param == "sqlite-disk-full":
        with small_disk() as folder:
            yield SqliteDiskFull(folder)
    else:
        yield PostgresReadOnly(private_pg)


def test_a_database_that_refuses_writes_answers_503_and_readiness_goes_false(refusing_store):
    engine = seed(Fengqiao(StoreConfig(refusing_store.url)))
    http = create_app(engine, settings=Settings(unready_after_database_error=0.5))
    svc = http.state.services
    token = svc.users.add("root", "admin", "410928", by="test")
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with TestClient(http, raise_server_exceptions=False) as client:
            case_id = client.post("/v1/cases", json=DISPUTE, headers=headers).json()["id"]
            assert client.get("/readyz").status_code == 200
            head = engine.head_position()
            with refusing_store.fault():
                for i in range(5):
                    refused = client.post(
                        "/v1/cases",
                        json={**DISPUTE, "description": "x" * 3000},
                        headers={**headers, "Idempotency-Key": f"k{i}"},
                    )
                    assert refused.status_code == 503, refused.text
                    assert refused.headers["content-type"] == "application/problem+json"
                    assert refused.json()["code"] == "database_unavailable"
                    act = client.post(
                        f"/v1/cases/{case_id}/comment",
                        json={"text": "x" * 3000},
                        headers={**headers, "Idempotency-Key": f"c{i}"},
                    )
                    assert act.status_code == 503, act.text
                ready = client.get("/readyz")
                assert ready.status_code == 503 and ready.json()["database"] is False
            assert engine.head_position() == head  # nothing half-written
            assert verify_log(engine).ok
            time.sleep(0.6)
            ready = client.get("/readyz")
            assert ready.status_code == 200, ready.text  # recovered, no restart
            again = client.post(
                "/v1/cases", json=DISPUTE, headers={**headers, "Idempotency-Key": "k0"}
            )
            assert again.status_code == 201, again.text
            assert client.get(f"/v1/cases/{case_id}", headers=headers).json()["version"] == 1
    finally:
        if svc.runner is not None:
            svc.runner.close()
        engine.close()


def test_a_database_that_stops_answering_gets_503_within_the_deadline(private_pg: PrivatePostgres):
    """SIGSTOP every process of the private cluster: answers come back as 503 problems within
    the deadline, readiness is false; after SIGCONT a retry with the same key is recorded once."""
    url = private_pg.url(schema=f"t_{uuid.uuid4().hex[:12]}")
    engine = seed(Fengqiao(StoreConfig(url)))
    http = create_app(
        engine, settings=Settings(request_deadline_seconds=1.5, unready_after_database_error=0.5)
    )
    svc = http.state.services
    token = svc.users.add("root", "admin", "410928", by="test")
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with TestClient(http, raise_server_exceptions=False) as client:
            case_id = client.post("/v1/cases", json=DISPUTE, headers=headers).json()["id"]
            with private_pg.frozen():
                started = time.monotonic()
                stalled = client.post(
                    "/v1/cases", json=DISPUTE, headers={**headers, "Idempotency-Key": "frozen"}
                )
                assert stalled.status_code == 503, stalled.text
                assert stalled.headers["content-type"] == "application/problem+json"
                assert stalled.json()["code"] == "deadline"
                assert time.monotonic() - started < 5
                ready = client.get("/readyz")
                assert ready.status_code == 503, ready.text
                read = client.get(f"/v1/cases/{case_id}", headers=headers)
                assert read.status_code == 503
            deadline = time.monotonic() + 30
            while True:
                again = client.post(
                    "/v1/cases", json=DISPUTE, headers={**headers, "Idempotency-Key": "frozen"}
                )
                if again.status_code == 201 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert again.status_code == 201, again.text
            while client.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, "not ready again after the database came back"
                time.sleep(0.2)
        counts = recorded_command_ids(engine)
        assert counts[scoped_command_id("root", "frozen")] == 1
        assert verify_log(engine).ok
    finally:
        if svc.runner is not None:
            svc.runner.close()
        engine.close()


# -- the worker killed mid-batch ---------------------------------------------------------------------


def start_worker(url: str, log: Path) -> subprocess.Popen:
    from tests.test_reliability_support import FENGQIAO, ROOT

    env = {
        **os.environ,
        "FENGQIAO_DATABASE_URL": url,
        "PYTHONPATH": str(ROOT),
        "FENGQIAO_WEBHOOK_ALLOW_PRIVATE": "1",
        "FENGQIAO_PROJECTIONS_BATCH": "7",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                *FENGQIAO,
                "worker",
                "--only",
                "projections",
                "--only",
                "timers",
                "--only",
                "webhooks",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=out,
        )


def fired_timers(engine: Fengqiao) -> Counter:
    """(case, event type, clock, due, threshold) of every recorded clock event."""
    seen: Counter = Counter()
    position = 0
    while batch := engine.recorder.select_notifications(start=position + 1, limit=500):
        for notification in batch:
            event = engine.mapper.to_domain_event(notification)
            if type(event).__name__ in ("ClockWarned", "ClockBreached"):
                seen[
                    (
                        event.originator_id,
                        type(event).__name__,
                        event.clock,
                        event.due_at,
                        getattr(event, "threshold", None),
                    )
                ] += 1
        position = batch[-1].id
    return seen


def test_kill_9_the_worker_mid_batch_repeatedly(store, tmp_path, monkeypatch):
    """Projections, timers and webhooks in a `fengqiao worker` killed -9 four times: no timer
    fires twice, every event reaches the webhook receiver (deduplicated by id), and the
    projections equal a rebuild."""
    from engine.time_source import SimulatedClock
    from tests.e2e.test_webhooks import Receiver
    from tests.support import act, report

    monkeypatch.setenv("FENGQIAO_WEBHOOK_ALLOW_PRIVATE", "1")
    from datetime import UTC, datetime

    past = SimulatedClock(datetime(2026, 6, 1, 1, 0, tzinfo=UTC))  # every clock is overdue by now
    engine = seed(Fengqiao(store, clock=past))
    for i in range(30):
        case_id = report(engine, ["dispute", "hazard", "petition"][i % 3], "minor").case_id
        if i % 2:
            act(engine, case_id, "assign", "li", assignee="zhao")
    log = tmp_path / "worker.log"
    with Receiver() as receiver:
        http = create_app(engine)
        svc = http.state.services
        token = svc.users.add("hook", "integrator", "410928", by="test")
        with TestClient(http) as client:
            created = client.post(
                "/v1/subscriptions",
                json={"url": receiver.url, "from_position": 1},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert created.status_code == 201, created.text
            receiver.secret = created.json()["secret"]
        if svc.runner is not None:
            svc.runner.close()
        for _ in range(4):
            worker = start_worker(store.url, log)
            time.sleep(random.uniform(1.5, 3.0))
            worker.kill()  # SIGKILL
            worker.wait(10)
        worker = start_worker(store.url, log)
        try:
            deadline = time.monotonic() + 120
            while True:  # quiet: every event delivered and nothing new fired for a while
                head = engine.head_position()
                time.sleep(2.0)
                if (
                    head == engine.head_position()
                    and receiver.unique
                    and set(receiver.unique.values()) >= set(delivered_positions(engine))
                ):
                    break
                assert time.monotonic() < deadline, log.read_text()[-3000:]
        finally:
            worker.terminate()
            worker.wait(20)
        timers = fired_timers(engine)
        assert timers, "no timer fired: the clocks were meant to be overdue"
        assert max(timers.values()) == 1, [k for k, v in timers.items() if v > 1][:5]
        assert set(receiver.unique.values()) == set(delivered_positions(engine))  # none lost
        assert receiver.bad_signatures == 0, receiver.failures
    assert_projections_equal_rebuild(engine)
    engine.close()


def delivered_positions(engine: Fengqiao) -> list[int]:
    """Every position the integrator's feed shows (what the subscription must deliver)."""
    from engine.feed import Feed, FeedFilter

    feed, after, positions = Feed(engine), 0, []
    while True:
        page = feed.page(after, 500, FeedFilter.of(None, "410928"))
        positions += [e["position"] for e in page.events]
        if page.next_after == after or not page.events and page.next_after >= page.head:
            return positions
        after = page.next_after
