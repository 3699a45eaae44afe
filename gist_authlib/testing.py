"""A pytest plugin for apps that log in with Gist: a local Gist sandbox as the ``gist_sandbox`` fixture.

Installed with ``pip install "gist-authlib[testing]"``, pytest loads it by itself (a ``pytest11`` entry
point); without the entry point, load it with ``-p gist_authlib.testing``. No network is used: the
sandbox runs on a loopback port for the test session, with fresh state for every test.

The two sides of a login travel differently, as they do in production. The browser's side (the login
route, the consent page, the callback) goes through your framework's test client, with its cookies;
the app's own side (the token exchange, API calls) goes over real HTTP from the app to the sandbox::

    def test_login(gist_sandbox):
        oauth = OAuth()
        gist = gist_sandbox.register(oauth)          # gist_authlib.register, wired to the sandbox
        app = create_app(gist)                         # your app, with gist_routes(gist, ...)
        response = gist_sandbox.login(TestClient(app)) # login -> consent -> callback
        assert "Ada Lovelace" in response.text

An app built when its module is imported has registered Gist already, with its own settings:
``gist_sandbox.use(myapp.gist)`` points that registration at the sandbox until the test ends::

    def test_login(gist_sandbox):
        gist_sandbox.use(myapp.gist)
        assert "Ada Lovelace" in gist_sandbox.login(TestClient(myapp.app)).text
"""

from __future__ import annotations

import functools
import secrets
import ssl
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urljoin, urlsplit, urlunsplit

import pytest

from .provider import GistProvider

if TYPE_CHECKING:
    import httpx2
    from starlette.types import Receive, Scope, Send

    from ._install_limit import InstallLimit
    from ._registry import GistApp
    from ._types import JSON
    from .sandbox import GistSandbox, ServerThread
    from .sandbox._app import TokenAnswer
    from .tokens import LoginState

# pytest loads this module in every suite of a project that has gist_authlib installed (the entry point does
# not depend on the extra), so the sandbox and its web framework are imported only when a test uses them.
_MISSING_EXTRA = (
    "The gist_sandbox fixture runs the Gist sandbox, which needs Starlette and uvicorn: "
    "pip install 'gist-authlib[testing]'. ({module} is not installed.)"
)

__all__ = ["TEST_CLIENT_ORIGINS", "GistSandboxFixture", "SandboxLoginError", "SandboxUse", "gist_sandbox"]

#: The origins framework test clients use by default, for which the sandbox registers redirect URIs:
#: Starlette/FastAPI's ``TestClient`` and Django's ``Client`` (``testserver``), Flask's test client
#: (``localhost``), and a server on loopback.
TEST_CLIENT_ORIGINS = ("http://testserver", "http://localhost", "http://127.0.0.1")

#: What :meth:`GistSandboxFixture.use` changes on a registration besides its ``gist_registration``, and puts back:
#: what Authlib's own methods read (endpoints, credentials), and the pooled connections, so that the test's are its
#: own and are closed after it.
_USED_ATTRIBUTES = (
    "client_id",
    "client_secret",
    "authorize_url",
    "access_token_url",
    "api_base_url",
    "client_kwargs",
    "gist_registration",
    "_gist_stack",
    "_gist_pools",
)
_ABSENT = object()

_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_APP_REDIRECTS = 10


class _Response(Protocol):
    """A framework test client's response, as far as a login reads it (besides its headers and text)."""

    @property
    def status_code(self) -> int: ...


R = TypeVar("R", bound=_Response)
R_co = TypeVar("R_co", bound=_Response, covariant=True)


class _TestClient(Protocol[R_co]):
    """A framework's test client: Starlette's and FastAPI's ``TestClient``, Flask's, Django's."""

    @property
    def get(self) -> Callable[..., R_co]:
        """Its GET, whose keywords differ between the frameworks (see :func:`_get`)."""
        ...


