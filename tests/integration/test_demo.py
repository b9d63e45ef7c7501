"""The demo county and its season of traffic (``api.demo``, ``fengqiao demo``).

A small county and a short season on both stores: the same seed gives the same
store, a rerun repeats nothing, every case replays to itself, every command is
one its actor's role and region allow, and the counts look like DOMAIN.md.
"""

from __future__ import annotations

import tomllib
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.demo import (
    CountyShape,
    Season,
    build_demo,
    demo_clock,
    generate_county,
    relax_sqlite_durability,
)
from api.demo.census import replay
from api.demo.county import COUNTY_CODE, County, load_places
from api.demo.geometry import centre, nested_grid
from api.http.app import create_app
from domain.actors import Role
from domain.cases import Case
from domain.ladder import Profile, Rank
from domain.permissions import case_in_scope, may, needs_assignment, works_on
from engine.service import Fengqiao
from engine.store import StoreConfig
from engine.views import case_fields
from tests.conftest import POSTGRES_URL, drop_schema
from tests.support import DEFAULT_POLICY

SEASON = Season.ending(
    datetime(2026, 10, 30, 10, 0, tzinfo=UTC), 7
)  # 23–30 October 2026, after National Day
SEED = 11

ACTION_OF_EVENT = {
    "Reported": "report",
    "Assigned": "assign",
    "Accepted": "accept",
    "SentBack": "send-back",
    "Escalated": "escalate",
    "Reclassified": "reclassify",
    "Suspended": "suspend",
    "Resumed": "resume",
    "Extended": "extend",
    "Whistled": "whistle",
    "CheckedIn": "check-in",
    "Commented": "comment",
    "Supervised": "supervise",
    "Resolved": "resolve",
    "Closed": "close",
    "Reopened": "reopen",
    "MediationHeld": "mediate",
    "CourtConfirmationApplied": "court-confirmation",
    "MediationRefused": "refuse-mediation",
    "AgreementSigned": "sign-agreement",
    "AgreementSealed": "seal-agreement",
    "ExtensionRequested": "request-extension",
    "RectificationOrdered": "order-rectification",
    "Rectified": "rectify",
    "Reinspected": "reinspect",
    "Replied": "reply",
    "ReturnVisited": "return-visit",
    "ClockWarned": "warn-clock",
    "ClockBreached": "breach-clock",
}
TIMER_ACTIONS = {"warn-clock", "breach-clock", "supervise", "escalate"}


@pytest.fixture
def second_store(store: StoreConfig, tmp_path):
    """Another fresh store of the same kind as ``store``."""
    if not store.is_postgres:
        yield StoreConfig(f"sqlite:///{tmp_path / 'second.db'}")
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield StoreConfig(f"{POSTGRES_URL}?schema={schema}")
    drop_schema(schema)


def run_demo(store: StoreConfig, scale: float = 0.3):
    clock = demo_clock(SEASON)
    app = Fengqiao(store, clock=clock)
    relax_sqlite_durability(app)  # as `fengqiao demo` does (no-op on PostgreSQL)
    return app, build_demo(
        app,
        clock,
        SEASON,
        seed=SEED,
        scale=scale,
        shape=CountyShape.small(),
        timer_period=timedelta(hours=4),
    )


def fingerprint(app: Fengqiao) -> dict:
    cases = {}
    for case_id in app.case_ids():
        case = app.case(case_id)
        cases[str(case_id)] = (
            str(case.kind),
            str(case.status),
            str(case.severity),
            case.version,
            case.rank,
            case.resolved_rank,
            [h.type for h in app.history(case_id)],
        )
    return {"head": app.head_position(), "cases": cases}


def test_the_same_seed_builds_the_same_store_and_a_rerun_repeats_nothing(store, second_store):
    first, demo = run_demo(store)
    second, again = run_demo(second_store)
    try:
        assert demo.run.refused == Counter()  # every step of every story was accepted
        assert demo.run.cases > 40
        expected = fingerprint(second)
        assert fingerprint(first) == expected
        assert demo.census.as_dict() == again.census.as_dict()
        check_consistent_and_permitted(first)
        check_plausible(first, demo.census)
    finally:
        first.close()
        second.close()
    rerun, repeated = run_demo(store)
    try:
        assert fingerprint(rerun) == expected
        assert repeated.run.repeated == repeated.run.commands == demo.run.commands
        assert repeated.run.timer_commands == 0
        assert repeated.run.taken_over == demo.run.taken_over
    finally:
        rerun.close()


