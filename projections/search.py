"""The search index: each case's words, and the persons among its parties.

Tables (public names; see docs/projections.md):

* ``search_text`` — one row per case: ``title``, the report's title, and ``body``, the
  title, description, comments, replies and resolutions, as ``domain.search.indexable``
  gives them (case-folded, every personal number blanked: no index holds a phone or ID
  number in clear). The title is indexed apart so that a search can fetch the title
  matches first, by index (``domain.search.TIERS``). SQLite: an FTS5 table with the
  ``trigram`` tokenizer (a ``title`` and a ``body`` column); PostgreSQL: a table with a
  ``pg_trgm`` GIN index on each (``LIKE '%…%'`` uses it).
* ``search_grams`` — two-character substrings (``domain.search.bigrams``) of the title
  (``title_grams``) and of the body (``grams``), for two-character terms a trigram index
  cannot look up. SQLite: an FTS5 table (``unicode61``: each bigram one token);
  PostgreSQL: two ``text[]`` columns of ``search_text`` with a GIN index each, so
  ``search_grams`` is a view of them.
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
    version = 2  # 2: the title indexed apart (search results ranked title matches first)

    # -- tables ------------------------------------------------------------------

    def create_tables(self, tx: Tx) -> None:
        text, grams, parties = (self.t(n) for n in self.tables[:3])
        key = tx.key_type
        if tx.is_postgres:
            tx.execute(
                f"CREATE TABLE {text} (case_id {key} PRIMARY KEY, title TEXT NOT NULL, "
                "body TEXT NOT NULL, title_grams TEXT[] NOT NULL, grams TEXT[] NOT NULL)"
            )
            tx.execute(f"CREATE VIEW {grams} AS SELECT case_id, title_grams, grams FROM {text}")
        else:
            tx.execute(
                f"CREATE VIRTUAL TABLE {text} USING fts5(case_id UNINDEXED, title, body, "
                "tokenize = 'trigram')"
            )
            tx.execute(
                f"CREATE VIRTUAL TABLE {grams} USING fts5(case_id UNINDEXED, title_grams, "
                "grams, tokenize = 'unicode61')"
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
        for column in ("title", "body"):
            tx.execute(
                f"CREATE INDEX {text}_{column} ON {text} USING gin ({column} {schema}.gin_trgm_ops)"
            )
        for column in ("title_grams", "grams"):
            tx.execute(f"CREATE INDEX {text}_{column} ON {text} USING gin ({column})")

    def drop_tables(self, tx: Tx) -> None:
        if tx.is_postgres:
            tx.execute(f"DROP VIEW IF EXISTS {self.t('search_grams')}")
            tx.execute(f"DROP TABLE IF EXISTS {self.t('search_text')}")
            for table in ("search_parties", "search_points"):
                tx.execute(f"DROP TABLE IF EXISTS {self.t(table)}")
            return
        super().drop_tables(tx)

    # -- applying ----------------------------------------------------------------

    def apply_batch(self, tx: Tx, events: Sequence[tuple[int, Any]]) -> None:
        """Each case's new words appended to its body, written once per batch."""
        added: dict[str, list[str]] = {}
        people: list[tuple[str, str]] = []
        titles = {
            str(e.originator_id): indexable(e.title)
            for _, e in events
            if isinstance(e, Case.Reported)
        }
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
            self._write(tx, case_id, indexable(*words), titles.get(case_id))

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

    def _write(self, tx: Tx, case_id: str, words: str, title: str | None) -> None:
        """The case's row with ``words`` appended to its body (``title``: its report's)."""
        text = self.t("search_text")
        postgres = tx.is_postgres
        key = ("case_id", case_id) if postgres else ("rowid", rowid_of(case_id))
        rows = tx.query(f"SELECT title, body FROM {text} WHERE {key[0]} = ?", (key[1],))
        body = f"{rows[0]['body']}\n{words}" if rows else words
        title = rows[0]["title"] if rows else title or ""
        if postgres:
            tx.execute(
                f"INSERT INTO {text} (case_id, title, body, title_grams, grams) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (case_id) DO UPDATE SET body = excluded.body, "
                "grams = excluded.grams",
                (case_id, title, body, bigrams(title), bigrams(body)),
            )
            return
        grams = self.t("search_grams")
        for table in (text, grams):
            tx.execute(f"DELETE FROM {table} WHERE rowid = ?", (key[1],))
        tx.execute(
            f"INSERT INTO {text} (rowid, case_id, title, body) VALUES (?, ?, ?, ?)",
            (key[1], case_id, title, body),
        )
        tx.execute(
            f"INSERT INTO {grams} (rowid, case_id, title_grams, grams) VALUES (?, ?, ?, ?)",
            (key[1], case_id, " ".join(bigrams(title)), " ".join(bigrams(body))),
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