def _fresh(limit: InstallLimit, state: LoginState) -> InstallLimit:
    """The same limit, counting afresh in this test's own login state."""
    from ._install_limit import InstallLimit

    fresh = InstallLimit(limit.per_client, limit.total, limit.window, trusted_proxies=limit.trusted_proxy_names())
    return fresh.counting_in(state, limit.name)


@functools.cache
def _browser_tls() -> ssl.SSLContext:
    """One TLS context for every login's scripted browser: httpx2 would otherwise load the CA bundle again for
    each login (about 30 ms), which a suite of many logins feels."""
    return ssl.create_default_context()


class SandboxLoginError(AssertionError):
    """:meth:`GistSandboxFixture.login` could not walk a step of the login; the message says which and why.

    An ``AssertionError``, so that pytest reports it as the test's failure.
    """


class GistSandboxFixture:
    """The ``gist_sandbox`` fixture: a local Gist for one test, and the means to drive a login through it.

    Attributes:
        url: the sandbox's origin on loopback (``http://127.0.0.1:<port>``).
        sandbox: the :class:`~gist_authlib.sandbox.GistSandbox` itself (``token_requests``,
            ``installs_acknowledged``, ``workspace``, ...), fresh for each test.
        provider: a :class:`~gist_authlib.GistProvider` whose endpoints are the sandbox's.
        client_id: the sandbox app's client id.
        client_secret: its client secret (random for each test).
    """

    def __init__(self, url: str, sandbox: GistSandbox, client_id: str, client_secret: str) -> None:
        self.url = url
        self.sandbox = sandbox
        self.provider = GistProvider.at(url)
        self.client_id = client_id
        self.client_secret = client_secret
        self._uses: list[SandboxUse] = []

    def __repr__(self) -> str:
        return f"<GistSandboxFixture {self.url} client_id={self.client_id!r}>"

    # -- wiring an app to the sandbox -----------------------------------------------------------------

    @property
    def redirect_uris(self) -> tuple[str, ...]:
        """The redirect URIs registered for the sandbox app; a login must use one of them (on a loopback host, on any
        port: RFC 8252 section 7.3)."""
        return self.sandbox.clients[self.client_id].redirect_uris

    def allow_redirect_uri(self, *uris: str) -> None:
        """Register more redirect URIs (an app whose callback is not ``/oauth/<name>/callback``)."""
        client = self.sandbox.clients[self.client_id]
        merged = tuple(dict.fromkeys((*client.redirect_uris, *uris)))
        self.sandbox.add_client(replace(client, redirect_uris=merged))

    def register(self, oauth: object, name: str = "gist", **kwargs: Any) -> GistApp:
        """:func:`gist_authlib.register` for the sandbox: its endpoints, client id and secret.

        Other keyword arguments are passed on (``scopes``, ``token_store``, ...). A ``provider`` with
        extra scopes keeps them (the sandbox then accepts them too), pointed at the sandbox. Plain
        ``http://`` redirect URIs are allowed (``allow_insecure_http=True``), since ``testserver`` is not
        a loopback name; the callbacks ``/oauth/<name>/callback`` on :data:`TEST_CLIENT_ORIGINS` are
        registered.
        """
        # kwargs: gist_authlib.register's own keywords, which its signature checks
        provider = self._provider_for(kwargs.pop("provider", None) or GistProvider())
        kwargs.setdefault("allow_insecure_http", True)
        self.allow_redirect_uri(*_callbacks(name))
        from ._registry import register as _register

        return _register(
            oauth, name, client_id=self.client_id, client_secret=self.client_secret, provider=provider, **kwargs
        )

    def use(self, app: object, *, redirect_uri: str | None = None) -> SandboxUse:
        """Point an existing registration at the sandbox until the test ends (or the ``with`` block does).

        For an app built when its module is imported (``oauth = OAuth(); gist = gist_authlib.register(oauth)``
        at module level): by the time a test runs, the registration has read its settings, so
        :meth:`settings` comes too late. ``use(myapp.gist)`` (or ``use(oauth.gist)``, or a Flask registry's
        lazy proxy) gives that registration the sandbox's client id, secret and endpoints, allows plain
        ``http://`` redirect URIs (``http://testserver`` is not loopback) and sets aside a configured redirect
        URI (the callback is then on the test client's host; pass ``redirect_uri`` to name one), with pooled
        connections of its own. The callbacks ``/oauth/<name>/callback`` on :data:`TEST_CLIENT_ORIGINS` are
        registered, and the registration's scopes are accepted by the sandbox.

        Everything is put back, the very objects, when the test ends (the fixture's teardown), or on leaving
        ``with gist_sandbox.use(app) as gist:``; the connections opened meanwhile are closed. Its scopes and
        ``on_login`` stay the app's own; a token store is replaced by a fresh memory store for the test (and the
        used login states and install counts by fresh ones), so that a test never writes the developer's token
        database.

        Returns:
            A :class:`SandboxUse`: ``.app`` is the registration (the Flask proxy resolved), ``.restore()``
            puts it back early; as a context manager it gives the registration and restores on exit.

        Raises:
            TypeError: ``app`` is not a Gist registration (what :func:`gist_authlib.register` returns).
        """
        from ._registry import GistApp

        target = app
        resolve = getattr(app, "_get_current_object", None)  # Flask's lazy proxy (werkzeug's LocalProxy)
        if callable(resolve):
            try:
                target = resolve()
            except RuntimeError as exc:
                raise TypeError(
                    f"gist_sandbox.use() could not resolve the Flask registration: {exc} Call oauth.init_app(app) "
                    "(or pass the Flask app to OAuth) before the test uses it."
                ) from None
        if not isinstance(target, GistApp):
            raise TypeError(
                "gist_sandbox.use() takes a Gist registration (what gist_authlib.register returns, or oauth.gist), "
                f"not {type(target).__module__}.{type(target).__qualname__}."
            )
        if redirect_uri is not None:
            self.allow_redirect_uri(redirect_uri)
        self.allow_redirect_uri(*_callbacks(target.name))
        from ._login import IssuedTokens
        from .tokens import MemoryLoginState, MemoryTokenStore

        saved = {key: vars(target).get(key, _ABSENT) for key in _USED_ATTRIBUTES}
        reg = target.gist_registration
        provider = self._provider_for(reg.provider)
        endpoints = provider.authlib_kwargs()
        target.gist_registration = replace(
            reg,
            client_id=self.client_id,
            client_secret=self.client_secret,
            provider=provider,
            authorize_url=endpoints["authorize_url"],
            token_url=endpoints["access_token_url"],
            api_base_url=endpoints["api_base_url"],
            redirect_uri=redirect_uri,
            default_redirect_uri=None,
            allow_insecure_http=True,
            # The test's tokens, used states and install counts are its own: the developer's token database and
            # the counts of an app built at import time stay as they were.
            store=MemoryTokenStore() if reg.store is not None else None,
            login_state=(state := MemoryLoginState()),
            install_limit=_fresh(reg.install_limit, state),
            refusal_limit=_fresh(reg.refusal_limit, state),
            issued=IssuedTokens(),
        )
        for key, value in {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            **endpoints,
            "client_kwargs": {key: value for key, value in target.client_kwargs.items() if key != "redirect_uri"},
            "_gist_stack": None,
            "_gist_pools": None,
        }.items():
            setattr(target, key, value)
        used = SandboxUse(target, saved, self._uses)
        self._uses.append(used)
        return used

    def _provider_for(self, provider: GistProvider) -> GistProvider:
        """``provider`` with the sandbox's endpoints and no issuer of its own; its scopes are made the sandbox's."""
        at_sandbox = replace(provider.at(self.url), issuer=None)
        for scope, description in at_sandbox.scopes.items():
            self.sandbox.scopes.setdefault(scope, description)
        return at_sandbox

    def settings(self, name: str = "gist") -> dict[str, str]:
        """The settings of a registration named ``name`` (``GIST_CLIENT_ID``, ...) for an app configured by them.

        For an app factory that calls :func:`gist_authlib.register` itself with settings from its
        configuration; an app built at import time has read its settings already: see :meth:`use`.
        Such an app refuses ``http://testserver`` as a redirect URI (not loopback, not https): use a test
        client on ``http://localhost`` (Flask's default; ``TestClient(app, base_url="http://localhost")``).
        """
        self.allow_redirect_uri(*_callbacks(name))
        prefix = name.upper()
        return {
            f"{prefix}_CLIENT_ID": self.client_id,
            f"{prefix}_CLIENT_SECRET": self.client_secret,
            f"{prefix}_AUTHORIZE_URL": self.provider.authorize_url,
            f"{prefix}_ACCESS_TOKEN_URL": self.provider.access_token_url,
            f"{prefix}_API_BASE_URL": self.provider.api_base_url,
        }

    # -- a login, through the framework's test client ---------------------------------------------------

    def login(
        self, client: _TestClient[R], path: str = "/auth/gist", *, deny: bool = False, follow_redirects: bool = True
    ) -> R:
        """Walk a login through ``client``: the app's login route, the consent page, the app's callback.

        Args:
            client: the framework's test client: Starlette/FastAPI ``TestClient``, Flask's
                ``app.test_client()`` or Django's ``django.test.Client``. Its cookies carry the session
                from the login route to the callback, as a browser's would.
            path: the app's login route (``"/auth/gist?next=/here"`` works too).
            deny: click Deny instead of Approve on the consent page.
            follow_redirects: after the callback, follow the app's redirects on its own origin (an
                ``on_login`` returning ``None`` answers 303 to the ``next`` path); a redirect elsewhere
                (Gist's install acknowledgement) is returned as it is.

        Returns:
            The app's final response, in the test client's own type.

        Raises:
            SandboxLoginError: the login route did not redirect to the sandbox, or the sandbox refused the
                request (an unregistered redirect URI, an unknown scope, ...); the message says which.
        """
        import httpx2

        start = _get(client, path)
        authorize_url = _location(start) or ""
        if start.status_code not in _REDIRECTS or not authorize_url.startswith(self.provider.authorize_url):
            raise SandboxLoginError(
                f"GET {path} answered HTTP {start.status_code}"
                + (f" with a redirect to {authorize_url}" if authorize_url else "")
                + f", not a redirect to the sandbox's {self.provider.authorize_url}. Register Gist with "
                f"gist_sandbox.register(oauth) (or the settings of gist_sandbox.settings()) and serve its "
                f"login route at {path}. The page said: {_text(start)[:300]}"
            )
        with httpx2.Client(trust_env=False, follow_redirects=False, timeout=10.0, verify=_browser_tls()) as browser:
            consent = browser.get(authorize_url)
            if consent.status_code in _REDIRECTS:  # an auto-approving sandbox
                callback = consent.headers["location"]
            else:
                callback = self._decide(browser, consent, deny=deny)
        response = _get(client, callback)
        origin = _origin(callback)
        for _ in range(_MAX_APP_REDIRECTS):
            target = _location(response)
            if not follow_redirects or response.status_code not in _REDIRECTS or not target:
                break
            target = urljoin(callback, target)
            if _origin(target) != origin:
                break
            response = _get(client, target)
        return response

    def _decide(self, browser: httpx2.Client, consent: httpx2.Response, *, deny: bool) -> str:
        if consent.status_code != 200:
            raise SandboxLoginError(
                f"The sandbox refused the authorization request (HTTP {consent.status_code}): "
                f"{_page_text(consent.text)} Registered redirect URIs: {', '.join(self.redirect_uris)}; "
                "gist_sandbox.allow_redirect_uri(...) adds one."
            )
        form = _ConsentForm()
        form.feed(consent.text)
        if form.action is None:
            raise SandboxLoginError(f"The sandbox's consent page has no form: {_page_text(consent.text)}")
        answer = browser.post(
            urljoin(str(consent.url), form.action), data={**form.hidden, "decision": "deny" if deny else "approve"}
        )
        location = answer.headers.get("location")
        if answer.status_code not in _REDIRECTS or not location:
            raise SandboxLoginError(
                f"The sandbox did not redirect back after the consent (HTTP {answer.status_code}): "
                f"{_page_text(answer.text)}"
            )
        return str(location)

    # -- the seeded workspace -------------------------------------------------------------------------

    @property
    def teammates(self) -> list[dict[str, JSON]]:
        """The workspace's teammates (Ada Lovelace, Grace Hopper, Alan Turing), as Gist sends them."""
        return self.sandbox.workspace.teammates

    @property
    def contacts(self) -> list[dict[str, JSON]]:
        """The workspace's contacts (five seeded, changed by the app's writes)."""
        return self.sandbox.workspace.contacts

    @property
    def tags(self) -> list[dict[str, JSON]]:
        """The workspace's tags (``vip`` seeded)."""
        return self.sandbox.workspace.tags

    # -- tokens and faults ----------------------------------------------------------------------------

    def issue_token(self, scopes: Iterable[str] = ("read_teammates",)) -> TokenAnswer:
        """A token for the sandbox app, as if a login had completed (for tests of API calls alone)."""
        return self.sandbox.issue_token(self.client_id, tuple(scopes))

    def revoke(self, token: str | Mapping[str, object]) -> None:
        """Revoke one token (the token dict or its ``access_token``): the API then answers 401."""
        self.sandbox.revoke(str(token["access_token"]) if isinstance(token, Mapping) else token)

    def revoke_all(self) -> int:
        """Revoke every token of the sandbox app, as when a workspace uninstalls it; returns how many."""
        return self.sandbox.uninstall(self.client_id)

    def force_rate_limit(self, count: int = 1, *, retry_after: int = 0) -> None:
        """Answer the next ``count`` API requests with 429 and ``Retry-After: retry_after`` (seconds)."""
        self.sandbox.fail_next_api_request(429, retry_after=str(retry_after), count=count)

    def force_server_error(self, status: int = 503, count: int = 1) -> None:
        """Answer the next ``count`` API requests with ``status`` (a 5xx by default)."""
        self.sandbox.fail_next_api_request(status, count=count)

    def force_token_error(self, status: int = 500, body: str | bytes | Mapping[str, object] | None = None) -> None:
        """Answer the next token request (the app's code exchange) with ``status`` and ``body``."""
        if body is None:
            self.sandbox.fail_next_token_request(status)
        else:
            self.sandbox.fail_next_token_request(status, body)