def check_consistent_and_permitted(app: Fengqiao) -> None:
    """Every case replays to itself; every event is one its actor's role and region allow."""
    checked = 0
    for case_id in app.case_ids():
        history = app.history(case_id)
        events = [h.event for h in history]
        case = app.case(case_id)
        assert case_fields(replay(events)) == case_fields(case)
        assert {e.command_id for e in events} <= set(case.processed_commands)
        positions = [h.position for h in history]
        assert positions == sorted(positions) and len(set(positions)) == len(positions)
        for before, event in zip([None, *_states(events)], events, strict=False):
            _assert_permitted(event, before)
            checked += 1
    assert checked > 300


def _states(events: list[Case.Event]):
    """The case after each event (copies are not needed: each state is used before the next)."""
    case = None
    for event in events:
        case = event.mutate(case)
        yield _snapshot(case)


def _snapshot(case: Case) -> dict:
    return {
        "assignee": case.assignee,
        "unit": case.unit,
        "region": case.region,
        "origin": case.origin_region,
    }


def _assert_permitted(event: Case.Event, before: dict | None) -> None:
    action, actor = ACTION_OF_EVENT[type(event).__name__], event.actor
    if actor.role == Role.SYSTEM:
        assert action in TIMER_ACTIONS, (action, event)
        return
    assert may(actor.role, action), f"{actor.role} {actor.id} may not {action}"
    if before is None:  # the report: made in the reporter's region
        assert case_in_scope([event.region], actor.region), (actor, event.region)
        return
    assert case_in_scope([before["region"], before["origin"]], actor.region), (
        actor,
        action,
        before,
    )
    if needs_assignment(actor.role, action):
        body = {"department": getattr(event, "department", None)}
        assert works_on(
            name=actor.id,
            unit=actor.unit,
            case_assignee=before["assignee"],
            case_unit=before["unit"],
            action=action,
            body=body,
        ), (actor, action, before)


def check_plausible(app: Fengqiao, census) -> None:
    """The mixes of DOMAIN.md: most minor disputes settled at the grid, nothing above its ceiling."""
    assert {kind for kind, _ in census.cases} == {"dispute", "hazard", "petition"}
    assert census.above_ceiling == 0
    for case_id in app.case_ids():
        case = app.case(case_id)
        if case.resolved_rank is not None:
            assert case.resolved_rank <= case.ceiling
    minor = census.minor_disputes_resolved_at
    settled = sum(minor.values())
    assert settled >= 10
    assert (minor["grid"] + minor["village"]) / settled >= 0.85  # 小事不出村
    assert minor["grid"] > minor["village"]  # most by the grid workers themselves
    assert census.events["ReturnVisited"] > 0 and census.events["Reinspected"] > 0
    assert census.events["ClockWarned"] > 0  # the timer service ran with the season
    assert census.cases[("dispute", "closed")] > 0


# -- the county, without a store ---------------------------------------------------------


def test_the_default_county_has_the_seed_figures():
    county = generate_county(1)
    rural = [t for t in county.townships if t.region.profile == Profile.RURAL]
    urban = [t for t in county.townships if t.region.profile == Profile.URBAN]
    assert (len(rural), len(urban)) == (11, 1)  # 11 townships and one subdistrict (街道)
    assert sum(len(t.villages) for t in rural) == 197
    assert len(urban[0].villages) == 15
    grids = list(county.grids())
    assert len(grids) == 521
    assert sum(len(g.workers) for g in grids) == 561
    assert sum(len(g.assistants) for g in grids) == 100
    names = [p.name for p in county.people]
    assert len(names) == len(set(names))
    assert generate_county(1).people == county.people  # deterministic
    assert generate_county(2).people != county.people


def test_every_routing_unit_kind_exists_where_cases_climb():
    county: County = generate_county(3, CountyShape.small())
    routed = {
        kind for rule in tomllib.loads(DEFAULT_POLICY)["routing"] for kind in rule["unit_kinds"]
    }
    kinds = {u.kind for u in county.all_units()}
    assert {
        "mediation_committee",
        "village_committee",
        "comprehensive_centre",
        "police_station",
        "justice_office",
        "petition_office",
        "safety_office",
        "county_mediation_centre",
        "county_petition_bureau",
        "emergency_bureau",
    } <= kinds
    assert (
        kinds - {"department", "police_station"} <= routed
    )  # 派出所 are summoned by whistles (吹哨)
    for township in county.townships:
        assert set(township.units) == {
            "comprehensive_centre",
            "police_station",
            "justice_office",
            "petition_office",
            "safety_office",
        }
        assert township.supervisor.rank == Rank.TOWNSHIP
        for village in township.villages:
            assert (
                village.secretary.role == Role.SUPERVISOR and village.mediator.role == Role.HANDLER
            )
            for grid in village.grids:
                assert grid.workers and all(w.role == Role.HANDLER for w in grid.workers)
                assert (grid.chief is not None) == village.urban


