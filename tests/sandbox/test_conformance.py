"""The sandbox against OAuth clients this project did not write, over real HTTP on loopback.

Four clients, each with and without PKCE: requests-oauthlib's ``OAuth2Session``, oauthlib's
``WebApplicationClient`` driven by hand with requests, Authlib's requests client and Authlib's httpx2 client. Each
logs in the way its documentation shows (authorize, the consent form approved over HTTP, code, token, API call),
then misbehaves the ways a client can (a reused code, a bad secret, HTTP Basic, a wrong verifier). The error the
client library raises and the HTTP answer under it (status, error code, headers) are both checked: a sandbox that
only agreed with gist_authlib's own client could hide a bug in it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pytest
import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.httpx_client import OAuth2Client as AuthlibHttpxClient
from authlib.integrations.requests_client import OAuth2Session as AuthlibRequestsSession
from oauthlib.oauth2 import OAuth2Error, WebApplicationClient
from requests_oauthlib import OAuth2Session
from support.web import browser_client, query_of

from gist_authlib.sandbox import GistSandbox, SandboxClient, ServerThread, create_app

CLIENT_ID, SECRET = "conformance-app", "conformance-secret"
REDIRECT = "http://127.0.0.1:9/oauth/gist/callback"  # read from the Location header, never followed
SCOPES = ["read_teammates", "read_teams"]
BASIC_CHALLENGE = 'Basic realm="Gist sandbox", charset="UTF-8"'


@dataclass
class Gist:
    """The sandbox on loopback, its endpoints, and a browser with its own cookies for the consent page."""

    sandbox: GistSandbox
    url: str
    browser: Any

    @property
    def authorize_url(self) -> str:
        return f"{self.url}/oauth/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.url}/oauth/token"

    def approve(self, authorization_url: str) -> str:
        """Open the consent page, approve on it over HTTP, and return the callback URL the sandbox redirects to."""
        page = self.browser.get(authorization_url)
        assert page.status_code == 200, page.text
        fields = {
            name: page.text.split(f'name="{name}" value="')[1].split('"')[0] for name in ("request", "csrf_token")
        }
        answer = self.browser.post(self.authorize_url, data={**fields, "decision": "approve"})
        assert answer.status_code == 302, answer.text
        callback = str(answer.headers["location"])
        assert callback.startswith(REDIRECT + "?") and "error" not in query_of(callback), callback
        return callback


@dataclass
class Login:
    """A login a client started: the URL it sends the browser to, and what it keeps until the callback."""

    authorization_url: str
    state: str
    verifier: str | None
    kept: Any = None


@dataclass
class Exchange:
    """A token request: the HTTP answer, and what the client library made of it (a token, or the error it raised)."""

    status: int
    headers: Mapping[str, str]
    body: dict[str, Any]
    token: dict[str, Any] | None = None
    error: str | None = None

    @classmethod
    def of(cls, answer: Any, *, token: Mapping[str, Any] | None = None, error: str | None = None) -> Exchange:
        return cls(answer.status_code, answer.headers, answer.json(), dict(token) if token else None, error)


class Client(Protocol):
    """One OAuth client library, as an app would use it."""

    def start(self, gist: Gist, pkce: bool) -> Login: ...

    def exchange(
        self, gist: Gist, login: Login, callback: str, *, secret: str = SECRET, basic: bool = False, verifier: str = ""
    ) -> Exchange:
        """Exchange the callback's code; ``verifier`` replaces the login's own (or adds one) when given."""
        ...

    def get(self, gist: Gist, token: Mapping[str, Any], path: str) -> Any: ...


class Recording:
    """Keeps the token endpoint's answers as the client library saw them (its ``access_token_response`` hook)."""

    def __init__(self) -> None:
        self.answers: list[Any] = []

    def recorded(self, session: Any) -> Any:
        """``session``, its token answers recorded here."""
        session.register_compliance_hook("access_token_response", self.seen)
        return session

    def seen(self, answer: Any) -> Any:
        self.answers.append(answer)
        return answer


