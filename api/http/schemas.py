"""Response shapes, for the OpenAPI document (routes return plain JSON of these shapes).

Models allow extra members: the contract adds fields, never renames them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from domain.clocks import ClockStatus


class OpenModel(BaseModel):
    """A response shape that may carry more members than it names."""

    model_config = ConfigDict(extra="allow")


def with_examples(*examples: dict[str, Any]) -> ConfigDict:
    """An open model's config with ``examples`` for its OpenAPI schema."""
    return ConfigDict(extra="allow", json_schema_extra={"examples": list(examples)})


CASE_VIEW_EXAMPLE: dict[str, Any] = {
    "id": "5b0f9a4e-8f57-5e39-9a3e-0e4b2f1c7d21",
    "kind": "dispute",
    "category": "neighbours",
    "severity": "minor",
    "status": "assigned",
    "suspended": False,
    "region": "410928-001-007",
    "origin_region": "410928-001-007-03",
    "rank": "village",
    "ceiling": "village",
    "assignee": "zhao",
    "unit": "wz-tjh",
    "responsible_unit": "wz-tjh",
    "title": "邻里噪音纠纷",
    "channel": "grid",
    "version": 2,
    "policy_version": 1,
    "reported_at": "2026-09-28T01:00:00+00:00",
    "occurred_at": "2026-09-28T00:30:00+00:00",
    "updated_at": "2026-09-28T01:05:00+00:00",
    "resolved_rank": None,
    "escalations": 0,
    "reclassified_up": 0,
    "whistled": {},
    "clocks": [
        {
            "name": "sign_for",
            "title": "签收 sign-for",
            "state": "running",
            "started_at": "2026-09-28T01:05:00+00:00",
            "due_at": "2026-09-28T03:05:00+00:00",
            "stopped_at": None,
            "elapsed_pct": 0.0,
            "target": "2h",
            "cycle": 1,
            "extensions": 0,
        }
    ],
    "overdue": False,
}


class Clock(OpenModel):
    """One of the case's clocks, as ``domain.clocks.ClockState.view`` shows it."""

    name: str
    title: str
    state: ClockStatus
    started_at: str
    due_at: str
    stopped_at: str | None
    elapsed_pct: float  # of the time allowed, counted in the clock's own (working or calendar) time
    target: str
    cycle: int  # 1, then one more each time the clock starts afresh (a new dispatch, say)
    extensions: int


class CaseView(BaseModel):
    """The case as the outside sees it."""

    model_config = with_examples(CASE_VIEW_EXAMPLE)
    id: str
    kind: str
    category: str
    severity: str
    status: str
    region: str
    rank: str
    ceiling: str
    assignee: str | None = None
    unit: str | None = None
    version: int
    policy_version: int
    reported_at: str
    occurred_at: str
    clocks: list[Clock] = Field(default_factory=list)
    overdue: bool


class CommandResponse(CaseView):
    """The case view at the version the command produced, and the position of its last event."""

    model_config = with_examples({**CASE_VIEW_EXAMPLE, "position": 117})
    position: int | None = Field(
        description="global position of the last event written (for ?min_position)"
    )


class CaseList(BaseModel):
    """A page of case rows from the projections, newest reported first."""

    model_config = with_examples(
        {
            "items": [
                {
                    "case_id": CASE_VIEW_EXAMPLE["id"],
                    "kind": "dispute",
                    "category": "neighbours",
                    "severity": "minor",
                    "status": "assigned",
                    "region": "410928-001-007",
                    "origin_region": "410928-001-007-03",
                    "rank": 1,
                    "assignee": "zhao",
                    "unit": "wz-tjh",
                    "title": "邻里噪音纠纷",
                    "reported_at": "2026-09-28T01:00:00+00:00",
                    "overdue": False,
                    "due_soon": True,
                }
            ],
            "next_cursor": "WyIyMDI2LTA5LTI4VDAxOjAwOjAwKzAwOjAwIiwiNWIwZiJd",
        }
    )
    items: list[dict[str, Any]]
    next_cursor: str | None = None


class SlaBoard(BaseModel):
    """Open cases under a region: overdue, due soon, breaches by clock, workload."""

    model_config = with_examples(
        {
            "region": "410928-001",
            "open": 12,
            "overdue": 2,
            "due_soon": 3,
            "breached_by_clock": {"sign_for": 1, "mediation": 1},
            "oldest_overdue": {
                "case_id": CASE_VIEW_EXAMPLE["id"],
                "title": "邻里噪音纠纷",
                "region": "410928-001-007",
                "assignee": "zhao",
                "unit": "wz-tjh",
                "next_due_at": "2026-09-28T03:05:00+00:00",
            },
            "workers": [{"name": "zhao", "open": 5, "overdue": 1, "due_soon": 2}],
            "units": [{"name": "wz-tjh", "open": 7, "overdue": 1, "due_soon": 2}],
        }
    )
    region: str
    open: int
    overdue: int
    due_soon: int
    breached_by_clock: dict[str, int] = Field(default_factory=dict)
    oldest_overdue: dict[str, Any] | None = None
    workers: list[dict[str, Any]] = Field(default_factory=list)
    units: list[dict[str, Any]] = Field(default_factory=list)


