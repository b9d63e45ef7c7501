"""Audit proofs (issue 23): the Merkle tree's upkeep on the write path, and proof generation.

1. Upkeep: µs per event written through the chained recorder with the tree (as the
   engine runs) and without it (the chain alone, as before the tree), in the same run,
   interleaved rounds, batches of 1 and of 50 events; the ratio is the tree's cost. (On
   PostgreSQL the tree is appended after the events' commit, outside their lock, by
   ``catch_up_tree``: both write the same there, and the ratio is ~1 by construction.)
2. Proofs: a tree of ``size`` leaves (default 1,000,000) filled through
   :func:`engine.audit.merkle.append_rows` (synthetic leaves, the rows the recorders
   write), then 1,000 inclusion proofs (random leaf, random size in the upper half) and
   1,000 consistency proofs, each as ``Tree`` serves them to the API: p50/p95 in ms,
   beside the root alone (the cheapest read of the tree) as the baseline, and a bare
   ``SELECT 1`` on the same connections (the round trip's floor on a loaded host).

    fengqiao bench proofs --store sqlite --size 1000000
"""

from __future__ import annotations

import hashlib
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from eventsourcing.persistence import InfrastructureFactory, StoredEvent
from eventsourcing.utils import Environment

from api.bench.stores import bench_store, drop_schema
from engine.audit import merkle
from engine.audit.recorders import ChainedPostgresRecorder, ChainedSQLiteRecorder
from engine.audit.tables import MERKLE
from engine.sql import StoreDb
from engine.store import StoreConfig

ROUNDS = 3


class ChainOnlySQLiteRecorder(ChainedSQLiteRecorder):
    keep_tree = False


class ChainOnlyPostgresRecorder(ChainedPostgresRecorder):
    keep_tree = False


def _recorder(store: StoreConfig, tree: bool) -> tuple[Any, Any]:
    env = store.eventsourcing_env()
    if not tree:
        name = "ChainOnlyPostgresRecorder" if store.is_postgres else "ChainOnlySQLiteRecorder"
        env["APPLICATION_RECORDER_TOPIC"] = f"{__name__}:{name}"
    store.prepare()
    factory = InfrastructureFactory.construct(Environment("fengqiao", env))
    return factory, factory.application_recorder()


def _state(n: int) -> bytes:
    """A stored state of a typical size (~600 bytes)."""
    return (b'{"n":%d,"text":"' % n) + b"x" * 560 + b'"}'


def _write(recorder: Any, count: int, batch: int) -> tuple[float, float]:
    """Wall and CPU µs per event for ``count`` events in batches of ``batch`` (new cases)."""
    events = [
        StoredEvent(uuid.uuid4(), 1, "domain.cases:Dispute.Commented", _state(i))
        for i in range(count)
    ]
    started, cpu = time.perf_counter(), time.process_time()
    for at in range(0, count, batch):
        recorder.insert_events(events[at : at + batch])
    return (time.perf_counter() - started) / count * 1e6, (time.process_time() - cpu) / count * 1e6


def upkeep(kind: str, folder: Path, count: int) -> list[dict]:
    rows = []
    for batch in (1, 50):
        stores = {
            tree: bench_store(kind, folder, f"up{batch}{int(tree)}", prefix="bench_p")
            for tree in (False, True)
        }
        opened = {tree: _recorder(store, tree) for tree, store in stores.items()}
        try:
            walls: dict[bool, list[float]] = {False: [], True: []}
            cpus: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(ROUNDS):
                for tree in (False, True):
                    wall, cpu = _write(opened[tree][1], count * (10 if batch > 1 else 1), batch)
                    walls[tree].append(wall)
                    cpus[tree].append(cpu)
            chain, with_tree = statistics.median(walls[False]), statistics.median(walls[True])
            rows.append(
                {
                    "name": f"tree upkeep {kind}, batches of {batch}",
                    "figure": round(with_tree, 1),
                    "unit": "µs/event (chain + tree)",
                    "baseline": round(chain, 1),
                    "baseline_name": "chain alone",
                    "ratio": with_tree / chain,
                    "client_cpu_us": [round(statistics.median(cpus[t]), 1) for t in (False, True)],
                }
            )
        finally:
            for factory, _ in opened.values():
                factory.close()
            for store in stores.values():
                drop_schema(store)
    return rows


def fill(kind: str, recorder: Any, size: int) -> float:
    """``size`` synthetic leaves into the stored tree; seconds taken."""
    started = time.perf_counter()
    db, done = StoreDb(recorder), 0
    frontier: list[bytes] = []
    while done < size:
        leaves = [
            hashlib.sha256(b"\x00%d" % i).digest() for i in range(done, min(size, done + 100_000))
        ]
        rows = merkle.append_rows(done, frontier, leaves)
        if kind == "postgres":
            with recorder.datastore.transaction(commit=True) as cursor:
                with cursor.copy(f"COPY {db.table(MERKLE)} (node, hash) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        else:
            with db.transaction() as tx:
                tx.executemany(f"INSERT INTO {MERKLE} (node, hash) VALUES (?, ?)", rows)
        done += len(leaves)
    return time.perf_counter() - started


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.95)]


def proof_times(kind: str, folder: Path, size: int, count: int = 1000) -> list[dict]:
    store = bench_store(kind, folder, "proofs", prefix="bench_p")
    factory, recorder = _recorder(store, True)
    try:
        seconds = fill(kind, recorder, size)
        tree, rng = merkle.Tree(StoreDb(recorder)), random.Random(23)
        assert tree.size() == size
        timed: dict[str, list[float]] = {"trip": [], "root": [], "inclusion": [], "consistency": []}
        lengths = []
        for _ in range(count):
            n = rng.randint(size // 2, size)
            for name, call in (
                ("trip", lambda: recorder.read_rows("SELECT 1", [])),
                ("root", lambda n=n: tree.root(n)),
                ("inclusion", lambda n=n: lengths.append(len(tree.inclusion(rng.randrange(n), n)))),
                ("consistency", lambda n=n: tree.consistency(rng.randint(1, n - 1), n)),
            ):
                started = time.perf_counter()
                call()
                timed[name].append((time.perf_counter() - started) * 1000)
        root_p50, root_p95 = _percentiles(timed["root"])
        trip_p50, trip_p95 = _percentiles(timed["trip"])
        rows = []
        for name in ("inclusion", "consistency"):
            p50, p95 = _percentiles(timed[name])
            rows.append(
                {
                    "name": f"{name} proof at {size:,} events, {kind}",
                    "figure": round(p95, 3),
                    "unit": "ms p95",
                    "p50_ms": round(p50, 3),
                    "baseline": round(root_p95, 3),
                    "baseline_name": "the root alone, p95",
                    "ratio": p95 / root_p95,
                    "proof_hashes_max": max(lengths) if name == "inclusion" else None,
                    "tree_fill_s": round(seconds, 1),
                    "select_1_ms_p50_p95": [round(trip_p50, 3), round(trip_p95, 3)],
                }
            )
        return rows
    finally:
        factory.close()
        drop_schema(store)


def run(store: str = "sqlite", size: int | None = None) -> list[dict]:
    with tempfile.TemporaryDirectory() as folder:
        return upkeep(store, Path(folder), 2000) + proof_times(
            store, Path(folder), size or 1_000_000
        )