class RequestsOAuthlib(Recording):
    """requests-oauthlib's OAuth2Session: PKCE kept in the session, HTTP Basic unless include_client_id=True."""

    def session(self, pkce: bool = False, token: Mapping[str, Any] | None = None) -> OAuth2Session:
        session = OAuth2Session(
            CLIENT_ID, redirect_uri=REDIRECT, scope=SCOPES, pkce="S256" if pkce else None, token=token
        )
        session.trust_env = False
        return self.recorded(session)

    def start(self, gist: Gist, pkce: bool) -> Login:
        session = self.session(pkce)
        url, state = session.authorization_url(gist.authorize_url)
        return Login(url, state, None, session)

    def exchange(
        self, gist: Gist, login: Login, callback: str, *, secret: str = SECRET, basic: bool = False, verifier: str = ""
    ) -> Exchange:
        # A verifier of the test's own goes through a session without PKCE (one with it sends its own).
        session, extra = (self.session(), {"code_verifier": verifier}) if verifier else (login.kept, {})
        try:
            token = session.fetch_token(
                gist.token_url,
                authorization_response=callback,
                client_secret=secret,
                include_client_id=not basic,
                **extra,
            )
        except OAuth2Error as exc:
            return Exchange.of(self.answers[-1], error=exc.error)
        return Exchange.of(self.answers[-1], token=token)

    def get(self, gist: Gist, token: Mapping[str, Any], path: str) -> Any:
        return self.session(token=token).get(f"{gist.url}/{path}")


class OAuthlibByHand:
    """oauthlib's WebApplicationClient builds each request, requests sends it: the way other libraries use oauthlib."""

    def start(self, gist: Gist, pkce: bool) -> Login:
        client = WebApplicationClient(CLIENT_ID)
        state = secrets.token_urlsafe(16)
        verifier = client.create_code_verifier(64) if pkce else None
        challenge = {}
        if verifier is not None:
            challenge = {
                "code_challenge": client.create_code_challenge(verifier, "S256"),
                "code_challenge_method": "S256",
            }
        url = client.prepare_request_uri(
            gist.authorize_url, redirect_uri=REDIRECT, scope=SCOPES, state=state, **challenge
        )
        return Login(url, state, verifier, client)

    def exchange(
        self, gist: Gist, login: Login, callback: str, *, secret: str = SECRET, basic: bool = False, verifier: str = ""
    ) -> Exchange:
        client: WebApplicationClient = login.kept
        code = client.parse_request_uri_response(callback, state=login.state)["code"]
        body = client.prepare_request_body(
            code=code,
            redirect_uri=REDIRECT,
            include_client_id=not basic,
            client_secret=None if basic else secret,
            code_verifier=verifier or login.verifier,
        )
        with requests.Session() as http:
            http.trust_env = False
            answer = http.post(
                gist.token_url,
                data=body,
                headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
                auth=(CLIENT_ID, secret) if basic else None,
            )
        try:
            token = client.parse_request_body_response(answer.text)
        except OAuth2Error as exc:
            return Exchange.of(answer, error=exc.error)
        return Exchange.of(answer, token=token)

    def get(self, gist: Gist, token: Mapping[str, Any], path: str) -> Any:
        uri, headers, _ = WebApplicationClient(CLIENT_ID, token=dict(token)).add_token(f"{gist.url}/{path}")
        with requests.Session() as http:
            http.trust_env = False
            return http.get(uri, headers=headers)


class Authlib(Recording):
    """Authlib's own clients (requests or httpx2): the code verifier and state are the app's to keep."""

    def __init__(self, kind: type[Any]) -> None:
        super().__init__()
        self.kind = kind

    def session(self, *, secret: str = SECRET, basic: bool = False, pkce: bool = False, **kwargs: Any) -> Any:
        options = {"trust_env": False} if self.kind is AuthlibHttpxClient else {}
        session = self.kind(
            CLIENT_ID,
            secret,
            scope=SCOPES,
            redirect_uri=REDIRECT,
            token_endpoint_auth_method="client_secret_basic" if basic else "client_secret_post",
            code_challenge_method="S256" if pkce else None,
            **options,
            **kwargs,
        )
        if self.kind is AuthlibRequestsSession:
            session.trust_env = False
        return self.recorded(session)

    def start(self, gist: Gist, pkce: bool) -> Login:
        verifier = secrets.token_urlsafe(48) if pkce else None
        with self.session(pkce=pkce) as session:
            url, state = session.create_authorization_url(gist.authorize_url, code_verifier=verifier)
        return Login(url, state, verifier)

    def exchange(
        self, gist: Gist, login: Login, callback: str, *, secret: str = SECRET, basic: bool = False, verifier: str = ""
    ) -> Exchange:
        extra = {"code_verifier": verifier or login.verifier} if verifier or login.verifier else {}
        with self.session(secret=secret, basic=basic) as session:
            try:
                token = session.fetch_token(gist.token_url, authorization_response=callback, state=login.state, **extra)
            except AuthlibBaseError as exc:
                return Exchange.of(self.answers[-1], error=exc.error)
        return Exchange.of(self.answers[-1], token=token)

    def get(self, gist: Gist, token: Mapping[str, Any], path: str) -> Any:
        with self.session(token=dict(token)) as session:
            return session.get(f"{gist.url}/{path}")  # read whole, by either library, before the session closes


