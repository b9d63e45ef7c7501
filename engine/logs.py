"""structlog, configured once: JSON lines in production, readable in a terminal.

Every line carries what is bound in context: the request id (HTTP), the case
id, the command id and the actor (bound by the application service).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any

import structlog

from engine.settings import Settings

_configured = False
_info = True  # structlog unconfigured (not by configure_logging) writes every level


def info_enabled() -> bool:
    """Whether ``info`` lines are written: a line on every command's path asks first, so
    at WARNING it costs no call through structlog's logger proxy (~1 % of a command)."""
    return _info


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is when a line is logged, not when logging was
    configured (a test runner or an in-process CLI swaps it and closes the old one)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(
    json: bool | None = None,
    level: str | None = None,
    settings: Settings | None = None,
    *,
    process_id: bool = False,
) -> None:
    """Once per process: ``FENGQIAO_LOG_FORMAT`` and ``FENGQIAO_LOG_LEVEL`` from ``settings``
    (read from the environment when not given), unless ``json`` / ``level`` say.
    ``process_id``: every line carries ``pid`` (several processes write to one stream:
    ``fengqiao serve --workers N``)."""
    global _configured, _info
    if _configured:
        return
    settings = settings or Settings.from_environment()
    if json is None:
        wanted = settings.log_format
        json = wanted == "json" or (wanted != "console" and not sys.stderr.isatty())
    level_name = (level or settings.log_level).upper()
    renderer = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if json
        else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _merge_log_context,
            structlog.processors.add_log_level,
            *([_add_pid] if process_id else []),
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level_name)),
        logger_factory=structlog.WriteLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    _info = logging.getLevelName(level_name) <= logging.INFO
    _configured = True


def _add_pid(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event.setdefault("pid", os.getpid())
    return event


_bound: ContextVar[dict[str, Any] | None] = ContextVar("fengqiao_log_context", default=None)
"""What :class:`log_context` binds: one context variable holding one dict (structlog's
``bind_contextvars`` makes and sets a variable per key: three per command)."""


def _merge_log_context(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Every line carries what :class:`log_context` bound (a field the call names wins,
    as with structlog's ``merge_contextvars``)."""
    bound = _bound.get()
    if bound:
        for key, value in bound.items():
            event.setdefault(key, value)
    return event


class log_context:  # noqa: N801 - used like structlog's bound_contextvars
    """``structlog.contextvars.bound_contextvars`` for the hot path: binds ``kw`` for the
    block (one context variable set, :data:`_bound`), then puts the context back as it
    was (reset by token). One per command."""

    __slots__ = ("_kw", "_token")

    def __init__(self, **kw: Any) -> None:
        self._kw = kw

    def __enter__(self) -> None:
        outer = _bound.get()
        self._token = _bound.set({**outer, **self._kw} if outer else self._kw)

    def __exit__(self, *exc: object) -> None:
        _bound.reset(self._token)
