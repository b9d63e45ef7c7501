"""The printable case file (案件卷宗): the whole timeline, clocks, parties and
the case's chain hashes with the verification result, as one HTML page.

:func:`case_file` gathers the facts (a plain dict, also usable as JSON);
:func:`render_case_file` fills ``engine/templates/case_file.html``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape

from domain.errors import DomainError
from domain.permissions import shown_to
from engine import privacy
from engine.audit.checkpoints import latest_checkpoint
from engine.audit.tables import CHAIN
from engine.audit.verify import verify_case
from engine.sql import StoreDb
from engine.views import event_view

BEIJING = ZoneInfo("Asia/Shanghai")
TEMPLATES = Path(__file__).resolve().parent / "templates"

EVENT_LABELS = {
    "Reported": "上报",
    "Assigned": "派单",
    "Accepted": "签收",
    "SentBack": "退单",
    "Escalated": "逐级上报",
    "Reclassified": "重新定性",
    "Suspended": "挂起",
    "Resumed": "恢复",
    "Extended": "延期",
    "Whistled": "吹哨",
    "CheckedIn": "报到",
    "Commented": "评论/证据",
    "Supervised": "督办",
    "ClockWarned": "时限预警",
    "ClockBreached": "超时",
    "Resolved": "办结/化解",
    "Closed": "结案",
    "Reopened": "重新办理",
    "MediationHeld": "调解",
    "MediationRefused": "当事人拒绝调解",
    "AgreementSigned": "协议签名",
    "AgreementSealed": "协议盖章",
    "CourtConfirmationApplied": "申请司法确认",
    "RectificationOrdered": "限时整改",
    "Rectified": "整改完成",
    "Reinspected": "复查",
    "Replied": "答复",
    "ReturnVisited": "回访",
}
KIND_LABELS = {"dispute": "矛盾纠纷", "hazard": "安全隐患", "petition": "诉求/信访"}
SEVERITY_LABELS = {"minor": "小事", "major": "大事", "critical": "重大/紧急"}
STATUS_LABELS = {
    "reported": "已上报",
    "assigned": "已派单",
    "accepted": "已签收",
    "in_progress": "办理中",
    "resolved": "已化解/已办结",
    "closed": "已结案",
}
CLOCK_STATES = {
    "running": "计时中",
    "paused": "已暂停",
    "met": "按时完成",
    "breached": "已超时",
    "cancelled": "已取消",
}
ROLE_LABELS = {
    "applicant": "申请人",
    "respondent": "被申请人",
    "petitioner": "诉求人",
    "reporter": "反映人",
    "other": "其他",
}
FIELD_LABELS = {
    "reason": "原因",
    "note": "说明",
    "text": "内容",
    "summary": "摘要",
    "resolution": "处理结果",
    "outcome": "结果",
    "agreement": "协议",
    "measures": "整改措施",
    "deadline": "期限",
    "passed": "复查合格",
    "satisfaction": "满意度",
    "assignee": "承办人",
    "unit": "承办单位",
    "department": "部门",
    "departments": "部门",
    "to_region": "上报至",
    "region": "区域",
    "severity": "等级",
    "clock": "时限",
    "threshold": "阈值",
    "until": "至",
    "attachments": "附件",
    "category": "类别",
    "title": "标题",
    "description": "描述",
    "channel": "渠道",
    "rank": "层级",
    "upward": "向上定性",
    "referred": "转其他途径",
    "routes": "告知途径",
    "form": "协议形式",
    "party": "当事人",
    "effective": "协议生效",
    "confirm_by": "司法确认申请截止",
    "committee": "调解委员会",
}
HIDDEN_FIELDS = {"parties", "processed_commands"}


def _unit_name(app: Any, unit_id: str | None) -> str | None:
    if not unit_id:
        return None
    try:
        return app.ladder().tree.unit(unit_id).name
    except (DomainError, KeyError):
        return unit_id


def _region_name(app: Any, code: str | None) -> str | None:
    if not code:
        return None
    try:
        return f"{app.region(code).name}（{code}）"
    except (DomainError, KeyError):
        return code


def _pairs(value: dict[str, Any]) -> str:
    return "，".join(f"{k}: {v}" for k, v in value.items())


def _details(data: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for key, value in data.items():
        if key in HIDDEN_FIELDS or value in (None, "", [], {}):
            continue
        if isinstance(value, dict):
            value = _pairs(value)
        elif isinstance(value, list):  # evidence: each file's sha256, type and size in full
            value = "；".join(_pairs(v) if isinstance(v, dict) else str(v) for v in value)
        rows.append((FIELD_LABELS.get(key, key), str(value)))
    return rows


def _time(value: str | None) -> str:
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def case_file(app: Any, case_id: UUID, role: str = "auditor") -> dict[str, Any]:
    """Everything the case file shows, as plain data."""
    view = app.case_view(case_id)
    history = app.history(case_id)
    db = StoreDb(app.recorder)
    hashes = {
        int(r["version"]): r
        for r in db.query(
            f"SELECT version, seq, entry_hash, case_hash, chain_hash FROM {db.table(CHAIN)} WHERE case_id = ?",
            (str(case_id),),
        )
    }
    timeline = []
    for recorded in history:
        entry = event_view(recorded.position, recorded.event)
        chain = hashes.get(entry["version"])
        timeline.append(
            {
                **entry,
                "label": EVENT_LABELS.get(entry["type"], entry["type"]),
                "unit_name": _unit_name(app, entry["actor"].get("unit")),
                "occurred": _time(entry["occurred_at"]),
                "recorded": _time(entry["recorded_at"]),
                "details": _details(entry["data"]),
                "entry_hash": chain["entry_hash"] if chain else None,
                "leaf_index": int(chain["seq"]) - 1 if chain else None,
                "case_hash": chain["case_hash"] if chain else None,
            }
        )
    parties = privacy.reveal(history[0].event.parties or [], role) if history else []
    verification = verify_case(app, case_id)
    checkpoint = latest_checkpoint(app)
    data = {
        "case": view,
        "reported": _time(view["reported_at"]),
        "occurred": _time(view["occurred_at"]),
        "labels": {
            "kind": KIND_LABELS.get(view["kind"], view["kind"]),
            "severity": SEVERITY_LABELS.get(view["severity"], view["severity"]),
            "status": STATUS_LABELS.get(view["status"], view["status"]),
            "region": _region_name(app, view["region"]),
            "origin_region": _region_name(app, view["origin_region"]),
            "unit": _unit_name(app, view["unit"]),
        },
        "parties": [
            {**p, "role_label": ROLE_LABELS.get(p.get("role") or "other", p.get("role"))}
            for p in parties
        ],
        "timeline": timeline,
        "clocks": [
            {
                **c,
                "state_label": CLOCK_STATES.get(c["state"], c["state"]),
                "due": _time(c["due_at"]),
                "started": _time(c["started_at"]),
                "stopped": _time(c["stopped_at"]),
            }
            for c in view["clocks"]
        ],
        "verification": verification.as_dict(),
        "checkpoint": checkpoint.as_dict() if checkpoint else None,
        "role": role,
        "generated_at": _time(app.clock.now().isoformat()),
    }
    return shown_to(role, data)  # numbers typed into free text, for integrators


def render_case_file(data: dict[str, Any]) -> str:
    """The case file as a self-contained HTML page (prints on A4)."""
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"])
    )
    return environment.get_template("case_file.html").render(**data)


def write_case_file(app: Any, case_id: UUID, path: Path, role: str = "auditor") -> dict[str, Any]:
    data = case_file(app, case_id, role)
    path.write_text(render_case_file(data), encoding="utf-8")
    return data


def case_file_pdf(app: Any, case_id: UUID, role: str = "auditor") -> tuple[bytes, dict[str, Any]]:
    """The case file as PDF bytes (and its facts), with a tree head signed now: the one a
    bundle made now is proved against."""
    from engine.audit.checkpoints import checkpoint
    from engine.casefile_pdf import cjk_font, render_case_file_pdf

    font = cjk_font(app.settings.cjk_font)
    checkpoint(app)
    data = case_file(app, case_id, role)
    return render_case_file_pdf(data, font), data


def write_case_file_pdf(
    app: Any, case_id: UUID, path: Path, role: str = "auditor"
) -> dict[str, Any]:
    pdf, data = case_file_pdf(app, case_id, role)
    path.write_bytes(pdf)
    return data
