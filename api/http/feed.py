"""The event feed for integrators: pages of CloudEvents, a Server-Sent Events stream,
and the JSON Schemas of the public event types.

* ``GET /v1/events?after=&limit=&types=&region=`` → ``application/cloudevents-batch+json``;
  the next ``after`` is in the ``Fengqiao-Next-After`` header and a ``Link: rel="next"``.
* ``GET /v1/events/stream`` → ``text/event-stream``: one CloudEvent per message, ``id:`` =
  position; ``Last-Event-ID`` (or ``?after=``) resumes right after it; a comment line
  every ``FENGQIAO_SSE_HEARTBEAT`` seconds (default 15) keeps proxies from closing it.
* ``GET /v1/schemas``, ``GET /v1/schemas/{type}`` → the JSON Schema of each type's data.

The feed needs the ``read_feed`` right (integrators, admins); it is limited to the
caller's region subtree and masks parties' personal fields for masked roles. The
schemas are public: they hold no data.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.http.auth import CallerRoute, Principal, check_region_scope, require_right
from api.http.openapi_docs import problem_responses, served_as
from api.http.schemas import SchemaCatalogue
from api.http.services import Services, services
from domain.errors import ValidationFailed
from domain.permissions import READ_FEED
from engine import event_schemas
from engine.feed import (
    BATCH_CONTENT_TYPE,
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_POSITION,
    Feed,
    FeedFilter,
    encode_json,
)

router = APIRouter(tags=["integrators"], route_class=CallerRoute)

NEXT_AFTER_HEADER = "Fengqiao-Next-After"
HEAD_HEADER = "Fengqiao-Head"
SSE_POLL_SECONDS = 0.5
SSE_PAGE = 200

SSE_EVENT = {
    "type": "object",
    "description": "One event of the stream (as OpenAPI 3.2's `itemSchema` would say): `id` is "
    "the position, `data` one CloudEvent as JSON; heartbeats are comment lines, not events",
    "required": ["id", "data"],
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "event": {"type": "string", "enum": ["message"]},
        "data": {"type": "string", "contentMediaType": "application/cloudevents+json"},
        "retry": {"type": "integer"},
    },
}

Integrator = Annotated[Principal, Depends(require_right(READ_FEED))]
Svc = Annotated[Services, Depends(services)]


def feed_of(request: Request, svc: Svc) -> Feed:
    """The app's one :class:`Feed` (it caches where cases are), made on first use."""
    feed = getattr(request.app.state, "feed", None)
    if feed is None or feed.app is not svc.engine:
        feed = request.app.state.feed = Feed(svc.engine)
    return feed


FeedDep = Annotated[Feed, Depends(feed_of)]


class SchemaJSONResponse(JSONResponse):
    media_type = "application/schema+json"


def base_url(request: Request, svc: Services) -> str:
    """The base of the absolute URLs this answer hands out: ``FENGQIAO_PUBLIC_URL`` if set,
    else the request's own base URL (``Settings.base_url``)."""
    return svc.engine.settings.base_url(str(request.base_url))


def scoped_filter(
    principal: Principal, svc: Services, types: str | None, region: str | None
) -> FeedFilter:
    """The caller's filter, never wider than their own region's subtree."""
    if region:
        check_region_scope(principal, region, svc)
    return FeedFilter.of(types, region or principal.region)


