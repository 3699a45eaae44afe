"""Signing and verifying canvas requests: an HMAC of the raw body under the app's client secret.

The header's name and scheme come from :class:`~gist_authlib.GistProvider` (``X-Gist-Signature`` and
``sha256`` by default; their source is a single third-party document), so they can follow Gist without a
release of this package.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable
from typing import Protocol

from ..errors import MissingCredentialsError
from ..provider import GistProvider
from ._errors import CanvasSignatureError

__all__ = [
    "HasClientSecret",
    "HeadersLike",
    "canvas_signature",
    "client_secret_of",
    "find_header",
    "verify_canvas_signature",
]


class HeadersLike(Protocol):
    """Request headers as any framework gives them (a dict, Starlette's, Werkzeug's or Django's headers)."""

    def get(self, key: str, /) -> str | None:
        """The header's value, or None."""

    def items(self) -> Iterable[tuple[str, str]]:
        """Every header as (name, value)."""


class HasClientSecret(Protocol):
    """A registered Authlib app (what :func:`gist_authlib.register` returns), as far as a canvas reads it."""

    @property
    def client_secret(self) -> str | None:
        """The app's client secret, which signs its canvas requests."""
        ...


_HEX = re.compile(r"[0-9a-fA-F]+")


def _digest(provider: GistProvider) -> str:
    return provider.canvas_signature_scheme or "sha256"


def canvas_signature(body: bytes, secret: str, provider: GistProvider | None = None) -> str:
    """The signature header's value for ``body``, as Gist sends it (``sha256=<hex>`` by default).

    For tests of your own canvas app, and for anything that plays Gist.
    """
    provider = provider or GistProvider()
    mac = hmac.new(secret.encode("utf-8"), body, _digest(provider)).hexdigest()
    scheme = provider.canvas_signature_scheme
    return f"{scheme}={mac}" if scheme else mac


def find_header(headers: HeadersLike, name: str) -> str | None:
    """``headers[name]`` regardless of case (frameworks' header mappings ignore case; a plain dict does not)."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, candidate in headers.items():
        if key.lower() == wanted:
            return candidate
    return None


def verify_canvas_signature(
    body: bytes, headers: HeadersLike, secret: str, provider: GistProvider | None = None
) -> None:
    """Check that ``headers`` sign exactly ``body`` under ``secret``, comparing in constant time.

    Raises:
        CanvasSignatureError: the header is missing (``reason="missing"``), not ``<scheme>=<hex>``
            (``"scheme"``), or does not match (``"mismatch"``).
    """
    provider = provider or GistProvider()
    header = provider.canvas_signature_header
    value = find_header(headers, header)
    if value is None or not value.strip():
        raise CanvasSignatureError("missing", header)
    value = value.strip()
    scheme = provider.canvas_signature_scheme
    if scheme:
        label, separator, value = value.partition("=")
        if not separator or label.strip().lower() != scheme:
            raise CanvasSignatureError("scheme", header)
        value = value.strip()
    expected = hmac.new(secret.encode("utf-8"), body, _digest(provider)).hexdigest()
    if len(value) != len(expected) or not _HEX.fullmatch(value):
        raise CanvasSignatureError("scheme", header)
    if not hmac.compare_digest(expected.encode("ascii"), value.lower().encode("ascii")):
        raise CanvasSignatureError("mismatch", header)


def client_secret_of(gist_or_secret: str | HasClientSecret | None) -> str:
    """The client secret that signs canvas requests: a plain string, or a registered Authlib app's.

    The registered app is read at each call, so a secret that Flask or Django configuration fills in
    after the routes are built (or that is rotated) is found.

    Raises:
        MissingCredentialsError: there is no secret.
    """
    secret = gist_or_secret if isinstance(gist_or_secret, str) else getattr(gist_or_secret, "client_secret", None)
    credentials = getattr(gist_or_secret, "gist_credentials", None)
    if not secret and credentials is not None:
        credentials()  # raises an error naming the registration's own setting
    if not isinstance(secret, str) or not secret:
        raise MissingCredentialsError("GIST_CLIENT_SECRET", "client secret")
    return secret
