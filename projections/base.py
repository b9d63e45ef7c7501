"""Read models built from the event log: how to write one.

A projection turns events into rows. It declares its ``name`` (its tracking
name), the public ``tables`` it answers from (each starts with the name), the
event ``topics`` it wants, and three methods::

    class TimerIndex(Projection):
        name = "timers"
        tables = ("timers",)                      # public names (views)
        topics = ("Assigned", "Accepted", "Resolved")   # class names or full topics; () = all

        def create_tables(self, tx: Tx) -> None:
            t = self.t("timers")                  # this generation's physical table
            tx.execute(f"CREATE TABLE {t} (case_id TEXT, clock TEXT, due_at TEXT, "
                       f"PRIMARY KEY (case_id, clock))")

        def create_indexes(self, tx: Tx) -> None:   # optional: built after a rebuild's bulk load
            t = self.t("timers")
            tx.execute(f"CREATE INDEX {t}_due ON {t} (due_at)")

        def apply(self, tx: Tx, event, position: int) -> None:
            tx.execute(f"INSERT INTO {self.t('timers')} … ON CONFLICT … DO UPDATE …", {...})

Readers query the public name (``SELECT … FROM timers``): a view onto the live
generation. Writers always go through ``self.t(table)``: the physical table of
the generation being built (``timers__g3``). A rebuild builds generation N+1
beside the live one, then swaps the views in one transaction — readers never see
half-built data. Index names must start with ``self.t(...)`` so they are unique
per generation.

``apply`` gets the decoded domain event (``domain.cases.Case.Event``) and its
global position, inside the transaction that also advances the projection's
tracking position (see :mod:`projections.runner`): a batch's rows and its
position commit together, so a crash never double-counts or skips. ``apply``
must be deterministic — a function of the events only — so a rebuild from zero
equals the incremental result. Override ``apply_batch`` instead to apply a whole batch
at once (load rows once, write them once) when speed matters.

Bump ``version`` when the tables or the meaning of the rows change;
``fengqiao projections status`` then reports the projection as stale until it
is rebuilt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from engine.sql import Tx


class Projection:
    """One read model: its tables, the events it wants, how each event changes rows."""

    name: ClassVar[str]
    tables: ClassVar[tuple[str, ...]] = ()
    topics: ClassVar[tuple[str, ...]] = ()
    version: ClassVar[int] = 1

    generation: int = 1  # set by the runner: the generation being written
    # True while a rebuild loads a new generation from zero (set by the runner on its
    # copy): nobody reads those tables before the swap, so work derived from the rows
    # (roll-ups, counters over many rows) may be left to :meth:`finish_rebuild` and done
    # once, instead of batch by batch.
    rebuilding: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = getattr(cls, "name", None)
        if name is not None:
            for table in cls.tables:
                if not table.startswith(name):
                    raise TypeError(f"{cls.__name__}: table {table!r} must start with {name!r}")

    def t(self, table: str) -> str:
        """The physical table for ``table`` in the generation being written."""
        if table not in self.tables:
            raise KeyError(f"{self.name} has no table {table!r}; declare it in tables")
        return f"{table}__g{self.generation}"

    def wants(self, topic: str) -> bool:
        """Does this projection apply events of ``topic`` (``module:Class.Event``)?"""
        if not self.topics:
            return True
        return topic in self.topics or topic.rsplit(".", 1)[-1] in self.topics

    def create_tables(self, tx: Tx) -> None:
        raise NotImplementedError

    def create_indexes(self, tx: Tx) -> None:
        """Secondary indexes. A rebuild creates them after loading every row (faster
        than maintaining them row by row); a new projection right after its tables."""

    def finish_rebuild(self, tx: Tx) -> None:
        """A rebuild has applied its last batch (``rebuilding`` was True for all of them):
        complete what was left for the end, before the indexes are built. Events that
        arrive after this are applied with ``rebuilding`` False, in the swap's transaction."""

    def drop_tables(self, tx: Tx) -> None:
        for table in self.tables:
            tx.execute(f"DROP TABLE IF EXISTS {self.t(table)}")

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        """One event. A projection overrides this, or :meth:`apply_batch` (then this
        applies a batch of one)."""
        if type(self).apply_batch is Projection.apply_batch:
            raise NotImplementedError(
                f"{type(self).__name__} overrides neither apply nor apply_batch"
            )
        self.apply_batch(tx, [(position, event)])

    def apply_batch(self, tx: Tx, events: Sequence[tuple[int, Any]]) -> None:
        """Apply ``(position, event)`` pairs in order; one transaction holds them all."""
        for position, event in events:
            self.apply(tx, event, position)