CLIENTS: dict[str, Any] = {
    "requests-oauthlib": RequestsOAuthlib,
    "oauthlib-by-hand": OAuthlibByHand,
    "authlib-requests": lambda: Authlib(AuthlibRequestsSession),
    "authlib-httpx2": lambda: Authlib(AuthlibHttpxClient),
}


@pytest.fixture(params=list(CLIENTS))
def client(request: pytest.FixtureRequest) -> Client:
    made: Client = CLIENTS[request.param]()
    return made


@pytest.fixture(params=[True, False], ids=["pkce", "no-pkce"])
def pkce(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def gist(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gist]:
    # oauthlib refuses http:// unless told this is a local test (its documented switch): the sandbox is on loopback.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    sandbox = create_app(clients=[SandboxClient(CLIENT_ID, SECRET, (REDIRECT,), name="Conformance")])
    with ServerThread(sandbox) as server, browser_client(follow_redirects=False) as browser:
        yield Gist(sandbox, server.url, browser)


def logged_in(client: Client, gist: Gist, pkce: bool) -> tuple[Login, str]:
    """A login started by ``client`` and approved: the login, and the callback URL with its code."""
    login = client.start(gist, pkce)
    asked = query_of(login.authorization_url)
    assert asked.get("code_challenge_method") == ("S256" if pkce else None)  # the variant is the one meant
    return login, gist.approve(login.authorization_url)


def assert_refused(exchange: Exchange, status: int, error: str, challenge: str | None = None) -> None:
    """The token request was refused with ``status`` and ``error``, in the body and by the client library alike."""
    assert (exchange.status, exchange.body["error"], exchange.error, exchange.token) == (status, error, error, None)
    assert exchange.headers.get("www-authenticate") == challenge
    assert exchange.headers["cache-control"] == "no-store"
    assert SECRET not in str(exchange.body)


def test_a_full_login(client: Client, gist: Gist, pkce: bool) -> None:
    login, callback = logged_in(client, gist, pkce)
    assert (query_of(callback)["state"], query_of(callback)["iss"]) == (login.state, gist.url)
    exchange = client.exchange(gist, login, callback)
    assert exchange.status == 200 and list(exchange.body) == ["access_token"]  # Gist's answer: the token alone
    assert exchange.headers["cache-control"] == "no-store" and exchange.error is None
    assert exchange.token is not None and exchange.token["access_token"] == exchange.body["access_token"]
    teammates = client.get(gist, exchange.token, "teammates")
    assert teammates.status_code == 200
    assert [t["name"] for t in teammates.json()["teammates"]] == ["Ada Lovelace", "Grace Hopper", "Alan Turing"]
    assert [(r.status, r.error) for r in gist.sandbox.token_requests] == [(200, None)]


def test_a_reused_code_is_invalid_grant_and_revokes_the_token_it_gave(client: Client, gist: Gist, pkce: bool) -> None:
    login, callback = logged_in(client, gist, pkce)
    first = client.exchange(gist, login, callback)
    assert first.token is not None
    assert_refused(client.exchange(gist, login, callback), 400, "invalid_grant")
    revoked = client.get(gist, first.token, "teammates")
    assert revoked.status_code == 401
    assert revoked.headers["www-authenticate"].startswith('Bearer realm="Gist sandbox", error="invalid_token"')
    assert gist.sandbox.tokens_issued == 1


def test_a_bad_secret_is_invalid_client_and_http_basic_is_refused_with_its_challenge(
    client: Client, gist: Gist, pkce: bool
) -> None:
    login, callback = logged_in(client, gist, pkce)
    # In the body: no HTTP authentication was tried, so a 400 (a 401 would have to name a scheme).
    assert_refused(client.exchange(gist, login, callback, secret="not-the-secret"), 400, "invalid_client")
    # HTTP Basic, even with the right secret: Gist reads credentials from the body only, and says which scheme failed.
    assert_refused(client.exchange(gist, login, callback, basic=True), 401, "invalid_client", BASIC_CHALLENGE)
    assert client.exchange(gist, login, callback).status == 200  # refusals spend no code
    assert gist.sandbox.tokens_issued == 1


def test_a_wrong_verifier_is_invalid_grant(client: Client, gist: Gist, pkce: bool) -> None:
    login, callback = logged_in(client, gist, pkce)
    another = secrets.token_urlsafe(48)  # well formed, another login's
    refused = client.exchange(gist, login, callback, verifier=another)
    assert_refused(refused, 400, "invalid_grant")
    # With PKCE, it does not match; without, the code was never bound to one (RFC 9700 section 2.1.1).
    expected = "does not match" if pkce else "no code_challenge"
    assert expected in refused.body["error_description"]
    assert client.exchange(gist, login, callback).status == 200
    assert gist.sandbox.tokens_issued == 1
