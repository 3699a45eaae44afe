"""Starlette and FastAPI routes for a Gist canvas app's initialize and submit URLs."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..provider import GistProvider
from ._endpoint import (
    DEFAULT_MAX_BODY_BYTES,
    REPLY_HEADERS,
    CanvasHandler,
    handle_canvas_request_async,
    read_limit,
)
from ._requests import CanvasKind

__all__ = ["canvas_routes"]


def canvas_routes(
    gist_or_secret: Any,
    *,
    on_initialize: CanvasHandler,
    on_submit: CanvasHandler,
    initialize_path: str = "/gist/canvas/initialize",
    submit_path: str = "/gist/canvas/submit",
    provider: GistProvider | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> list[Route]:
    """Return the ``POST`` routes Gist calls: enter their URLs in the app's settings in Gist's Developer Hub.

    ``on_initialize(request)`` receives an :class:`~gist_authlib.canvas.InitializeRequest` and
    ``on_submit(request)`` a :class:`~gist_authlib.canvas.SubmitRequest`; each returns a
    :class:`~gist_authlib.canvas.Canvas`, and may be ``async`` (a plain one runs in a worker thread). Every
    request is checked first (see :func:`~gist_authlib.canvas.handle_canvas_request`): 413, 401 or 400
    before the handler, and a safe error canvas, never a 500, when the handler fails.

    Args:
        gist_or_secret: the app returned by :func:`gist_authlib.register` (its client secret and
            provider are used), or the client secret itself.
        on_initialize: answers the initialize request.
        on_submit: answers each submit request.
        initialize_path: the initialize route's path.
        submit_path: the submit route's path.
        provider: the signature header's name and scheme (by default the registration's provider).
        max_body_bytes: the largest body accepted.
    """

    def endpoint(kind: CanvasKind, handler: CanvasHandler) -> Any:
        async def answer(request: Request) -> Response:
            limit = read_limit(request.headers, max_body_bytes)
            body = bytearray()
            if limit:
                async for chunk in request.stream():
                    body += chunk
                    if len(body) >= limit:
                        break
            reply = await handle_canvas_request_async(
                bytes(body),
                request.headers,
                kind,
                handler,
                secret=gist_or_secret,
                provider=provider,
                max_body_bytes=max_body_bytes,
            )
            return Response(reply.body, status_code=reply.status, headers=dict(REPLY_HEADERS))

        return answer

    prefix = getattr(gist_or_secret, "name", "gist") if not isinstance(gist_or_secret, str) else "gist"
    initialize = endpoint("initialize", on_initialize)
    return [
        Route(initialize_path, initialize, methods=["POST"], name=f"{prefix}_canvas_initialize"),
        Route(submit_path, endpoint("submit", on_submit), methods=["POST"], name=f"{prefix}_canvas_submit"),
    ]
