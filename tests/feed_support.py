"""Helpers for the integrator tests: the HTTP app with integrator users, a workload of
cases, CloudEvents parsing with the stock SDK, and a real server on 127.0.0.1."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn
from cloudevents.core.formats.json import JSONFormat
from fastapi.testclient import TestClient

from api.http.app import create_app
from engine.service import Fengqiao
from tests.support import act, report

TYPE_PATTERN = re.compile(r"^cn\.fengqiao\.(dispute|hazard|petition)\.[a-z_]+\.v\d+$")
PARTY = {  # every personal field, each masked for integrators
    "name": "张三",
    "role": "applicant",
    "phone": "13812345678",
    "id_number": "41092819900101127X",
}


@dataclass
class Api:
    client: TestClient
    tokens: dict[str, str]

    def close(self) -> None:
        """Close the client and the stores the app opened (connections are scarce)."""
        self.client.close()
        state = self.client.app.state
        if state.services.runner is not None:
            state.services.runner.close()
        if getattr(state, "subscriptions", None) is not None:
            state.subscriptions.close()

    def headers(self, user: str = "integrator") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def get(self, url: str, user: str = "integrator", **kwargs: Any):
        return self.client.get(
            url, headers={**self.headers(user), **kwargs.pop("headers", {})}, **kwargs
        )

    def post(self, url: str, user: str = "integrator", **kwargs: Any):
        return self.client.post(
            url, headers={**self.headers(user), **kwargs.pop("headers", {})}, **kwargs
        )


def make_api(app: Fengqiao) -> Api:
    http_app = create_app(app)
    users = http_app.state.services.users
    tokens = {
        "integrator": users.add("feed-county", "integrator", "410928"),
        "village": users.add("feed-village", "integrator", "410928-001-007"),
        "admin": users.add("feed-admin", "admin", "410928"),
        "reporter": users.add("feed-reporter", "reporter", "410928-001-007-03"),
    }
    return Api(TestClient(http_app), tokens)


def workload(app: Fengqiao) -> list[Any]:
    """A few cases of each kind with some history: one escalated out of the village."""
    results = []
    dispute = report(app, "dispute", "major", parties=[PARTY])
    act(app, dispute.case_id, "assign", "li", assignee="zhao")
    act(app, dispute.case_id, "accept", "zhao")
    act(app, dispute.case_id, "escalate", "zhao", reason="needs the township")
    act(app, dispute.case_id, "comment", "sun", text="taken over")
    results.append(dispute)
    hazard = report(app, "hazard", "minor", region="410928-002-001-01", by="wang")
    act(app, hazard.case_id, "comment", "wang", text="photo attached")
    results.append(hazard)
    petition = report(app, "petition", "minor", region="410928-009-001-01", by="chen")
    act(app, petition.case_id, "comment", "chen", text="called back")
    results.append(petition)
    return results


def case_positions(app: Fengqiao) -> list[int]:
    """Every case event's position, from the store itself (the expected feed)."""
    positions = []
    for case_id in app.case_ids():
        positions += [recorded.position for recorded in app.history(case_id)]
    return sorted(positions)


def parse_cloud_event(structured: dict[str, Any] | str):
    """Parse with the CloudEvents SDK and check the attributes the feed promises."""
    text = structured if isinstance(structured, str) else json.dumps(structured)
    event = JSONFormat().read(None, text)
    attributes = event.get_attributes()
    assert attributes["specversion"] == "1.0"
    assert TYPE_PATTERN.match(attributes["type"]), attributes["type"]
    assert re.match(r"^/fengqiao/demo/regions/[0-9-]+$", attributes["source"]), attributes["source"]
    assert attributes["id"] == f"{attributes['subject']}:{event.get_data()['version']}"
    assert attributes["datacontenttype"] == "application/json"
    assert attributes["dataschema"].endswith("/v1/schemas/" + attributes["type"])
    assert attributes["time"].tzinfo is not None
    assert isinstance(attributes["position"], int)
    assert event.get_data()["case_id"] == attributes["subject"]
    return event


class LiveServer:
    """The ASGI app served by uvicorn on 127.0.0.1, in a thread."""

    def __init__(self, app: Any) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
