"""Webhook delivery: the feed pushed to each subscription, signed per Standard Webhooks.

For every active subscription the sender

1. **queues** the matching feed events after the subscription's cursor as pending
   deliveries (body = the structured CloudEvent, fixed when queued; at most
   ``window`` pending at a time), moving the cursor in the same transaction;
2. **delivers** them strictly in position order: the lowest pending delivery goes
   first, and the next waits until it is delivered or dead-lettered.

Each attempt is a ``POST`` of the CloudEvent (``application/cloudevents+json``) with
``webhook-id`` (the CloudEvent id, the same on every retry), ``webhook-timestamp``
and ``webhook-signature`` (``v1,<base64 HMAC-SHA256>``, signed by the
``standardwebhooks`` package). A 2xx delivers. Anything else is retried with
exponential back-off and jitter, or after the receiver's ``Retry-After``; after
``max_attempts`` the delivery is dead (the dead-letter list is the ``dead``
deliveries) and the next one goes. A 410 Gone disables the subscription.

All state is in the database (``engine.subscriptions``): a restarted sender resumes
where the last one stopped. Delivery is at least once; receivers deduplicate by
``webhook-id``. ``fengqiao worker`` runs it as ``webhooks``; several may run: they
split the subscriptions (``engine.leadership.Share``, one lock per subscription), so
no subscription has two senders, and each POST is fenced by the sender's lock session.
"""

from __future__ import annotations

import contextlib
import contextvars
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpcore
import httpx
import structlog
from standardwebhooks import Webhook

from domain.errors import ValidationFailed
from engine.feed import EVENT_CONTENT_TYPE, Feed
from engine.leadership import LeaseLost, Share, fence
from engine.service import Fengqiao
from engine.subscriptions import (
    ACTIVE,
    DEAD,
    DELIVERED,
    DISABLED,
    PENDING,
    UNREADABLE,
    Delivery,
    Subscription,
    SubscriptionStore,
    Target,
    owner_stop_reason,
    resolve_target,
)
from engine.users import UserStore
from engine.workers import register_worker

log = structlog.get_logger("fengqiao.webhooks")

USER_AGENT = "fengqiao-webhooks/1"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry: ``base × 2^(attempt-1)``, capped, with equal
    jitter (half fixed, half random), or the receiver's ``Retry-After`` (capped)."""

    max_attempts: int = 10
    base_seconds: float = 5.0
    cap_seconds: float = 6 * 3600.0
    max_retry_after_seconds: float = 24 * 3600.0

    def delay(self, attempts: int, rng: random.Random) -> float:
        raw = min(self.cap_seconds, self.base_seconds * 2 ** max(attempts - 1, 0))
        return raw / 2 + rng.uniform(0, raw / 2)


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, moment.timestamp() - now)


def signed_headers(secret: str, message_id: str, body: str, moment: datetime) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt."""
    return {
        "content-type": EVENT_CONTENT_TYPE,
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, moment, body),
    }


MAX_RESPONSE_BYTES = 64 * 1024  # of a receiver's answer: read at most this much, then hang up
ATTEMPT_SECONDS = 10.0  # connect + send + response, all of one attempt


class AttemptTimeout(httpcore.TimeoutException):
    """The whole attempt (connect, send, response) took longer than its deadline."""


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the deadline of the attempt
    using it (``deadline()``, per thread): a receiver that drips a byte at a time
    cannot stretch an attempt past it."""

    CHUNK = 64 * 1024

    def __init__(self, inner: httpcore.NetworkStream, deadline: Callable[[], float | None]) -> None:
        self._inner = inner
        self._deadline = deadline

    def _left(self, timeout: float | None) -> float | None:
        return time_left(self._deadline(), timeout)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        for start in range(0, len(buffer), self.CHUNK):
            self._inner.write(buffer[start : start + self.CHUNK], self._left(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, self._left(timeout)), self._deadline
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


def time_left(deadline: float | None, timeout: float | None) -> float | None:
    """The timeout for one socket operation: ``timeout``, cut to what is left before
    ``deadline`` (``time.monotonic()``); :class:`AttemptTimeout` once it has passed."""
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise AttemptTimeout(f"the attempt took longer than its {ATTEMPT_SECONDS:g} s deadline")
    return left if timeout is None else min(timeout, left)


class PinnedBackend(httpcore.NetworkBackend):
    """Opens connections only to checked addresses: ``(host, port)`` → the address
    :func:`~engine.subscriptions.resolve_target` checked. The URL keeps its host name,
    so ``Host``, SNI and the certificate check stay the receiver's."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()
        self._pins: dict[tuple[str, int], str] = {}
        self._lock = threading.Lock()
        self._attempt = threading.local()  # this thread's attempt: its deadline

    @contextlib.contextmanager
    def deadline(self, seconds: float) -> Iterator[None]:
        """Every connection used by this thread ends its reads and writes ``seconds`` from now."""
        self._attempt.deadline = time.monotonic() + seconds
        try:
            yield
        finally:
            self._attempt.deadline = None

    def current_deadline(self) -> float | None:
        return getattr(self._attempt, "deadline", None)

    def pin(self, target: Target) -> None:
        with self._lock:
            self._pins[(target.host.lower(), target.port)] = target.address

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        with self._lock:
            address = self._pins.get((host.lower(), port))
        if address is None:
            raise httpcore.ConnectError(f"{host}:{port} was not checked before connecting")
        stream = self._inner.connect_tcp(
            address,
            port,
            time_left(self.current_deadline(), timeout),
            local_address,
            socket_options,
        )
        return DeadlineStream(stream, self.current_deadline)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("webhooks never use unix sockets")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def pinned_transport(backend: PinnedBackend) -> httpx.HTTPTransport:
    """httpx's transport over ``backend`` (httpx does not take a network backend itself)."""
    transport = httpx.HTTPTransport(trust_env=False)
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False), network_backend=backend
    )
    return transport


