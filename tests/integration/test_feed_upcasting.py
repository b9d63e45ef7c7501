"""Event evolution: an event stored as version 2 is read back as version 3.

The model change is the one a developer would make: ``Dispute.Commented`` (version 2
since it carried evidence) gains a field, ``class_version = 3`` and a static
``upcast_v2_v3`` that fills the field in old stored state (eventsourcing's upcasting, applied by the mapper on read). The
stored v1 event is untouched; the case, its history and the feed all show v2, and
the schema catalogue serves the v2 type.
"""

from __future__ import annotations

from typing import Any

import eventsourcing.utils
import pytest

from domain.cases import Dispute
from engine import event_schemas
from engine.feed import Feed
from engine.service import Fengqiao
from tests.support import act, report


def commented_v3() -> type:
    class Commented(Dispute.Commented):
        """A comment, now with who may see it."""

        class_version = 3
        visibility: str

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["visibility"] = "internal"

    Commented.__module__, Commented.__qualname__ = "domain.cases", "Dispute.Commented"
    return Commented


@pytest.fixture
def evolve(monkeypatch):
    """Swap in version 3 of ``Dispute.Commented``, as a code change would."""

    def change() -> type:
        new = commented_v3()
        monkeypatch.setattr(Dispute, "Commented", new)
        monkeypatch.setitem(eventsourcing.utils._topic_cache, "domain.cases:Dispute.Commented", new)
        return new

    return change


def test_a_stored_v2_event_is_read_back_as_v3(app, store, clock, evolve):
    case = report(app, "dispute", "minor")
    act(app, case.case_id, "comment", "wang", text="stored as version 2")
    v1 = Feed(app).page(0, 10).events[-1]
    assert v1["type"] == "cn.fengqiao.dispute.commented.v2"
    assert "visibility" not in v1["data"]

    new_class = evolve()
    reader = Fengqiao(store, clock=clock)
    try:
        history = reader.history(case.case_id)
        comment = history[-1].event
        assert isinstance(comment, new_class)
        assert comment.visibility == "internal" and comment.text == "stored as version 2"
        assert reader.case(case.case_id).version == 2  # the case still replays

        v2 = Feed(reader).page(0, 10).events[-1]
        assert v2["type"] == "cn.fengqiao.dispute.commented.v3"
        assert v2["id"] == v1["id"] and v2["position"] == v1["position"]  # the same event
        assert v2["data"]["visibility"] == "internal"
        assert v2["dataschema"].endswith("/v1/schemas/cn.fengqiao.dispute.commented.v3")

        types = event_schemas.event_types()
        assert "cn.fengqiao.dispute.commented.v3" in types
        assert "cn.fengqiao.dispute.commented.v2" not in types
        schema = event_schemas.json_schema("cn.fengqiao.dispute.commented.v3")
        assert "visibility" in schema["required"]
    finally:
        reader.close()
