"""Benchmark: case replay (time travel) of a 30-event case — target p95 ≤ 5 ms.

Takes a dispute through 30 events (report, assign, accept, 24 comments, mediate,
resolve, close), then times ``Fengqiao.case_as_of`` (the case as it stood before
its last event: read, decode, fold) and ``Fengqiao.case(id, version=15)``.
Baseline in the same run: the library's read + decode alone for the same events
(``recorder.select_events`` + ``mapper.to_domain_event``), no folding.

    .venv/bin/python api/bench/bench_replay.py --store postgres --size 500
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("FENGQIAO_LOG_LEVEL", "WARNING")

from api.bench.bench_queries import p95_row, timed  # noqa: E402
from api.bench.bench_write import drop  # noqa: E402
from api.bench.county import act, report, seed  # noqa: E402
from api.bench.stores import POSTGRES_URL  # noqa: E402
from engine.logs import configure_logging  # noqa: E402
from engine.service import Fengqiao  # noqa: E402
from engine.store import StoreConfig  # noqa: E402

STEPS = [
    ("assign", {"assignee": "zhao"}, "li"),
    ("accept", {}, "zhao"),
    *[("comment", {"text": f"第{n}次走访"}, "zhao") for n in range(24)],
    ("mediate", {"outcome": "agreed", "summary": "协商一致", "agreement": "停止施工"}, "zhao"),
    ("resolve", {"resolution": "协议履行"}, "zhao"),
    ("close", {}, "li"),
]


def run(store: str = "postgres", size: int | None = None) -> list[dict]:
    repeat = size or 300
    configure_logging()
    with tempfile.TemporaryDirectory() as folder:
        config = (
            StoreConfig(f"sqlite:///{folder}/replay.db")
            if store == "sqlite"
            else StoreConfig(f"{POSTGRES_URL}?schema=bench_replay_{uuid.uuid4().hex[:8]}")
        )
        app = seed(Fengqiao(config))
        try:
            case_id = report(app).case_id
            for action, body, who in STEPS:
                act(app, case_id, action, who, **body)
            events: list[Any] = list(app.events.get(case_id))
            assert len(events) == 30, len(events)
            before_last = events[-1].timestamp - (events[-1].timestamp - events[-2].timestamp) / 2
            as_of = timed(lambda: app.case_as_of(case_id, before_last), repeat)
            at_version = timed(lambda: app.case(case_id, version=15), repeat)
            library = timed(
                lambda: [
                    app.mapper.to_domain_event(s) for s in app.recorder.select_events(case_id)
                ],
                repeat,
            )
        finally:
            app.close()
            drop(config)
    base = (round(statistics.median(library), 2), "library read+decode median ms")
    return [
        p95_row(f"replay {store} case_as_of (30 events)", as_of, 2, base, 5.0),
        p95_row(f"replay {store} case at version 15", at_version, 2, base, 5.0),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--size", type=int, default=300, help="replays timed")
    args = parser.parse_args()
    for row in run(args.store, args.size):
        print(row, flush=True)


if __name__ == "__main__":
    main()
