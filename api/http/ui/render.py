"""Jinja2 for the dashboard: the template environment, its filters, one ``page`` helper."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import FileResponse, HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from api.http.ui import data
from api.http.ui.data import ACTION_NAMES
from domain.calendar import SHANGHAI
from domain.errors import NotFound
from engine.casefile import KIND_LABELS, SEVERITY_LABELS, STATUS_LABELS

HERE = Path(__file__).resolve().parent

RANK_NAMES = {"grid": "网格", "village": "村/社区", "township": "乡镇/街道", "county": "县"}
# the case file's words for a status, a kind and a severity: one vocabulary for every page
STATUS_NAMES, KIND_NAMES, SEVERITY_NAMES = STATUS_LABELS, KIND_LABELS, SEVERITY_LABELS
CATEGORY_NAMES = {
    "neighbours": "邻里",
    "marriage_family": "婚姻家庭",
    "property": "物业",
    "wages": "劳资/农民工工资",
    "land": "土地",
    "damages": "损害赔偿",
    "fire": "消防",
    "gas": "燃气",
    "electrical": "用电",
    "building": "建筑",
    "production": "生产",
    "drowning": "溺水",
    "small_venues": "九小场所",
    "utilities": "水电气暖",
    "environment": "环境",
    "traffic": "交通",
    "housing": "住房",
    "social_security": "社保",
    "public_order": "治安",
    "services": "公共服务",
    "other": "其他",
}


def beijing(moment: datetime | str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A moment in Beijing time (the ladder's clock), ``–`` for none."""
    if moment is None or moment == "":
        return "–"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(SHANGHAI).strftime(fmt)


def pct(rate: float | None) -> str:
    """``0.8571`` → ``85.7%``; no denominator → ``–``."""
    return "–" if rate is None else f"{rate * 100:.1f}%"


def lateness(delta: timedelta) -> str:
    """How late, in days and hours: ``3天4小时``."""
    hours = max(int(delta.total_seconds() // 3600), 0)
    days, hours = divmod(hours, 24)
    return f"{days}天{hours}小时" if days else f"{hours}小时"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(beijing=beijing, pct=pct, lateness=lateness)
    env.globals.update(
        RANK_NAMES=RANK_NAMES,
        STATUS_NAMES=STATUS_NAMES,
        KIND_NAMES=KIND_NAMES,
        SEVERITY_NAMES=SEVERITY_NAMES,
        CATEGORY_NAMES=CATEGORY_NAMES,
        ACTION_NAMES=ACTION_NAMES,
        data=data,  # the pages' helpers (api.http.ui.data)
    )
    return env


ENV = _environment()


def page(
    request: Request, template: str, status_code: int = 200, csp: str | None = None, **context: Any
) -> HTMLResponse:
    """Render ``template`` with the signed-in principal (if any) and the request; ``csp``:
    the page's Content-Security-Policy, if not the dashboard's (:data:`CSP`)."""
    principal = getattr(request.state, "principal", None)
    html = ENV.get_template(template).render(request=request, me=principal, **context)
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": csp or CSP,
        },
    )


CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def static_file(name: str, types: dict[str, str], cache: str, **headers: str) -> FileResponse:
    """One of the dashboard's static files (``types``: the names served, with their media
    types); any other name is 404."""
    if name not in types:
        raise NotFound(f"no file {name!r}", resource="static", id=name)
    return FileResponse(
        HERE / "static" / name, media_type=types[name], headers={"Cache-Control": cache, **headers}
    )
