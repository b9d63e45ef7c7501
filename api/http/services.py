"""What the routes use, held on the app: the engine, users, read models, metrics."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from api.http.metrics import Metrics
from engine.service import Fengqiao
from engine.sessions import SessionStore
from engine.settings import Settings  # the HTTP limits are its max_body_bytes … auth_failure_window
from engine.users import UserStore

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(text: str) -> tuple[Network, ...]:
    """``FENGQIAO_TRUSTED_PROXIES``: comma-separated addresses or networks (empty: none)."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()
    )


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(request: Request, networks: tuple[Network, ...]) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy — then the
    right-most ``X-Forwarded-For`` hop that is not itself a trusted proxy."""
    peer = request.client.host if request.client else "unknown"
    if not networks or not _trusted(peer, networks):
        return peer
    hops = [
        hop.strip()
        for line in request.headers.getlist("x-forwarded-for")
        for hop in line.split(",")
    ]
    hops = [hop for hop in hops if hop]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop
    return hops[0] if hops else peer


class FailedLogins:
    """Bad tokens per client address in a sliding window: brute force meets 429."""

    def __init__(
        self, allowed: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.allowed, self.window, self.clock = allowed, window, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        while failures and now - failures[0] > self.window:
            failures.popleft()
        return failures

    def retry_after(self, client: str) -> float | None:
        """Seconds until this client may try again, or None if it may now."""
        now = self.clock()
        with self._lock:
            failures = self._recent(client, now)
            if len(failures) < self.allowed:
                if not failures:
                    self._failures.pop(client, None)
                return None
            return max(0.0, self.window - (now - failures[0]))

    def failed(self, client: str) -> None:
        now = self.clock()
        with self._lock:
            if len(self._failures) > 100_000:  # bounded memory under a spread-out attack
                self._failures.clear()
            self._recent(client, now).append(now)


@dataclass
class Services:
    engine: Fengqiao
    users: UserStore
    metrics: Metrics
    settings: Settings = field(default_factory=Settings)
    read_models: Any | None = None  # projections.queries.ReadModels
    runner: Any | None = None  # projections ProjectionRunner: wait_for(position, timeout), lag()
    database_error_at: float | None = (
        None  # time.monotonic() of the last request refused for the database
    )
    failed_logins: FailedLogins | None = None
    sessions: SessionStore | None = None  # the dashboard's

    def __post_init__(self) -> None:
        if self.failed_logins is None:
            self.failed_logins = FailedLogins(
                self.settings.auth_failures_allowed, self.settings.auth_failure_window
            )
        self.trusted_networks = trusted_networks(self.settings.trusted_proxies)
        if self.sessions is None:
            self.sessions = SessionStore(self.engine)

    def client_address(self, request: Request) -> str:
        return client_address(request, self.trusted_networks)

    def projection_failures(self) -> list[dict[str, Any]]:
        """The projections stopped on an event: name, position, error, since, attempts."""
        failures = getattr(self.runner, "failures", None)
        if failures is None:
            return []
        return [
            {
                "projection": f.name,
                "position": f.position,
                "error": f.error,
                "since": f.failed_at,
                "attempts": f.attempts,
            }
            for f in failures()
        ]

    def projection_lag(self) -> int | None:
        """Events recorded but not yet projected (the furthest-behind projection)."""
        if self.runner is None:
            return None
        lag = self.runner.lag()
        if isinstance(lag, dict):
            return max(lag.values(), default=0)
        return int(lag)


async def services(request: Request) -> Services:
    """The dependency every route takes its collaborators from (``async``: a plain ``def``
    dependency costs every request a hop to the thread pool and back)."""
    return request.app.state.services
