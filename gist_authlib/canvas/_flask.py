"""A Flask blueprint for a Gist canvas app's initialize and submit URLs."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

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

__all__ = ["canvas_blueprint"]


def canvas_blueprint(
    gist_or_secret: Any,
    *,
    on_initialize: CanvasHandler,
    on_submit: CanvasHandler,
    name: str = "gist_canvas",
    initialize_path: str = "/gist/canvas/initialize",
    submit_path: str = "/gist/canvas/submit",
    provider: GistProvider | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Blueprint:
    """Return a blueprint with the ``POST`` views Gist calls (endpoints ``<name>.initialize`` and ``<name>.submit``).

    The handlers and checks are those of :func:`gist_authlib.canvas._starlette.canvas_routes`; an ``async``
    handler is run to completion in the request's thread. Gist signs these requests instead of sending a
    CSRF token: with Flask-WTF's ``CSRFProtect``, exempt the blueprint (``csrf.exempt(blueprint)``).

    Args:
        gist_or_secret: the app returned by :func:`gist_authlib.register` on a Flask ``OAuth`` (its
            client secret, which ``init_app`` may fill in later, is read at each request), or the secret.
        on_initialize: answers the initialize request.
        on_submit: answers each submit request.
        name: the blueprint's name.
        initialize_path: the initialize view's path.
        submit_path: the submit view's path.
        provider: the signature header's name and scheme (by default the registration's provider).
        max_body_bytes: the largest body accepted.
    """
    blueprint = Blueprint(name, __name__)

    def endpoint(kind: CanvasKind, handler: CanvasHandler) -> Any:
        def answer() -> Response:
            body = read_upto(request.stream.read, read_limit(request.headers, max_body_bytes))
            reply = handle_canvas_request(
                body,
                request.headers,
                kind,
                handler,
                secret=gist_or_secret,
                provider=provider,
                max_body_bytes=max_body_bytes,
            )
            return Response(reply.body, status=reply.status, headers=dict(REPLY_HEADERS))

        answer.__name__ = kind
        return answer

    blueprint.add_url_rule(initialize_path, "initialize", endpoint("initialize", on_initialize), methods=["POST"])
    blueprint.add_url_rule(submit_path, "submit", endpoint("submit", on_submit), methods=["POST"])
    return blueprint
