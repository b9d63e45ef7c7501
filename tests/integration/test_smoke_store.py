from tests.support import act, report


def test_a_case_round_trips_through_each_store(app):
    result = report(app)
    act(app, result.case_id, "assign", "zhou", assignee="zhao")
    case = app.case(result.case_id)
    assert (case.status, case.assignee, case.rank) == ("assigned", "zhao", 1)
    assert [h.type for h in app.history(result.case_id)] == ["Reported", "Assigned"]
