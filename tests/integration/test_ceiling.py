"""小事不出村、大事不出乡: the ceiling rule and reclassification (both stores)."""

from __future__ import annotations

import pytest

from domain.errors import DomainError
from tests.support import act, report


def code_of(call) -> str:
    with pytest.raises(DomainError) as caught:
        call()
    return caught.value.code, caught.value.details


def test_a_minor_case_cannot_pass_the_village(app):
    case_id = report(app, "dispute", "minor").case_id
    act(app, case_id, "escalate", "wang", reason="网格化解不了")
    assert app.case(case_id).rank == 1  # village
    code, details = code_of(lambda: act(app, case_id, "escalate", "li", reason="村里也调不了"))
    assert code == "escalation_ceiling"
    assert details == {
        "action": "escalate",
        "severity": "minor",
        "ceiling": "village",
        "requested": "township",
    }
    code, _ = code_of(lambda: act(app, case_id, "escalate", "li", reason="直接上县", to="county"))
    assert code == "escalation_ceiling"
    code, _ = code_of(
        lambda: act(app, case_id, "assign", "li", assignee="sun")
    )  # a township handler
    assert code == "escalation_ceiling"


def test_a_major_case_cannot_pass_the_township(app):
    case_id = report(app, "dispute", "major").case_id
    act(app, case_id, "escalate", "wang", reason="x", to="township")
    code, details = code_of(lambda: act(app, case_id, "escalate", "zhou", reason="y"))
    assert (
        code == "escalation_ceiling"
        and details["ceiling"] == "township"
        and details["requested"] == "county"
    )


def test_after_reclassification_by_the_ceiling_rank_the_case_may_climb(app):
    case_id = report(app, "dispute", "minor").case_id
    act(app, case_id, "escalate", "wang", reason="网格化解不了")
    # the grid worker is below the ceiling, the township above it: neither may reclassify upwards
    for who in ("wang", "zhou"):
        code, _ = code_of(
            lambda who=who: act(
                app, case_id, "reclassify", who, severity="major", reason="涉及多户"
            )
        )
        assert code == "forbidden"
    code, _ = code_of(lambda: act(app, case_id, "reclassify", "li", severity="major", reason=" "))
    assert code == "validation"  # a written reason is required
    act(
        app,
        case_id,
        "reclassify",
        "li",
        severity="major",
        reason="涉及 12 户宅基地边界, 村内无法化解",
    )
    act(app, case_id, "escalate", "li", reason="报乡综治中心")
    case = app.case(case_id)
    assert (case.severity, case.rank, case.ceiling, case.reclassified_up) == ("major", 2, 2, 1)
    reclassified = next(
        h.event for h in app.history(case_id) if type(h.event).__name__ == "Reclassified"
    )
    assert reclassified.actor.id == "li" and reclassified.actor.rank == 1
    assert reclassified.reason.startswith("涉及 12 户") and reclassified.upward is True


def test_escalation_hands_the_case_to_the_responsible_unit_of_the_rank(app):
    case_id = report(app, "dispute", "major").case_id
    act(app, case_id, "escalate", "wang", reason="x", to="township")
    case = app.case(case_id)
    assert (case.region, case.unit, case.status) == ("410928-001", "ht-sfs", "assigned")  # 司法所


def test_downgrade_is_refused_when_the_case_sits_above_the_new_ceiling(app):
    case_id = report(app, "dispute", "major").case_id
    act(app, case_id, "escalate", "wang", reason="x", to="township")
    code, details = code_of(
        lambda: act(app, case_id, "reclassify", "zhou", severity="minor", reason="小事")
    )
    assert code == "escalation_ceiling" and details["ceiling"] == "village"


def test_the_urban_profile_keeps_minor_matters_in_the_building(app):
    case_id = report(app, "dispute", "minor", region="410928-009-001-01", by="chen").case_id
    assert app.case(case_id).ceiling == 0
    code, details = code_of(lambda: act(app, case_id, "escalate", "chen", reason="x"))
    assert code == "escalation_ceiling" and details["ceiling"] == "grid"


def test_the_urban_profile_keeps_major_matters_in_the_community(app):
    """小事不出楼栋、大事不出社区: a major urban case stops at the community (rank 1)."""
    case_id = report(app, "dispute", "major", region="410928-009-001-01", by="chen").case_id
    assert app.case(case_id).ceiling == 1
    code, details = code_of(
        lambda: act(app, case_id, "escalate", "chen", reason="x", to="township")
    )
    assert code == "escalation_ceiling" and (details["ceiling"], details["requested"]) == (
        "village",
        "township",
    )


def test_a_minor_urban_case_is_routed_to_the_building_grid_unit(app):
    from domain.ladder import Unit
    from workflows.routing import Router

    app.add_unit(
        Unit("xf-1-wgz", "幸福社区一号楼网格工作站 (楼栋长)", "410928-009-001-01", "grid_station"),
        "admin",
    )
    case_id = report(app, "dispute", "minor", region="410928-009-001-01", by="chen").case_id
    router = Router(app)
    try:
        router.run_once()
    finally:
        router.close()
    case = app.case(case_id)
    assert (case.unit, case.rank, case.status) == ("xf-1-wgz", 0, "assigned")


def test_critical_cases_may_reach_the_county(app):
    case_id = report(app, "hazard", "critical").case_id
    act(app, case_id, "escalate", "wang", reason="重大隐患 逐级上报", to="county")
    assert app.case(case_id).rank == 3


def test_a_refused_escalation_is_counted_beside_the_untouched_case(app):
    from domain.refusals import refusal_log_id
    from tests.support import envelope

    case_id = report(app, "dispute", "minor").case_id
    act(app, case_id, "escalate", "wang", reason="网格化解不了")
    version = app.case(case_id).version
    attempt = envelope("li", app, command_id="push-up-1")
    for _ in range(2):  # the same command twice is one attempt
        with pytest.raises(DomainError):
            app.do(case_id, "escalate", {"reason": "村里调不了"}, attempt)
    assert app.case(case_id).version == version
    refusals = [
        e
        for e in app.events.get(refusal_log_id(case_id))
        if type(e).__name__ == "EscalationRefused"
    ]
    assert len(refusals) == 1
    refused = refusals[0]
    assert (refused.region, refused.severity, refused.ceiling, refused.requested) == (
        "410928-001-007",
        "minor",
        "village",
        "township",
    )
    assert refused.actor.id == "li" and refused.command_id == "push-up-1"
