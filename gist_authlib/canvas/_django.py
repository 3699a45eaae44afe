"""Django URL patterns for a Gist canvas app's initialize and submit URLs."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import URLPattern, path
from django.views.decorators.csrf import csrf_exempt

from ..provider import GistProvider
from ._endpoint import (
    DEFAULT_MAX_BODY_BYTES,
    REPLY_HEADERS,
    CanvasHandler,
    handle_canvas_request,
    read_limit,
    read_upto,
)
from ._requests import CanvasKind

__all__ = ["canvas_urls"]


def canvas_urls(
    gist_or_secret: Any,
    *,
    on_initialize: CanvasHandler,
    on_submit: CanvasHandler,
    initialize_path: str = "gist/canvas/initialize",
    submit_path: str = "gist/canvas/submit",
    provider: GistProvider | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> list[URLPattern]:
    """Return the URL patterns of the ``POST`` views Gist calls, to ``include()``.

    The handlers and checks are those of :func:`gist_authlib.canvas._starlette.canvas_routes`. Both views
    are exempt from ``CsrfViewMiddleware``: Gist proves where a request comes from by signing its body,
    and a request that is not signed with the app's client secret is refused (401) before any handler
    runs. The URL names are ``<name>_canvas_initialize`` and ``<name>_canvas_submit``.

    Args:
        gist_or_secret: the app returned by :func:`gist_authlib.register` on a Django ``OAuth``, or the
            client secret itself.
        on_initialize: answers the initialize request.
        on_submit: answers each submit request.
        initialize_path: the initialize view's path (Django style, no leading slash).
        submit_path: the submit view's path.
        provider: the signature header's name and scheme (by default the registration's provider).
        max_body_bytes: the largest body accepted.
    """

    def endpoint(kind: CanvasKind, handler: CanvasHandler) -> Any:
        def answer(request: HttpRequest) -> HttpResponse:
            if request.method != "POST":
                return HttpResponseNotAllowed(["POST"])
            body = read_upto(request.read, read_limit(request.headers, max_body_bytes))
            reply = handle_canvas_request(
                body,
                request.headers,
                kind,
                handler,
                secret=gist_or_secret,
                provider=provider,
                max_body_bytes=max_body_bytes,
            )
            return HttpResponse(reply.body, status=reply.status, headers=dict(REPLY_HEADERS))

        return csrf_exempt(answer)

    prefix = getattr(gist_or_secret, "name", "gist") if not isinstance(gist_or_secret, str) else "gist"
    return [
        path(initialize_path, endpoint("initialize", on_initialize), name=f"{prefix}_canvas_initialize"),
        path(submit_path, endpoint("submit", on_submit), name=f"{prefix}_canvas_submit"),
    ]
