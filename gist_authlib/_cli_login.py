"""``gist-authlib login``, ``whoami`` and ``api``: Gist from scripts and command-line tools.

``login`` is the loopback flow of RFC 8252, as a public client: a one-shot HTTP server on a loopback address
receives the callback, and the login is the package's one sequence (:func:`~gist_authlib._login.callback_steps`
over a :class:`~gist_authlib._login.Registration`, with a plain dict as the session), whose requests (the token
exchange and the workspace lookup) this module sends on a one-shot client. The PKCE verifier comes from a random
key kept in memory for one login. The token is then printed as JSON (``--json``) or kept in an encrypted
:class:`~gist_authlib.tokens.SQLiteTokenStore`, where ``whoami`` and ``api`` find it.

Settings are the apps' ``GIST_*`` variables (``GIST_CLIENT_ID``, ``GIST_CLIENT_SECRET``, ``GIST_AUTHORIZE_URL``,
``GIST_ACCESS_TOKEN_URL``, ``GIST_API_BASE_URL``, ``GIST_SCOPES``, ``GIST_TOKEN_DB``, ``GIST_TOKEN_KEY``), and
options. Human messages go to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import hmac
import ipaddress
import json
import os
import secrets
import shutil
import socket
import stat
import sys
import tempfile
import threading
import webbrowser
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx2

from ._effects import drive
from ._flow import check_transport, is_loopback
from ._limits import send
from ._login import LoginResult, Registration, authorization, callback_steps, remember
from ._pages import CALLBACK_HEADERS, PAGE_HEADERS, error_page, page
from ._version import USER_AGENT
from ._web import Request
from .api._endpoint import Call, Pages, QueryValue, SyncSide, paged_endpoint
from .api._models import Page
from .api._resources import DEFAULT_PER_PAGE, walk_pages
from .client import GistClient
from .errors import (
    ConfigurationError,
    GistAPIError,
    GistAuthError,
    LoginError,
    TokenStoreError,
    UnknownStateError,
)
from .provider import GistProvider

if TYPE_CHECKING:
    from ._types import JSON
    from .tokens import BaseTokenStore

__all__ = [
    "DEFAULT_REDIRECT_URI",
    "DEFAULT_TIMEOUT",
    "add_commands",
    "default_token_db",
    "run_command",
]

#: The redirect URI ``gist-authlib login`` listens on by default: register it for your app in Gist's Developer
#: Hub. A fixed port, because Gist (like most providers) matches a redirect URI exactly, port included.
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8787/callback"
#: Seconds ``login`` waits for the browser to come back before it gives up.
DEFAULT_TIMEOUT = 300.0
#: The variables besides the apps' settings: an access token or workspace API key for ``whoami`` and ``api``.
TOKEN_VARIABLE = "GIST_TOKEN"
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_KEY_HINT = 'python -c "from gist_authlib.tokens import TokenCipher; print(TokenCipher.generate_key())"'


# --- settings -------------------------------------------------------------------------------------------------


def _setting(given: str | None, variable: str, environ: Mapping[str, str]) -> str | None:
    """An option's value, else the environment variable's (an empty value counts as unset)."""
    return given or environ.get(variable) or None


def _provider(args: argparse.Namespace, environ: Mapping[str, str]) -> GistProvider:
    """Gist's endpoints, overridden by the options and ``GIST_*`` variables the apps read too."""
    gist = GistProvider()
    try:
        provider = GistProvider(
            authorize_url=_setting(getattr(args, "authorize_url", None), "GIST_AUTHORIZE_URL", environ)
            or gist.authorize_url,
            access_token_url=_setting(getattr(args, "access_token_url", None), "GIST_ACCESS_TOKEN_URL", environ)
            or gist.access_token_url,
            api_base_url=_setting(args.api_base_url, "GIST_API_BASE_URL", environ) or gist.api_base_url,
        )
    except ValueError as exc:
        raise ConfigurationError(f"A Gist endpoint setting is not usable: {exc}") from None
    extra = getattr(args, "new_scope", None)
    return provider.with_scopes(extra) if extra else provider


