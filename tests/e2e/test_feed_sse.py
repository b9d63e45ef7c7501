"""The SSE stream through a real server on 127.0.0.1: disconnect mid-stream, resume
with Last-Event-ID, no gap and no duplicate; heartbeats while idle."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.feed_support import LiveServer, make_api, parse_cloud_event, workload
from tests.support import act, report


@pytest.fixture
def live(app, monkeypatch):
    monkeypatch.setenv("FENGQIAO_SSE_HEARTBEAT", "0.2")
    api = make_api(app)
    with LiveServer(api.client.app) as url:
        yield url, api
    api.close()


def sse_messages(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """Server-Sent Events as dicts ``{"id", "data", "comments"}``, per the SSE spec."""
    message: dict[str, Any] = {"comments": []}
    for line in response.iter_lines():
        if line == "":
            yield message
            message = {"comments": []}
        elif line.startswith(":"):
            message["comments"].append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            message[name] = value[1:] if value.startswith(" ") else value


def read_events(url: str, headers: dict[str, str], count: int, **params: Any) -> list[Any]:
    """Connect, take ``count`` events, and hang up."""
    events = []
    with httpx.stream(
        "GET", f"{url}/v1/events/stream", headers=headers, params=params, timeout=10
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for message in sse_messages(response):
            if "data" not in message:
                continue
            event = parse_cloud_event(message["data"])
            assert message["id"] == str(event.get_attributes()["position"])
            events.append(event)
            if len(events) == count:
                break
    return events


def test_resume_with_last_event_id_has_no_gap_and_no_duplicate(app, live):
    url, api = live
    first_case = workload(app)[0]
    first = read_events(url, api.headers(), 4)
    last_id = str(first[-1].get_attributes()["position"])
    for n in range(3):  # written while the reader is away
        act(app, first_case.case_id, "comment", "sun", text=f"while away {n}")
    rest = read_events(url, {**api.headers(), "Last-Event-ID": last_id}, 8)
    positions = [e.get_attributes()["position"] for e in first + rest]
    expected = [e["position"] for e in api.get("/v1/events", params={"limit": 1000}).json()]
    assert positions == expected
    assert len(set(positions)) == len(positions) == 12


def test_events_written_while_connected_arrive_and_idle_streams_send_heartbeats(app, live):
    url, api = live
    seen: list[int] = []
    heartbeats = 0
    with httpx.stream(
        "GET", f"{url}/v1/events/stream", headers=api.headers(), timeout=10
    ) as response:
        started = time.monotonic()
        written = False
        for message in sse_messages(response):
            heartbeats += sum(1 for c in message["comments"] if c.startswith("heartbeat"))
            if "data" in message:
                seen.append(parse_cloud_event(message["data"]).get_attributes()["position"])
            if not written and heartbeats >= 1:
                report(app, "hazard", "minor")  # written while the stream is open
                written = True
            if seen or time.monotonic() - started > 8:
                break
    assert heartbeats >= 1
    assert seen == [app.head_position()]


def test_stream_filters_and_refusals(app, live):
    url, api = live
    workload(app)
    events = read_events(url, api.headers(), 1, types="cn.fengqiao.dispute.escalated.v1")
    assert events[0].get_attributes()["type"] == "cn.fengqiao.dispute.escalated.v1"
    bad = httpx.get(f"{url}/v1/events/stream", headers={**api.headers(), "Last-Event-ID": "x"})
    assert bad.status_code == 422
    assert httpx.get(f"{url}/v1/events/stream").status_code == 401
