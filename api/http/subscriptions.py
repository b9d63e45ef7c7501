"""Webhook subscriptions for integrators (Standard Webhooks, CloudEvents bodies).

* ``POST /v1/subscriptions`` {url, types?, region?, from_position?} → 201 with the
  subscription and its ``secret`` (``whsec_…``, shown this once).
* ``GET /v1/subscriptions``, ``GET /v1/subscriptions/{id}``, ``DELETE …/{id}`` (204).
* ``POST …/{id}/pause``, ``POST …/{id}/resume`` (also re-enables one disabled by a 410).
* ``POST …/{id}/replay`` {from_position}: deliver again from that position on.
* ``GET …/{id}/deliveries?status=pending|delivered|dead&after=&limit=``: delivery state;
  ``status=dead`` is the dead-letter list.

A subscription belongs to the user who made it (admins see all); anyone else gets
404. Its region is the caller's region or a region inside it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from api.http.auth import CallerRoute, Principal, check_region_scope, require_right
from api.http.feed import feed_of
from api.http.openapi_docs import problem_responses
from api.http.schemas import SubscriptionView
from api.http.services import Services, services
from domain.actors import Role
from domain.errors import NotFound
from domain.permissions import READ_FEED
from engine.feed import MAX_POSITION, Feed, FeedFilter
from engine.subscriptions import ACTIVE, PAUSED, Subscription, SubscriptionStore

router = APIRouter(
    prefix="/v1/subscriptions",
    tags=["integrators"],
    responses=problem_responses(401, 403, 404, 422),
    route_class=CallerRoute,
)

Integrator = Annotated[Principal, Depends(require_right(READ_FEED))]
Svc = Annotated[Services, Depends(services)]


class NewSubscription(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=8, max_length=2000, description="where to POST, http(s)")
    types: list[str] = Field(
        default_factory=list, max_length=100, description="CloudEvents types; empty = all"
    )
    region: str | None = Field(
        default=None, description="a region code: events of cases in its subtree"
    )
    from_position: int | None = Field(
        default=None,
        ge=1,
        le=MAX_POSITION,
        description="first position to deliver; default: new events only",
    )


class Replay(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_position: int = Field(ge=1, le=MAX_POSITION)


def subscription_store(request: Request, svc: Svc) -> SubscriptionStore:
    """The app's subscription store on the engine's database, made on first use."""
    store = getattr(request.app.state, "subscriptions", None)
    if store is None:
        store = request.app.state.subscriptions = SubscriptionStore.for_store(
            svc.engine.store,
            svc.engine.settings.projections_pool_size,
            svc.engine.settings.webhook_key,
        )
    return store


Store = Annotated[SubscriptionStore, Depends(subscription_store)]
FeedDep = Annotated[Feed, Depends(feed_of)]


def owned(store: SubscriptionStore, principal: Principal, subscription_id: str) -> Subscription:
    """The subscription if the caller owns it (or is an admin); else 404."""
    subscription = store.get(subscription_id)
    if subscription.owner != principal.name and principal.role != Role.ADMIN:
        raise NotFound(
            f"no subscription {subscription_id}", resource="subscription", id=subscription_id
        )
    return subscription


@router.post(
    "",
    status_code=201,
    summary="Subscribe a URL to the event feed",
    response_model=SubscriptionView,
)
def create_subscription(
    body: NewSubscription, principal: Integrator, svc: Svc, store: Store, feed: FeedDep
) -> JSONResponse:
    region = body.region or principal.region
    check_region_scope(principal, region, svc)
    feed.topics(FeedFilter.of(body.types))  # unknown types → 422
    start = body.from_position - 1 if body.from_position else svc.engine.head_position()
    subscription = store.create(
        owner=principal.name,
        url=body.url,
        types=body.types,
        region=region,
        start=start,
        allow_private=svc.settings.webhook_allow_private,
        limit=svc.settings.webhook_max_subscriptions,
    )
    return JSONResponse(
        subscription.view(with_secret=True),
        status_code=201,
        headers={"Location": f"/v1/subscriptions/{subscription.id}"},
    )


@router.get("", summary="Your subscriptions")
def list_subscriptions(principal: Integrator, store: Store) -> dict[str, Any]:
    owner = None if principal.role == Role.ADMIN else principal.name
    return {"subscriptions": [s.view() for s in store.list(owner=owner)]}


@router.get("/{subscription_id}", summary="One subscription")
def get_subscription(subscription_id: str, principal: Integrator, store: Store) -> dict[str, Any]:
    return owned(store, principal, subscription_id).view()


@router.post("/{subscription_id}/pause", summary="Stop delivering (events keep their place)")
def pause_subscription(subscription_id: str, principal: Integrator, store: Store) -> dict[str, Any]:
    owned(store, principal, subscription_id)
    return store.set_state(subscription_id, PAUSED, "paused by " + principal.name).view()


@router.post("/{subscription_id}/resume", summary="Deliver again (also after a 410 disabled it)")
def resume_subscription(
    subscription_id: str, principal: Integrator, svc: Svc, store: Store
) -> dict[str, Any]:
    check_region_scope(
        principal, owned(store, principal, subscription_id).region, svc
    )  # the region it had may be gone
    return store.set_state(subscription_id, ACTIVE, None).view()


@router.delete(
    "/{subscription_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a subscription and its deliveries",
)
def delete_subscription(subscription_id: str, principal: Integrator, store: Store) -> Response:
    owned(store, principal, subscription_id)
    store.delete(subscription_id)
    return Response(status_code=204)


@router.post(
    "/{subscription_id}/replay",
    status_code=202,
    summary="Deliver again from a position on",
    response_model=SubscriptionView,
)
def replay_subscription(
    subscription_id: str, body: Replay, principal: Integrator, store: Store
) -> JSONResponse:
    owned(store, principal, subscription_id)
    return JSONResponse(store.replay(subscription_id, body.from_position).view(), status_code=202)


@router.get(
    "/{subscription_id}/deliveries", summary="Delivery state; status=dead is the dead-letter list"
)
def list_deliveries(
    subscription_id: str,
    principal: Integrator,
    store: Store,
    status: str | None = None,
    after: Annotated[int, Query(ge=0, le=MAX_POSITION)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    owned(store, principal, subscription_id)
    deliveries = store.deliveries(subscription_id, status=status, after=after, limit=limit)
    return {
        "deliveries": [d.view() for d in deliveries],
        "next_after": deliveries[-1].position if deliveries else after,
    }
