"""Prometheus metrics: requests, latencies, commands by type, projection lag, clock breaches.

Each app has its own registry (several apps live side by side in tests).
Uses ``prometheus_client``, the reference client: its text exposition format is
what every Prometheus-compatible scraper reads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from domain.cases import CASE_CLASSES
from engine.service import Fengqiao

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_SERIES = 10_000  # label sets of requests kept at hand (routes × methods × statuses)

BREACH_TOPICS = [f"domain.cases:{cls.__name__}.ClockBreached" for cls in CASE_CLASSES.values()]


class ClockBreaches:
    """Counts ``ClockBreached`` events in the store, catching up incrementally."""

    def __init__(self, engine: Fengqiao) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._after = 0
        self._count = 0

    def count(self) -> int:
        with self._lock:
            while True:
                batch = self.engine.recorder.select_notifications(
                    self._after + 1, 1000, topics=BREACH_TOPICS
                )
                if not batch:
                    return self._count
                self._count += len(batch)
                self._after = batch[-1].id


Lag = Callable[[], int | None]
"""The projections' lag in events (None: no projections in this process)."""
Failures = Callable[[], list[dict[str, Any]]]
"""The projections stopped on an event."""


@dataclass(eq=False)  # the registry keys collectors by identity
class _StoreCollector(Collector):
    """Read at scrape time: projection lag, event stream head, clock breaches."""

    engine: Fengqiao
    lag: Lag
    failures: Failures | None = None

    def __post_init__(self) -> None:
        self.breaches = ClockBreaches(self.engine)

    def collect(self) -> Iterator[Metric]:
        head = GaugeMetricFamily(
            "fengqiao_event_stream_head", "Position of the last event recorded"
        )
        head.add_metric([], self.engine.head_position())
        yield head
        lag = self.lag()
        if lag is not None:
            gauge = GaugeMetricFamily(
                "fengqiao_projection_lag_events", "Events recorded but not yet projected"
            )
            gauge.add_metric([], lag)
            yield gauge
        if self.failures is not None:
            stopped = GaugeMetricFamily(
                "fengqiao_projection_stopped_position",
                "Position of the event a projection is stopped on (a sample only while stopped)",
                labels=["projection", "error"],
            )
            for failure in self.failures():
                stopped.add_metric(
                    [failure["projection"], failure["error"][:200]], failure["position"]
                )
            yield stopped
        breaches = CounterMetricFamily("fengqiao_clock_breaches", "ClockBreached events recorded")
        breaches.add_metric([], self.breaches.count())
        yield breaches


class Metrics:
    def __init__(
        self,
        engine: Fengqiao,
        lag: Lag,
        failures: Failures | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fengqiao_http_requests",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "fengqiao_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.commands = Counter(
            "fengqiao_commands",
            "Case commands by type and outcome",
            ["command", "outcome"],
            registry=self.registry,
        )
        self.registry.register(_StoreCollector(engine, lag, failures))
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        engine.command_observers.append(self.observe_command)  # every front door: v1, Open311 …

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:  # each label set looked up once (``labels`` validates and locks)
            series = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            if len(self._series) < MAX_SERIES:
                self._series[key] = series
        series[0].inc()
        series[1].observe(seconds)

    def observe_command(self, command: str, outcome: str) -> None:
        self.commands.labels(command, outcome).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
