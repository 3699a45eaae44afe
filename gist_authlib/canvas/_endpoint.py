"""One canvas request, answered without a web framework: size, signature, JSON, handler, canvas.

The framework adapters read the body (at most :func:`read_limit` bytes), call
:func:`handle_canvas_request` or :func:`handle_canvas_request_async`, and send back the
:class:`CanvasReply`. The checks are written once, as a flow that yields the handler's call
(:class:`~gist_authlib._effects.UserCode`) to the package's drivers and receives its canvas (or exception)
back, so the sync and async forms differ only in the driver.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, NamedTuple

from .._effects import Steps, UserCode, drive, drive_async
from .._types import JSON
from ..errors import ConfigurationError
from ..provider import GistProvider
from ._components import Canvas, Text
from ._errors import (
    CanvasRequestError,
    InvalidCanvasError,
)
from ._requests import CanvasKind, InitializeRequest, SubmitRequest
from ._signature import HasClientSecret, HeadersLike, client_secret_of, find_header, verify_canvas_signature

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "ERROR_TEXT",
    "REPLY_HEADERS",
    "CanvasHandler",
    "CanvasReply",
    "handle_canvas_request",
    "handle_canvas_request_async",
    "read_limit",
    "read_upto",
]

log = logging.getLogger("gist_authlib.canvas")

#: The largest request body a canvas endpoint reads. Gist's own parts of it (the current canvas and
#: stored_data) are limited to 64 KB each; the rest (admin, contact, conversation) is small.
DEFAULT_MAX_BODY_BYTES: Final = 1024 * 1024
#: What Gist shows in place of the app when its handler fails.
ERROR_TEXT: Final = "This app could not answer just now. Try again in a moment."
#: Headers of every reply: JSON, never cached.
REPLY_HEADERS: Final[Mapping[str, str]] = {"Content-Type": "application/json", "Cache-Control": "no-store"}

#: A handler takes the typed request and returns a :class:`Canvas`, directly or as an awaitable: an initialize
#: handler takes an :class:`InitializeRequest`, a submit handler a :class:`SubmitRequest`.
CanvasHandler = (
    Callable[[InitializeRequest], Canvas | Awaitable[Canvas]] | Callable[[SubmitRequest], Canvas | Awaitable[Canvas]]
)

_MODELS: Final[dict[str, type[InitializeRequest]]] = {"initialize": InitializeRequest, "submit": SubmitRequest}


class CanvasReply(NamedTuple):
    """The answer to one canvas request: an HTTP status and a JSON body (send it with :data:`REPLY_HEADERS`)."""

    status: int
    body: bytes

    def json(self) -> JSON:
        """The body, parsed."""
        parsed: JSON = json.loads(self.body)
        return parsed


def read_limit(headers: HeadersLike, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> int:
    """How many body bytes an adapter should read: one past the limit, or none when the declared
    ``Content-Length`` is already over it (the reply is then 413 without reading anything)."""
    declared = find_header(headers, "Content-Length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_body_bytes:
        return 0
    return max_body_bytes + 1


def read_upto(read: Callable[[int], bytes], limit: int) -> bytes:
    """Read at most ``limit`` bytes from a WSGI-style stream's ``read`` (which may return fewer per call)."""
    chunks = bytearray()
    while len(chunks) < limit:
        chunk = read(limit - len(chunks))
        if not chunk:
            break
        chunks += chunk
    return bytes(chunks)


def _error_reply(error: CanvasRequestError | ConfigurationError) -> CanvasReply:
    # str(): a configuration error's own text is the developer's fix (its message only says the site failed).
    body = json.dumps({"error": error.error_code, "message": str(error)}).encode("utf-8")
    return CanvasReply(error.status_code, body)


def _error_canvas(request: InitializeRequest) -> CanvasReply:
    # Give the stored data back, so that the next submit still carries the state the app had.
    stored = request.stored_data if isinstance(request, SubmitRequest) and request.stored_data else None
    try:
        return CanvasReply(200, Canvas([Text(ERROR_TEXT, style="error")], stored_data=stored).to_json())
    except InvalidCanvasError:  # Gist sent more stored data than a canvas may carry: answer without it
        return CanvasReply(200, Canvas([Text(ERROR_TEXT, style="error")]).to_json())


