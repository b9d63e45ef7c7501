"""The roll-ups (``cases_stats``, ``cases_board``) answer exactly as the case rows do.

A realistic mix of cases — disputes, hazards and petitions in two townships; assigned,
sent back, escalated, reclassified, suspended, resolved, return-visited (发回重办),
closed, reopened; clocks warned and breached; refused escalations; months and Beijing
days crossed — is driven through the engine and projected in small batches. Every SLA
board and every region stat (whole months, whole days, odd instants, open-ended) must
equal the answer the case rows give by the straightforward SQL the queries used before
the roll-ups (kept below as the reference), on both stores. Then the roll-ups must equal
``refill_rollups`` (recomputed from the case rows alone) and a rebuild from position 0.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.cases import Stamp
from domain.errors import DomainError
from engine.sql import Database
from projections.cases import OPEN_STATUSES, CasesProjection, local_day, prefixes
from projections.queries import (
    BEIJING,
    RANK_KEYS,
    SATISFIED,
    ReadModels,
    _period,
    _rate,
    split_period,
    subtree,
)
from projections.runner import ProjectionRunner
from tests.integration.test_projections_properties import ACTIONS, PEOPLE
from tests.support import act, actor, report

REPORTERS = {"wang": "410928-001-007-03", "chen": "410928-009-001-01", "zhao": "410928-001-007"}
ROLLUPS = ("cases_stats", "cases_board")


# -- the reference: the queries as they were, straight from the case rows ----------------


def reference_board(db: Database, region: str) -> dict[str, Any]:
    clause, params = subtree("region", region.strip())
    open_ = (
        f"{clause} AND duplicate_of IS NULL AND status IN ({', '.join('?' for _ in OPEN_STATUSES)})"
    )
    params = [*params, *OPEN_STATUSES]
    totals = db.query(
        f"SELECT COUNT(*) AS open, COALESCE(SUM(overdue), 0) AS overdue, "
        f"COALESCE(SUM(due_soon), 0) AS due_soon FROM cases WHERE {open_}",
        params,
    )[0]
    breached: dict[str, int] = {}
    for row in db.query(f"SELECT breached FROM cases WHERE {open_} AND breached <> '[]'", params):
        for clock in json.loads(row["breached"]):
            breached[clock] = breached.get(clock, 0) + 1
    oldest = db.query(
        f"SELECT case_id, title, region, assignee, unit, next_due_at FROM cases "
        f"WHERE {open_} AND overdue = 1 ORDER BY next_due_at, case_id LIMIT 1",
        params,
    )
    workload = {
        group: [
            {
                "name": r["name"],
                "open": int(r["open"]),
                "overdue": int(r["overdue"] or 0),
                "due_soon": int(r["due_soon"] or 0),
            }
            for r in db.query(
                f"SELECT {group} AS name, COUNT(*) AS open, SUM(overdue) AS overdue, SUM(due_soon) AS due_soon "
                f"FROM cases WHERE {open_} AND {group} IS NOT NULL GROUP BY {group} ORDER BY COUNT(*) DESC, {group}",
                params,
            )
        ]
        for group in ("assignee", "unit")
    }
    return {
        "region": region,
        "open": int(totals["open"]),
        "overdue": int(totals["overdue"]),
        "due_soon": int(totals["due_soon"]),
        "breached_by_clock": dict(sorted(breached.items())),
        "oldest_overdue": oldest[0] if oldest else None,
        "workers": workload["assignee"],
        "units": workload["unit"],
    }


def _empty(region: str) -> dict[str, Any]:
    return {
        "region": region,
        "received": 0,
        "duplicates": 0,
        "resolved": 0,
        "resolved_within_ceiling": 0,
        "within_ceiling_rate": None,
        "resolved_at_rank": dict.fromkeys(RANK_KEYS.values(), 0),
        "referred": 0,
        "reclassified_up": 0,
        "escalations_refused": 0,
    }


def reference_compliance(
    db: Database, region: str, start, end, group: str | None
) -> list[dict[str, Any]]:
    origin, origin_params = subtree("origin_region", region)
    key = group or "?"
    key_params = [] if group else [region]
    grouped = f" AND {group} IS NOT NULL GROUP BY {group}" if group else ""
    reported, reported_params = _period("reported_at", start, end)
    resolved, resolved_params = _period("resolved_at", start, end)
    moved, moved_params = _period("at", start, end)
    result: dict[str, dict[str, Any]] = {}
    for row in db.query(
        f"SELECT {key} AS region, COUNT(*) AS n, SUM(CASE WHEN duplicate_of IS NULL THEN 0 ELSE 1 "
        f"END) AS d FROM cases WHERE {origin} AND {reported}{grouped}",
        [*key_params, *origin_params, *reported_params],
    ):
        stats = result.setdefault(row["region"], _empty(row["region"]))
        stats["received"], stats["duplicates"] = (
            int(row["n"]) - int(row["d"] or 0),
            int(row["d"] or 0),
        )
    for row in db.query(
        f"SELECT {key} AS region, resolved_rank AS rank, COALESCE(referred, 0) AS referred, "
        f"COUNT(*) AS n, SUM(within_ceiling) AS within FROM cases WHERE {origin} AND "
        f"resolved_at IS NOT NULL AND duplicate_of IS NULL AND {resolved}{grouped}"
        f"{', resolved_rank, COALESCE(referred, 0)' if group else ' GROUP BY resolved_rank, COALESCE(referred, 0)'}",
        [*key_params, *origin_params, *resolved_params],
    ):
        stats = result.setdefault(row["region"], _empty(row["region"]))
        if int(row["referred"]):  # a dispute ended referred: apart, never resolved
            stats["referred"] += int(row["n"])
            continue
        stats["resolved"] += int(row["n"])
        stats["resolved_within_ceiling"] += int(row["within"] or 0)
        stats["resolved_at_rank"][RANK_KEYS[int(row["rank"])]] += int(row["n"])
    for row in db.query(
        f"SELECT {key} AS region, fact, COUNT(*) AS n FROM cases_upward WHERE {origin} AND "
        f"{moved}{grouped}{', fact' if group else ' GROUP BY fact'}",
        [*key_params, *origin_params, *moved_params],
    ):
        stats = result.setdefault(row["region"], _empty(row["region"]))
        stats["reclassified_up" if row["fact"] == "reclassified_up" else "escalations_refused"] = (
            int(row["n"])
        )
    for stats in result.values():
        stats["within_ceiling_rate"] = _rate(stats["resolved_within_ceiling"], stats["resolved"])
    return list(result.values())


def reference_stats(db: Database, region: str, start, end) -> dict[str, Any]:
    rows = reference_compliance(db, region, start, end, None)
    stats = rows[0] if rows else _empty(region)
    origin, params = subtree("origin_region", region)
    reported, period_params = _period("reported_at", start, end)
    row = db.query(
        "SELECT COUNT(*) AS received, SUM(CASE WHEN dispatched_at IS NOT NULL THEN 1 ELSE 0 END) AS dispatched, "
        "SUM(CASE WHEN responded_in_time = 1 THEN 1 ELSE 0 END) AS responded, "
        "SUM(CASE WHEN resolved_at IS NOT NULL THEN 1 ELSE 0 END) AS resolved, "
        "SUM(CASE WHEN visited_at IS NOT NULL THEN 1 ELSE 0 END) AS visited, "
        f"SUM(CASE WHEN satisfaction IN ('{SATISFIED[0]}', '{SATISFIED[1]}') THEN 1 ELSE 0 END) AS satisfied, "
        "SUM(CASE WHEN repeat = 1 THEN 1 ELSE 0 END) AS repeats "
        f"FROM cases WHERE kind = 'petition' AND duplicate_of IS NULL AND {origin} AND {reported}",
        [*params, *period_params],
    )[0]
    counts = {k: int(v or 0) for k, v in row.items()}
    repeats = counts.pop("repeats")
    stats.update(
        petitions=counts,
        response_rate=_rate(counts["responded"], counts["dispatched"]),
        resolution_rate=_rate(counts["resolved"], counts["received"]),
        satisfaction_rate=_rate(counts["satisfied"], counts["visited"]),
        repeats=repeats,
        repeat_rate=_rate(repeats, counts["received"]),
    )
    return stats


def reference_ranking(db: Database, region: str, start, end, level: str) -> list[dict[str, Any]]:
    return sorted(
        reference_compliance(db, region, start, end, level),
        key=lambda r: (
            r["within_ceiling_rate"] is None,
            r["within_ceiling_rate"] or 0,
            -r["resolved"],
            r["region"],
        ),
    )


# -- the mix -----------------------------------------------------------------------------

MEDIATE = {"outcome": "agreed", "summary": "调解", "agreement": "协议"}
SCRIPTS = {  # (action, by, body) in order; a step the rules refuse is skipped
    "grid": [
        ("assign", "wang", {"assignee": "wang"}),
        ("accept", "wang", {}),
        ("mediate", "wang", MEDIATE),
        ("resolve", "wang", {"resolution": "网格化解"}),
        ("close", "wang", {}),
    ],
    "village": [
        ("escalate", "wang", {"reason": "网格化解不了"}),
        ("assign", "li", {"assignee": "zhao"}),
        ("accept", "zhao", {}),
        ("mediate", "zhao", MEDIATE),
        ("resolve", "zhao", {"resolution": "村化解"}),
    ],
    "township": [
        ("escalate", "wang", {"reason": "网格化解不了"}),
        ("reclassify", "li", {"severity": "major", "reason": "涉及 12 户"}),
        ("escalate", "li", {"reason": "报乡司法所"}),
        ("accept", "sun", {}),
        ("mediate", "sun", MEDIATE),
        ("resolve", "sun", {"resolution": "乡司法所化解"}),
    ],
    "refused": [
        ("escalate", "wang", {"reason": "网格化解不了"}),
        ("escalate", "li", {"reason": "想交给乡里"}),
        ("assign", "li", {"assignee": "zhao"}),
        ("send-back", "zhao", {"reason": "不属本单位职责"}),
        ("escalate", "li", {"reason": "再试一次"}),
    ],
    "petition": [
        ("assign", "wang", {"assignee": "wang"}),
        ("accept", "wang", {}),
        ("reply", "wang", {"text": "已处理"}),
        ("resolve", "wang", {"resolution": "已办结"}),
        ("return-visit", "wang", {"satisfaction": "?"}),
        ("resolve", "wang", {"resolution": "重办"}),
        ("return-visit", "wang", {"satisfaction": "?"}),
    ],
    "reopened": [
        ("assign", "wang", {"assignee": "wang"}),
        ("accept", "wang", {}),
        ("suspend", "wang", {"reason": "待鉴定"}),
        ("resume", "wang", {}),
        ("mediate", "wang", MEDIATE),
        ("resolve", "wang", {"resolution": "化解"}),
        ("reopen", "li", {"reason": "反复"}),
        ("mediate", "wang", MEDIATE),
        ("resolve", "wang", {"resolution": "再化解"}),
        ("close", "wang", {}),
    ],
    "open": [("assign", "li", {"assignee": "zhao"})],
}
KINDS = {"petition": "petition", "open": "hazard"}


def drive_mix(app, clock, seed: int, steps: int) -> None:
    """Cases in two townships and three kinds, each along a scripted path (resolved at
    grid, village or township, refused pushes, petitions visited — some dissatisfied
    and redone —, reopened, left open), interleaved, with timer clocks warned and
    breached, hours to days apart; now and then any action by anyone."""
    r = random.Random(seed)
    cases: dict[Any, list] = {}
    for step in range(steps):
        clock.advance(timedelta(minutes=r.choice([7, 90, 400, 1500, 2900])))
        try:
            if not cases or r.random() < 0.12:
                script = r.choice(sorted(SCRIPTS))
                by, region = (
                    ("chen", REPORTERS["chen"])
                    if r.random() < 0.15
                    else ("wang", REPORTERS["wang"])
                )
                case_id = report(
                    app,
                    KINDS.get(
                        script,
                        r.choice(["dispute", "petition"]) if script == "reopened" else "dispute",
                    ),
                    r.choice(["minor", "minor", "major"]) if script == "open" else "minor",
                    region=region,
                    by=by,
                ).case_id
                cases[case_id] = list(SCRIPTS[script])
            elif r.random() < 0.15:
                case = app.case(r.choice(sorted(cases)))
                stamp = Stamp(
                    actor=actor("wu", app),
                    command_id=f"timer-{seed}-{step}",
                    recorded_at=clock.now(),
                )
                name = r.choice(["sign_for", "reply", "mediation"])
                if r.random() < 0.5:
                    case.breach_clock(
                        stamp, clock=name, due_at=clock.now() + timedelta(hours=r.randint(-5, 5))
                    )
                else:
                    case.warn_clock(
                        stamp,
                        clock=name,
                        threshold=r.choice([0.5, 0.75, 0.9]),
                        due_at=clock.now() + timedelta(hours=1),
                    )
                app.save(case)
            elif r.random() < 0.1:
                case = app.case(r.choice(sorted(cases)))
                name = r.choice(sorted(ACTIONS))
                act(app, case.id, name, r.choice(PEOPLE), **ACTIONS[name](r))
            else:
                waiting = [c for c, todo in cases.items() if todo]
                if not waiting:
                    continue
                case_id = r.choice(sorted(waiting))
                action, by, body = cases[case_id].pop(0)
                if body.get("satisfaction") == "?":
                    body = {
                        "satisfaction": r.choice(
                            ["satisfied", "basically_satisfied", "dissatisfied"]
                        )
                    }
                act(app, case_id, action, by, **body)
        except DomainError:
            pass


def rows_of(db: Database) -> dict[str, list[str]]:
    return {
        table: sorted(repr(sorted(row.items())) for row in db.query(f"SELECT * FROM {table}"))
        for table in ROLLUPS
    }


def periods(db: Database, r: random.Random) -> list[tuple[datetime | None, datetime | None]]:
    """Open-ended, whole Beijing months and days, UTC days, odd instants — each kind of split."""
    stamps = [
        row["t"]
        for row in db.query(
            "SELECT reported_at AS t FROM cases UNION SELECT resolved_at FROM cases "
            "WHERE resolved_at IS NOT NULL"
        )
    ]
    moments = sorted(datetime.fromisoformat(s) for s in stamps)
    first, last = moments[0], moments[-1]
    month = first.astimezone(BEIJING).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    chosen = [
        (None, None),
        (None, last),
        (first, None),
        (first, last + timedelta(microseconds=1)),
        (month, (month + timedelta(days=32)).replace(day=1)),
        (month, (month + timedelta(days=70)).replace(day=1)),
        (month + timedelta(days=3), month + timedelta(days=60)),
        (
            first.replace(hour=0, minute=0, second=0, microsecond=0),
            last.replace(hour=0, minute=0, second=0),
        ),
        (last, first),
    ]  # backwards: nothing
    for _ in range(4):
        a, b = sorted(r.sample(moments, 2))
        chosen.append(
            (a - timedelta(seconds=r.randint(0, 90000)), b + timedelta(seconds=r.randint(0, 90000)))
        )
        chosen.append((r.choice([a, None]), r.choice([b, None])))
    assert any(
        split_period(*p)[0] and split_period(*p)[1] for p in chosen
    )  # buckets and edges both exercised
    assert any(g == "m" for p in chosen for g, *_ in split_period(*p)[0])
    return chosen


def assert_answers_match(db: Database, r: random.Random) -> int:
    models = ReadModels(db)
    models.few_overdue = 0  # in due order
    codes = {c for row in db.query("SELECT region, origin_region FROM cases") for c in row.values()}
    regions = sorted({p for c in codes for p in prefixes(c)} | {"410928-002", "410928-001-008"})
    checked = 0
    every = periods(db, r)
    sorting = ReadModels(db)
    sorting.few_overdue = (
        10**9
    )  # the oldest overdue case found by sorting the region's, not in due order
    for region in regions:
        assert (
            models.sla_board(region) == reference_board(db, region) == sorting.sla_board(region)
        ), region
        # every period for the county and the townships, a sample for the regions below
        for start, end in every if region.count("-") < 2 else r.sample(every, 4):
            assert models.region_stats(region, start, end) == reference_stats(
                db, region, start, end
            ), (region, start, end)
            for level in ("village", "township"):
                assert models.compliance(region, start, end, level) == reference_ranking(
                    db, region, start, end, level
                ), (region, level, start, end)
            checked += 1
    return checked


def test_rollups_equal_the_case_rows_refill_and_a_rebuild(app, clock):
    drive_mix(app, clock, seed=9, steps=300)
    runner = ProjectionRunner(app, [CasesProjection()])
    try:
        runner.run_once(batch_size=7)
        db = runner.db
        board = ReadModels(db).sla_board("410928")
        assert board["open"] > 0 and board["workers"] and board["breached_by_clock"]
        stats = ReadModels(db).region_stats("410928")
        assert stats["resolved"] > 0 and stats["reclassified_up"] + stats["escalations_refused"] > 0
        assert stats["petitions"]["visited"] > 0
        months = {
            row["m"]
            for row in db.query("SELECT DISTINCT bucket AS m FROM cases_stats WHERE grain = 'm'")
        }
        assert len(months) >= 3  # the mix spans months
        assert assert_answers_match(db, random.Random(1)) > 60

        incremental = rows_of(db)
        assert incremental["cases_stats"] and incremental["cases_board"]
        projection = CasesProjection()
        projection.generation = db.query(
            "SELECT generation FROM projection_tracking WHERE name = 'cases'"
        )[0]["generation"]
        with db.transaction() as tx:
            projection.refill_rollups(tx, db.is_postgres)
        assert rows_of(db) == incremental

        runner.rebuild("cases")
        assert rows_of(db) == incremental
    finally:
        runner.close()


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 10_000), batch=st.integers(1, 40))
def test_any_mix_in_any_batches_answers_as_the_case_rows(app, clock, seed, batch):
    drive_mix(app, clock, seed=seed, steps=40)
    runner = ProjectionRunner(app, [CasesProjection()])
    try:
        runner.run_once(batch_size=batch)
        assert assert_answers_match(runner.db, random.Random(seed)) > 0
    finally:
        runner.close()


def test_a_roll_up_day_is_a_beijing_day():
    assert [
        local_day(s)
        for s in (
            "2025-01-31T15:59:59.999999+00:00",
            "2025-01-31T16:00:00.000000+00:00",
            "2025-01-31T16:00:00Z",
            "2025-12-31T23:59:59+08:00",
            "2025-12-31T08:00:00-08:00",
        )
    ] == ["2025-01-31", "2025-02-01", "2025-02-01", "2025-12-31", "2026-01-01"]


def test_split_period_covers_the_period_exactly_once():
    start = datetime(2025, 1, 30, 15, 59, 59, tzinfo=UTC)  # 23:59:59 on Jan 30 in Beijing
    end = datetime(2025, 4, 2, 3, 0, tzinfo=UTC)  # 11:00 on Apr 2 in Beijing
    buckets, edges = split_period(start, end)
    assert buckets == [
        ("m", "2025-02", "2025-04"),
        ("d", "2025-01-31", "2025-02-01"),
        ("d", "2025-04-01", "2025-04-02"),
    ]
    assert edges == [
        (start, datetime(2025, 1, 31, tzinfo=BEIJING)),
        (datetime(2025, 4, 2, tzinfo=BEIJING), end),
    ]
    year = (datetime(2025, 1, 1, tzinfo=BEIJING), datetime(2026, 1, 1, tzinfo=BEIJING))
    assert split_period(*year) == ([("m", "2025-01", "2026-01")], [])
    assert split_period(None, None) == ([("m", None, None)], [])
    assert split_period(end, start) == ([], [(end, start)])