@router.get(
    "/v1/events",
    summary="Read the event feed after a position (CloudEvents batch)",
    response_class=Response,
    responses={
        200: {
            "description": "CloudEvents 1.0 in position order; the next `after` is in Fengqiao-Next-After",
            "content": {
                BATCH_CONTENT_TYPE: {"schema": {"type": "array", "items": {"type": "object"}}}
            },
            "headers": {
                NEXT_AFTER_HEADER: {"schema": {"type": "integer"}, "description": "the next after"},
                HEAD_HEADER: {"schema": {"type": "integer"}, "description": "the newest position"},
            },
        },
        **problem_responses(401, 403, 404, 422),
    },
)
def read_events(
    request: Request,
    principal: Integrator,
    svc: Svc,
    feed: FeedDep,
    after: Annotated[
        int,
        Query(
            ge=0, le=MAX_POSITION, description="the last position you have seen; 0 = from the start"
        ),
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    types: Annotated[str | None, Query(description="comma-separated CloudEvents types")] = None,
    region: Annotated[
        str | None, Query(description="a region code: events of cases in its subtree")
    ] = None,
) -> Response:
    wanted = scoped_filter(principal, svc, types, region)
    page = feed.page(after, limit, wanted, role=principal.role, base_url=base_url(request, svc))
    query = {
        "after": page.next_after,
        "limit": limit,
        **({"types": types} if types else {}),
        **({"region": region} if region else {}),
    }
    return Response(
        content=encode_json(page.events),  # the whole page at once (orjson)
        media_type=BATCH_CONTENT_TYPE,
        headers={
            NEXT_AFTER_HEADER: str(page.next_after),
            HEAD_HEADER: str(page.head),
            "Link": f'<{request.url.path}?{urlencode(query)}>; rel="next"',
        },
    )


def sse_message(event: dict[str, Any]) -> str:
    return f"id: {event['position']}\ndata: {encode_json(event).decode()}\n\n"


def resume_position(last_event_id: str | None, after: int) -> int:
    if not last_event_id:
        return after
    try:
        position = int(last_event_id)
    except ValueError:
        raise ValidationFailed(
            "Last-Event-ID must be a position (an integer)", field="Last-Event-ID"
        ) from None
    if not 0 <= position <= MAX_POSITION:
        raise ValidationFailed(
            f"Last-Event-ID must be a position from 0 to {MAX_POSITION}", field="Last-Event-ID"
        )
    return position


@router.get(
    "/v1/events/stream",
    summary="Follow the event feed as Server-Sent Events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One CloudEvent per message, id = position",
            "content": {"text/event-stream": {"schema": SSE_EVENT}},
        },
        **problem_responses(401, 403, 404, 422),
    },
)
async def stream_events(
    request: Request,
    principal: Integrator,
    svc: Svc,
    feed: FeedDep,
    after: Annotated[int, Query(ge=0, le=MAX_POSITION)] = 0,
    types: str | None = None,
    region: str | None = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    wanted = scoped_filter(principal, svc, types, region)
    start = resume_position(last_event_id, after)
    feed.topics(wanted)  # unknown types answer 422 before the stream starts
    heartbeat = svc.settings.sse_heartbeat
    base = base_url(request, svc)

    async def messages() -> AsyncIterator[str]:
        position, last_beat = start, time.monotonic()
        yield "retry: 3000\n: connected\n\n"
        while not await request.is_disconnected():
            page = await run_in_threadpool(
                feed.page, position, SSE_PAGE, wanted, role=principal.role, base_url=base
            )
            for event in page.events:
                yield sse_message(event)
            position = page.next_after
            if page.events:
                continue
            if time.monotonic() - last_beat >= heartbeat:
                last_beat = time.monotonic()
                yield f": heartbeat {position}\n\n"
            await asyncio.sleep(SSE_POLL_SECONDS)

    return StreamingResponse(
        messages(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/v1/schemas",
    summary="The public event types and where their schemas are",
    response_model=SchemaCatalogue,
)
def list_schemas(request: Request, svc: Svc) -> JSONResponse:
    return JSONResponse({"types": event_schemas.catalogue(base_url(request, svc))})


@router.get(
    "/v1/schemas/{event_type}",
    summary="The JSON Schema of one event type's data",
    response_class=SchemaJSONResponse,
    responses={**served_as("application/schema+json", "object"), **problem_responses(404)},
)
def get_schema(event_type: str, request: Request, svc: Svc) -> JSONResponse:
    return SchemaJSONResponse(event_schemas.json_schema(event_type, base_url(request, svc)))
