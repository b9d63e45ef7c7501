"""What the routes use, held on the app: the engine, users, read models, metrics."""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from fastapi import Request

from api.http.metrics import Metrics
from engine.service import Fengqiao
from engine.users import UserStore


@dataclass(frozen=True)
class Settings:
    """The HTTP layer's limits. ``fengqiao serve`` reads each from ``FENGQIAO_<NAME>``
    (e.g. ``FENGQIAO_AUTH_FAILURES_ALLOWED=50``); a field not set keeps its default."""

    max_body_bytes: int = 1024 * 1024  # 1 MiB
    ready_max_lag: int = 1000  # /readyz fails when projections are further behind (events)
    max_wait_seconds: float = 5.0  # ?min_position waits at most this long
    unready_after_database_error: float = 5.0  # /readyz fails this long after a request hit a database error
    request_deadline_seconds: float = 30.0  # no answer started by then: 503 (0 = no deadline)
    auth_failures_allowed: int = 20  # bad tokens one client address may send per window before 429
    auth_failure_window: float = 60.0  # seconds

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """The defaults, each overridden by its ``FENGQIAO_<NAME>`` variable when set. A value
        that is not a finite number >= 0 stops start-up with the variable's name."""
        values: dict[str, Any] = {}
        for setting in fields(cls):
            variable = f"FENGQIAO_{setting.name.upper()}"
            if variable not in environ:
                continue
            convert = int if isinstance(setting.default, int) else float
            try:
                values[setting.name] = convert(environ[variable])
            except ValueError:
                raise ValueError(f"{variable}={environ[variable]!r} is not {convert.__name__}") from None
            if not 0 <= values[setting.name] < math.inf:
                raise ValueError(f"{variable}={environ[variable]!r} must be a finite number >= 0")
        return cls(**values)


class FailedLogins:
    """Bad tokens per client address in a sliding window: brute force meets 429."""

    def __init__(self, allowed: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
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
    _policies: dict[int, Any] = field(default_factory=dict, repr=False)
    database_error_at: float | None = None  # time.monotonic() of the last request refused for the database
    failed_logins: FailedLogins | None = None

    def __post_init__(self) -> None:
        if self.failed_logins is None:
            self.failed_logins = FailedLogins(self.settings.auth_failures_allowed, self.settings.auth_failure_window)

    def policy(self, version: int) -> Any:
        """A policy version (immutable once loaded, so kept after the first read)."""
        policy = self._policies.get(version)
        if policy is None:
            policy = self._policies[version] = self.engine.policy(version)
        return policy

    def projection_failures(self) -> list[dict[str, Any]]:
        """The projections stopped on an event: name, position, error, since, attempts."""
        failures = getattr(self.runner, "failures", None)
        if failures is None:
            return []
        return [{"projection": f.name, "position": f.position, "error": f.error, "since": f.failed_at,
                 "attempts": f.attempts} for f in failures()]

    def projection_lag(self) -> int | None:
        """Events recorded but not yet projected (the furthest-behind projection)."""
        if self.runner is None:
            return None
        lag = self.runner.lag()
        if isinstance(lag, dict):
            return max(lag.values(), default=0)
        return int(lag)


def services(request: Request) -> Services:
    """The dependency every route takes its collaborators from."""
    return request.app.state.services
