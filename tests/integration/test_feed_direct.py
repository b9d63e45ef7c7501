"""The feed's direct path (stored JSON → CloudEvent, no domain objects, no schema models)
writes exactly what the reference path (eventsourcing's mapper, then the schema model)
writes: the same documents, byte for byte, for every public event type, both roles,
filters by type and region, masked and erased parties, numbers in free text, optional
fields, floats stored as integers, offsets other than UTC, and values it must hand to the
reference path (a typed value inside a dict, an integer beyond 64 bits)."""

from __future__ import annotations

import json
import re
import types
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from domain.cases import Hazard
from domain.commands import ReportCase
from engine.event_schemas import EventData, data_model, public_event_classes
from engine.feed import DIGIT_LEAD_BYTES, Feed, FeedFilter, _digit_runs, encode_json
from engine.privacy import erase, protect
from tests.feed_support import PARTY, workload
from tests.support import act, actor, envelope, photo, report

TEXTS = [
    "普通文本：邻里纠纷",
    "call 13812345678 now",
    "身份证 41092819900101127X 在案",
    "全角 １３８１２３４５６７８",
    'line\nbreak "quoted" \\ slash\t',
    "",
    "fax 0371-12345678, phone 1381234567 (10 digits)",
]
BARE = {"name": "李四", "role": "respondent"}
REGIONS = {"region": "410928-001-007", "from_region": "410928-001-007", "to_region": "410928-002"}
NAME_PHONE = {"name": "王五", "role": "other", "phone": "13912345678"}


def value_for(annotation: Any, n: int, app: Any) -> Any:
    """A stored value of an annotation, varied by ``n``."""
    if annotation is str:
        return TEXTS[n % len(TEXTS)]
    if annotation == str | None:
        return None if n % 2 else TEXTS[n % len(TEXTS)]
    if annotation is int:
        return n + 1
    if annotation == int | None:
        return None if n % 2 else n
    if annotation is float:
        return 1 if n % 2 else 0.75  # an int in a float field: the schema model writes 1.0
    if annotation is bool:
        return bool(n % 2)
    if annotation in (dict, dict[str, Any]):
        return {"count": n, "nested": {"list": [1, 2.5, None, "x"]}, "电话": "13912345678"}
    if annotation in (list, list[Any]):
        return ["消防", "13812345678", n]
    if annotation in (datetime, datetime | None):
        if annotation != datetime and n % 2:
            return None
        zone = UTC if n % 3 else timezone(timedelta(hours=8))
        return datetime(2026, 10, 1, 8, 30, n % 60, 0 if n % 4 else 123456, tzinfo=zone)
    if (
        isinstance(annotation, types.UnionType) and type(None) in annotation.__args__
    ):  # any other T | None
        [inner] = [a for a in annotation.__args__ if a is not type(None)]
        return None if n % 2 else value_for(inner, n, app)
    raise AssertionError(f"no value for {annotation}")


def every_event_type(app: Any) -> int:
    """One case of each kind, then one stored event of every public class of that kind,
    written through the application's mapper and recorder as a command would write them."""
    written = 0
    for kind in ("dispute", "hazard", "petition"):
        case = report(
            app,
            kind,
            "minor",
            parties=[PARTY, BARE, NAME_PHONE],
            description="联系电话13812345678，身份证号41092819900101127X",
        )
        version = case.version
        classes = [
            cls
            for topic, cls in public_event_classes().items()
            if topic.split(":")[1].split(".")[0].lower() == kind and cls.__name__ != "Reported"
        ]
        stored = []
        for n, cls in enumerate(sorted(classes, key=lambda c: c.__name__)):
            version += 1
            fields = {
                name: REGIONS.get(name) or value_for(info.annotation, n + version, app)
                for name, info in data_model(cls).model_fields.items()
                if name not in EventData.model_fields
            }
            if "parties" in fields:
                fields["parties"] = protect(app, [PARTY])
            event = cls(
                originator_id=case.case_id,
                originator_version=version,
                timestamp=datetime(2026, 10, 1, 1, 2, 3, 400000 + n, tzinfo=UTC),
                actor=actor("wang", app),
                occurred_at=value_for(datetime, n, app),
                command_id=f"direct-{kind}-{n}",
                policy_version=1,
                **fields,
            )
            stored.append(app.mapper.to_stored_event(event))
        app.recorder.insert_events(stored)
        written += len(stored) + 1
    return written


