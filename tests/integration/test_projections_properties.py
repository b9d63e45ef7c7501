"""Property: built incrementally, in small batches, with crashes injected mid-batch,
the read models equal a rebuild from zero (both stores)."""

from __future__ import annotations

import random
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.cases import Stamp
from domain.errors import DomainError
from projections.cases import CasesProjection
from projections.runner import ProjectionRunner
from tests.support import act, actor, report

ACTIONS = {
    "assign": lambda r: {"assignee": r.choice(["wang", "zhao", "sun"])},
    "accept": lambda r: {},
    "send-back": lambda r: {"reason": "不属本单位职责"},
    "escalate": lambda r: {"reason": "化解不了"},
    "reclassify": lambda r: {"severity": r.choice(["minor", "major"]), "reason": "重新定性"},
    "mediate": lambda r: {
        "outcome": r.choice(["agreed", "failed"]),
        "summary": "调解",
        "agreement": "协议",
    },
    "reply": lambda r: {"text": "已处理"},
    "resolve": lambda r: {"resolution": "化解"},
    "return-visit": lambda r: {
        "satisfaction": r.choice(["satisfied", "basically_satisfied", "dissatisfied"])
    },
    "close": lambda r: {},
    "reopen": lambda r: {"reason": "反复"},
    "suspend": lambda r: {"reason": "待鉴定"},
    "resume": lambda r: {},
}
PEOPLE = ["wang", "zhao", "li", "sun", "zhou"]
LIKELY = {  # what usually comes next, so random plans get deep into the flows
    "reported": ["assign", "escalate"],
    "assigned": ["accept", "accept", "send-back", "escalate"],
    "accepted": ["mediate", "reply", "resolve", "reclassify", "suspend"],
    "in_progress": ["mediate", "reply", "resolve", "resolve", "escalate", "resume"],
    "resolved": ["close", "return-visit", "return-visit", "reopen"],
    "closed": ["reopen"],
}

steps = st.lists(
    st.tuples(st.sampled_from(["report", "act", "act", "act", "clock"]), st.integers(0, 2**32 - 1)),
    min_size=10,
    max_size=40,
)


class CrashingCases(CasesProjection):
    """Writes its batch, then sometimes dies before the commit."""

    def __init__(self, chance: random.Random) -> None:
        super().__init__()
        self.chance = chance

    def apply_batch(self, tx, events) -> None:
        super().apply_batch(tx, events)
        if self.chance.random() < 0.3:
            raise RuntimeError("crash before commit")


def drive(app, clock, plan) -> None:
    cases = []
    for step, seed in plan:
        r = random.Random(seed)
        clock.advance(timedelta(minutes=r.randint(1, 300)))
        try:
            if step == "report" or not cases:
                cases.append(
                    report(
                        app,
                        r.choice(["dispute", "hazard", "petition"]),
                        r.choice(["minor", "major"]),
                    ).case_id
                )
            elif step == "act":
                case = app.case(r.choice(cases))
                name = r.choice(sorted(ACTIONS) if r.random() < 0.2 else LIKELY[str(case.status)])
                by = case.assignee if case.assignee and r.random() < 0.8 else r.choice(PEOPLE)
                act(app, case.id, name, by, **ACTIONS[name](r))
            else:
                case = app.case(r.choice(cases))
                stamp = Stamp(
                    actor=actor("wu", app), command_id=f"timer-{seed}", recorded_at=clock.now()
                )
                due = clock.now() + timedelta(hours=1)
                name = r.choice(["sign_for", "reply", "mediation"])
                if r.random() < 0.5:
                    case.breach_clock(stamp, clock=name, due_at=due)
                else:
                    case.warn_clock(stamp, clock=name, threshold=r.choice([0.5, 0.75]), due_at=due)
                app.save(case)
        except DomainError:
            pass


def snapshot(db) -> dict[str, list]:
    return {
        table: sorted(repr(sorted(row.items())) for row in db.query(f"SELECT * FROM {table}"))
        for table in CasesProjection.tables
    }


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=steps, batch=st.integers(1, 6), seed=st.integers(0, 1000))
def test_incremental_with_crashes_equals_rebuild(app, clock, plan, batch, seed):
    drive(app, clock, plan)
    crashing = ProjectionRunner(app, [CrashingCases(random.Random(seed))])
    try:
        for _ in range(1000):
            try:
                crashing.run_once(batch_size=batch)
                break
            except RuntimeError:
                continue
        assert crashing.lag() == {"cases": 0}
        incremental = snapshot(crashing.db)
        assert incremental["cases"]  # at least the first step reported a case
    finally:
        crashing.close()
    rebuilt = ProjectionRunner(app, [CasesProjection()])
    try:
        rebuilt.rebuild("cases")
        assert snapshot(rebuilt.db) == incremental
    finally:
        rebuilt.close()
