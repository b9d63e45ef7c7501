"""The deadline of the request being served, so that its work stops once it has passed.

The HTTP layer answers 503 when a request has not started its answer by its deadline
(:class:`api.http.middleware.Deadline`); that answer is given, but the work behind it
would run on. :func:`within` sets the moment (a context variable: it follows the
request into the thread that serves it), and the loops of a read — replaying a case,
its history, the statistics' buckets — call :func:`check`, which raises
:class:`DeadlinePassed` once it is past. Once the answer has started (a stream), the
deadline is lifted. Outside a request there is no deadline.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class Deadline:
    """The moment (``time.monotonic()``) a request's work must stop by; None: no limit.
    One object per request, shared by every thread that serves it, so lifting it
    (:meth:`lift`, once the answer has started) reaches them all."""

    def __init__(self, at: float | None) -> None:
        self.at = at

    def lift(self) -> None:
        self.at = None


_DEADLINE: ContextVar[Deadline | None] = ContextVar("fengqiao_request_deadline", default=None)


class DeadlinePassed(Exception):  # noqa: N818 - a signal to stop, not a refusal
    """The request's deadline passed: its answer (503) was given; its work stops here."""


@contextmanager
def within(seconds: float | None) -> Iterator[Deadline]:
    """Work started inside gets ``seconds`` from now (None or 0: no deadline)."""
    deadline = Deadline(time.monotonic() + seconds if seconds else None)
    token = _DEADLINE.set(deadline)
    try:
        yield deadline
    finally:
        _DEADLINE.reset(token)


def check() -> None:
    """Raise :class:`DeadlinePassed` if the current request's deadline has passed."""
    deadline = _DEADLINE.get()
    if deadline is not None and deadline.at is not None and time.monotonic() > deadline.at:
        raise DeadlinePassed("the request's deadline passed; its answer was given")