def default_token_db(environ: Mapping[str, str] = os.environ) -> Path:
    """Where the command line keeps tokens when neither ``--token-db`` nor ``GIST_TOKEN_DB`` says:
    ``$XDG_CONFIG_HOME/gist-authlib/tokens.sqlite3`` (``~/.config/...`` by default)."""
    config = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "gist-authlib" / "tokens.sqlite3"


def _open_store(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[BaseTokenStore, str]:
    """The encrypted token store the options and variables name (a file path or a database URL), and where it is
    (a URL without its password)."""
    from .tokens import SQLiteTokenStore, open_token_store

    key = environ.get("GIST_TOKEN_KEY")
    if not key:
        raise ConfigurationError(
            "The token store is encrypted and GIST_TOKEN_KEY is not set. Make a key with "
            f"{_KEY_HINT}, keep it outside the database and export it as GIST_TOKEN_KEY"
            + (", or pass --json to print the token instead." if hasattr(args, "json") else ".")
        )
    given = _setting(args.token_db, "GIST_TOKEN_DB", environ)
    if not given:
        path = default_token_db(environ)
        _private_directory(path.parent)
        given = str(path)
    store = open_token_store(given, key=key)
    return store, store.path if isinstance(store, SQLiteTokenStore) else getattr(store, "url", "the database")


def _private_directory(path: Path) -> None:
    """The command line's configuration directory, created 0700, or an existing one made so.

    Raises:
        TokenStoreError: it is a symbolic link, not a directory, or another user's.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise TokenStoreError(f"{path} is a symbolic link or not a directory, so no token was kept there.")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise TokenStoreError(f"{path} belongs to another user, so no token was kept there.")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)


# --- login --------------------------------------------------------------------------------------------------


@dataclass
class _Callback:
    """What the one-shot server was asked, and what the login gave: a token or the error that ended it."""

    handle: Callable[[list[tuple[str, str]]], LoginResult]
    path: str
    host: str = ""  # the Host header the browser sends to the redirect URI: its exact address and port
    state: str = field(default="", repr=False)  # the pending login's state; other requests cannot end the login
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    result: LoginResult | None = field(default=None, repr=False)
    error: BaseException | None = None


class _Handler(BaseHTTPRequestHandler):
    """Answers the browser's return to the loopback redirect URI: once, then every request is turned away."""

    server: _LoopbackServer
    timeout = 10  # an idle connection (a browser's preconnect) is dropped rather than kept open

    def do_GET(self) -> None:
        callback = self.server.callback
        parts = urlsplit(self.path)
        if parts.path != callback.path:
            self._answer(404, _page("Not found", "This address only receives Gist's answer to a login."))
            return
        query = parse_qsl(parts.query, keep_blank_values=True)
        states = [value for key, value in query if key == "state"]
        host = self.headers.get("Host", "")
        # Only the browser's return of this login, to this exact address (no rebound DNS name), may end it; any
        # other request is turned away and the login keeps waiting, so that nobody can end it and take the port.
        pending = len(states) == 1 and bool(callback.state) and _same(states[0], callback.state)
        if not _same(host.lower(), callback.host.lower()) or not pending:
            self._answer(400, _page("Not this login", "This address only receives Gist's answer to one login."))
            return
        if not callback.lock.acquire(blocking=False) or callback.done.is_set():
            # One callback per login: a second one (a reload, a replay) changes nothing.
            self._answer(409, _page("Already answered", "This login has already ended. You can close this tab."))
            return
        try:
            callback.result = callback.handle(query)
        except GistAuthError as exc:
            callback.error = exc
            self._answer(exc.status_code, error_page(exc))
        except Exception as exc:  # reported by the command, not by the server thread
            callback.error = exc
            self._answer(500, _page("The login failed", "See the terminal for what went wrong."))
        else:
            body = "You are logged in with Gist. You can close this tab and go back to the terminal."
            self._answer(200, _page("Logged in with Gist", body))
        finally:
            callback.done.set()

    def _answer(self, status: int, html: str) -> None:
        data = html.encode()
        self.send_response(status)
        for name, value in {**CALLBACK_HEADERS, **PAGE_HEADERS}.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def version_string(self) -> str:
        return "gist-authlib"

    def log_message(self, format: str, *args: object) -> None:
        # The request line carries the authorization code: nothing of it is ever logged.
        return


class _LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], callback: _Callback) -> None:
        self.callback = callback
        if ":" in address[0]:  # [::1]
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)


