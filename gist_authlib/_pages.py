"""Small HTML pages and response headers shared by every framework adapter (no framework imports)."""

from __future__ import annotations

from html import escape

from .errors import GistAuthError

#: A page's empty icon: without one, the browser asks the server for /favicon.ico, and the 404 shows in its console.
NO_ICON = '<link rel="icon" href="data:,">'

#: Headers for every callback answer: the URL carried a code, so keep it out of caches and referrers.
CALLBACK_HEADERS: dict[str, str] = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Referrer-Policy": "no-referrer",
}


def error_page(error: GistAuthError, *, retry_url: str | None = None) -> str:
    """A plain, escaped HTML page explaining ``error``: safe for any text the error carries."""
    retry = f'<p><a href="{escape(retry_url)}">Try logging in again</a></p>' if retry_url else ""
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">{NO_ICON}'
        f"<title>{escape(error.title)}</title></head>\n<body>\n"
        f"<h1>{escape(error.title)}</h1>\n<p>{escape(error.message)}</p>\n"
        f"<p><small>error: {escape(error.error_code)}</small></p>\n{retry}\n</body></html>\n"
    )
