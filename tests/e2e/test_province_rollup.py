"""The province roll-up (projections/province.py): three county stores driven through
the engine, followed into a province database; the province equals the sum of the
counties' own read models, survives crashes and kill -9 without doubling or losing an
event, rebuilds from zero, and picks up a county added later. Both stores."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app as cli
from engine.logs import configure_logging
from engine.service import Fengqiao
from engine.store import StoreConfig
from engine.time_source import SimulatedClock
from projections import default_projections
from projections.province import ZONE, ProvinceRollup, county_url, months
from projections.queries import ReadModels
from projections.runner import ProjectionRunner
from tests.conftest import POSTGRES_URL, require_postgres
from tests.integration.test_projections_properties import CrashingCases, drive, snapshot
from tests.support import seed

ROOT = Path(__file__).resolve().parents[2]
COUNTIES = ("c1", "c2", "c3")
PERIOD = ("2026-09", "2026-12")


@pytest.fixture(params=["sqlite", "postgres"])
def place(request, tmp_path):
    """Store URLs of one kind by name; on PostgreSQL every schema of this test (the
    province's county schemas too) is dropped afterwards."""
    if request.param == "sqlite":
        yield lambda name: f"sqlite:///{tmp_path / f'{name}.db'}"
        return
    require_postgres()
    prefix = f"t_{uuid.uuid4().hex[:10]}"
    yield lambda name: f"{POSTGRES_URL}?schema={prefix}_{name}"
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        for (schema,) in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (f"{prefix}%",)
        ):
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def county_store(place, name: str, steps: int = 24) -> Fengqiao:
    """A seeded county store with cases driven through the engine over three months."""
    clock = SimulatedClock(datetime(2026, 9, 28, 1, tzinfo=UTC))
    app = seed(Fengqiao(StoreConfig(place(name)), clock=clock))
    r = random.Random(name)
    for _ in range(3):
        drive(
            app,
            clock,
            [
                (r.choice(["report", "act", "act", "act", "clock"]), r.getrandbits(32))
                for _ in range(steps)
            ],
        )
        clock.advance(timedelta(days=27))
    return app


@pytest.fixture
def counties(place):
    apps = {name: county_store(place, name) for name in COUNTIES}
    yield apps
    for app in apps.values():
        app.close()


def events(app: Fengqiao) -> int:
    """How many events the county's log holds (PostgreSQL positions may have holes)."""
    return len(app.recorder.select_notifications(1, 1_000_000))


def heads(counties: dict[str, Fengqiao]) -> dict[str, int]:
    return {name: app.head_position() for name, app in counties.items()}


def own_read_models(app: Fengqiao) -> ProjectionRunner:
    """The county's own projection, in its own store."""
    runner = ProjectionRunner(app, default_projections())
    runner.run_once()
    return runner


def assert_province_is_the_counties(rollup: ProvinceRollup, counties: dict[str, Fengqiao]) -> None:
    """Every county's province rows equal its own read models; the province stats equal
    the county's own region stats, month by month, and the province rows their sum."""
    figures = rollup.stats(*PERIOD)
    by_key = {(row["county"], row["month"]): row for row in figures["counties"]}
    for name, app in counties.items():
        own = own_read_models(app)
        try:
            assert snapshot(rollup.runner(name).db) == snapshot(own.db), name
            for label, start, end in months(*PERIOD):
                expected = ReadModels(own.db).region_stats(
                    "410928", datetime.fromisoformat(start), datetime.fromisoformat(end)
                )
                got = by_key[(name, label)]
                assert {
                    k: got[k]
                    for k in (
                        "received",
                        "resolved",
                        "resolved_within_ceiling",
                        "within_ceiling_rate",
                    )
                } == {
                    k: expected[k]
                    for k in (
                        "received",
                        "resolved",
                        "resolved_within_ceiling",
                        "within_ceiling_rate",
                    )
                }, (name, label)
                [rows] = own.db.query(
                    "SELECT COUNT(*) AS n FROM cases WHERE reported_at >= ? AND reported_at < ?",
                    (start, end),
                )
                assert got["received"] == rows["n"], (name, label)  # and the case rows themselves
        finally:
            own.close()
    for row in figures["province"]:
        parts = [r for r in figures["counties"] if r["month"] == row["month"]]
        assert row["received"] == sum(r["received"] for r in parts)
        assert row["resolved_within_ceiling"] == sum(r["resolved_within_ceiling"] for r in parts)
    assert figures["total"]["received"] == sum(r["received"] for r in figures["province"])
    assert figures["total"]["resolved"] > 0  # the drive resolved something: the check can fail


