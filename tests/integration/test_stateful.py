"""hypothesis drives random command sequences across the three kinds (both stores).

After every step: no invariant is broken (status machine, ceiling, versions only
grow, a refused command writes nothing), and the case replayed from the store is
identical to the case the command produced in memory.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from domain.cases import CATEGORIES, Stamp, Status
from domain.clocks import clocks_under
from domain.commands import ActionContext, ReportCase, parse_action
from domain.errors import DomainError
from domain.kinds import Kind
from engine import views
from tests.support import PEOPLE, actor, envelope

GRIDS = ["410928-001-007-03", "410928-001-008-01", "410928-002-001-01", "410928-009-001-01"]
NAMES = [p.name for p in PEOPLE]
REASON = st.sampled_from(["当事人要求", "涉及多户", "超出本级职权"])


def bodies(action: str, now) -> st.SearchStrategy[dict]:
    """Plausible bodies for each action (the rules, not the schema, are under test)."""
    text = st.sampled_from(["已处理", "走访记录", "协商中"])
    table = {
        "assign": st.builds(dict, assignee=st.sampled_from(NAMES)),
        "accept": st.just({}),
        "send-back": st.builds(dict, reason=REASON),
        "mediate": st.builds(
            dict,
            outcome=st.sampled_from(["agreed", "failed", "adjourned"]),
            summary=text,
            agreement=st.sampled_from(["协议一份", None]),
        ),
        "court-confirmation": st.builds(dict, note=text),
        "order-rectification": st.builds(
            dict,
            deadline=st.just((now + timedelta(days=3)).isoformat()),
            measures=text,
            plan=st.just({"funds": "1 万", "people": "2 人", "interim_measures": "警戒"}),
        ),
        "rectify": st.builds(dict, note=text),
        "reinspect": st.builds(dict, passed=st.booleans(), note=text),
        "reply": st.builds(dict, text=text),
        "return-visit": st.builds(
            dict, satisfaction=st.sampled_from(["satisfied", "basically_satisfied", "dissatisfied"])
        ),
        "escalate": st.builds(
            dict, reason=REASON, to=st.sampled_from([None, "village", "township", "county"])
        ),
        "reclassify": st.builds(
            dict, severity=st.sampled_from(["minor", "major", "critical"]), reason=REASON
        ),
        "suspend": st.builds(dict, reason=REASON),
        "resume": st.just({}),
        "extend": st.builds(dict, days=st.integers(1, 10), reason=REASON),
        "whistle": st.builds(dict, departments=st.just(["派出所"]), reason=REASON),
        "check-in": st.builds(dict, department=st.just("派出所")),
        "comment": st.builds(dict, text=text),
        "supervise": st.builds(dict, note=text),
        "resolve": st.builds(dict, resolution=text),
        "close": st.just({}),
        "reopen": st.builds(dict, reason=REASON),
    }
    return table[action].map(lambda body: {k: v for k, v in body.items() if v is not None})


ACTION_NAMES = [
    "assign",
    "accept",
    "send-back",
    "mediate",
    "court-confirmation",
    "order-rectification",
    "rectify",
    "reinspect",
    "reply",
    "return-visit",
    "escalate",
    "reclassify",
    "suspend",
    "resume",
    "extend",
    "whistle",
    "check-in",
    "comment",
    "supervise",
    "resolve",
    "close",
    "reopen",
]


PLAUSIBLE = {  # actions that usually move a case on from each status, to reach deep states often
    "reported": ["assign", "escalate", "reclassify", "whistle"],
    "assigned": ["accept", "send-back", "escalate", "assign"],
    "accepted": ["mediate", "order-rectification", "reply", "escalate", "suspend"],
    "in_progress": [
        "mediate",
        "rectify",
        "reinspect",
        "reply",
        "resolve",
        "resume",
        "extend",
        "check-in",
    ],
    "resolved": ["close", "return-visit", "reopen"],
    "closed": ["reopen", "comment"],
}
SUPERVISORS = {0: "wang", 1: "li", 2: "zhou", 3: "wu"}


def state_of(case) -> dict:
    return {k: v for k, v in vars(case).items() if k != "_pending_events"}


def typed(value):
    """``value`` with every type spelled out (a ``StrEnum`` equals its text, a tuple its list: not here)."""
    if isinstance(value, dict):
        return ("dict", sorted(((typed(k), typed(v)) for k, v in value.items()), key=repr))
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [typed(v) for v in value]
        return type(value).__name__, sorted(items, key=repr) if isinstance(
            value, (set, frozenset)
        ) else items
    return type(value).__name__, value


def snapshot_round_trip(app, case):
    """``case`` snapshotted, stored and read back through the engine's mapper, and restored."""
    stored = app.mapper.to_stored_event(type(case).Snapshot.take(case))
    return app.mapper.to_domain_event(stored).mutate(None)


