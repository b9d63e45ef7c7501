"""Jinja2 for the dashboard: the template environment, its filters, one ``page`` helper."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from api.http.ui.data import ACTION_NAMES
from domain.calendar import SHANGHAI
from engine.casefile import STATUS_LABELS

HERE = Path(__file__).resolve().parent

RANK_NAMES = {"grid": "网格", "village": "村/社区", "township": "乡镇/街道", "county": "县"}
STATUS_NAMES = STATUS_LABELS  # the case file's words for a status, the domain's
KIND_NAMES = {"dispute": "矛盾纠纷", "hazard": "安全隐患", "petition": "诉求"}
SEVERITY_NAMES = {"minor": "小事", "major": "大事", "critical": "重大"}


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
        ACTION_NAMES=ACTION_NAMES,
    )
    return env


ENV = _environment()


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` with the signed-in principal (if any) and the request."""
    principal = getattr(request.state, "principal", None)
    html = ENV.get_template(template).render(request=request, me=principal, **context)
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": CSP,
        },
    )


CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
