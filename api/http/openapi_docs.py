"""OpenAPI fragments shared by the routers: problem responses and request examples."""

from __future__ import annotations

from typing import Any

from api.http.problems import PROBLEM_EXAMPLES, PROBLEM_JSON

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

_BY_STATUS = {
    400: ("The body could not be parsed (not UTF-8 JSON, too deep, too long a number)", []),
    401: ("Missing, unknown or revoked token", ["unauthenticated"]),
    403: ("The caller's role may not do this", ["forbidden"]),
    404: (
        "No such case or region — or one outside the caller's region (the same answer)",
        ["not-found"],
    ),
    409: ("The case is not in a state for this action", ["invalid-transition"]),
    412: ("If-Match named a version the case is no longer at", ["version-conflict"]),
    413: ("The body is larger than 1 MiB", []),
    415: ("The body is not application/json", []),
    422: (
        "The request is not valid, or an escalation above the ceiling",
        ["validation", "escalation-ceiling"],
    ),
    429: ("Too many bad tokens from this address: wait `Retry-After` seconds", []),
    503: (
        "Not ready: projections unavailable, the database not answering, or no answer within "
        "FENGQIAO_REQUEST_DEADLINE_SECONDS (retry with the same Idempotency-Key)",
        [],
    ),
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries documenting problem+json answers."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description, names = _BY_STATUS[status]
        content: dict[str, Any] = {"schema": PROBLEM_REF}
        if names:
            content["examples"] = {n: {"value": PROBLEM_EXAMPLES[n]} for n in names}
        out[status] = {"description": description, "content": {PROBLEM_JSON: content}}
    return out


def served_as(media_type: str, schema_type: str) -> dict[int | str, dict[str, Any]]:
    """A ``responses=`` entry for a 200 that is not JSON (or not only: HTML, a schema …)."""
    return {200: {"content": {media_type: {"schema": {"type": schema_type}}}}}


READ = (401, 404, 422)
WRITE = (401, 403, 404, 409, 412, 413, 415, 422)

REPORT_EXAMPLES: dict[str, dict[str, Any]] = {
    "dispute": {
        "summary": "A neighbours' dispute reported by a grid worker",
        "value": {
            "kind": "dispute",
            "category": "neighbours",
            "severity": "minor",
            "region": "410928-001-007-03",
            "title": "邻里噪音纠纷",
            "description": "楼上装修噪音，双方争执",
            "occurred_at": "2026-09-28T08:30:00+08:00",
            "channel": "grid",
            "parties": [
                {"name": "张三", "role": "applicant", "phone": "13800000001"},
                {"name": "李四", "role": "respondent"},
            ],
        },
    },
    "hazard": {
        "summary": "A major fire hazard with a rectification deadline",
        "value": {
            "kind": "hazard",
            "category": "fire",
            "severity": "major",
            "region": "410928-002-001-01",
            "title": "九小场所消防通道堵塞",
            "hazard_level": "major",
            "rectify_by": "2026-10-10T18:00:00+08:00",
        },
    },
    "petition": {
        "summary": "A 12345 hotline petition",
        "value": {
            "kind": "petition",
            "category": "utilities",
            "severity": "minor",
            "region": "410928-009-001-01",
            "title": "小区停水三天",
            "channel": "hotline_12345",
            "parties": [{"name": "王五", "role": "petitioner", "phone": "13900000002"}],
        },
    },
}

ACTION_EXAMPLES: dict[str, dict[str, Any]] = {
    "assign": {"assignee": "zhao"},
    "accept": {},
    "send-back": {"reason": "不属于本单位职责"},
    "mediate": {
        "outcome": "agreed",
        "summary": "双方当面协商",
        "agreement": "楼上每日20点后停止施工",
        "form": "written",
    },
    "refuse-mediation": {
        "party": "respondent",
        "reason": "被申请人明确表示不接受调解",
        "routes": ["arbitration", "administrative", "court"],
    },
    "sign-agreement": {},
    "seal-agreement": {},
    "court-confirmation": {"note": "双方共同申请司法确认"},
    "order-rectification": {
        "deadline": "2026-10-10T18:00:00+08:00",
        "measures": "清理消防通道",
        "plan": {"funds": "2000元", "people": "店主", "interim_measures": "设置警示"},
    },
    "rectify": {"note": "已清理"},
    "reinspect": {"passed": True, "note": "复查合格"},
    "reply": {"text": "已协调供水公司，今日恢复供水"},
    "return-visit": {"satisfaction": "satisfied", "note": "群众满意"},
    "escalate": {"reason": "村级调解不成", "to": "township"},
    "reclassify": {"severity": "major", "reason": "涉及多户，定性为大事"},
    "request-suspension": {"reason": "当事人外出务工"},
    "approve-suspension": {"note": "同意挂起"},
    "refuse-suspension": {"reason": "当事人可电话调解"},
    "suspend": {"reason": "当事人外出务工"},
    "resume": {},
    "link-duplicate": {
        "primary": "3f2b8c1e-5d7a-5b4e-9c21-7a0f3e6d2b15",
        "reason": "同一户反映同一处漏水，并入先报的案件",
    },
    "unlink-duplicate": {"reason": "核实后不是同一事项"},
    "request-extension": {"days": 5, "reason": "需等待鉴定结果"},
    "approve-extension": {"note": "同意延期"},
    "refuse-extension": {"reason": "可在时限内办结"},
    "extend": {"days": 5, "reason": "需等待鉴定结果"},
    "whistle": {"departments": ["ht-sfs", "派出所"], "reason": "需多部门联合处置"},
    "check-in": {"department": "ht-sfs"},
    "comment": {"text": "已电话联系当事人"},
    "supervise": {"note": "请于明日前办结"},
    "resolve": {"resolution": "双方达成协议并履行"},
    "close": {},
    "reopen": {"reason": "协议未履行"},
}

ACTION_SUMMARIES: dict[str, str] = {
    "assign": "派单 — give the case to a person (by name) or unit; handled at their region's rank",
    "accept": "签收 — the assigned handler signs for the case",
    "send-back": "退单 — not this unit's duty; back to dispatch with a reason",
    "mediate": "调解 — one mediation session and its outcome; an agreement is written or oral, a failure "
    "records the routes the parties were told of (disputes)",
    "refuse-mediation": "当事人拒绝调解 — a party clearly refuses mediation; the parties are told of the routes (disputes)",
    "sign-agreement": "签字 — the parties have signed the written agreement (disputes)",
    "seal-agreement": "盖章 — the mediation committee has sealed the written agreement (disputes)",
    "court-confirmation": "司法确认 — the parties apply for court confirmation within 30 days of the agreement "
    "taking effect (disputes)",
    "order-rectification": "限时整改 — a rectification notice with a deadline (hazards)",
    "rectify": "整改完成 — the hazard was rectified (hazards)",
    "reinspect": "复查 — re-inspection, passed or failed (hazards)",
    "reply": "反馈 — the reply to the petitioner (petitions)",
    "return-visit": "回访 — satisfaction; dissatisfied sends the case back to be redone (petitions)",
    "escalate": "上报 — to the ancestor of rank `to` (default: next rank up), never above the ceiling",
    "reclassify": "重新定性 — change severity; upwards only by the ceiling rank, with a reason; "
    "a critical case down only by the critical ceiling's rank",
    "request-suspension": "申请挂起 — the handler asks to pause the clocks, before the resolve clock is due",
    "approve-suspension": "批准挂起 — a supervisor covering the case approves the pending suspension",
    "refuse-suspension": "驳回挂起 — a supervisor covering the case refuses it, with a reason",
    "suspend": "挂起 — a supervisor covering the case pauses the clocks, before the resolve clock is due",
    "resume": "恢复 — resume a suspended case",
    "link-duplicate": "并案 — link this case to its primary as a duplicate (its clocks stop)",
    "unlink-duplicate": "撤销并案 — undo a duplicate link",
    "request-extension": "申请延期 — the handler asks to extend a clock (default: the resolve clock) by `days`, "
    "before its due time, within the policy's `max_extension`",
    "approve-extension": "批准延期 — a supervisor covering the case approves the pending extension",
    "refuse-extension": "驳回延期 — a supervisor covering the case refuses it, with a reason",
    "extend": "延期 — a supervisor covering the case extends a clock by `days`, before its due time, "
    "within the policy's `max_extension`",
    "whistle": "吹哨 — summon departments, each of which must check in",
    "check-in": "报到 — a summoned department checks in",
    "comment": "留言 — a comment or evidence",
    "supervise": "督办 — a supervision notice",
    "resolve": "化解/办结 — the matter is settled at the current rank (a dispute after a failed or refused "
    "mediation ends referred, not 化解)",
    "close": "结案 — close a resolved case",
    "reopen": "重办 — reopen a resolved or closed case",
}