def odd_events(app: Any) -> None:
    """Events the direct path hands to the reference path: a datetime inside a list (a
    typed value nested where the model does not look), an integer beyond 64 bits."""
    case = report(app, "hazard", "minor")
    stored = []
    for version, attachment in ((2, datetime(2026, 9, 1, tzinfo=UTC)), (3, 2**70)):
        event = Hazard.Commented(
            originator_id=case.case_id,
            originator_version=version,
            timestamp=datetime(2026, 10, 2, tzinfo=UTC),
            actor=actor("wang", app),
            occurred_at=datetime(2026, 10, 2, tzinfo=UTC),
            command_id=f"odd-{version}",
            policy_version=1,
            text="odd",
            attachments=["a.jpg", attachment],
        )
        stored.append(app.mapper.to_stored_event(event))
    app.recorder.insert_events(stored)


def report_titled(
    app: Any,
    kind: str,
    title: str,
    region: str = "410928-001-007-03",
    by: str = "wang",
    **extra: Any,
) -> Any:
    category = {"dispute": "neighbours", "hazard": "fire", "petition": "utilities"}[kind]
    body = ReportCase(
        kind=kind, category=category, severity="major", region=region, title=title, **extra
    )
    return app.report(body, envelope(by, app))


def a_realistic_mix(app: Any) -> None:
    workload(app)  # parties, escalation out of the village, comments
    case = report_titled(
        app,
        "dispute",
        "请拨打13812345678",
        parties=[PARTY, BARE],
        description="ID 41092819900101127X；全角１３８１２３４５６７８",
    )
    act(app, case.case_id, "assign", "li", assignee="zhao")
    act(app, case.case_id, "comment", "zhao", text="已联系 13912345678", attachments=[photo(app)])
    shredded = report(
        app, "petition", "minor", parties=[NAME_PHONE], region="410928-009-001-01", by="chen"
    )
    person = Feed(app).page(0, 1000, role="admin").events[-1]["data"]["parties"][0]["person"]
    erase(app, person, by="auditor")  # crypto-shredded: its fields read [erased]
    act(app, shredded.case_id, "comment", "chen", text="回访完毕")
    every_event_type(app)
    odd_events(app)


def read(
    feed: Feed, wanted: FeedFilter, role: str, limit: int
) -> tuple[list[dict[str, Any]], list[int]]:
    after, events, stops = 0, [], []
    while True:
        page = feed.page(after, limit, wanted, role=role)
        events += page.events
        stops.append(page.next_after)
        if page.next_after == after or page.next_after >= page.head:
            return events, stops
        after = page.next_after


@pytest.fixture
def mixed(app):
    a_realistic_mix(app)
    return app


FILTERS = [
    FeedFilter(),
    FeedFilter.of(region="410928-002"),
    FeedFilter.of(region="410928-001-007"),
    FeedFilter.of(
        "cn.fengqiao.dispute.reported.v3,cn.fengqiao.dispute.commented.v2,"
        "cn.fengqiao.hazard.clock_warned.v1,cn.fengqiao.petition.extended.v1"
    ),
]


