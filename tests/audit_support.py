"""Raw SQL on the test store, as a tamperer would use it (bypassing the engine)."""

from __future__ import annotations

import sqlite3
from typing import Any

from engine.service import Fengqiao
from tests.support import ZHANG_SAN, act, report


class RawStore:
    """Direct access to the events and chain tables of an app's store."""

    def __init__(self, app: Fengqiao) -> None:
        self.app = app
        self.postgres = app.store.is_postgres
        if self.postgres:
            import psycopg

            self.conn: Any = psycopg.connect(app.store.psycopg_url(), autocommit=True)
            schema = app.store.schema
            self.events = f'"{schema}".{app.recorder.events_table_name}'
            self.chain = f'"{schema}".audit_chain'
            self.checkpoints = f'"{schema}".audit_tree_heads'
            self.merkle = f'"{schema}".audit_merkle'
            self.pos = "notification_id"
        else:
            self.conn = sqlite3.connect(app.store.sqlite_path, isolation_level=None)
            self.events, self.chain, self.checkpoints, self.merkle = (
                "stored_events",
                "audit_chain",
                "audit_tree_heads",
                "audit_merkle",
            )
            self.pos = "rowid"

    def close(self) -> None:
        self.conn.close()

    def sql(self, text: str, params: tuple = ()) -> list[tuple]:
        text = text.replace("?", "%s") if self.postgres else text
        cursor = self.conn.execute(text, params)
        try:
            return [tuple(row) for row in cursor.fetchall()]
        except Exception:  # noqa: BLE001 - statements without rows
            return []

    def events_rows(self) -> list[tuple]:
        """(position, originator_id, version, topic, state) in order."""
        return self.sql(
            f"SELECT {self.pos}, originator_id, originator_version, topic, state FROM {self.events} "
            f"ORDER BY {self.pos}"
        )

    def chain_rows(self) -> list[tuple]:
        return self.sql(
            f"SELECT position, seq, case_id, version, entry_hash, case_hash, chain_hash FROM {self.chain} "
            "ORDER BY position"
        )

    def snapshot(self) -> tuple[list[tuple], list[tuple], list[tuple]]:
        return self.events_rows(), self.chain_rows(), self.sql(f"SELECT * FROM {self.checkpoints}")

    def restore(self, snapshot: tuple[list[tuple], list[tuple], list[tuple]]) -> None:
        events, chain, checkpoints = snapshot
        self.sql(f"DELETE FROM {self.events}")
        self.sql(f"DELETE FROM {self.chain}")
        self.sql(f"DELETE FROM {self.checkpoints}")
        for row in events:
            self.sql(
                f"INSERT INTO {self.events} ({self.pos}, originator_id, originator_version, topic, state) "
                "VALUES (?, ?, ?, ?, ?)",
                row,
            )
        for row in chain:
            self.sql(
                f"INSERT INTO {self.chain} (position, seq, case_id, version, entry_hash, case_hash, chain_hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                row,
            )
        for row in checkpoints:
            self.sql(f"INSERT INTO {self.checkpoints} VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)


def busy_history(app: Fengqiao) -> list:
    """A few cases with some history, for verification to chew on."""
    cases = []
    for kind in ("dispute", "hazard", "petition"):
        result = report(app, kind, parties=[ZHANG_SAN])
        cases.append(result.case_id)
        act(app, result.case_id, "comment", "wang", text="已上门了解情况")
    act(app, cases[0], "assign", "li", assignee="zhao")
    act(app, cases[0], "accept", "zhao")
    act(app, cases[0], "mediate", "zhao", outcome="adjourned", summary="双方情绪激动, 择期再调")
    return cases
