"""The canvas errors: a bad request from (what claims to be) Gist, or a canvas the app cannot send.

Both branches hang under :class:`~gist_authlib.GistAuthError`. No message carries the client secret, the
signature, or any part of the request body.
"""

from __future__ import annotations

from ..errors import GistAuthError

__all__ = [
    "CanvasError",
    "CanvasRequestError",
    "CanvasSignatureError",
    "InvalidCanvasError",
]


class CanvasError(GistAuthError):
    """Root of the errors of Gist canvas apps (:mod:`gist_authlib.canvas`)."""

    error_code = "canvas_error"
    title = "Gist canvas error"


# --- the request: what reached the initialize or submit URL ------------------------------------------


class CanvasRequestError(CanvasError):
    """A request to a canvas endpoint was refused before the app's handler saw it.

    ``status_code`` is the HTTP status the endpoint answers with; ``error_code`` says why:
    ``"canvas_request_malformed"`` (400, :meth:`malformed`), ``"canvas_request_too_large"`` (413,
    :meth:`too_large`), or :class:`CanvasSignatureError`'s.

    Attributes:
        limit: for a body over the size limit, the limit in bytes; else ``None``.
    """

    error_code = "canvas_request_error"
    status_code = 400
    title = "The canvas request was refused"
    limit: int | None = None

    @classmethod
    def malformed(cls, message: str) -> CanvasRequestError:
        """The (correctly signed) body is not a JSON object of the shape Gist sends."""
        return cls(message, error_code="canvas_request_malformed")

    @classmethod
    def too_large(cls, limit: int) -> CanvasRequestError:
        """The body is over the endpoint's size limit; it was neither verified nor parsed."""
        error = cls(
            f"The request body is over the canvas endpoint's limit of {limit} bytes.",
            error_code="canvas_request_too_large",
            status_code=413,
        )
        error.limit = limit
        return error


class CanvasSignatureError(CanvasRequestError):
    """The request is unsigned, or its signature does not match its body under the app's client secret.

    Attributes:
        reason: ``"missing"``, ``"scheme"`` (the header is not ``<scheme>=<hex>``) or ``"mismatch"``.
    """

    error_code = "canvas_signature_invalid"
    status_code = 401

    def __init__(self, reason: str, header: str) -> None:
        texts = {
            "missing": f"The request carries no {header} header, so it cannot be shown to come from Gist.",
            "scheme": f"The {header} header is not in the expected form, so the request was refused.",
            "mismatch": (
                f"The {header} header does not match the request body under the app's client secret: the body "
                "was altered, or it was signed with another secret."
            ),
        }
        super().__init__(texts.get(reason, texts["mismatch"]))
        self.reason = reason


# --- the canvas: what the app answers ----------------------------------------------------------------


class InvalidCanvasError(CanvasError, ValueError):
    """The app built a canvas Gist would not accept; it is refused before anything is sent.

    A canvas endpoint whose handler returns one answers Gist with a short, generic error canvas instead
    (HTTP 200, so that Gist shows it in place of the app), and logs this error for the developer.
    ``error_code`` says what is wrong: ``"canvas_invalid"``, ``"canvas_component_id_missing"``
    (:meth:`missing_id`), ``"canvas_component_id_duplicate"`` (:meth:`duplicate_id`) or
    ``"canvas_too_large"`` (:meth:`too_large`).

    Attributes:
        component_type: for a missing id, the component's type (``"button"``, ``"item"``, ...).
        component_id: for a duplicate id, the id used twice.
        part: for a canvas over the size limit, ``"content"`` or ``"stored_data"``.
        size: for a canvas over the size limit, that part's size as JSON, in bytes.
        limit: for a canvas over the size limit, the limit, in bytes.
    """

    error_code = "canvas_invalid"
    # The endpoints answer with an error canvas, never a 500; see the class docstring.
    status_code = 200
    title = "The app's canvas is invalid"
    component_type: str | None = None
    component_id: str | None = None
    part: str | None = None
    size: int | None = None
    limit: int | None = None

    @classmethod
    def missing_id(cls, component_type: str, hint: str = "") -> InvalidCanvasError:
        """An interactive component (button, list item, input, ...) has no ``id``: Gist could not say which
        was used."""
        where = f" ({hint})" if hint else ""
        error = cls(
            f"A component of type {component_type!r}{where} has no id. Interactive components need a non-empty "
            "string id: Gist sends it back as component_id when the component is used.",
            error_code="canvas_component_id_missing",
        )
        error.component_type = component_type
        return error

    @classmethod
    def duplicate_id(cls, component_id: str) -> InvalidCanvasError:
        """Two components of one canvas share an ``id``, so a submit could not tell them apart."""
        shown = component_id if len(component_id) <= 80 else component_id[:79] + "…"
        error = cls(
            f"The component id {shown!r} is used more than once in one canvas; give each component its own id.",
            error_code="canvas_component_id_duplicate",
        )
        error.component_id = component_id
        return error

    @classmethod
    def too_large(cls, part: str, size: int, limit: int) -> InvalidCanvasError:
        """The canvas's content or its ``stored_data`` is over the size Gist accepts."""
        advice = (
            "keep a key in stored_data and the rest in your own storage"
            if part == "stored_data"
            else "show fewer components, or page through them"
        )
        error = cls(
            f"The canvas's {part} is {size} bytes as JSON, over the limit of {limit} bytes: {advice}.",
            error_code="canvas_too_large",
        )
        error.part, error.size, error.limit = part, size, limit
        return error
