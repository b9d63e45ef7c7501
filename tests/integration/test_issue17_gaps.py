"""Issue 17, the last gaps: the cases projection and the clock fold read the same facts.

* The projection counts the sign-for due time with the statutory years imported
  (``CalendarBook.CalendarImported``, kept in ``cases_calendar``), after a restart and a
  rebuild too.
* A check-in ends only its own department's ``check_in:<department>`` clock in the
  projection (``domain.clocks.ends_clock``), as in the clock fold.
* A second ``Whistled`` already in stored history (from before 吹哨 again kept the
  summoned) starts clocks only for the departments not yet summoned.
* 签收 (``Accepted`` v2) records the sign-for clock's due time and outcome as the clock
  view decides them, so a suspension between dispatch and sign-for counts in 三率 too.

Every test runs on SQLite and PostgreSQL (the ``app`` fixture).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.calendar import SHANGHAI
from domain.cases import Case, Stamp
from domain.clocks import ClockStatus
from engine.case_clocks import clocks_of
from projections.cases import CasesProjection
from projections.queries import ReadModels
from projections.runner import ProjectionRunner
from tests.integration.test_calendar_facts import FIXTURE_TEXT
from tests.support import DEFAULT_POLICY, act, actor, report

BEIJING_0900 = datetime(2026, 9, 28, 1, 0, tzinfo=UTC)  # the default clock fixture's start


def projected(app) -> ProjectionRunner:
    runner = ProjectionRunner(app, [CasesProjection()])
    runner.run_once()
    return runner


def row_of(app, case_id) -> dict:
    runner = projected(app)
    try:
        return ReadModels(runner.db).get_case(case_id)
    finally:
        runner.close()


def clock_of(app, case_id, name: str):
    return next(s for s in clocks_of(app, case_id) if s.name == name)


def breach(app, clock, case_id, name: str, due: datetime) -> None:
    aggregate = app.case(case_id)
    stamp = Stamp(
        actor=actor("wu", app), command_id=f"timer-{case_id}-{name}", recorded_at=clock.now()
    )
    aggregate.breach_clock(stamp, clock=name, due_at=due)
    app.save(aggregate)


# -- the imported statutory years ---------------------------------------------------------

WORKING_SIGN_FOR = DEFAULT_POLICY.replace(
    'target = "2h"                          # Zhengzhou',
    'target = "1wd"                         # Zhengzhou',
    1,
)


def test_the_sign_for_due_time_counts_with_the_imported_years_after_a_restart_and_a_rebuild(
    app, clock
):
    clock.advance(datetime(2026, 12, 31, 10, tzinfo=SHANGHAI) - clock.now())
    assert WORKING_SIGN_FOR != DEFAULT_POLICY
    app.load_policy(WORKING_SIGN_FOR, "admin")  # sign-for within one working day
    app.import_calendar(FIXTURE_TEXT, "admin", "calendar-2027-test.toml")  # 元旦 2027 is a holiday
    projected(app).close()  # the projection sees the import, then stops
    case = report(app, "petition", "minor", category="environment").case_id
    act(app, case, "assign", "li", assignee="zhao")  # Thursday 31 December, 10:00
    due = clock_of(app, case, "sign_for").due_at
    assert (
        due.astimezone(SHANGHAI).date() > datetime(2027, 1, 1).date()
    )  # 元旦 is not a working day
    runner = projected(app)  # a fresh instance: the years come from cases_calendar
    try:
        models = ReadModels(runner.db)
        assert datetime.fromisoformat(models.get_case(case)["sign_for_due_at"]) == due
        runner.rebuild("cases")
        assert datetime.fromisoformat(models.get_case(case)["sign_for_due_at"]) == due
    finally:
        runner.close()


# -- 吹哨报到: each department's own clock --------------------------------------------------------


def whistled(app) -> str:
    case = report(app, "dispute", "minor").case_id
    act(app, case, "assign", "li", assignee="zhao")
    act(app, case, "accept", "zhao")
    act(app, case, "whistle", "zhao", departments=["派出所", "司法所"], reason="涉及治安")
    return case


def test_a_check_in_ends_only_its_own_departments_clock_in_the_projection(app, clock):
    case = whistled(app)
    due = clock_of(app, case, "check_in:派出所").due_at
    clock.advance(due - clock.now() + timedelta(minutes=1))
    for department in ("派出所", "司法所"):
        breach(app, clock, case, f"check_in:{department}", due)
    act(app, case, "check-in", "zhao", department="派出所")
    states = {s.name: s.state for s in clocks_of(app, case) if s.clock == "check_in"}
    assert states == {
        "check_in:派出所": ClockStatus.BREACHED,
        "check_in:司法所": ClockStatus.BREACHED,
    }
    assert clock_of(app, case, "check_in:司法所").open
    row = row_of(app, case)
    assert (
        set(row["clocks"]) == {"check_in:司法所"} and row["overdue"] is True
    )  # 司法所 is still overdue


def test_a_second_whistle_in_stored_history_keeps_the_summoned_departments_clocks(app, clock):
    case = whistled(app)
    clock.advance(timedelta(minutes=30))
    act(app, case, "check-in", "zhao", department="派出所")
    first = clock_of(app, case, "check_in:司法所")
    clock.advance(timedelta(minutes=30))
    aggregate = app.case(case)  # as recorded before a second whistle named only the new departments
    stamp = Stamp(actor=actor("zhao", app), command_id="old-whistle", recorded_at=clock.now())
    aggregate._record(
        Case.Whistled, stamp, departments=["派出所", "司法所", "城管局"], reason="再次吹哨"
    )
    app.save(aggregate)
    states = {s.name: s for s in clocks_of(app, case) if s.clock == "check_in"}
    assert (
        states["check_in:派出所"].state == ClockStatus.MET and states["check_in:派出所"].cycle == 1
    )
    assert (
        states["check_in:司法所"].started_at == first.started_at
        and states["check_in:司法所"].cycle == 1
    )
    assert states["check_in:城管局"].state == ClockStatus.RUNNING
    assert states["check_in:城管局"].started_at == clock.now()


# -- 签收: the outcome the clock view decides -----------------------------------------------------


def test_a_suspension_before_the_sign_for_moves_its_due_time_in_the_rates_too(app, clock):
    case = report(app, "petition", "minor").case_id
    act(app, case, "assign", "li", assignee="zhao")  # 09:00: sign-for due 11:00
    clock.advance(timedelta(minutes=30))
    act(app, case, "suspend", "li", reason="当事人外出")  # 09:30
    clock.advance(timedelta(hours=1))
    act(app, case, "resume", "li")  # 10:30: an hour paused, due 12:00
    clock.advance(timedelta(hours=1))
    act(app, case, "accept", "zhao")  # 11:30
    sign_for = clock_of(app, case, "sign_for")
    assert sign_for.state == ClockStatus.MET and sign_for.due_at == BEIJING_0900 + timedelta(
        hours=3
    )
    accepted = [e for e in app.events.get(app.case(case).id) if type(e).__name__ == "Accepted"][-1]
    assert (accepted.sign_for_due_at, accepted.responded_in_time) == (sign_for.due_at, True)
    row = row_of(app, case)
    assert row["responded_in_time"] is True
    assert datetime.fromisoformat(row["sign_for_due_at"]) == sign_for.due_at


def test_a_sign_for_after_the_paused_due_time_is_late_in_the_clock_and_the_rates(app, clock):
    case = report(app, "petition", "minor").case_id
    act(app, case, "assign", "li", assignee="zhao")
    clock.advance(timedelta(minutes=30))
    act(app, case, "suspend", "li", reason="当事人外出")
    clock.advance(timedelta(hours=1))
    act(app, case, "resume", "li")  # due 12:00
    clock.advance(timedelta(hours=2))
    act(app, case, "accept", "zhao")  # 12:30
    assert clock_of(app, case, "sign_for").state == ClockStatus.BREACHED
    assert row_of(app, case)["responded_in_time"] is False


def test_an_accepted_of_version_1_reads_back_without_an_outcome_and_the_projection_decides(
    app, clock
):
    state: dict = {}
    Case.Accepted.upcast_v1_v2(state)
    assert state == {"sign_for_due_at": None, "responded_in_time": None}
    case = report(app, "petition", "minor").case_id
    act(app, case, "assign", "li", assignee="zhao")
    aggregate = app.case(case)  # an old sign-for: recorded without the outcome
    aggregate._record(
        Case.Accepted,
        Stamp(actor=actor("zhao", app), command_id="old-accept", recorded_at=clock.now()),
        sign_for_due_at=None,
        responded_in_time=None,
    )
    app.save(aggregate)
    row = row_of(app, case)
    assert row["responded_in_time"] is True and row["sign_for_due_at"] is not None
