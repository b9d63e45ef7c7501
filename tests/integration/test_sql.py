"""One SQL adapter (``engine.sql``) for every side table, and the recorder's reads of
the events table, on both stores."""

from __future__ import annotations

from engine.sql import Database, StoreDb
from tests.support import act, report


def test_the_store_adapter_translates_placeholders_not_literals(app) -> None:
    """``?`` and ``%`` inside a string literal stay as written (a blind ``?`` → ``%s``
    replace broke both on PostgreSQL)."""
    db = StoreDb(app.recorder)
    assert db.query("SELECT '50% done?' AS text, ? AS value", (7,)) == [
        {"text": "50% done?", "value": 7}
    ]


def test_both_adapters_give_the_same_rows(app) -> None:
    store, side = StoreDb(app.recorder), Database.for_store(app.store)
    try:
        table = store.table("adapter_probe")
        store.execute(f"CREATE TABLE IF NOT EXISTS {table} (k TEXT PRIMARY KEY, v INTEGER)")
        with store.transaction() as tx:
            tx.execute(f"INSERT INTO {table} (k, v) VALUES (?, ?)", ("a", 1))
            tx.execute(f"INSERT INTO {table} (k, v) VALUES (:k, :v)", {"k": "b", "v": 2})
        sql = f"SELECT k, v FROM {table} ORDER BY k"
        assert store.query(sql) == side.query(sql) == [{"k": "a", "v": 1}, {"k": "b", "v": 2}]
        assert store.columns(table) == ["k", "v"]
    finally:
        side.close()


def test_the_recorder_reads_positions_and_event_rows_as_the_library_does(app) -> None:
    case_id = report(app).case_id
    act(app, case_id, "assign", "li", assignee="zhao")
    recorder = app.recorder
    notifications = recorder.select_notifications(1, 1000)
    expected = [
        (n.id, str(n.originator_id), n.originator_version, n.topic, bytes(n.state))
        for n in notifications
    ]
    assert recorder.event_rows(0, 1000) == expected
    assert recorder.event_rows(expected[1][0], 2, upto=expected[3][0]) == expected[2:4]
    topic = expected[-1][3]
    assert recorder.event_rows(0, 1000, topics=[topic]) == [
        row for row in expected if row[3] == topic
    ]
    ours = {row[2]: row[0] for row in expected if row[1] == str(case_id)}
    assert recorder.positions_of(case_id) == ours
    assert recorder.positions_of(case_id, 2) == {2: ours[2]}
