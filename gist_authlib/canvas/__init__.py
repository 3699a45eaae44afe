"""Gist apps: canvases shown inside Gist's inbox and messenger, and the signed requests that ask for them.

Framework-free: typed requests (:class:`InitializeRequest`, :class:`SubmitRequest`), typed components and
the :class:`Canvas` that carries them, request signatures, and :func:`handle_canvas_request`, which
answers one request. The routes live in the framework adapters: ``canvas_routes`` (Starlette and FastAPI, in
``gist_authlib.starlette``), ``canvas_blueprint`` (``gist_authlib.flask``) and ``canvas_urls``
(``gist_authlib.django``)::

    from gist_authlib.canvas import Button, Canvas, Text

    def on_initialize(request):
        return Canvas([Text("Hello from my app"), Button("refresh", "Refresh")])

Nothing here imports a web framework.
"""

from __future__ import annotations

from ._components import (
    Action,
    Button,
    Canvas,
    Component,
    Divider,
    Input,
    List,
    ListItem,
    Raw,
    Spacer,
    SubmitAction,
    Text,
    UrlAction,
)
from ._endpoint import (
    CanvasHandler,
    CanvasReply,
    handle_canvas_request,
    handle_canvas_request_async,
)
from ._errors import (
    CanvasError,
    CanvasRequestError,
    CanvasSignatureError,
    InvalidCanvasError,
)
from ._requests import CanvasRequest, Conversation, InitializeRequest, SubmitRequest
from ._signature import canvas_signature, verify_canvas_signature

__all__ = [
    "Action",
    "Button",
    "Canvas",
    "CanvasError",
    "CanvasHandler",
    "CanvasReply",
    "CanvasRequest",
    "CanvasRequestError",
    "CanvasSignatureError",
    "Component",
    "Conversation",
    "Divider",
    "InitializeRequest",
    "Input",
    "InvalidCanvasError",
    "List",
    "ListItem",
    "Raw",
    "Spacer",
    "SubmitAction",
    "SubmitRequest",
    "Text",
    "UrlAction",
    "canvas_signature",
    "handle_canvas_request",
    "handle_canvas_request_async",
    "verify_canvas_signature",
]
