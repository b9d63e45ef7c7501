"""A route class whose handler's refusals are answered by the route itself (Open311's errors, the UI's pages)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

from fastapi import Request, Response
from fastapi.routing import APIRoute


class RefusingRoute(APIRoute):
    """Catches ``refused`` from the handler (its dependencies' too) and answers with :meth:`refusal`."""

    refused: ClassVar[tuple[type[Exception], ...]] = ()

    @staticmethod
    def refusal(request: Request, error: Exception) -> Response:
        raise NotImplementedError

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        refused, refusal = self.refused, self.refusal

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except refused as error:
                return refusal(request, error)

        return handle