@pytest.mark.parametrize("role", ["integrator", "admin"])
def test_the_direct_path_writes_the_reference_documents_byte_for_byte(mixed, role, monkeypatch):
    declined = []
    reference_cloud_event = Feed.cloud_event

    def counting(self, *args, **kwargs):
        if self._direct is not None:
            declined.append(args[0])
        return reference_cloud_event(self, *args, **kwargs)

    monkeypatch.setattr(Feed, "cloud_event", counting)
    for wanted in FILTERS:
        for limit in (1000, 7):
            direct, direct_stops = read(Feed(mixed), wanted, role, limit)
            reference, reference_stops = read(Feed(mixed, direct=False), wanted, role, limit)
            assert direct, wanted
            assert direct_stops == reference_stops
            assert encode_json(direct) == encode_json(reference), (wanted, limit)
            assert json.dumps(direct, ensure_ascii=False) == json.dumps(
                reference, ensure_ascii=False
            )
            small = [e for e in direct if 2**70 not in e["data"].get("attachments", ())]
            assert orjson.dumps(small) == orjson.dumps(
                [e for e in reference if e["position"] in {s["position"] for s in small}]
            )
    everything = read(Feed(mixed), FeedFilter(), role, 1000)[0]
    types = {event["type"] for event in everything}
    assert len(types) == len(public_event_classes())  # every public type was compared
    odd = [e["position"] for e in everything if e["data"].get("text") == "odd"]
    assert len(odd) == 2 and set(declined) == set(odd)  # only those went the reference way
    texts = json.dumps(everything, ensure_ascii=False)
    if role == "integrator":
        assert "13812345678" not in texts and "41092819900101127X" not in texts
        assert "138****5678" in texts and "[erased]" in texts
    else:
        assert "13812345678" in texts and "[erased]" in texts


def test_a_crypto_shredded_person_reads_erased_on_both_paths_at_once(app):
    report(app, "dispute", "minor", parties=[PARTY])
    feed = Feed(app)
    before = feed.page(0, 10, role="admin").events[0]["data"]["parties"][0]
    assert before["name"] == PARTY["name"]
    erase(app, before["person"], by="auditor")
    for role in ("admin", "integrator"):
        after = feed.page(0, 10, role=role).events
        assert after == Feed(app, direct=False).page(0, 10, role=role).events
        assert {after[0]["data"]["parties"][0][k] for k in ("name", "phone", "id_number")} == {
            "[erased]"
        }


def may_hold_numbers(raw: bytes) -> bool:
    return _digit_runs(raw)[0]


def test_numbers_in_text_are_never_missed_by_the_quick_look():
    digit = re.compile(r"\d")
    leads = {
        chr(cp).encode()[0]
        for cp in range(0x80, 0x110000)
        if not 0xD800 <= cp < 0xE000 and digit.match(chr(cp))
    }
    assert leads == set(DIGIT_LEAD_BYTES)
    assert may_hold_numbers(b'{"t":"tel 13812345678"}')
    assert may_hold_numbers('{"t":"全角１３８１２３４５６７８"}'.encode())
    assert may_hold_numbers('{"t":"٠١٢٣٤٥٦٧٨٩٠"}'.encode())  # Arabic-Indic
    assert may_hold_numbers(b'{"t":"\\uff11\\uff13"}')  # escaped: not looked into
    assert not may_hold_numbers('{"t":"邻里纠纷 1381234567 0371-1234"}'.encode())
    assert _digit_runs(b'{"n":9223372036854775807}') == (True, False)  # 19 digits: orjson reads it
    assert _digit_runs(b'{"n":118059162071741130342}') == (True, True)  # beyond 64 bits: declined


def test_json_out_falls_back_for_what_orjson_refuses():
    big = [{"n": 2**70, "s": "中文"}]
    assert json.loads(encode_json(big)) == big
    assert encode_json([{"s": "中文"}]) == '[{"s":"中文"}]'.encode()


def test_a_store_the_direct_path_does_not_read_is_read_the_reference_way(app, monkeypatch):
    workload(app)
    monkeypatch.setattr(app.mapper, "compressor", object())  # as if events were compressed
    assert Feed(app)._direct is None
    monkeypatch.setattr(app.mapper, "compressor", None)
    assert Feed(app)._direct is not None