def _same(given: str, expected: str) -> bool:
    """A constant-time comparison that also takes text a browser or a script sent in any encoding."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def _open_privately(url: str, cleanup: contextlib.ExitStack) -> None:
    """Open ``url`` in the user's browser without putting it in any process's arguments.

    Other local users can read every process's arguments (``/proc/<pid>/cmdline``), and the authorization URL
    would let one of them finish this login with their own account first. The browser is given a file only
    this user can read (0600, in a 0700 directory) that redirects to the URL; it is removed after the login.
    """
    folder = Path(tempfile.mkdtemp(prefix="gist-authlib-login-"))
    cleanup.callback(shutil.rmtree, folder, ignore_errors=True)
    target = folder / "login.html"
    shown = escape(url, quote=True)
    fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(
            f'<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url={shown}">'
            f'<title>Log in with Gist</title><a href="{shown}">Log in with Gist</a>'
        )
    webbrowser.open(target.as_uri())


def printable(text: str) -> str:
    """Server-controlled text made safe for a terminal: every control character (ESC, BEL, the C1 range that
    includes CSI U+009B, ...) is shown as an escape instead of being sent to the terminal."""
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii") for ch in text)


def _page(title: str, text: str) -> str:
    return page(title, f"<p>{escape(text)}</p>")


def _loopback(redirect_uri: str) -> tuple[str, int, str]:
    """(host to bind, port, callback path) of a loopback redirect URI; port 0 means any free port."""
    parts = urlsplit(redirect_uri)
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "http" or not is_loopback(host) or port is None or parts.query or parts.fragment:
        raise ConfigurationError(
            f"--redirect-uri must be a loopback address with a port, such as {DEFAULT_REDIRECT_URI} "
            f"(RFC 8252: the login's answer comes back to this machine), not {redirect_uri!r}."
        )
    if host.lower().rstrip(".") == "localhost":
        # RFC 8252 section 8.3: a name can resolve to several addresses (127.0.0.1 and ::1), and another
        # process could listen on the one not bound here; a literal address cannot be taken that way.
        raise ConfigurationError(
            f"--redirect-uri names localhost; use the loopback address itself, such as {DEFAULT_REDIRECT_URI} "
            "(RFC 8252 section 8.3), and register that redirect URI for your app in Gist's Developer Hub."
        )
    address = host.strip("[]")
    written_port = parts.netloc.rpartition(":")[2]
    try:
        canonical = str(ipaddress.ip_address(address)) == address
    except ValueError:
        canonical = False
    if not canonical or port == 80 or written_port != str(port):
        # Browsers send the Host header normalised ([::1], no :80, no leading zeros); the loopback server only
        # answers the exact Host of its redirect URI, so a URI in another form could never finish a login.
        raise ConfigurationError(
            f"--redirect-uri must be written as a browser sends it back, such as {DEFAULT_REDIRECT_URI}: "
            "the shortest form of the address, and a port other than 80 without leading zeros."
        )
    return address, port, parts.path or "/"


def _login(args: argparse.Namespace, environ: Mapping[str, str], err: TextIO, out: TextIO) -> int:
    provider = _provider(args, environ)
    client_id = _setting(args.client_id, "GIST_CLIENT_ID", environ)
    client_secret = environ.get("GIST_CLIENT_SECRET")
    for value, name in ((client_id, "GIST_CLIENT_ID (or --client-id)"), (client_secret, "GIST_CLIENT_SECRET")):
        if not value:
            raise ConfigurationError(
                f"Set {name}: copy it from your app in Gist's Developer Hub (https://app.getgist.com/developer)."
            )
    assert client_id is not None and client_secret is not None
    scopes = provider.validate_scopes(args.scope or environ.get("GIST_SCOPES") or None)
    for url, what in ((provider.authorize_url, "authorize URL"), (provider.access_token_url, "token URL")):
        check_transport(url, what, allow_insecure_http=False)
    if args.timeout <= 0:
        raise ConfigurationError("--timeout must be a positive number of seconds.")
    # Open the store first: a missing key or an unwritable file is better found before the login than after.
    store_and_path = None if args.json else _open_store(args, environ)

    host, port, path = _loopback(args.redirect_uri)
    store, db_path = store_and_path if store_and_path is not None else (None, None)
    reg = Registration(
        name="gist",
        client_id=client_id,
        client_secret=client_secret,
        provider=provider,
        scopes=scopes,
        state_ttl=args.timeout,
        authorize_url=provider.authorize_url,
        token_url=provider.access_token_url,
        api_base_url=provider.api_base_url,
        redirect_uri=args.redirect_uri,
        store=store,
        # A public client (RFC 8252 section 8.5): its client secret is no secret, so the PKCE verifier must not
        # be derivable from it. This login's is derived under a random key kept in this process's memory only.
        pkce_key=secrets.token_urlsafe(32),
    )
    session: dict[str, object] = {}
    redirect_uri = args.redirect_uri

    def handle(query: list[tuple[str, str]]) -> LoginResult:
        request = Request("GET", redirect_uri, query, {}, session)
        cookie = reg.cookie.load(None, reg.secret, secure=False)  # a terminal keeps no cookie: the session has it
        try:
            with httpx2.Client(trust_env=False, follow_redirects=False, headers={"User-Agent": USER_AGENT}) as http:
                steps = callback_steps(reg, request, cookie, subject=args.subject or None)
                return drive(steps, functools.partial(send, http))
        except UnknownStateError as exc:
            if exc.install_hint:  # its advice is for web apps; this login was started here, in the terminal
                raise UnknownStateError() from None
            raise

    callback = _Callback(handle, path)
    try:
        server = _LoopbackServer((host, port), callback)
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot listen on {host}:{port} for the login's answer ({exc.strerror or exc}). Is another login "
            "running? Pass another --redirect-uri (and register it for your app in Gist's Developer Hub)."
        ) from None
    with server:
        if port == 0:
            # A free port was asked for: the redirect URI names the one the system gave.
            parts = urlsplit(redirect_uri)
            named_host = parts.netloc.rsplit(":", 1)[0]  # as written, [::1] with its brackets
            redirect_uri = urlunsplit(parts._replace(netloc=f"{named_host}:{server.server_address[1]}"))
            reg = dataclasses.replace(reg, redirect_uri=redirect_uri)
        started = authorization(reg, redirect_uri, {})
        remember(reg, session, started)
        callback.state, callback.host = started["state"], urlsplit(redirect_uri).netloc
        # A short poll: shutdown() below waits for the loop to notice, and the standard 0.5 s would be added
        # to every login.
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="gist-authlib-login", daemon=True
        )
        thread.start()
        try:
            stack = contextlib.ExitStack()
            print(f"Waiting up to {args.timeout:g} s for Gist's answer on {redirect_uri}.", file=err)
            if args.no_browser:
                print("Open this URL in a browser to log in with Gist:", file=err)
            else:
                print("Opening your browser to log in with Gist. If it does not open, go to:", file=err)
            print(started["url"], file=err, flush=True)  # alone on its line, for scripts to read
            if not args.no_browser:
                _open_privately(started["url"], stack)
            if not callback.done.wait(args.timeout):
                raise LoginError.timed_out(args.timeout)
        finally:
            server.shutdown()
            thread.join()
            stack.close()
    if callback.error is not None:
        raise callback.error
    result = callback.result
    assert result is not None
    if store is None:
        print(json.dumps(result.token, indent=2), file=out)
        return 0
    store.close()
    if result.workspace_id:
        where = f"workspace {printable(str(result.workspace_name))} ({printable(result.workspace_id)})"
    else:
        where = "Gist (it did not name the workspace)"
    print(f"Logged in to {where}. The token is stored encrypted in {db_path} under {result.subject!r}.", file=err)
    return 0


# --- whoami and api -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _client(args: argparse.Namespace, environ: Mapping[str, str]) -> Iterator[GistClient]:
    """A client for ``--token`` / ``GIST_TOKEN``, else for a token the store keeps."""
    provider = _provider(args, environ)
    check_transport(provider.api_base_url, "API base URL", allow_insecure_http=False)
    token = args.token or environ.get(TOKEN_VARIABLE)
    if token:
        with GistClient(token, base_url=provider.api_base_url) as client:
            yield client
        return
    store, path = _open_store(args, environ)
    with store:
        subject = args.subject or environ.get("GIST_SUBJECT")
        if not subject:
            # The stores have no public listing; every store implements this row operation.
            subjects = store.subjects()
            if not subjects:
                raise TokenStoreError(f"No Gist token is stored in {path}. Run gist-authlib login first.")
            if len(subjects) > 1:
                named = ", ".join(map(repr, subjects[:10]))
                raise TokenStoreError(
                    f"{len(subjects)} Gist tokens are stored in {path} ({named}): pick one with --subject."
                )
            subject = subjects[0]
        # A 401 deletes the token from the store, so the next command says to log in again.
        with GistClient.from_store(store, subject, base_url=provider.api_base_url) as client:
            yield client


def _whoami(args: argparse.Namespace, environ: Mapping[str, str], err: TextIO, out: TextIO) -> int:
    with _client(args, environ) as client:
        info = client.token_info()
    if args.json:
        print(json.dumps(dict(info.raw), indent=2, ensure_ascii=True), file=out)
    else:
        name = printable(info.workspace_name or "an unnamed workspace")
        print(f"{name} (workspace {printable(str(info.workspace_id))})", file=out)
    return 0


def _fields(pairs: list[str], typed: list[str]) -> dict[str, JSON]:
    """``-f key=value`` (a string) and ``-F key=value`` (a JSON value: 60, true, null, [1, 2])."""
    fields: dict[str, JSON] = {}
    for pair, as_json in [(p, False) for p in pairs] + [(p, True) for p in typed]:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"A field is written key=value, not {pair!r}.")
        if as_json:
            try:
                fields[key] = json.loads(value)
            except ValueError:
                raise ConfigurationError(f'-F {key}=... takes a JSON value (60, true, null, "text").') from None
        else:
            fields[key] = value
    return fields


def _query(fields: Mapping[str, JSON]) -> dict[str, QueryValue]:
    """``fields`` as a query: an object (alone or in an array) goes as its ``str()``, as httpx2 sends a value it
    does not know."""

    def one(value: JSON) -> str | int | float | bool | None:
        return str(value) if isinstance(value, dict | list) else value

    return {key: [one(v) for v in value] if isinstance(value, list) else one(value) for key, value in fields.items()}


def _read_input(name: str | None, stdin: TextIO) -> JSON:
    if name is None:
        return None
    try:
        text = stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        body: JSON = json.loads(text)
        return body
    except OSError as exc:
        raise ConfigurationError(f"Cannot read --input {name}: {exc.strerror or exc}.") from None
    except ValueError:
        raise ConfigurationError(f"--input {name} is not JSON.") from None


def _per_page(value: QueryValue) -> int:
    try:
        number = int(value) if isinstance(value, str | int | float) else 0
    except ValueError:
        number = 0
    if number < 1:
        raise ConfigurationError(f"per_page must be a positive whole number, not {value!r}.")
    return number


class _Listing(SyncSide):
    """A list endpoint of Gist's API (whichever), walked page after page with the package's pagination rule."""

    _client: GistClient

    def __init__(self, client: GistClient) -> None:
        self._client = client
        #: The key Gist wrapped the list in (``contacts`` in ``{"contacts": [...], "pages": ...}``).
        self.key: str | None = None

    def _read(self, body: JSON) -> Page[JSON]:
        lists = [k for k, v in body.items() if isinstance(v, list)] if isinstance(body, Mapping) else []
        if self.key is None:
            if len(lists) != 1:
                return Page(items=[body], next=None)  # not a list: the answer itself, and no next page
            self.key = lists[0]
        pages = body.get("pages") if isinstance(body, Mapping) else None
        link = pages.get("next") if isinstance(pages, Mapping) else None
        items = body.get(self.key) if isinstance(body, Mapping) else None
        return Page(
            items=items if isinstance(items, list) else [], next=link if isinstance(link, str) and link else None
        )

    @paged_endpoint
    def every(self, path: str, params: Mapping[str, QueryValue], per_page: int) -> Pages[JSON]:
        """Every item of the list at ``path``, following Gist's pages."""
        yield from walk_pages(
            lambda number: Call("GET", path, self._read, params={**params, "page": number, "per_page": per_page}),
            lambda link: Call("GET", link, self._read),
            per_page=per_page,
        )