class SandboxUse:
    """A registration pointed at the sandbox by :meth:`GistSandboxFixture.use`, and the means to put it back.

    Attributes:
        app: the registration (a Flask registry's lazy proxy resolved to its app).
    """

    def __init__(self, app: GistApp, saved: dict[str, object], uses: list[SandboxUse]) -> None:
        self.app = app
        self._saved = saved
        self._uses = uses

    def __repr__(self) -> str:
        return f"<SandboxUse of {self.app!r}{'' if self in self._uses else ' (restored)'}>"

    def __enter__(self) -> GistApp:
        return self.app

    def __exit__(self, *exc_info: object) -> None:
        self.restore()

    def restore(self) -> None:
        """Put the registration back as it was (the same objects), closing the connections it pooled meanwhile.

        A later :meth:`~GistSandboxFixture.use` of the same registration still in force is undone first. Calling
        it again does nothing; the fixture calls it for every use left when the test ends.
        """
        if self not in self._uses:
            return
        for later in reversed(self._uses[self._uses.index(self) + 1 :]):
            if later.app is self.app:
                later.restore()
        self._uses.remove(self)
        self.app.gist_close()  # the pools of the sandbox's connections, not the app's own (set aside)
        for key, value in self._saved.items():
            if value is _ABSENT:
                vars(self.app).pop(key, None)
            else:
                setattr(self.app, key, value)


