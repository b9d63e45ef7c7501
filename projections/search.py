"""The search index: each case's words, and the persons among its parties.

Tables (public names; see docs/projections.md):

* ``search_text`` — one row per case: ``body``, the title, description, comments,
  replies and resolutions as ``domain.search.indexable`` gives them (case-folded,
  every personal number blanked: no index holds a phone or ID number in clear).
  SQLite: an FTS5 table with the ``trigram`` tokenizer; PostgreSQL: a table with a
  ``pg_trgm`` GIN index on ``body`` (``LIKE '%…%'`` uses it).
* ``search_grams`` — the body's two-character substrings (``domain.search.bigrams``),
  for two-character terms a trigram index cannot look up. SQLite: an FTS5 table
  (``unicode61``: each bigram one token); PostgreSQL: a ``text[]`` column of
  ``search_text`` with a GIN index, so ``search_grams`` is a one-column view of it.
* ``search_points`` — each report's point (``lat``, ``long``), for duplicates nearby.
* ``search_parties`` — (person, case): the person ids of each case's parties, as the
  report recorded them. A number finds its persons through their keyed hashes in the
  engine's store (``engine.privacy.persons_with_number``), then their cases here.

Queries: :meth:`projections.queries.ReadModels.list_cases` with ``q`` or ``persons``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import singledispatchmethod
from typing import Any

from domain.cases import Case, Petition
from domain.search import bigrams, indexable
from engine.sql import Tx
from projections.base import Projection


def rowid_of(case_id: str) -> int:
    """A case's row in the FTS5 tables: 60 bits of its UUID (a stable integer key)."""
    return int(case_id.replace("-", "")[:15], 16)


