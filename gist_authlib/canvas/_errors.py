"""The canvas errors: a bad request from (what claims to be) Gist, or a canvas the app cannot send.

Both branches hang under :class:`~gist_authlib.GistAuthError`. No message carries the client secret, the
signature, or any part of the request body.
"""

from __future__ import annotations

from ..errors import GistAuthError

__all__ = [
    "CanvasError",
    "CanvasRequestError",
    "CanvasRequestTooLargeError",
    "CanvasSignatureError",
    "CanvasTooLargeError",
    "DuplicateComponentIdError",
    "InvalidCanvasError",
    "MissingComponentIdError",
]


class CanvasError(GistAuthError):
    """Root of the errors of Gist canvas apps (:mod:`gist_authlib.canvas`)."""

    error_code = "canvas_error"
    title = "Gist canvas error"


# --- the request: what reached the initialize or submit URL ------------------------------------------


class CanvasRequestError(CanvasError):
    """A request to a canvas endpoint was refused before the app's handler saw it.

    ``status_code`` is the HTTP status the endpoint answers with.
    """

    error_code = "canvas_request_error"
    status_code = 400

    @classmethod
    def malformed(cls, message: str) -> CanvasRequestError:
        """The (correctly signed) body is not a JSON object of the shape Gist sends (``canvas_request_malformed``)."""
        return cls(message, error_code="canvas_request_malformed")

    title = "The canvas request was refused"


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


class CanvasRequestTooLargeError(CanvasRequestError):
    """The body is over the endpoint's size limit; it was neither verified nor parsed.

    Attributes:
        limit: the limit, in bytes.
    """

    error_code = "canvas_request_too_large"
    status_code = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is over the canvas endpoint's limit of {limit} bytes.")
        self.limit = limit


# --- the canvas: what the app answers ----------------------------------------------------------------


class InvalidCanvasError(CanvasError, ValueError):
    """The app built a canvas Gist would not accept; it is refused before anything is sent.

    A canvas endpoint whose handler returns one answers Gist with a short, generic error canvas instead
    (HTTP 200, so that Gist shows it in place of the app), and logs this error for the developer.
    """

    error_code = "canvas_invalid"
    # The endpoints answer with an error canvas, never a 500; see the class docstring.
    status_code = 200
    title = "The app's canvas is invalid"


class MissingComponentIdError(InvalidCanvasError):
    """An interactive component (button, list item, input, ...) has no ``id``: Gist could not say which was used.

    Attributes:
        component_type: the component's type (``"button"``, ``"item"``, ...).
    """

    error_code = "canvas_component_id_missing"

    def __init__(self, component_type: str, hint: str = "") -> None:
        where = f" ({hint})" if hint else ""
        super().__init__(
            f"A component of type {component_type!r}{where} has no id. Interactive components need a non-empty "
            "string id: Gist sends it back as component_id when the component is used."
        )
        self.component_type = component_type


class DuplicateComponentIdError(InvalidCanvasError):
    """Two components of one canvas share an ``id``, so a submit could not tell them apart.

    Attributes:
        component_id: the id used twice.
    """

    error_code = "canvas_component_id_duplicate"

    def __init__(self, component_id: str) -> None:
        shown = component_id if len(component_id) <= 80 else component_id[:79] + "…"
        super().__init__(
            f"The component id {shown!r} is used more than once in one canvas; give each component its own id."
        )
        self.component_id = component_id


class CanvasTooLargeError(InvalidCanvasError):
    """The canvas's content or its ``stored_data`` is over the size Gist accepts.

    Attributes:
        part: ``"content"`` or ``"stored_data"``.
        size: its size as JSON, in bytes.
        limit: the limit, in bytes.
    """

    error_code = "canvas_too_large"

    def __init__(self, part: str, size: int, limit: int) -> None:
        advice = (
            "keep a key in stored_data and the rest in your own storage"
            if part == "stored_data"
            else "show fewer components, or page through them"
        )
        super().__init__(f"The canvas's {part} is {size} bytes as JSON, over the limit of {limit} bytes: {advice}.")
        self.part = part
        self.size = size
        self.limit = limit
