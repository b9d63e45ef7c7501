"""Webhook subscriptions and their deliveries, stored beside the events.

A subscription is a target URL, a secret (``whsec_…``, Standard Webhooks), an
optional filter (event types, a region subtree) and a cursor: the feed position up
to which events have been queued for it. Each queued event is a delivery row, keyed
by (subscription, position), with its body fixed when queued, its status
(``pending`` → ``delivered`` or ``dead``), the attempts made, and when the next
attempt is due. Everything the worker knows is here, so a restarted worker resumes
where the last one stopped.

**SSRF.** A target must be ``http(s)`` and must not resolve to a loopback, private,
link-local, site-local or otherwise non-public address — nor to one behind an IPv6 form
that carries an IPv4 address (``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4
``2002::/16``, IPv4-compatible ``::a.b.c.d``) — unless ``FENGQIAO_WEBHOOK_ALLOW_PRIVATE=1``
(``allow_private``, passed by the HTTP layer and the sender from their settings; tests,
closed networks). The worker resolves and checks again before every attempt
and connects to the address it checked (:class:`Target`; no second lookup for DNS to
rebind), keeping the host name for ``Host`` and TLS (SNI, certificate). A refusal
says only that the target is not allowed, never the address it resolved to.
"""

from __future__ import annotations

import base64
import builtins
import ipaddress
import json
import secrets
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import httpx
from cryptography.exceptions import InvalidTag

from domain.errors import NotFound, ValidationFailed
from domain.permissions import READ_FEED, may, region_in_scope
from engine.feed import FeedFilter
from engine.keyfiles import key_path, load_key
from engine.privacy import SEALED, seal, unseal
from engine.settings import DEFAULTS
from engine.sql import Database
from engine.store import StoreConfig

if TYPE_CHECKING:
    from engine.users import User

SECRET_PREFIX = "whsec_"
KEY_FILE = "webhook-key"
UNREADABLE = ""  # a secret the key at hand does not open (another FENGQIAO_WEBHOOK_KEY)

