"""Small HTML pages and their response headers, one look for the login's and the sandbox's pages (no framework
imports)."""

from __future__ import annotations

import base64
import hashlib
from html import escape

from .errors import GistAuthError

#: The one style sheet of every page: light and dark (``prefers-color-scheme``), readable on a phone, contrast
#: of at least 4.5:1 for text, a visible focus ring. Inline, so a page is one request; allowed by its hash.
STYLE = (
    ":root{color-scheme:light dark;--bg:#f4f5f7;--card:#fff;--fg:#1f2024;--muted:#555762;--line:#d5d7de;"
    "--accent:#2847c9;--on-accent:#fff;--error:#b3261e}"
    "@media (prefers-color-scheme:dark){:root{--bg:#121316;--card:#1d1f24;--fg:#e9eaee;--muted:#a9acb8;"
    "--line:#3a3d46;--accent:#9db0ff;--on-accent:#101218;--error:#ff9c94}}"
    "*{box-sizing:border-box}"
    "body{margin:0;padding:1rem;background:var(--bg);color:var(--fg);font:1rem/1.5 system-ui,sans-serif}"
    "main{max-width:38rem;margin:1rem auto;padding:1.25rem 1.5rem;background:var(--card);"
    "border:1px solid var(--line);border-radius:.75rem;overflow-wrap:anywhere}"
    "h1{margin:0 0 .75rem;font-size:1.5rem;line-height:1.25}h2{margin:1.25rem 0 .5rem;font-size:1.125rem}"
    "a{color:var(--accent)}code{font:.9em ui-monospace,monospace}small,.muted{color:var(--muted)}"
    ".button{display:inline-block;margin:.25rem .5rem .25rem 0;padding:.5rem 1.1rem;border:2px solid var(--accent);"
    "border-radius:.5rem;background:var(--accent);color:var(--on-accent);font:inherit;font-weight:600;"
    "text-decoration:none;cursor:pointer}.button.secondary{background:none;color:var(--accent)}"
    ":focus-visible{outline:3px solid var(--accent);outline-offset:2px}"
)
_STYLE_ELEMENT = f"<style>{STYLE}</style>"
_STYLE_SOURCE = "'sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode() + "'"
_HEAD = (
    '<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
    # An empty icon: without one, the browser asks the server for /favicon.ico, and the 404 shows in its console.
    '<link rel="icon" href="data:,">'
)


def page_csp(form_action: str = "'none'") -> str:
    """The Content-Security-Policy of a page: no script, nothing loaded but the one ``<style>`` (by its hash) and
    the empty icon, never framed; forms may post to ``form_action`` (CSP source expressions) only."""
    return (
        f"default-src 'none'; style-src {_STYLE_SOURCE}; img-src data:; form-action {form_action}; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


#: The headers to send with every page of :func:`page`, :func:`error_page` and :func:`bounce_page` (besides
#: ``CALLBACK_HEADERS`` on a callback's answer): the policy that lets the page's style in and nothing else.
PAGE_HEADERS: dict[str, str] = {"Content-Security-Policy": page_csp(), "X-Content-Type-Options": "nosniff"}

#: Headers for every callback answer: the URL carried a code, so keep it out of caches and referrers.
CALLBACK_HEADERS: dict[str, str] = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Referrer-Policy": "no-referrer",
}


def page(title: str, body: str, *, head: str = _STYLE_ELEMENT) -> str:
    """A small page in the shared look: ``title`` (escaped here) as its title and heading, then ``body``, HTML
    the caller has escaped. ``head`` replaces the inline style (a page served under another policy links a
    style sheet instead); send :data:`PAGE_HEADERS` with it."""
    return (
        f'<!doctype html>\n<html lang="en"><head>{_HEAD}<title>{escape(title)}</title>{head}</head>\n'
        f"<body>\n<main>\n<h1>{escape(title)}</h1>\n{body}\n</main>\n</body></html>\n"
    )


def error_page(error: GistAuthError, *, retry_url: str | None = None, debug: bool = False) -> str:
    """The page of a failed login, for an end user: what happened (``error.message``, never developer text), a
    link to ``retry_url`` unless logging in again cannot help (``error.retry`` is False: the site's own setup
    stopped the login), and the error's RFC 6749 name and ``error_code`` to quote. With ``debug`` (the
    framework's debug mode) the developer's explanation (``error.hint``) is shown too; otherwise it goes to the
    log only."""
    retry = (
        f'<p><a class="button" href="{escape(retry_url)}">Log in again</a></p>\n' if retry_url and error.retry else ""
    )
    name = error.error or "error"
    codes = escape(name if name == error.error_code else f"{name} ({error.error_code})")
    hint = (
        f'<p class="muted"><strong>For the developer:</strong> {escape(error.hint)}</p>\n'
        if debug and error.hint
        else ""
    )
    return page(
        error.title, f"<p>{escape(error.message)}</p>\n{retry}<p><small>Error code: {codes}</small></p>\n{hint}"
    )


def bounce_page(url: str) -> str:
    """A page that opens ``url`` again from this site: the same-site bounce of a callback that arrived from
    Gist cross-site without the app's ``SameSite=Strict`` session cookie (a navigation this site starts
    brings it). No script: a meta refresh, which a Content-Security-Policy does not block, and a link."""
    target = escape(url)
    refresh = f'<meta http-equiv="refresh" content="0;url={target}">{_STYLE_ELEMENT}'
    return page("Logging you in", f'<p><a href="{target}">Continue</a></p>', head=refresh)