class HistoryActor(OpenModel):
    id: str
    role: str
    unit: str | None = None


class HistoryEntry(BaseModel):
    model_config = with_examples(
        {
            "version": 2,
            "position": 118,
            "type": "Assigned",
            "occurred_at": "2026-09-28T01:05:00+00:00",
            "recorded_at": "2026-09-28T01:05:00+00:00",
            "actor": {
                "id": "li",
                "role": "supervisor",
                "unit": "wz-cwh",
                "region": "410928-001-007",
                "rank": 1,
            },
            "command_id": "li:7f3a",
            "policy_version": 1,
            "data": {
                "assignee": "zhao",
                "unit": "wz-tjh",
                "region": "410928-001-007",
                "rank": 1,
            },
        }
    )
    version: int
    position: int | None = None
    type: str
    occurred_at: str
    recorded_at: str
    actor: HistoryActor
    policy_version: int
    data: dict[str, Any]


class RegionNode(BaseModel):
    model_config = with_examples(
        {
            "code": "410928-001",
            "name": "海通乡",
            "rank": "township",
            "profile": "rural",
            "parent": "410928",
            "children": [
                {
                    "code": "410928-001-007",
                    "name": "王庄村",
                    "rank": "village",
                    "profile": "rural",
                }
            ],
            "units": [{"id": "ht-sfs", "name": "海通乡司法所", "kind": "justice_office"}],
        }
    )
    code: str
    name: str
    rank: str
    profile: str
    parent: str | None = None
    children: list[dict[str, Any]] = Field(default_factory=list)
    units: list[dict[str, Any]] = Field(default_factory=list)


class RegionStats(BaseModel):
    model_config = with_examples(
        {
            "region": "410928-001",
            "from": "2026-09-01T00:00:00+08:00",
            "to": "2026-10-01T00:00:00+08:00",
            "received": 118,
            "resolved": 112,
            "resolved_within_ceiling": 109,
            "within_ceiling_rate": 0.973,
            "resolved_at_rank": {"grid": 61, "village": 38, "township": 10, "county": 3},
            "reclassified_up": 2,
            "response_rate": 1.0,
            "resolution_rate": 0.949,
            "satisfaction_rate": 0.93,
        }
    )
    received: int
    resolved: int
    resolved_within_ceiling: int
    within_ceiling_rate: float | None = None
    resolved_at_rank: dict[str, int]
    reclassified_up: int
    referred: int = 0
    response_rate: float | None = None
    resolution_rate: float | None = None
    satisfaction_rate: float | None = None


class Compliance(BaseModel):
    """小事不出村 per child region (a township's villages, a county's townships), worst rate first."""

    model_config = with_examples(
        {
            "region": "410928-001",
            "level": "village",
            "from": None,
            "to": None,
            "rows": [
                {
                    "region": "410928-001-007",
                    "received": 12,
                    "resolved": 10,
                    "resolved_within_ceiling": 9,
                    "within_ceiling_rate": 0.9,
                    "resolved_at_rank": {
                        "grid": 6,
                        "village": 3,
                        "township": 1,
                        "county": 0,
                    },
                    "referred": 1,
                    "reclassified_up": 0,
                    "escalations_refused": 0,
                }
            ],
        }
    )
    region: str
    level: str
    rows: list[dict[str, Any]]


class Problem(OpenModel):
    """RFC 9457 problem details; other members explain the refusal (``field``, ``severity`` …)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None


class ProblemTypePage(BaseModel):
    """What a problem ``type`` URI answers: the kind of refusal, described."""

    type: str
    title: str
    status: int
    description: str


class Readiness(OpenModel):
    """``/readyz``: ``status`` is ``ready`` (200) or ``not ready`` (503), with each check."""

    status: str
    database: bool
    position: int | None = None
    projection_lag: int | None = None
    max_lag: int
    calendar: Any = None


class SchemaCatalogue(BaseModel):
    """The public event types and where each one's JSON Schema is served."""

    types: list[dict[str, str]]


class AuditVerification(OpenModel):
    """The chain re-read: ``ok``, and the first difference when it is not."""

    ok: bool


class SignedCheckpoint(OpenModel):
    """A signed tree head (C2SP checkpoint note, Ed25519), to keep outside the database."""

    size: int
    root: str
    note: str


class InclusionProof(OpenModel):
    """RFC 9162 inclusion proof of one event (hashes in hex, leaf side first)."""

    leaf_index: int
    leaf_hash: str
    tree_size: int
    root: str
    proof: list[str]


class ConsistencyProof(OpenModel):
    """RFC 9162 consistency proof between two tree sizes (hashes in hex)."""

    proof: list[str]
    from_root: str
    to_root: str


class CaseBundle(OpenModel):
    """A case bundle (canonical JSON; docs/auditors.md)."""

    format: str
    case: str
    events: list[dict[str, Any]]
    tree_head: str
    public_key: str


class SubscriptionView(OpenModel):
    """A webhook subscription as its owner sees it."""


class StatutoryCalendar(OpenModel):
    """The years with statutory holiday data and where each came from."""