def test_fengqiao_demo_builds_a_fresh_store_and_prints_tokens(tmp_path):
    """The README's first command, without serving (``fengqiao demo`` is SQLite by design)."""
    from api.cli import app as cli

    db = tmp_path / "demo.db"
    db.write_text("not a database")  # the demo deletes whatever was there
    result = CliRunner().invoke(
        cli,
        [
            "demo",
            "--no-serve",
            "--days",
            "2",
            "--scale",
            "0.05",
            "--db",
            str(db),
            "--end",
            "2026-10-30T10:00",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "fq_" in result.output and "supervisor" in result.output
    assert "resolved at each rank" in result.output and "referred" in result.output
    app = Fengqiao(StoreConfig(f"sqlite:///{db}"))
    try:
        assert len(app.ladder().tree) == 746
        assert app.head_position() > 0
    finally:
        app.close()


def test_the_stories_exercise_refusals_written_agreements_extension_requests_and_send_backs():
    """Over many stories (no store): a party's refusal (当事人拒绝调解), a written agreement
    signed and sealed before 司法确认, an extension asked for and approved, a send-back."""
    import random

    from api.demo.stories import STORIES, Life, Place
    from domain.calendar import WorkingCalendar
    from domain.kinds import Kind
    from domain.policy import parse_policy

    county = generate_county(3, CountyShape.small())
    policy = parse_policy(DEFAULT_POLICY)
    places = [Place(county, t, v, g) for t in county.townships for v in t.villages for g in v.grids]
    start = datetime(2026, 10, 23, 2, 0, tzinfo=UTC)
    seen: Counter = Counter()
    for kind in (Kind.DISPUTE, Kind.PETITION):
        for n in range(600):
            rng = random.Random(f"stories:{kind}:{n}")
            place = places[n % len(places)]
            life = Life(
                rng,
                WorkingCalendar(),
                start,
                place,
                policy.ceilings_for(place.grid.region.profile),
                lambda region, kind, category: None,
            )
            actions = [step.action for step in STORIES[kind](life)]
            seen.update(actions)
            if "sign-agreement" in actions:  # written, signed, sealed, then settled and confirmed
                assert (
                    actions.index("sign-agreement")
                    < actions.index("seal-agreement")
                    < actions.index("resolve")
                    < actions.index("court-confirmation")
                )
    for action in (
        "refuse-mediation",
        "sign-agreement",
        "seal-agreement",
        "court-confirmation",
        "request-extension",
        "approve-extension",
        "extend",
        "send-back",
    ):
        assert seen[action] > 0, action


def test_the_demo_s_open311_front_door_places_a_map_point(store: StoreConfig):
    """The county `fengqiao demo` builds (seed 1) ships grid polygons: an Open311 report
    from a map point, with no region, lands in the grid that holds the point (the point of
    the session in docs/integrators.md), and reads back with its point."""
    app = Fengqiao(store)
    try:
        load_places(app, generate_county(1))  # as load_county does, without the people
        app.load_policy(DEFAULT_POLICY, "demo:admin")
        grids = sorted(c for c, r in app.ladder().tree.regions.items() if r.rank == Rank.GRID)
        shapes = nested_grid(app.ladder().tree, COUNTY_CODE)
        assert all(shapes[code].area > 0 for code in grids)  # every grid has a polygon
        http = create_app(app)
        key = http.state.services.users.add("open311-platform", "reporter", COUNTY_CODE, by="t")
        with TestClient(http) as client:
            for (lat, long), grid in [
                ((40.5525, 113.4594), "410990-001-001-01"),
                (centre(shapes, grids[-1]), grids[-1]),
            ]:
                posted = client.post(
                    "/open311/v2/requests.json",
                    data={"api_key": key, "service_code": "hazard.fire", "lat": lat, "long": long},
                )
                assert posted.status_code == 201, posted.text
                request_id = posted.json()[0]["service_request_id"]
                [got] = client.get(
                    f"/open311/v2/requests/{request_id}.json", params={"api_key": key}
                ).json()
                assert (got["address_id"], got["lat"], got["long"]) == (grid, lat, long)
    finally:
        app.close()