def test_province_equals_the_sum_of_the_counties_and_rebuilds(place, counties):
    rollup = ProvinceRollup(place("province"))
    try:
        for name, app in counties.items():
            assert rollup.add(name, app.store.url)
        assert not rollup.add("c1", counties["c1"].store.url)  # once
        applied = rollup.run_once(batch_size=7)
        assert applied == {name: events(app) for name, app in counties.items()}
        assert {s["county"]: s["position"] for s in rollup.statuses()} == heads(counties)
        assert rollup.run_once() == dict.fromkeys(COUNTIES, 0)
        assert_province_is_the_counties(rollup, counties)

        before = snapshot(rollup.runner("c2").db)
        assert rollup.rebuild() == sum(events(app) for app in counties.values())
        assert {s["generation"] for s in rollup.statuses()} == {2}
        assert snapshot(rollup.runner("c2").db) == before
        assert_province_is_the_counties(rollup, counties)
    finally:
        rollup.close()


class EveryThird:
    """CrashingCases' dice: every third batch dies before its commit, six times in all."""

    def __init__(self) -> None:
        self.batches = self.crashes = 0

    def random(self) -> float:
        self.batches += 1
        crash = self.batches % 3 == 0 and self.crashes < 6
        self.crashes += crash
        return 0.0 if crash else 1.0


def test_crashes_mid_batch_resume_with_nothing_doubled_or_lost(place, counties):
    configure_logging()  # JSON lines under pytest: a crash's traceback costs no rich rendering
    dice = EveryThird()
    for _ in range(20):  # each round a new process: what a crash and a restart leave behind
        rollup = ProvinceRollup(place("province"), projections=lambda: [CrashingCases(dice)])
        try:
            for name, app in counties.items():
                rollup.add(name, app.store.url)
            applied = rollup.run_once(batch_size=10, threads=3)
            lags = [s["lag"] for s in rollup.statuses()]
        finally:
            rollup.close()
        if not any(lags) and not any(applied.values()):
            break
    assert dice.crashes == 6
    rollup = ProvinceRollup(place("province"))
    try:
        assert_province_is_the_counties(rollup, counties)
    finally:
        rollup.close()


def test_kill_9_mid_way_resumes(place, counties):
    province_url = place("province")
    env = {**os.environ, "FENGQIAO_PROVINCE_URL": province_url, "FENGQIAO_LOG_LEVEL": "WARNING"}
    rollup = ProvinceRollup(province_url)
    try:
        for name, app in counties.items():
            rollup.add(name, app.store.url)
        follower = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "api.cli",
                "province",
                "follow",
                "--batch-size",
                "2",
                "--poll",
                "0.05",
            ],
            cwd=ROOT,
            env=env,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # kill it once it has applied some batches, not all
                positions = _positions(province_url)
                if sum(positions.values()) >= sum(heads(counties).values()) // 4:
                    break
                assert follower.poll() is None, follower.stderr.read().decode()
                time.sleep(0.02)
            follower.send_signal(signal.SIGKILL)
            follower.wait(10)
        finally:
            follower.kill()
            follower.stderr.close()
        killed_at = _positions(province_url)
        assert 0 < sum(killed_at.values()) < sum(heads(counties).values())
        rollup.run_once(batch_size=50)  # the restart
        assert {s["county"]: s["position"] for s in rollup.statuses()} == heads(counties)
        assert_province_is_the_counties(rollup, counties)
    finally:
        rollup.close()