class WebhookSender:
    """Queues and delivers webhook messages; call :meth:`run_once` or :meth:`run_forever`.

    Each subscription is served on its own in a pool of ``senders`` threads, at most one
    attempt of a subscription at a time (its order holds); an attempt ends within
    ``timeout`` seconds whatever the receiver does, so a slow or failing receiver holds
    one thread for that long and never delays another subscription's deliveries."""

    def __init__(
        self,
        app: Fengqiao,
        store: SubscriptionStore,
        *,
        retry: RetryPolicy | None = None,
        window: int = 100,
        burst: int = 100,
        timeout: float = ATTEMPT_SECONDS,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        share: Share | None = None,
        senders: int | None = None,
    ) -> None:
        self.app = app
        self.store = store
        self.feed = Feed(app)
        self.users = UserStore(
            app
        )  # a subscription delivers only while its owner may (owner_stop_reason)
        self.allow_private = app.settings.webhook_allow_private  # FENGQIAO_WEBHOOK_ALLOW_PRIVATE
        self.retry = retry or RetryPolicy()
        self.window = window
        self.burst = burst
        self.timeout = timeout  # the whole attempt: connect + send + response
        self.clock = clock
        self.rng = rng or random.Random()
        self.share = share  # several senders: this one's part of the subscriptions
        self.pins = PinnedBackend()  # connects only to the address each attempt checked
        self.client = httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            transport=pinned_transport(self.pins),
        )
        self.pool = ThreadPoolExecutor(
            max_workers=senders or app.settings.webhook_senders, thread_name_prefix="webhook"
        )
        self._busy: dict[str, Future[int]] = {}  # subscription id → its work in the pool

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.client.close()

    def run_forever(self, stop: threading.Event, idle_seconds: float = 1.0) -> None:
        while not stop.is_set():
            try:
                worked = self.dispatch()
            except LeaseLost:
                return  # the locks are gone: other senders take the subscriptions over
            except Exception:  # noqa: BLE001 - a worker must outlive one bad round
                log.exception("webhook round failed")
                worked = 0
            if not worked:
                stop.wait(idle_seconds)

    def run_once(self) -> int:
        """One round over the active subscriptions, waited for; returns the attempts made."""
        futures = [self._submit(s) for s in self._mine()]
        return sum(future.result() for future in futures)

    def dispatch(self) -> int:
        """Hand each active subscription that is not being served to the pool, without
        waiting; returns the attempts of the work that has finished since the last call."""
        attempts = self._reap()
        for subscription in self._mine():
            if subscription.id not in self._busy:
                self._busy[subscription.id] = self._submit(subscription)
        return attempts

    def _reap(self) -> int:
        attempts = 0
        for subscription_id, future in list(self._busy.items()):
            if future.done():
                del self._busy[subscription_id]
                try:
                    attempts += future.result()
                except LeaseLost:
                    raise
                except Exception:  # noqa: BLE001 - one subscription's failure stays its own
                    log.exception("webhook subscription round failed", subscription=subscription_id)
        return attempts

    def _mine(self) -> list[Subscription]:
        subscriptions = self.store.list(state=ACTIVE)
        if self.share is not None:
            mine = set(self.share.claim([s.id for s in subscriptions]))
            subscriptions = [s for s in subscriptions if s.id in mine]
        return subscriptions

    def _submit(self, subscription: Subscription) -> Future[int]:
        context = contextvars.copy_context()  # the lease this sender acts under (fence)
        return self.pool.submit(context.run, self.serve, subscription)

    def serve(self, subscription: Subscription) -> int:
        """Queue and deliver one subscription's messages; returns the attempts made."""
        with structlog.contextvars.bound_contextvars(subscription=subscription.id):
            if self.owner_stopped(subscription) or not self.queue(subscription):
                return 0
            return self.deliver(subscription)

    def owner_stopped(self, subscription: Subscription) -> bool:
        """Disable the subscription if its owner may no longer receive it (revoked,
        expired, re-issued elsewhere); True if so."""
        owner = self.users.get(subscription.owner)
        reason = owner_stop_reason(owner, subscription, self.app.clock.now())
        if reason is None:
            return False
        self.store.set_state(subscription.id, DISABLED, reason)
        log.warning("webhook subscription disabled by its owner's state", reason=reason)
        return True

    # -- queueing ----------------------------------------------------------------------

    def queue(self, subscription: Subscription) -> bool:
        """Queue the next matching events; False if the subscription was disabled."""
        room = self.window - self.store.pending_count(subscription.id)
        if room <= 0:
            return True
        try:
            page = self.feed.page(
                subscription.cursor, room, subscription.filter
            )  # as integrators see it
        except ValidationFailed as error:  # e.g. a type that no longer exists
            self.store.set_state(
                subscription.id, DISABLED, f"the filter is no longer valid: {error}"
            )
            return False
        if page.next_after > subscription.cursor:
            self.store.queue(subscription.id, page.events, page.next_after, self.clock())
        return True

    # -- delivering ----------------------------------------------------------------------

    def deliver(self, subscription: Subscription) -> int:
        """Deliver due messages in position order until one must wait; return attempts made.
        The owner is checked again before every attempt: a revoke stops the very next one."""
        attempts = 0
        while attempts < self.burst:
            delivery = self.store.next_pending(subscription.id)
            if delivery is None or delivery.next_attempt_at > self.clock():
                break
            if attempts and self.owner_stopped(subscription):
                break
            attempts += 1
            outcome = self.attempt(subscription, delivery)
            if outcome not in (DELIVERED, DEAD):
                break
        return attempts

    def post(self, subscription: Subscription, delivery: Delivery) -> httpx.Response:
        """One POST, all of it within ``timeout``; the answer's body is read to at most
        :data:`MAX_RESPONSE_BYTES` and the connection dropped if there is more."""
        if subscription.secret == UNREADABLE:
            raise ValidationFailed(
                "the subscription's secret does not open with this FENGQIAO_WEBHOOK_KEY",
                field="secret",
            )
        with self.pins.deadline(self.timeout):
            self.pins.pin(
                resolve_target(subscription.url, self.allow_private)
            )  # resolved once: no rebinding
            fence()  # never POST once this sender's lock on the subscription may be gone
            headers = signed_headers(
                subscription.secret, delivery.message_id, delivery.body, datetime.now(UTC)
            )
            with self.client.stream(
                "POST", subscription.url, content=delivery.body.encode("utf-8"), headers=headers
            ) as response:
                read = 0
                for chunk in response.iter_raw():
                    read += len(chunk)
                    if read >= MAX_RESPONSE_BYTES:
                        break  # leaving the block closes the connection: the rest is never read
                return response

    def attempt(self, subscription: Subscription, delivery: Delivery) -> str:
        """One POST; records the outcome and returns the delivery's new status
        (or ``disabled`` when the receiver answered 410 Gone)."""
        status_code: int | None = None
        retry_after: float | None = None
        try:
            response = self.post(subscription, delivery)
            status_code = response.status_code
            error = None if response.is_success else f"HTTP {status_code}"
            retry_after = retry_after_seconds(response.headers.get("retry-after"), self.clock())
        except (httpx.HTTPError, httpcore.TimeoutException, ValidationFailed) as problem:
            error = f"{type(problem).__name__}: {problem}"
        if error is None:
            self.store.record_attempt(
                delivery, status=DELIVERED, http_status=status_code, error=None
            )
            return DELIVERED
        if status_code == 410:
            self.store.record_attempt(
                delivery, status=PENDING, http_status=410, error=error, next_attempt_at=self.clock()
            )
            self.store.set_state(subscription.id, DISABLED, "the receiver answered 410 Gone")
            log.warning("webhook subscription disabled: 410 Gone", url=subscription.url)
            return DISABLED
        return self._failed(delivery, status_code, error, retry_after)

    def _failed(
        self, delivery: Delivery, status_code: int | None, error: str, retry_after: float | None
    ) -> str:
        attempts = delivery.attempts + 1
        if attempts >= self.retry.max_attempts:
            self.store.record_attempt(delivery, status=DEAD, http_status=status_code, error=error)
            log.warning(
                "webhook delivery dead-lettered",
                position=delivery.position,
                attempts=attempts,
                error=error,
            )
            return DEAD
        wait = (
            min(retry_after, self.retry.max_retry_after_seconds)
            if retry_after is not None
            else self.retry.delay(attempts, self.rng)
        )
        self.store.record_attempt(
            delivery,
            status=PENDING,
            http_status=status_code,
            error=error,
            next_attempt_at=self.clock() + wait,
        )
        log.info(
            "webhook delivery failed; will retry",
            position=delivery.position,
            attempts=attempts,
            wait_seconds=round(wait, 3),
            error=error,
        )
        return PENDING


@register_worker("webhooks", lease="share")
def run_webhooks(app: Any, stop: threading.Event, share: Share | None = None) -> None:
    """Deliver webhook messages until stopped (for this sender's ``share`` of the subscriptions)."""
    store = SubscriptionStore.for_store(
        app.store, app.settings.projections_pool_size, app.settings.webhook_key
    )
    sender = WebhookSender(app, store, share=share)  # FENGQIAO_WEBHOOK_SENDERS threads
    try:
        sender.run_forever(stop)
    finally:
        sender.close()
        store.close()
