"""ASGI middleware: request id and metrics, body size limit, content type.

Pure ASGI (no buffering of bodies): the size limit counts bytes as they arrive.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.http import problems
from api.http.metrics import Metrics
from api.http.open311_format import open311_error
from engine import deadlines

log = structlog.get_logger("fengqiao.http")

REQUEST_ID = "x-request-id"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def _refusal(scope: Scope, kind: problems.ProblemType, detail: str, **extra: object) -> ASGIApp:
    """The middleware's refusal: problem+json, or the spec's error on an Open311 route."""
    path = scope["path"]
    if path.startswith("/open311/"):
        headers = {"Retry-After": str(extra["retry_after"])} if "retry_after" in extra else None
        return open311_error(path, kind.status, detail, headers)
    headers = {"Retry-After": str(extra.pop("retry_after"))} if "retry_after" in extra else None
    return problems.problem(kind, detail, instance=path, headers=headers, **extra)


def _protective(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``nosniff`` on every answer, and ``no-store`` on every answer that does not say how
    it may be cached (only the dashboard's and the docs' static files do): any other
    answer may carry personal data, which no browser or proxy cache should keep."""
    names = {name.lower() for name, _ in headers}
    extra = [] if b"x-content-type-options" in names else [(b"x-content-type-options", b"nosniff")]
    return extra if b"cache-control" in names else [*extra, (b"cache-control", b"no-store")]


class RequestContext:
    """Binds a request id into the log context, sets ``X-Request-Id`` (and the protective
    ``X-Content-Type-Options`` / ``Cache-Control``), records metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, REQUEST_ID.encode())
        request_id = (
            given if given and len(given) <= 128 and given.isprintable() else uuid.uuid4().hex
        )
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                    *_protective(message["headers"]),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(scope["method"], template, status, elapsed)
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                route=template,
                status=status,
                ms=round(elapsed * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()


class BodyLimit:
    """413 for a body over ``max_bytes``; 415 for a body that is not JSON. The paths of
    ``files`` take a file of any type (judged by its content there) up to ``file_bytes``."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        files: tuple[str, ...] = (),
        file_bytes: int = 0,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.files, self.file_bytes = files, file_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        instance = scope["path"]
        if instance in self.files:
            await _Limited(self.app, self.file_bytes, any_type=True)(scope, receive, send)
            return
        await _Limited(self.app, self.max_bytes)(scope, receive, send)


class _Limited:
    """One request's body checked against a limit (and, unless ``any_type``, for JSON)."""

    def __init__(self, app: ASGIApp, max_bytes: int, any_type: bool = False) -> None:
        self.app, self.max_bytes, self.any_type = app, max_bytes, any_type

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        instance = scope["path"]
        length = _header(scope, b"content-length")
        if length is not None:
            if not length.isdigit():
                await _refusal(
                    scope,
                    problems.VALIDATION,
                    "Content-Length is not a number",
                    code="validation",
                    field="Content-Length",
                )(scope, receive, send)
                return
            if int(length) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
        has_body = (length is not None and int(length) > 0) or _header(
            scope, b"transfer-encoding"
        ) is not None
        content_type = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        form_ok = content_type == "application/x-www-form-urlencoded" and instance.startswith(
            ("/open311/", "/ui/")
        )
        if (
            has_body
            and not self.any_type
            and not (
                content_type == "application/json" or content_type.endswith("+json") or form_ok
            )
        ):
            await _refusal(
                scope,
                problems.UNSUPPORTED_MEDIA_TYPE,
                f"the body must be application/json, not {content_type or 'untyped'}",
                code="unsupported_media_type",
            )(scope, receive, send)
            return
        chunks: list[bytes] = []
        received = 0
        while True:  # read the whole (bounded) body first, then replay it
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _refusal(
            scope,
            problems.PAYLOAD_TOO_LARGE,
            f"the body is larger than {self.max_bytes} bytes",
            code="payload_too_large",
            limit=self.max_bytes,
        )(scope, receive, send)


class Deadline:
    """503 problem when no response has started within ``seconds`` (a database that stopped
    answering): the caller gets an answer and may retry with its Idempotency-Key. The
    deadline also goes with the work (:mod:`engine.deadlines`): a read stops at its next
    check once it has passed; stuck work finishes or fails on its own, its late answer dropped."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.seconds:
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        woken = loop.create_future()  # the response started, the work ended or the time is up
        answered = late = False

        def wake(_: object = None) -> None:
            if not woken.done():
                woken.set_result(None)

        async def guarded(message: Message) -> None:
            nonlocal answered
            if late:
                return
            if message["type"] == "http.response.start" and not answered:
                answered = True
                deadline.lift()  # answered in time: a stream may run on
                wake()
            await send(message)

        with deadlines.within(
            self.seconds
        ) as deadline:  # the task (and the threads it uses) carry it
            work = asyncio.ensure_future(self.app(scope, receive, guarded))
        # one future, one callback and one timer (asyncio.wait made a set, a waiter, a callback
        # on each awaitable and a timer, then took them apart: ~5% of a GET, issue 20)
        work.add_done_callback(wake)
        timer = loop.call_later(self.seconds, wake)
        try:
            await woken
        finally:
            timer.cancel()
        if not work.done() and not answered:
            late = True
            work.add_done_callback(
                lambda task: task.cancelled() or task.exception()
            )  # consumed, not raised
            log.warning("deadline passed", path=scope["path"], seconds=self.seconds)
            svc = getattr(getattr(scope.get("app"), "state", None), "services", None)
            if svc is not None:
                svc.database_error_at = time.monotonic()  # /readyz turns false for a while
            await _refusal(
                scope,
                problems.NOT_READY,
                f"no answer within {self.seconds:g} s (the database may "
                "have stopped answering); retry with the same Idempotency-Key",
                retry_after=1,
                code="deadline",
            )(scope, receive, send)
            return
        await work