class SearchProjection(Projection):
    name = "search"
    tables = ("search_text", "search_grams", "search_parties", "search_points")
    topics = ("Reported", "Commented", "Replied", "Resolved")
    version = 1

    # -- tables ------------------------------------------------------------------

    def create_tables(self, tx: Tx) -> None:
        text, grams, parties = (self.t(n) for n in self.tables[:3])
        key = tx.key_type
        if tx.is_postgres:
            tx.execute(
                f"CREATE TABLE {text} (case_id {key} PRIMARY KEY, body TEXT NOT NULL, "
                "grams TEXT[] NOT NULL)"
            )
            tx.execute(f"CREATE VIEW {grams} AS SELECT case_id, grams FROM {text}")
        else:
            tx.execute(
                f"CREATE VIRTUAL TABLE {text} USING fts5(case_id UNINDEXED, body, "
                "tokenize = 'trigram')"
            )
            tx.execute(
                f"CREATE VIRTUAL TABLE {grams} USING fts5(case_id UNINDEXED, grams, "
                "tokenize = 'unicode61')"
            )
        tx.execute(
            f"CREATE TABLE {parties} (person {key} NOT NULL, case_id {key} NOT NULL, "
            "PRIMARY KEY (person, case_id))"
        )
        tx.execute(
            f"CREATE TABLE {self.t('search_points')} (case_id {key} PRIMARY KEY, "
            "lat DOUBLE PRECISION NOT NULL, long DOUBLE PRECISION NOT NULL)"
        )

    def create_indexes(self, tx: Tx) -> None:
        if not tx.is_postgres:
            return
        text = self.t("search_text")
        schema = trgm_schema(tx)
        tx.execute(f"CREATE INDEX {text}_body ON {text} USING gin (body {schema}.gin_trgm_ops)")
        tx.execute(f"CREATE INDEX {text}_grams ON {text} USING gin (grams)")

    def drop_tables(self, tx: Tx) -> None:
        if tx.is_postgres:
            tx.execute(f"DROP VIEW IF EXISTS {self.t('search_grams')}")
            tx.execute(f"DROP TABLE IF EXISTS {self.t('search_text')}")
            for table in ("search_parties", "search_points"):
                tx.execute(f"DROP TABLE IF EXISTS {self.t(table)}")
            return
        super().drop_tables(tx)

    # -- applying ----------------------------------------------------------------

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        self.apply_batch(tx, [(position, event)])

    def apply_batch(self, tx: Tx, events: Sequence[tuple[int, Any]]) -> None:
        """Each case's new words appended to its body, written once per batch."""
        added: dict[str, list[str]] = {}
        people: list[tuple[str, str]] = []
        for _, event in events:
            self._words(event, added, people)
            self._point(tx, event)
        if people:
            tx.executemany(
                f"INSERT INTO {self.t('search_parties')} (person, case_id) VALUES (?, ?) "
                "ON CONFLICT (person, case_id) DO NOTHING",
                people,
            )
        for case_id, words in added.items():
            self._write(tx, case_id, indexable(*words))

    def _point(self, tx: Tx, event: Any) -> None:
        """Where a report says it is (``lat``/``long`` in its details), for ``nearby``."""
        details = getattr(event, "details", None) if isinstance(event, Case.Reported) else None
        if details and details.get("lat") is not None and details.get("long") is not None:
            tx.execute(
                f"INSERT INTO {self.t('search_points')} (case_id, lat, long) VALUES (?, ?, ?) "
                "ON CONFLICT (case_id) DO NOTHING",
                (str(event.originator_id), float(details["lat"]), float(details["long"])),
            )

    @singledispatchmethod
    def _words(self, event: Any, added: dict[str, list[str]], people: list) -> None:
        """Events that add no words."""

    @_words.register
    def _reported(self, event: Case.Reported, added: dict[str, list[str]], people: list) -> None:
        case_id = str(event.originator_id)
        added.setdefault(case_id, []).extend([event.title, event.description])
        for party in event.parties or []:
            person = party.get("person") if isinstance(party, dict) else None
            if person:
                people.append((str(person), case_id))

    @_words.register(Case.Commented)
    @_words.register(Petition.Replied)
    def _text(self, event: Any, added: dict[str, list[str]], people: list) -> None:
        added.setdefault(str(event.originator_id), []).append(event.text)

    @_words.register
    def _resolved(self, event: Case.Resolved, added: dict[str, list[str]], people: list) -> None:
        added.setdefault(str(event.originator_id), []).append(event.resolution)

    def _write(self, tx: Tx, case_id: str, words: str) -> None:
        text = self.t("search_text")
        if tx.is_postgres:
            rows = tx.query(f"SELECT body FROM {text} WHERE case_id = ?", (case_id,))
            body = f"{rows[0]['body']}\n{words}" if rows else words
            tx.execute(
                f"INSERT INTO {text} (case_id, body, grams) VALUES (?, ?, ?) ON CONFLICT (case_id) "
                "DO UPDATE SET body = excluded.body, grams = excluded.grams",
                (case_id, body, bigrams(body)),
            )
            return
        rowid, grams = rowid_of(case_id), self.t("search_grams")
        rows = tx.query(f"SELECT body FROM {text} WHERE rowid = ?", (rowid,))
        body = f"{rows[0]['body']}\n{words}" if rows else words
        for table in (text, grams):
            tx.execute(f"DELETE FROM {table} WHERE rowid = ?", (rowid,))
        tx.execute(
            f"INSERT INTO {text} (rowid, case_id, body) VALUES (?, ?, ?)", (rowid, case_id, body)
        )
        tx.execute(
            f"INSERT INTO {grams} (rowid, case_id, grams) VALUES (?, ?, ?)",
            (rowid, case_id, " ".join(bigrams(body))),
        )


def trgm_schema(tx: Tx) -> str:
    """The schema ``pg_trgm`` lives in, created there (``public``) if the database lacks it
    (a trusted extension: a database owner may create it)."""
    tx.serialize("fengqiao.pg_trgm")
    rows = tx.query(
        "SELECT n.nspname AS schema FROM pg_extension e JOIN pg_namespace n "
        "ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'"
    )
    if not rows:
        tx.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")
        return "public"
    return f'"{rows[0]["schema"]}"'