ACTIVE, PAUSED, DISABLED = "active", "paused", "disabled"
PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
DELIVERY_STATUSES = (PENDING, DELIVERED, DEAD)

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS fengqiao_subscriptions (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        url TEXT NOT NULL,
        secret TEXT NOT NULL,
        types TEXT NOT NULL,
        region TEXT NOT NULL,
        state TEXT NOT NULL,
        cursor BIGINT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        state_reason TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS fengqiao_deliveries (
        subscription_id TEXT NOT NULL,
        position BIGINT NOT NULL,
        message_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        body TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_attempt_at DOUBLE PRECISION NOT NULL,
        last_attempt_at TEXT,
        last_status INTEGER,
        last_error TEXT,
        delivered_at TEXT,
        PRIMARY KEY (subscription_id, position)
    )""",
    """CREATE INDEX IF NOT EXISTS fengqiao_deliveries_status
        ON fengqiao_deliveries (subscription_id, status, position)""",
)


def utc_now_text() -> str:
    return datetime.now(UTC).isoformat()


def default_key_path(store: StoreConfig, configured: Path | None = None) -> Path:
    """``FENGQIAO_WEBHOOK_KEY``, else ``webhook-key`` beside the SQLite file (``var/`` for
    PostgreSQL): kept like the signing key, apart from the database's backups."""
    return key_path(store, configured, KEY_FILE)


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


NOT_ALLOWED = "the webhook target is not allowed (it must be a public http(s) address)"
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d (and ::, ::1)
NAT64 = ipaddress.ip_network(
    "64:ff9b::/96"
)  # well-known NAT64: the IPv4 address is the last 32 bits
LOCAL_NAT64 = ipaddress.ip_network(
    "64:ff9b:1::/48"
)  # local-use NAT64 (RFC 8215): a private network


@dataclass(frozen=True)
class Target:
    """A webhook target as checked: connect to ``address``; send ``host`` as Host and SNI."""

    url: str
    host: str  # as it goes on the wire (IDNA, IPv6 without brackets)
    port: int
    address: str


def public_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Is ``ip`` a public unicast address — also behind the IPv6 forms that carry an IPv4
    address (mapped, NAT64, 6to4), and never a site-local or IPv4-compatible one?"""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in IPV4_COMPATIBLE or ip in LOCAL_NAT64 or ip.is_site_local:
            return False
        embedded = (
            ip.ipv4_mapped
            or ip.sixtofour
            or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in NAT64 else None)
        )
        if embedded is not None:
            return public_address(embedded)
    return ip.is_global and not ip.is_multicast


def resolve_target(url: str, allow_private: bool = False) -> Target:
    """Parse and resolve ``url`` once; every address it resolves to must be public (any address
    with ``allow_private``). The refusal never names the resolved address."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValidationFailed("the webhook url must be an absolute http(s) URL", field="url")
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        host = httpx.URL(url).raw_host.decode("ascii")  # the name exactly as the client sends it
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    except (OSError, ValueError, UnicodeError, httpx.InvalidURL):
        raise ValidationFailed(
            f"the webhook host {parsed.hostname!r} does not resolve", field="url"
        ) from None
    if not addresses or not (allow_private or all(public_address(ip) for ip in addresses)):
        raise ValidationFailed(NOT_ALLOWED, field="url")
    return Target(url, host, port, str(addresses[0]))


def check_target(url: str, allow_private: bool = False) -> str:
    """The URL if it is a public http(s) target (any http(s) target with ``allow_private``);
    else ``ValidationFailed`` (code ``validation``, field ``url``)."""
    return resolve_target(url, allow_private).url


@dataclass(frozen=True)
class Subscription:
    id: str
    owner: str
    url: str
    secret: str
    types: tuple[str, ...]
    region: str
    state: str
    cursor: int
    created_at: str
    updated_at: str
    state_reason: str | None = None

    @property
    def filter(self) -> FeedFilter:
        return FeedFilter.of(self.types, self.region)

    def view(self, *, with_secret: bool = False) -> dict[str, Any]:
        """The API shape; the secret only when the subscription is created."""
        shown = {
            "id": self.id,
            "url": self.url,
            "types": list(self.types),
            "region": self.region,
            "state": self.state,
            "state_reason": self.state_reason,
            "position": self.cursor,
            "owner": self.owner,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        if with_secret:
            shown["secret"] = self.secret
        return shown

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Subscription:
        return cls(
            **{**row, "types": tuple(json.loads(row["types"])), "cursor": int(row["cursor"])}
        )


def owner_stop_reason(owner: User | None, subscription: Subscription, now: datetime) -> str | None:
    """Why the owner's state stops ``subscription`` now, or None: a subscription delivers
    only while its owner is an active, unexpired user who may read the feed of its region
    (so revoking, expiry and a re-issue in a region without it all stop it at once)."""
    if owner is None:
        return "the owner no longer exists"
    if not owner.active:
        return "the owner was revoked"
    if owner.expired(now):
        return "the owner's token expired"
    if not may(owner.role, READ_FEED):
        return f"the owner's role ({owner.role}) may not read the feed"
    if not region_in_scope(subscription.region, owner.region):
        return f"the owner's region is now {owner.region}, which does not include {subscription.region}"
    return None


@dataclass(frozen=True)
class Delivery:
    subscription_id: str
    position: int
    message_id: str
    event_type: str
    body: str
    status: str
    attempts: int
    next_attempt_at: float
    last_attempt_at: str | None
    last_status: int | None
    last_error: str | None
    delivered_at: str | None

    def view(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "webhook_id": self.message_id,
            "type": self.event_type,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": (
                datetime.fromtimestamp(self.next_attempt_at, UTC).isoformat()
                if self.status == PENDING
                else None
            ),
            "last_attempt_at": self.last_attempt_at,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "delivered_at": self.delivered_at,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Delivery:
        return cls(
            **{
                **row,
                "position": int(row["position"]),
                "next_attempt_at": float(row["next_attempt_at"]),
            }
        )


class SubscriptionStore:
    """Subscriptions and deliveries in the events' database (``engine.sql``)."""

    def __init__(self, db: Database, key: bytes) -> None:
        self.db = db
        self.key = key  # encrypts each secret (AES-256-GCM, the subscription id as associated data)
        with db.transaction() as tx:
            tx.serialize(
                "fengqiao.subscriptions.ddl"
            )  # two senders starting at once on a new store
            for statement in SCHEMA:
                tx.execute(statement)
            for row in tx.query(
                "SELECT id, secret FROM fengqiao_subscriptions WHERE secret LIKE ?",
                (SECRET_PREFIX + "%",),
            ):  # stored in clear by an older version
                tx.execute(
                    "UPDATE fengqiao_subscriptions SET secret = ? WHERE id = ?",
                    (self._seal(row["id"], row["secret"]), row["id"]),
                )

    @classmethod
    def for_store(
        cls,
        store: StoreConfig,
        pool_size: int = DEFAULTS.projections_pool_size,
        key_path: Path | None = None,
    ) -> SubscriptionStore:
        """On the store's database; ``key_path``: ``FENGQIAO_WEBHOOK_KEY`` (see :func:`default_key_path`)."""
        return cls(Database(store.url, pool_size), load_key(default_key_path(store, key_path)))

    def _seal(self, subscription_id: str, secret: str) -> str:
        return seal(self.key, subscription_id, "secret", secret)

    def _subscription(self, row: dict[str, Any]) -> Subscription:
        """A row with its secret opened (:data:`UNREADABLE` under another key)."""
        secret = row["secret"]
        if secret.startswith(SEALED):
            try:
                secret = unseal(self.key, row["id"], "secret", secret)
            except (InvalidTag, ValueError):
                secret = UNREADABLE
        return Subscription.from_row({**row, "secret": secret})

    def close(self) -> None:
        self.db.close()

    # -- subscriptions ---------------------------------------------------------------

    def create(
        self,
        *,
        owner: str,
        url: str,
        types: Iterable[str],
        region: str,
        start: int,
        allow_private: bool = False,
        limit: int | None = None,
    ) -> Subscription:
        """A new active subscription that receives the events after position ``start``;
        refused (``validation``, field ``subscriptions``) when ``owner`` has ``limit`` already."""
        now = utc_now_text()
        subscription = Subscription(
            id=str(uuid.uuid4()),
            owner=owner,
            url=check_target(url, allow_private),
            secret=new_secret(),
            types=tuple(sorted(set(types))),
            region=region,
            state=ACTIVE,
            cursor=start,
            created_at=now,
            updated_at=now,
        )
        with self.db.transaction() as tx:
            tx.serialize(
                "fengqiao.subscriptions.owner." + owner
            )  # two at once do not pass the limit together
            held = tx.query(
                "SELECT COUNT(*) AS n FROM fengqiao_subscriptions WHERE owner = ?", (owner,)
            )
            if limit is not None and int(held[0]["n"]) >= limit:
                raise ValidationFailed(
                    f"{owner} has {limit} subscriptions, the most allowed: delete one first",
                    field="subscriptions",
                    limit=limit,
                )
            tx.execute(
                "INSERT INTO fengqiao_subscriptions (id, owner, url, secret, types, region, state, cursor,"
                " created_at, updated_at, state_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    subscription.id,
                    owner,
                    subscription.url,
                    self._seal(subscription.id, subscription.secret),
                    json.dumps(subscription.types),
                    region,
                    ACTIVE,
                    start,
                    now,
                    now,
                    None,
                ),
            )
        return subscription

    def get(self, subscription_id: str) -> Subscription:
        rows = self.db.query(
            "SELECT * FROM fengqiao_subscriptions WHERE id = ?", (subscription_id,)
        )
        if not rows:
            raise NotFound(
                f"no subscription {subscription_id}", resource="subscription", id=subscription_id
            )
        return self._subscription(rows[0])

    def list(self, owner: str | None = None, state: str | None = None) -> list[Subscription]:
        sql = "SELECT * FROM fengqiao_subscriptions WHERE 1 = 1"
        params: builtins.list[Any] = []
        if owner is not None:
            sql, params = sql + " AND owner = ?", [*params, owner]
        if state is not None:
            sql, params = sql + " AND state = ?", [*params, state]
        return [
            self._subscription(r) for r in self.db.query(sql + " ORDER BY created_at, id", params)
        ]

    def set_state(
        self, subscription_id: str, state: str, reason: str | None = None
    ) -> Subscription:
        with self.db.transaction() as tx:
            changed = tx.execute(
                "UPDATE fengqiao_subscriptions SET state = ?, state_reason = ?, updated_at = ? WHERE id = ?",
                (state, reason, utc_now_text(), subscription_id),
            )
        if not changed:
            raise NotFound(
                f"no subscription {subscription_id}", resource="subscription", id=subscription_id
            )
        return self.get(subscription_id)

    def delete(self, subscription_id: str) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                "DELETE FROM fengqiao_deliveries WHERE subscription_id = ?", (subscription_id,)
            )
            if not tx.execute(
                "DELETE FROM fengqiao_subscriptions WHERE id = ?", (subscription_id,)
            ):
                raise NotFound(
                    f"no subscription {subscription_id}",
                    resource="subscription",
                    id=subscription_id,
                )

    def replay(self, subscription_id: str, from_position: int) -> Subscription:
        """Deliver again every matching event from ``from_position`` on (inclusive):
        the cursor moves back; deliveries at or after it are queued afresh, with the
        same ``webhook-id`` as before."""
        if from_position < 1:
            raise ValidationFailed("from_position must be 1 or more", field="from_position")
        with self.db.transaction() as tx:
            changed = tx.execute(
                "UPDATE fengqiao_subscriptions SET cursor = ?, updated_at = ? WHERE id = ?",
                (from_position - 1, utc_now_text(), subscription_id),
            )
            if not changed:
                raise NotFound(
                    f"no subscription {subscription_id}",
                    resource="subscription",
                    id=subscription_id,
                )
            tx.execute(
                "DELETE FROM fengqiao_deliveries WHERE subscription_id = ? AND position >= ? AND status = ?",
                (subscription_id, from_position, PENDING),
            )
        return self.get(subscription_id)

    # -- deliveries ------------------------------------------------------------------

    def queue(
        self, subscription_id: str, events: builtins.list[dict[str, Any]], cursor: int, now: float
    ) -> None:
        """Queue the events as pending deliveries and move the cursor, atomically."""
        with self.db.transaction() as tx:
            rows = tx.query(
                f"SELECT cursor FROM fengqiao_subscriptions WHERE id = ?{self.db.for_update}",
                (subscription_id,),
            )
            if not rows:
                return
            tx.executemany(
                "INSERT INTO fengqiao_deliveries (subscription_id, position, message_id, event_type, body, status,"
                " attempts, next_attempt_at, last_attempt_at, last_status, last_error, delivered_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 0, ?, NULL, NULL, NULL, NULL)"
                " ON CONFLICT (subscription_id, position) DO UPDATE SET body = excluded.body,"
                " status = excluded.status, attempts = 0, next_attempt_at = excluded.next_attempt_at,"
                " last_attempt_at = NULL, last_status = NULL, last_error = NULL, delivered_at = NULL",
                [
                    (
                        subscription_id,
                        e["position"],
                        e["id"],
                        e["type"],
                        json.dumps(e, ensure_ascii=False, separators=(",", ":")),
                        PENDING,
                        now,
                    )
                    for e in events
                ],
            )
            tx.execute(
                "UPDATE fengqiao_subscriptions SET cursor = ? WHERE id = ?",
                (cursor, subscription_id),
            )

    def pending_count(self, subscription_id: str) -> int:
        rows = self.db.query(
            "SELECT COUNT(*) AS n FROM fengqiao_deliveries WHERE subscription_id = ? AND status = ?",
            (subscription_id, PENDING),
        )
        return int(rows[0]["n"])

    def next_pending(self, subscription_id: str) -> Delivery | None:
        """The lowest-position pending delivery: deliveries go out in position order."""
        rows = self.db.query(
            "SELECT * FROM fengqiao_deliveries WHERE subscription_id = ? AND status = ?"
            " ORDER BY position LIMIT 1",
            (subscription_id, PENDING),
        )
        return Delivery.from_row(rows[0]) if rows else None

    def record_attempt(
        self,
        delivery: Delivery,
        *,
        status: str,
        http_status: int | None,
        error: str | None,
        next_attempt_at: float | None = None,
    ) -> None:
        now = utc_now_text()
        with self.db.transaction() as tx:
            tx.execute(
                "UPDATE fengqiao_deliveries SET status = ?, attempts = attempts + 1, last_attempt_at = ?,"
                " last_status = ?, last_error = ?, next_attempt_at = ?, delivered_at = ?"
                " WHERE subscription_id = ? AND position = ?",
                (
                    status,
                    now,
                    http_status,
                    error,
                    next_attempt_at or time.time(),
                    now if status == DELIVERED else None,
                    delivery.subscription_id,
                    delivery.position,
                ),
            )

    def deliveries(
        self, subscription_id: str, *, status: str | None = None, after: int = 0, limit: int = 100
    ) -> builtins.list[Delivery]:
        if status is not None and status not in DELIVERY_STATUSES:
            raise ValidationFailed(
                f"unknown delivery status {status!r}",
                field="status",
                allowed=list(DELIVERY_STATUSES),
            )
        sql = "SELECT * FROM fengqiao_deliveries WHERE subscription_id = ? AND position > ?"
        params: list[Any] = [subscription_id, after]
        if status is not None:
            sql, params = sql + " AND status = ?", [*params, status]
        rows = self.db.query(sql + " ORDER BY position LIMIT ?", [*params, limit])
        return [Delivery.from_row(r) for r in rows]