def _positions(province_url: str) -> dict[str, int]:
    """Each county's committed position, read as a stranger would (no runner)."""
    from engine.sql import Database

    positions = {}
    for name in COUNTIES:
        db = Database(county_url(province_url, name))
        try:
            rows = (
                db.query("SELECT position FROM projection_tracking")
                if db.table_exists("projection_tracking")
                else []
            )
            positions[name] = rows[0]["position"] if rows else 0
        finally:
            db.close()
    return positions


def test_a_county_added_later_is_picked_up(place, counties):
    rollup = ProvinceRollup(place("province"))
    stop = threading.Event()
    try:
        for name in ("c1", "c2"):
            rollup.add(name, counties[name].store.url)
        follower = threading.Thread(target=rollup.follow, args=(stop, 0.05, 10))
        follower.start()
        _wait(lambda: {s["county"]: s["lag"] for s in rollup.statuses()} == {"c1": 0, "c2": 0})
        rollup.add("c3", counties["c3"].store.url)  # while it runs
        drive(
            counties["c1"], counties["c1"].clock, [("report", 1), ("act", 2), ("act", 3)]
        )  # and the others go on
        _wait(lambda: {s["county"]: s["position"] for s in rollup.statuses()} == heads(counties))
        stop.set()
        follower.join(30)
        assert not follower.is_alive()
        assert_province_is_the_counties(rollup, counties)
    finally:
        stop.set()
        rollup.close()


def _wait(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_cli_add_follow_status_stats(place, counties, monkeypatch):
    monkeypatch.setenv("FENGQIAO_PROVINCE_URL", place("province"))
    configure_logging()  # bind log output here, not to the first invocation's captured stderr
    runner = CliRunner()
    for name, app in counties.items():
        added = runner.invoke(cli, ["province", "add", name, app.store.url])
        assert added.exit_code == 0, added.output
    other = runner.invoke(cli, ["province", "add", "c1", counties["c2"].store.url])
    assert other.exit_code == 2 and "another store" in other.output
    bad = runner.invoke(cli, ["province", "add", "C-1", counties["c2"].store.url])
    assert bad.exit_code == 2
    followed = runner.invoke(cli, ["province", "follow", "--once"])
    assert followed.exit_code == 0, followed.output
    assert f"c1: {events(counties['c1']):,} events" in followed.output
    status = json.loads(runner.invoke(cli, ["province", "status", "--json"]).stdout)
    assert [(s["county"], s["lag"]) for s in status] == [(name, 0) for name in COUNTIES]
    figures = json.loads(
        runner.invoke(
            cli, ["province", "stats", "--from", PERIOD[0], "--to", PERIOD[1], "--json"]
        ).output
    )
    assert [r["month"] for r in figures["province"]] == ["2026-09", "2026-10", "2026-11", "2026-12"]
    assert figures["total"]["received"] == sum(r["received"] for r in figures["counties"]) > 0
    table = runner.invoke(cli, ["province", "stats", "--from", "2026-09", "--to", "2026-10"])
    assert table.exit_code == 0 and "小事不出村" in table.output
    wrong = runner.invoke(cli, ["province", "stats", "--from", "2026-13", "--to", "2026-10"])
    assert wrong.exit_code == 2


def test_months_are_province_calendar_months():
    [(label, start, end)] = months("2026-12", "2026-12")
    assert label == "2026-12"
    assert datetime.fromisoformat(start) == datetime(2026, 12, 1, tzinfo=ZONE)
    assert datetime.fromisoformat(end) == datetime(2027, 1, 1, tzinfo=ZONE)
    assert [m[0] for m in months("2026-11", "2027-02")] == [
        "2026-11",
        "2026-12",
        "2027-01",
        "2027-02",
    ]
