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


def page(title: str, body: str) -> str:
    """A plain HTML page: ``title`` (escaped here) as its title and heading, then ``body``, HTML the caller has
    escaped."""
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">{NO_ICON}'
        f"<title>{escape(title)}</title></head>\n<body>\n<h1>{escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def error_page(error: GistAuthError, *, retry_url: str | None = None) -> str:
    """A plain, escaped HTML page explaining ``error``: safe for any text the error carries."""
    retry = f'<p><a href="{escape(retry_url)}">Try logging in again</a></p>' if retry_url else ""
    return page(
        error.title,
        f"<p>{escape(error.message)}</p>\n<p><small>error: {escape(error.error_code)}</small></p>\n{retry}",
    )