class _Current:
    """The session's one ASGI server serves whichever sandbox the running test made."""

    def __init__(self) -> None:
        self.app: GistSandbox | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.app
        if app is None:
            from starlette.responses import PlainTextResponse

            await PlainTextResponse("No test is using the Gist sandbox.", status_code=503)(scope, receive, send)
            return
        await app(scope, receive, send)


@pytest.fixture(scope="session")
def _gist_sandbox_server() -> Iterator[tuple[ServerThread, _Current]]:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401

        from .sandbox import ServerThread
    except ImportError as exc:
        pytest.fail(_MISSING_EXTRA.format(module=exc.name or "a module"), pytrace=False)
    current = _Current()
    server = ServerThread(current).start()
    yield server, current
    server.stop()


@pytest.fixture
def gist_sandbox(_gist_sandbox_server: tuple[ServerThread, _Current]) -> Iterator[GistSandboxFixture]:
    """A local Gist for this test: OAuth server, consent page and REST API on loopback, with seeded data.

    See :class:`GistSandboxFixture`: ``register(oauth)``, ``login(test_client)``, the seeded
    ``teammates``, ``contacts`` and ``tags``, ``revoke`` and ``force_*`` faults.
    """
    from .sandbox import SandboxClient, create_app

    server, current = _gist_sandbox_server
    client_id = "gist-sandbox-test-app"
    client_secret = "sandbox-secret-" + secrets.token_urlsafe(16)
    sandbox = create_app(clients=[SandboxClient(client_id, client_secret, _callbacks("gist"), name="App under test")])
    current.app = sandbox
    fixture = GistSandboxFixture(server.url, sandbox, client_id, client_secret)
    try:
        yield fixture
    finally:
        while fixture._uses:  # the latest first: each registration ends as it was before the test
            fixture._uses[-1].restore()
        current.app = None


