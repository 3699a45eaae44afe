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


def error_page(error: GistAuthError, *, retry_url: str | None = None, debug: bool = False) -> str:
    """A short, plain, escaped HTML page for an end user: what happened, a link to start again, and the error's
    RFC 6749 name and ``error_code``. With ``debug`` (the framework's debug mode) the developer's explanation
    (``error.hint``) is shown too; otherwise it goes to the log only."""
    retry = f'<p><a href="{escape(retry_url)}">Log in again</a></p>' if retry_url else ""
    codes = escape(f"{error.error or 'error'} ({error.error_code})")
    hint = f"<p><small>For the developer: {escape(error.hint)}</small></p>\n" if debug and error.hint else ""
    return page(error.title, f"<p>{escape(error.message)}</p>\n{retry}<p><small>{codes}</small></p>\n{hint}")


def bounce_page(url: str) -> str:
    """A page that opens ``url`` again from this site: the same-site bounce of a callback that arrived from
    Gist cross-site without the app's ``SameSite=Strict`` session cookie (a navigation this site starts
    brings it). No script: a meta refresh, which a Content-Security-Policy does not block, and a link."""
    target = escape(url)
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">{NO_ICON}'
        f'<meta http-equiv="refresh" content="0;url={target}"><title>Logging you in</title></head>\n'
        f'<body>\n<p><a href="{target}">Continue</a></p>\n</body></html>\n'
    )