def assert_snapshots_restore(app, case_id):
    """A case restored from a snapshot is the replayed case, attribute for attribute and type
    for type: a fresh snapshot of it, the last one the engine stored, and ``app.case`` (which
    starts from that one)."""
    replayed = views.replayed(app, case_id)[0]
    assert typed(state_of(snapshot_round_trip(app, replayed))) == typed(state_of(replayed))
    assert typed(state_of(app.case(case_id))) == typed(state_of(replayed))
    for snapshot in app.snapshots.get(case_id, desc=True, limit=1):
        at_version = views.replayed(app, case_id, version=snapshot.originator_version)[0]
        assert typed(state_of(snapshot.mutate(None))) == typed(state_of(at_version))


def machine_for(app, clock):
    class CaseMachine(RuleBasedStateMachine):
        cases = Bundle("cases")

        def __init__(self) -> None:
            super().__init__()
            self.versions: dict = {}

        @initialize(
            target=cases,
            severities=st.lists(
                st.sampled_from(["minor", "major", "critical"]), min_size=3, max_size=3
            ),
            grids=st.lists(st.sampled_from(GRIDS), min_size=3, max_size=3),
            data=st.data(),
        )
        def report(self, severities, grids, data):
            """One case of each kind; the steps then work them."""
            case_ids = []
            for kind, severity, grid in zip(Kind, severities, grids, strict=True):
                category = data.draw(st.sampled_from(CATEGORIES[kind]))
                body = ReportCase(
                    kind=kind, category=category, severity=severity, region=grid, title="随机案件"
                )
                result = app.report(body, envelope("wang", app))
                self.versions[result.case_id] = 1
                case_ids.append(result.case_id)
            return multiple(*case_ids)

        @rule(
            case_id=cases,
            action=st.sampled_from(ACTION_NAMES),
            who=st.sampled_from(NAMES),
            data=st.data(),
        )
        def act(self, case_id, action, who, data):
            self.attempt(case_id, action, who, data)

        @rule(case_id=cases, data=st.data())
        def move_on(self, case_id, data):
            case = app.case(case_id)
            action = data.draw(st.sampled_from(PLAUSIBLE[case.status]))
            who = SUPERVISORS[case.ceiling if action == "reclassify" else case.rank]
            self.attempt(case_id, action, who, data)

        def attempt(self, case_id, action, who, data):
            clock.advance(timedelta(minutes=7))
            body = data.draw(bodies(action, clock.now()))
            before = app.case(case_id)
            env = envelope(who, app)
            try:
                result = app.do(case_id, action, body, env)
            except DomainError:
                assert app.case(case_id).version == before.version, (
                    "a refused command wrote something"
                )
                return
            assert result.version == before.version + 1
            self.versions[case_id] = result.version
            # the same command applied in memory gives the same state as the stored, replayed case
            expected = before
            command = parse_action(action, body)
            stamp = Stamp(actor=env.actor, command_id=env.command_id, recorded_at=clock.now())
            policy = app.policy(expected.policy_version)
            clocks = (
                clocks_under(policy, app.events.get(case_id, lte=before.version), clock.now())
                if command.needs_clocks
                else ()
            )  # as the engine passes them
            command.execute(expected, stamp, ActionContext(app.ladder().tree, policy, clocks))
            assert state_of(app.case(case_id)) == state_of(expected)
            assert_snapshots_restore(app, case_id)

        @invariant()
        def rules_hold(self):
            for case_id, version in self.versions.items():
                case = app.case(case_id)
                assert case.version == version  # versions only move by our commands
                assert case.status in set(Status)
                assert case.rank <= case.ceiling, "handled above its ceiling"
                if case.status in (Status.RESOLVED, Status.CLOSED):
                    assert case.resolution is not None and case.resolved_rank is not None
                if case.status == Status.ASSIGNED:
                    assert case.assignee or case.unit

    return CaseMachine


def test_random_command_sequences_keep_every_rule(app, clock):
    run_state_machine_as_test(
        machine_for(app, clock),
        settings=settings(
            max_examples=15,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


def test_actor_helper_matches_the_ladder(app):
    assert actor("li", app).rank == 1 and actor("wu", app).rank == 3