def _api(
    args: argparse.Namespace, environ: Mapping[str, str], err: TextIO, out: TextIO, stdin: TextIO = sys.stdin
) -> int:
    method = args.method.upper()
    if method not in _METHODS:
        raise ConfigurationError(f"The method must be one of {', '.join(_METHODS)}, not {args.method!r}.")
    if args.paginate and method != "GET":
        raise ConfigurationError("--paginate follows the pages of a GET.")
    fields = _fields(args.field, args.typed_field)
    body = _read_input(args.input, stdin)
    # As gh api does: fields go in the query of a GET or DELETE, or beside an --input body; else in the body.
    in_query = method in ("GET", "DELETE") or body is not None
    params, payload = (_query(fields) or None, body) if in_query else (None, fields or None)
    with _client(args, environ) as client:
        try:
            if args.paginate:
                listing = _Listing(client)
                query = dict(params or {})
                per_page = _per_page(query.pop("per_page", DEFAULT_PER_PAGE))
                items = list(listing.every(args.path, query, per_page))
                result: JSON = items[0] if listing.key is None and len(items) == 1 else {listing.key or "items": items}
            else:
                result = client.request(method, args.path, params=params, json=payload)
        except GistAPIError as exc:
            if isinstance(exc.body, (dict, list)):
                print(json.dumps(exc.body, indent=2, ensure_ascii=True), file=out)  # for scripts, as gh api does
            raise
    if result is not None:
        print(json.dumps(result, indent=2, ensure_ascii=True), file=out)
    return 0