def _callbacks(name: str) -> tuple[str, ...]:
    paths = dict.fromkeys(
        ["/oauth/gist/callback", f"/oauth/{name}/callback", f"/oauth/{name.replace('_', '-')}/callback"]
    )
    return tuple(f"{origin}{path}" for origin in TEST_CLIENT_ORIGINS for path in paths)


def _get(client: _TestClient[R], url: str) -> R:
    """GET ``url`` through a framework's test client, never following redirects."""
    if type(client).__module__.startswith("django."):
        # Django's client takes a path; the host is its own (testserver unless configured otherwise).
        parts = urlsplit(url)
        return client.get(urlunsplit(("", "", parts.path or "/", parts.query, "")), secure=parts.scheme == "https")
    return client.get(url, follow_redirects=False)  # Starlette/FastAPI TestClient and Flask's client alike


def _location(response: _Response) -> str | None:
    value = getattr(response, "headers", {}).get("location")  # each framework's own headers type
    return str(value) if value else None


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _text(response: _Response) -> str:
    text = getattr(response, "text", None)
    if not isinstance(text, str):
        text = bytes(getattr(response, "content", b"")).decode("utf-8", "replace")
    return _page_text(text)


def _page_text(html: str) -> str:
    parser = _TextOf()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


class _TextOf(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


class _ConsentForm(HTMLParser):
    """The consent page's form: its action and hidden fields."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.hidden: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        if tag == "form" and self.action is None:
            self.action = values.get("action", "")
        elif tag == "input" and values.get("type") == "hidden" and values.get("name"):
            self.hidden[values["name"]] = values.get("value", "")
