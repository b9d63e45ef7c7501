"""The projection mechanism: batches, exactly-once tracking, rebuild beside and swap."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from engine.sql import Database, to_psycopg
from projections.base import Projection
from projections.runner import ProjectionRunner
from tests.support import ZHANG_SAN, act, report


class EventCounts(Projection):
    """How many events of each type: the simplest projection there is."""

    name = "event_counts"
    tables = ("event_counts",)
    topics = ()

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at

    def create_tables(self, tx) -> None:
        tx.execute(
            f"CREATE TABLE {self.t('event_counts')} (type TEXT PRIMARY KEY, n INTEGER NOT NULL)"
        )

    def apply(self, tx, event, position: int) -> None:
        if self.fail_at is not None and position == self.fail_at:
            raise RuntimeError("injected crash")
        table = self.t("event_counts")
        tx.execute(
            f"INSERT INTO {table} (type, n) VALUES (?, 1) ON CONFLICT (type) DO UPDATE SET n = {table}.n + 1",
            (type(event).__name__,),
        )


def counts(db: Database) -> dict[str, int]:
    return {r["type"]: r["n"] for r in db.query("SELECT type, n FROM event_counts")}


def some_cases(app, n: int = 3) -> None:
    for _ in range(n):
        case = report(app).case_id
        act(app, case, "assign", "zhao", assignee="zhao")
        act(app, case, "accept", "zhao")


def test_placeholders_translate_for_psycopg() -> None:
    assert to_psycopg(
        "SELECT * FROM t WHERE a = ? AND b LIKE '50%?' AND c = :name AND d::text = ?"
    ) == ("SELECT * FROM t WHERE a = %s AND b LIKE '50%%?' AND c = %(name)s AND d::text = %s")
    assert to_psycopg("WHERE region LIKE ? || '-%'") == "WHERE region LIKE %s || '-%%'"
    assert to_psycopg("SELECT 5 % 2") == "SELECT 5 %% 2"
    hits = to_psycopg.cache_info().hits
    assert to_psycopg("SELECT 5 % 2") == "SELECT 5 %% 2"  # translated once, then remembered
    assert to_psycopg.cache_info().hits == hits + 1


def test_a_percent_sign_inside_a_literal_reaches_the_database_as_written(store) -> None:
    db = Database(store.url)
    try:
        with db.transaction() as tx:
            rows = tx.query("SELECT 'a-%:b?' AS text, 'x-y' LIKE '%-%' AS matched, 7 % 4 AS rest")
        assert rows == [{"text": "a-%:b?", "matched": True, "rest": 3}]
    finally:
        db.close()


def test_catches_up_in_batches_and_tracks_the_position(app) -> None:
    some_cases(app)
    runner = ProjectionRunner(app, [EventCounts()])
    try:
        applied = runner.run_once(batch_size=2)
        assert applied == app.head_position()
        assert runner.position("event_counts") == app.head_position()
        assert runner.lag() == {"event_counts": 0}
        assert counts(runner.db)["Reported"] == 3
        assert counts(runner.db)["Accepted"] == 3
        assert runner.run_once() == 0
    finally:
        runner.close()


def test_a_failed_batch_rolls_back_rows_and_position_together(app) -> None:
    some_cases(app)
    head = app.head_position()
    crashing = ProjectionRunner(app, [EventCounts(fail_at=head - 1)])
    try:
        with pytest.raises(RuntimeError, match="injected"):
            crashing.run_once(batch_size=4)
        stopped_at = crashing.position("event_counts")
        assert stopped_at < head - 1
        assert (
            sum(counts(crashing.db).values()) == stopped_at
        )  # every event counted once, none after
    finally:
        crashing.close()
    healthy = ProjectionRunner(app, [EventCounts()])
    try:
        healthy.run_once(batch_size=4)
        incremental = counts(healthy.db)
        healthy.rebuild("event_counts")
        assert counts(healthy.db) == incremental
        assert sum(incremental.values()) == head
    finally:
        healthy.close()


def test_rebuild_swaps_generations_and_readers_never_see_half_built_data(app) -> None:
    some_cases(app, 5)
    runner = ProjectionRunner(app, [EventCounts()])
    try:
        runner.run_once()
        complete = counts(runner.db)
        seen: list[dict[str, int]] = []
        stop = threading.Event()

        def read() -> None:
            reader = Database(runner.db.url)
            try:
                while not stop.is_set():
                    seen.append(counts(reader))
            finally:
                reader.close()

        thread = threading.Thread(target=read)
        thread.start()
        try:
            for _ in range(3):
                runner.rebuild("event_counts", batch_size=3)
        finally:
            stop.set()
            thread.join()
        assert seen and all(view == complete for view in seen)
        status = runner.statuses()[0]
        assert status.generation == 4 and status.lag == 0
        assert len([t for t in _tables(runner.db) if t.startswith("event_counts__g")]) == 1
    finally:
        runner.close()


def test_wait_for_a_position_read_your_writes(app) -> None:
    runner = ProjectionRunner(app, [EventCounts()])
    stop = threading.Event()
    thread = threading.Thread(target=runner.run_forever, args=(stop,), kwargs={"poll": 0.01})
    thread.start()
    try:
        position = report(app).position
        assert runner.wait_for(position, timeout=10)
        assert counts(runner.db)["Reported"] == 1
        assert not runner.wait_for(position + 100, timeout=0.05)
    finally:
        stop.set()
        thread.join()
        runner.close()


def _tables(db: Database) -> list[str]:
    if db.is_postgres:
        rows = db.query(
            "SELECT table_name AS name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
    else:
        rows = db.query("SELECT name FROM sqlite_master WHERE type = 'table'")
    return [r["name"] for r in rows]


def test_a_second_rebuild_waits_for_a_running_one_but_clears_a_dead_one(app):
    from projections.runner import RebuildInProgress

    some_cases(app)
    runner = ProjectionRunner(app, [EventCounts()])
    try:
        runner.run_once()
        with runner.db.transaction() as tx:  # a rebuild that is writing right now
            tx.execute(
                "INSERT INTO projection_rebuilds (name, generation, position, updated_at) "
                "VALUES ('event_counts', 7, 3, ?)",
                (datetime.now(UTC).isoformat(),),
            )
            tx.execute("CREATE TABLE event_counts__g7 (type TEXT PRIMARY KEY, n INTEGER NOT NULL)")
        with pytest.raises(RebuildInProgress):
            runner.rebuild("event_counts")
        with runner.db.transaction() as tx:  # ... that died long ago
            tx.execute(
                "UPDATE projection_rebuilds SET updated_at = ?",
                ((datetime.now(UTC) - timedelta(hours=1)).isoformat(),),
            )
        runner.rebuild("event_counts")
        assert runner.statuses()[0].generation == 8
        assert [t for t in _tables(runner.db) if t.startswith("event_counts__g")] == [
            "event_counts__g8"
        ]
        assert sum(counts(runner.db).values()) == app.head_position()
    finally:
        runner.close()


def test_a_projection_whose_code_changed_is_rebuilt_beside_the_live_one(app):
    some_cases(app)
    runner = ProjectionRunner(app, [EventCounts()])
    try:
        runner.run_once()
        with runner.db.transaction() as tx:
            tx.execute(
                "UPDATE projection_tracking SET version = 0"
            )  # tables of an older code version
        assert runner.statuses()[0].stale
        assert runner.rebuild_stale() == ["event_counts"]
        status = runner.statuses()[0]
        assert (status.stale, status.generation, status.lag) == (False, 2, 0)
        assert runner.rebuild_stale() == []
    finally:
        runner.close()


def test_the_runners_decoder_gives_the_mappers_events_and_never_caches_personal_data(app, clock):
    import random

    from engine import privacy
    from projections.decoding import EventDecoder
    from tests.integration.test_projections_properties import drive

    r = random.Random(9)
    drive(
        app,
        clock,
        [
            (r.choice(["report", "act", "act", "act", "clock"]), r.getrandbits(32))
            for _ in range(80)
        ],
    )
    zhang = ZHANG_SAN
    case_id = report(app, parties=[zhang, {"name": "李四", "role": "respondent"}]).case_id
    act(
        app, case_id, "escalate", "wang", reason="越级"
    )  # refused above the ceiling: a refusal event
    decoder = EventDecoder(app.mapper)
    assert decoder.fast
    stored = list(app.recorder.select_notifications(1, 100_000))
    topics = set()
    for notification in stored:
        expected, got = app.mapper.to_domain_event(notification), decoder.decode(notification)
        assert type(got) is type(expected)
        assert got.__dict__ == expected.__dict__, notification.topic
        assert [type(v) for v in got.__dict__.values()] == [
            type(v) for v in expected.__dict__.values()
        ]
        topics.add(notification.topic.rsplit(".", 1)[-1])
    assert {"Reported", "Assigned", "ClockWarned", "ClockBreached", "PolicyLoaded"} <= topics, (
        topics
    )
    reported = next(n for n in reversed(stored) if n.topic.endswith("Reported"))
    assert decoder.decode(reported).parties[0]["name"] == "张三"
    privacy.erase(app, privacy.find_person(app, id_number=zhang["id_number"]), "cli:admin")
    assert (
        decoder.decode(reported).parties[0]["name"] == privacy.ERASED
    )  # sealed parties are opened every time


@pytest.mark.parametrize("bulk", [False, True])
def test_a_bulk_transaction_writes_the_same_rows(app, bulk, monkeypatch) -> None:
    """executemany in a bulk transaction (COPY + one INSERT … SELECT on PostgreSQL) gives
    the rows a plain one does: new rows, upserts over existing rows, DO NOTHING, and
    rows repeating a key (which fall back to one statement per row, in order)."""
    from engine import sql as dbmodule

    copied: list[bool] = []
    copy = dbmodule.Tx._copy
    monkeypatch.setattr(
        dbmodule.Tx, "_copy", lambda tx, sql, rows: copied.append(copy(tx, sql, rows)) or copied[-1]
    )
    db = Database.for_store(app.store)
    try:
        with db.transaction() as tx:
            tx.execute("DROP TABLE IF EXISTS bulk_t")
            tx.execute("CREATE TABLE bulk_t (k TEXT PRIMARY KEY, n INTEGER NOT NULL, note TEXT)")
            tx.executemany(
                "INSERT INTO bulk_t (k, n, note) VALUES (?, ?, ?)",
                [(f"k{i}", i, "old") for i in range(0, 80, 2)],
            )
        upsert = (
            "INSERT INTO bulk_t (k, n, note) VALUES (?, ?, ?) "
            "ON CONFLICT (k) DO UPDATE SET n = bulk_t.n + excluded.n, note = excluded.note"
        )
        with db.transaction(bulk=bulk) as tx:
            tx.executemany(
                upsert,
                [(f"k{i}", 100, None if i % 5 else "new") for i in range(dbmodule.BULK_ROWS + 10)],
            )
            tx.executemany(
                upsert, [(f"k{i % 3}", 1, f"again {i}") for i in range(dbmodule.BULK_ROWS)]
            )  # keys repeat
            tx.executemany(
                "INSERT INTO bulk_t (k, n) VALUES (?, ?) ON CONFLICT (k) DO NOTHING",
                [(f"k{i}", -1) for i in range(70, 70 + dbmodule.BULK_ROWS)],
            )
        rows = {r["k"]: (r["n"], r["note"]) for r in db.query("SELECT k, n, note FROM bulk_t")}
    finally:
        db.close()
    expected = {f"k{i}": (i, "old") for i in range(0, 80, 2)}
    for i in range(dbmodule.BULK_ROWS + 10):
        expected[f"k{i}"] = (expected.get(f"k{i}", (0, None))[0] + 100, None if i % 5 else "new")
    for i in range(dbmodule.BULK_ROWS):
        expected[f"k{i % 3}"] = (expected[f"k{i % 3}"][0] + 1, f"again {i}")
    for i in range(70, 70 + dbmodule.BULK_ROWS):
        expected.setdefault(f"k{i}", (-1, None))
    assert rows == expected
    assert copied == (
        [True, False, True] if bulk and db.is_postgres else []
    )  # COPY used where it can be


def test_a_rebuild_through_copy_equals_the_incremental_read_model(app, monkeypatch) -> None:
    """Enough cases that a rebuild's batch goes through COPY (PostgreSQL), with cases
    spanning batches (upserts over rows of an earlier batch): the rebuilt tables
    equal the incrementally built ones, row for row."""
    from engine import sql as dbmodule
    from projections.cases import CasesProjection
    from tests.integration.test_projections_properties import snapshot

    cases = [report(app).case_id for _ in range(dbmodule.BULK_ROWS + 20)]
    for case in cases:
        act(app, case, "assign", "zhao", assignee="zhao")
    for case in cases[::2]:
        act(app, case, "accept", "zhao")
    copied: list[bool] = []
    copy = dbmodule.Tx._copy
    monkeypatch.setattr(
        dbmodule.Tx, "_copy", lambda tx, sql, rows: copied.append(copy(tx, sql, rows)) or copied[-1]
    )
    runner = ProjectionRunner(app, [CasesProjection()])
    try:
        runner.run_once(batch_size=7)
        incremental = snapshot(runner.db)
        assert len(incremental["cases"]) == len(cases) and not copied
        runner.rebuild("cases", batch_size=app.head_position() // 2)
        assert runner.statuses()[0].generation == 2
        assert snapshot(runner.db) == incremental
        assert (True in copied) == runner.db.is_postgres
    finally:
        runner.close()


class DeferredCounts(EventCounts):
    """Counts like EventCounts, but a rebuild only logs event types and counts them in
    ``finish_rebuild`` (as a projection defers roll-ups to the end of a rebuild)."""

    tables = ("event_counts", "event_counts_log")

    def create_tables(self, tx) -> None:
        super().create_tables(tx)
        tx.execute(
            f"CREATE TABLE {self.t('event_counts_log')} (position INTEGER PRIMARY KEY, type TEXT NOT NULL)"
        )

    def apply(self, tx, event, position: int) -> None:
        if self.rebuilding:
            tx.execute(
                f"INSERT INTO {self.t('event_counts_log')} (position, type) VALUES (?, ?)",
                (position, type(event).__name__),
            )
        else:
            super().apply(tx, event, position)

    def finish_rebuild(self, tx) -> None:
        log_table = self.t("event_counts_log")
        tx.execute(
            f"INSERT INTO {self.t('event_counts')} (type, n) SELECT type, COUNT(*) FROM {log_table} "
            "GROUP BY type"
        )
        tx.execute(f"DELETE FROM {log_table}")


def test_a_rebuild_may_leave_derived_work_to_its_end_and_events_after_it_still_count(app) -> None:
    some_cases(app, 4)
    runner = ProjectionRunner(app, [DeferredCounts()])
    try:
        runner.run_once(batch_size=3)
        assert runner.projections["event_counts"].rebuilding is False
        late: list[int] = []

        def progress(position: int, head: int) -> None:
            if (
                not late
            ):  # events written while the rebuild runs: read by it, or by the swap's catch-up
                some_cases(app, 1)
                late.append(position)

        runner.rebuild("event_counts", progress=progress, batch_size=4)
        assert sum(counts(runner.db).values()) == app.head_position()
        assert counts(runner.db)["Reported"] == 5
        assert runner.db.query("SELECT COUNT(*) AS n FROM event_counts_log")[0]["n"] == 0
        assert runner.projections["event_counts"].rebuilding is False  # only the rebuild's copy was
        runner.run_once()
        some_cases(app, 1)
        runner.run_once()
        assert counts(runner.db)["Reported"] == 6
    finally:
        runner.close()