def _log_failure(kind: str, exc: BaseException, secrets: tuple[str, ...]) -> None:
    text = "".join(traceback.format_exception(exc)).rstrip()
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    name = type(exc).__name__
    log.error("The canvas %s handler failed (%s); Gist was answered with the error canvas.\n%s", kind, name, text)


def _steps(
    body: bytes,
    headers: HeadersLike,
    kind: CanvasKind,
    gist_or_secret: str | HasClientSecret | None,
    provider: GistProvider | None,
    max_body_bytes: int,
    handler: CanvasHandler,
) -> Steps[CanvasReply]:
    """Check the request, have the driver call ``handler`` with it, and turn what comes back into the reply."""
    model = _MODELS.get(kind)
    if model is None:
        raise ValueError(f"kind must be 'initialize' or 'submit', not {kind!r}.")
    if read_limit(headers, max_body_bytes) == 0 or len(body) > max_body_bytes:
        log.warning("Gist canvas %s request refused: %s", kind, "canvas_request_too_large")
        return _error_reply(CanvasRequestError.too_large(max_body_bytes))
    registration = getattr(gist_or_secret, "gist_registration", None)
    provider = provider or getattr(registration, "provider", None) or GistProvider()
    try:
        secret = client_secret_of(gist_or_secret)
    except ConfigurationError as error:
        log.error("Gist canvas %s request cannot be checked: %s", kind, error)
        return _error_reply(error)
    try:
        verify_canvas_signature(body, headers, secret, provider)
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise CanvasRequestError.malformed("The request body is not JSON.") from None
        request = model.from_api(data)
    except CanvasRequestError as error:
        log.warning("Gist canvas %s request refused: %s", kind, error.error_code)
        return _error_reply(error)
    try:
        result = yield UserCode(handler, (request,))
        if not isinstance(result, Canvas):
            raise TypeError(
                f"The canvas {kind} handler must return a gist_authlib.canvas.Canvas, not {type(result).__name__}."
            )
        reply = CanvasReply(200, result.to_json())
    except Exception as exc:
        signature = (find_header(headers, provider.canvas_signature_header) or "").strip()
        _log_failure(kind, exc, (secret, signature, signature.rpartition("=")[2]))
        return _error_canvas(request)
    return reply


def handle_canvas_request(
    body: bytes,
    headers: HeadersLike,
    kind: CanvasKind,
    handler: CanvasHandler,
    *,
    secret: str | HasClientSecret | None,
    provider: GistProvider | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> CanvasReply:
    """Answer one canvas request in a plain (WSGI) thread.

    In order: a body over ``max_body_bytes`` answers 413; an unsigned or wrongly signed one 401 (a missing
    secret 503); a body that is not a JSON object of Gist's shape 400. Only then is ``handler`` called
    with the typed request (:class:`InitializeRequest` or :class:`SubmitRequest`); its :class:`Canvas` is
    checked and answered with 200. When the handler raises, or returns something that is not a valid
    canvas, the answer is still 200, with a short generic error canvas, and the failure is logged (the
    client secret and the signature redacted) on the ``gist_authlib.canvas`` logger: Gist then shows the
    error text in place of the app, never a traceback.

    Args:
        body: the raw request body, exactly as received (the signature covers these bytes).
        headers: the request headers (any mapping; names are matched regardless of case).
        kind: ``"initialize"`` or ``"submit"``.
        handler: takes the typed request and returns a :class:`Canvas`; an ``async`` handler is run to
            completion with :func:`asyncio.run` (use :func:`handle_canvas_request_async` in an event loop).
        secret: the app's client secret, or the app returned by :func:`gist_authlib.register` (its
            ``client_secret`` is read at each request, its registration's provider used by default).
        provider: where the signature header's name and scheme come from.
        max_body_bytes: the largest body accepted.
    """
    return drive(_steps(body, headers, kind, secret, provider, max_body_bytes, handler))


async def handle_canvas_request_async(
    body: bytes,
    headers: HeadersLike,
    kind: CanvasKind,
    handler: CanvasHandler,
    *,
    secret: str | HasClientSecret | None,
    provider: GistProvider | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> CanvasReply:
    """:func:`handle_canvas_request` for an event loop: an ``async`` handler is awaited, a plain one runs
    in a worker thread so that a blocking handler (a sync Gist API call) does not stall the loop."""
    return await drive_async(_steps(body, headers, kind, secret, provider, max_body_bytes, handler))
