"""The benchmarks' and tests' county: both profiles, its units and people, how to seed
it into an engine, and the requests the HTTP benchmarks send (``tests/`` imports it too)."""

from __future__ import annotations

from itertools import count
from pathlib import Path
from typing import Any
from uuid import UUID

import domain
from domain.actors import Actor
from domain.commands import Envelope, ReportCase
from domain.ladder import Person, Unit
from engine.service import CommandResult, Fengqiao

DEFAULT_POLICY = (Path(domain.__file__).resolve().parent / "default_policy.toml").read_text()

COUNTY_CSV = """code,name,rank,profile
410928,濮阳县,county,rural
410928-001,海通乡,township,rural
410928-001-007,王庄村,village,rural
410928-001-007-03,王庄村第三网格,grid,rural
410928-001-008,李庄村,village,rural
410928-001-008-01,李庄村第一网格,grid,rural
410928-002,徐镇镇,township,rural
410928-002-001,徐镇村,village,rural
410928-002-001-01,徐镇村第一网格,grid,rural
410928-009,城关街道,township,urban
410928-009-001,幸福社区,village,urban
410928-009-001-01,幸福社区一号楼,grid,urban
"""

UNITS = [
    Unit("wz-tjh", "王庄村调解委员会", "410928-001-007", "mediation_committee"),
    Unit("wz-cwh", "王庄村委会", "410928-001-007", "village_committee"),
    Unit("ht-sfs", "海通乡司法所", "410928-001", "justice_office"),
    Unit("ht-zzzx", "海通乡综治中心", "410928-001", "comprehensive_centre"),
    Unit("ht-xfb", "海通乡信访办", "410928-001", "petition_office"),
    Unit("xz-zzzx", "徐镇镇综治中心", "410928-002", "comprehensive_centre"),
    Unit("py-tjzx", "濮阳县矛盾纠纷调处中心", "410928", "county_mediation_centre"),
    Unit("cg-zzzx", "城关街道综治中心", "410928-009", "comprehensive_centre"),
]

PEOPLE = [
    Person("wang", "reporter", "410928-001-007-03", None),  # 网格员
    Person("zhao", "handler", "410928-001-007", "wz-tjh"),  # village mediator
    Person("li", "supervisor", "410928-001-007", "wz-cwh"),  # village supervisor (ceiling of minor)
    Person("sun", "handler", "410928-001", "ht-sfs"),  # township justice office
    Person("zhou", "supervisor", "410928-001", "ht-zzzx"),  # township supervisor
    Person("wu", "supervisor", "410928", "py-tjzx"),  # county supervisor
    Person("chen", "reporter", "410928-009-001-01", None),  # urban building grid worker
]

RANKS = {
    "410928": 3,
    "410928-001": 2,
    "410928-001-007": 1,
    "410928-001-007-03": 0,
    "410928-009-001-01": 0,
}


def actor(name: str, app: Fengqiao | None = None) -> Actor:
    person = next(p for p in PEOPLE if p.name == name)
    rank = RANKS.get(person.region)
    if app is not None:
        rank = int(app.region(person.region).rank)
    return Actor(
        id=person.name, role=person.role, unit=person.unit, region=person.region, rank=rank
    )


def seed(app: Fengqiao) -> Fengqiao:
    app.import_regions(COUNTY_CSV, "admin")
    for unit in UNITS:
        app.add_unit(unit, "admin")
    for person in PEOPLE:
        app.add_person(person, "admin")
    app.load_policy(DEFAULT_POLICY, "admin")
    return app


_ids = count(1)


def envelope(name: str, app: Fengqiao, *, command_id: str | None = None, **more: Any) -> Envelope:
    """``name``'s envelope; ``more``: the envelope's ``expected_version``, ``occurred_at``."""
    command_id = command_id or f"test-{next(_ids)}"
    return Envelope(actor=actor(name, app), command_id=command_id, **more)


def report(
    app: Fengqiao,
    kind: str = "dispute",
    severity: str = "minor",
    *,
    category: str | None = None,
    region: str = "410928-001-007-03",
    by: str = "wang",
    **extra,
) -> CommandResult:
    category = (
        category or {"dispute": "neighbours", "hazard": "fire", "petition": "environment"}[kind]
    )
    body = ReportCase(
        kind=kind,
        category=category,
        severity=severity,
        region=region,
        **{"title": f"{kind} test", **extra},
    )
    return app.report(body, envelope(by, app))


def act(app: Fengqiao, case_id: UUID, action: str, by: str, **body) -> CommandResult:
    return app.do(case_id, action, body, envelope(by, app))


# -- HTTP request bodies and the users of every role in and out of 海通乡 --

HAITONG = "410928-001"  # 海通乡
XUZHEN = "410928-002"  # 徐镇镇: out of region for 海通乡 users
GRID = "410928-001-007-03"  # 王庄村第三网格
XUZHEN_GRID = "410928-002-001-01"

# name, role, region, unit — seeded people keep their ladder entry
USERS = [
    ("wang", "reporter", GRID, None),
    ("zhao", "handler", "410928-001-007", "wz-tjh"),
    ("li", "supervisor", "410928-001-007", "wz-cwh"),
    ("sun", "handler", HAITONG, "ht-sfs"),
    ("zhou", "supervisor", HAITONG, "ht-zzzx"),
    ("wu", "supervisor", "410928", "py-tjzx"),
    ("audit", "auditor", HAITONG, None),
    ("feed", "integrator", HAITONG, None),
    ("root", "admin", HAITONG, None),
    ("boss", "admin", "410928", None),
    ("xu", "supervisor", XUZHEN, "xz-zzzx"),
    ("xuh", "handler", XUZHEN, "xz-zzzx"),
]

ZHANG_SAN = {
    "name": "张三",
    "role": "applicant",
    "phone": "13812341234",
    "id_number": "41092819800101127X",
}
"""A party with every personal field: a phone and an ID number to mask, to find, to erase."""

DISPUTE = {
    "kind": "dispute",
    "category": "neighbours",
    "severity": "minor",
    "region": GRID,
    "title": "邻里噪音纠纷",
    "parties": [
        {
            "name": "张三",
            "role": "applicant",
            "phone": "13812345678",
            "id_number": "410928199001011234",
        }
    ],
}
PLAIN_DISPUTE = {
    **DISPUTE,
    "parties": [{"name": "张三", "role": "applicant", "phone": "13800000001"}],
}
"""The dispute with a party who gives a phone only (no ID number): the write benchmarks' report."""
HAZARD = {
    "kind": "hazard",
    "category": "fire",
    "severity": "minor",
    "region": GRID,
    "title": "消防通道堵塞",
}
PETITION = {
    "kind": "petition",
    "category": "utilities",
    "severity": "minor",
    "region": GRID,
    "title": "停水三天",
    "channel": "hotline_12345",
}
