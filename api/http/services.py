"""What the routes use, held on the app: the engine, users, read models, metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from api.http.metrics import Metrics
from engine.service import Fengqiao
from engine.users import UserStore


@dataclass(frozen=True)
class Settings:
    max_body_bytes: int = 1024 * 1024  # 1 MiB
    ready_max_lag: int = 1000  # /readyz fails when projections are further behind (events)
    max_wait_seconds: float = 5.0  # ?min_position waits at most this long
    unready_after_database_error: float = 5.0  # /readyz fails this long after a request hit a database error


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

    def policy(self, version: int) -> Any:
        """A policy version (immutable once loaded, so kept after the first read)."""
        policy = self._policies.get(version)
        if policy is None:
            policy = self._policies[version] = self.engine.policy(version)
        return policy

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
