"""How many requests of one process run their blocking part at once (issue 20, target 3).

A request's blocking part (a ``def`` endpoint, the caller's token check) runs in one of
anyio's worker threads, at most ``FENGQIAO_REQUEST_THREADS`` at once (default 4, the
engine's pool of PostgreSQL connections; anyio's own default is 40). Python runs one thread
at a time, so 40 threads each holding part of a request interleave every request with
every other one and queue on the GIL instead of in order: with 16 clients on PostgreSQL,
``fengqiao bench scale`` gave a command's p95 at 3.3× its p50 with two processes (40), and
2.1× (4), with more commands/s from one process (73 → 87), the same from two. Past the
limit a request waits its turn, first come first served.

A request that waits on something else than its own work, read-your-writes
(``?min_position=``, up to ``FENGQIAO_MAX_WAIT_SECONDS``), lends its slot back while it
waits (:func:`lent_slot`): lagging projections never hold the others up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Any

import anyio.from_thread
import anyio.to_thread


def request_threads(count: int) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """The app's lifespan: this process's event loop runs at most ``count`` request threads."""

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = count
        yield

    return lifespan


def _lend(slots: int) -> None:
    limiter = anyio.to_thread.current_default_thread_limiter()
    limiter.total_tokens += slots


@contextmanager
def lent_slot() -> Iterator[None]:
    """While inside: one more request thread may run (this one waits on something else).
    Outside one of anyio's worker threads (a caller of the engine's own): nothing to lend."""
    try:
        anyio.from_thread.run_sync(_lend, 1)
    except RuntimeError:  # anyio's NoEventLoopError: not a request's thread
        yield
        return
    try:
        yield
    finally:
        anyio.from_thread.run_sync(_lend, -1)