# --- the commands -------------------------------------------------------------------------------------------


def _endpoint_options(parser: argparse.ArgumentParser, *, login: bool) -> None:
    if login:
        parser.add_argument(
            "--authorize-url", help="Gist's authorization endpoint (default: $GIST_AUTHORIZE_URL, else Gist's)"
        )
        parser.add_argument(
            "--access-token-url", help="Gist's token endpoint (default: $GIST_ACCESS_TOKEN_URL, else Gist's)"
        )
    parser.add_argument(
        "--api-base-url", help="Gist's API (default: $GIST_API_BASE_URL, else https://api.getgist.com/)"
    )


def _token_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--token",
        help=f"an access token or workspace API key (default: ${TOKEN_VARIABLE}, safer than a flag that ps shows; "
        "else a token from the store)",
    )
    parser.add_argument("--subject", help="which stored token (default: $GIST_SUBJECT, else the only one stored)")
    parser.add_argument("--token-db", help=_db_hint())


def _db_hint() -> str:
    return (
        "the token store, a SQLite file or a database URL such as postgresql://... "
        "(default: $GIST_TOKEN_DB, else $XDG_CONFIG_HOME/gist-authlib/tokens.sqlite3)"
    )


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``login``, ``whoami`` and ``api`` to the ``gist-authlib`` command's subparsers."""
    login = commands.add_parser(
        "login",
        help="log in with Gist from the command line (a browser and a one-shot server on 127.0.0.1)",
        description=(
            "Log in with Gist as a command-line tool does (RFC 8252): a one-shot server on this machine receives "
            "the browser's return. The authorization URL is printed alone on a line of stderr. Register the "
            f"redirect URI ({DEFAULT_REDIRECT_URI} by default) for your app in Gist's Developer Hub. Settings: "
            "GIST_CLIENT_ID, GIST_CLIENT_SECRET, GIST_SCOPES, GIST_AUTHORIZE_URL, GIST_ACCESS_TOKEN_URL, "
            "GIST_API_BASE_URL; the token store: GIST_TOKEN_DB and GIST_TOKEN_KEY."
        ),
    )
    login.add_argument(
        "--client-id", help="your app's client id (default: $GIST_CLIENT_ID; the secret: $GIST_CLIENT_SECRET)"
    )
    login.add_argument(
        "--scope",
        action="append",
        metavar="NAME",
        help="a scope to ask for (repeatable; default: $GIST_SCOPES, else read_teammates)",
    )
    login.add_argument(
        "--new-scope",
        action="append",
        metavar="NAME",
        help="accept NAME as a scope although it is not in Gist's published list (one Gist added since); repeatable",
    )
    login.add_argument(
        "--redirect-uri",
        default=DEFAULT_REDIRECT_URI,
        help=f"where the browser comes back, on 127.0.0.1 (default {DEFAULT_REDIRECT_URI}; port 0: any free port)",
    )
    login.add_argument("--no-browser", action="store_true", help="only print the URL to open (on stderr)")
    login.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds to wait for the browser (default {DEFAULT_TIMEOUT:g})",
    )
    login.add_argument("--json", action="store_true", help="print the token as JSON on stdout instead of storing it")
    login.add_argument("--subject", help="store the token under this name (default: workspace:<id>, from Gist)")
    login.add_argument("--token-db", help=_db_hint())
    _endpoint_options(login, login=True)

    whoami = commands.add_parser("whoami", help="the Gist workspace a token belongs to (GET /token)")
    whoami.add_argument("--json", action="store_true", help="print Gist's answer as JSON")
    _token_options(whoami)
    _endpoint_options(whoami, login=False)

    api = commands.add_parser(
        "api",
        help="call Gist's REST API: gist-authlib api GET contacts",
        description="Send a request to Gist's API and print the JSON answer; exits 1 with Gist's message on an error.",
    )
    api.add_argument("method", help="GET, POST, PUT, PATCH or DELETE")
    api.add_argument("path", help="the endpoint, such as contacts or teammates/1001")
    api.add_argument(
        "-f", "--field", action="append", default=[], metavar="KEY=VALUE", help="a string field (repeatable)"
    )
    api.add_argument(
        "-F",
        "--typed-field",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="a JSON field: 60, true, null (repeatable)",
    )
    api.add_argument(
        "--input", metavar="FILE", help="the JSON body, from FILE (- for stdin); fields then go in the query"
    )
    api.add_argument("--paginate", action="store_true", help="follow Gist's pages and print every item in one list")
    _token_options(api)
    _endpoint_options(api, login=False)


def run_command(
    args: argparse.Namespace,
    *,
    environ: Mapping[str, str] = os.environ,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run ``login``, ``whoami`` or ``api``; the exit code. Errors are raised (the caller reports them)."""
    out, err = out or sys.stdout, err or sys.stderr
    command = {"login": _login, "whoami": _whoami, "api": _api}[args.command]
    return command(args, environ, err, out)
