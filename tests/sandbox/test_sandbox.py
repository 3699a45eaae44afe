"""The sandbox's own rules, over real HTTP on loopback."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx2
import pytest
from support.sandbox_http import REDIRECT, Served, s256, served_sandbox
from support.web import browser_client, hang_up, query_of

from gist_authlib.sandbox import SandboxClient, ServerThread, create_app


def csp_of(page: httpx2.Response) -> dict[str, str]:
    """A page's Content-Security-Policy, directive by directive."""
    directives = (part.strip().partition(" ") for part in page.headers["content-security-policy"].split(";"))
    return {name: value for name, _, value in directives}


@pytest.fixture
def served() -> Iterator[Served]:
    with served_sandbox() as served:
        yield served


# --- consent page ------------------------------------------------------------------------------------


def test_consent_page_names_the_app_and_every_scope_with_its_description(served: Served) -> None:
    page = served.http.get(f"{served.url}/oauth/authorize", params=served.authorize_params())
    assert page.status_code == 200
    assert "Acme CRM sync" in page.text
    assert "read_teammates" in page.text and "List and view teammates" in page.text
    assert "read_teams" in page.text and "List and view teams" in page.text
    assert ">Approve<" in page.text and ">Deny<" in page.text
    assert page.headers["x-frame-options"] == "DENY"


def test_consent_page_lets_its_form_reach_the_checked_redirect_uris_origin_only(served: Served) -> None:
    # Browsers apply form-action to the redirect after the POST: 'self' alone blocks Approve and Deny.
    page = served.http.get(f"{served.url}/oauth/authorize", params=served.authorize_params())
    policy = csp_of(page)
    assert policy["form-action"] == "'self' http://127.0.0.1:9"
    assert policy["frame-ancestors"] == "'none'" and policy["default-src"] == "'none'" and "script-src" not in policy


@pytest.mark.parametrize(
    ("redirect_uri", "source"),
    [
        ("https://App.Example/cb?x=1", "'self' https://app.example"),
        ("http://[::1]:8000/cb", "'self' http://[::1]:8000"),
        ("com.example.app:/oauth2redirect", "'self' com.example.app:"),
        ("http://127.0.0.1:99999/cb", "'self'"),  # not a valid port: no origin to add
    ],
)
def test_the_consent_pages_form_action_names_an_origin_or_a_scheme(redirect_uri: str, source: str) -> None:
    sandbox = create_app(clients=[SandboxClient("cid", "csecret", (redirect_uri,))])
    with ServerThread(sandbox) as server, browser_client() as http:
        page = http.get(
            f"{server.url}/oauth/authorize",
            params={"response_type": "code", "client_id": "cid", "redirect_uri": redirect_uri, "scope": "read_teams"},
        )
    assert page.status_code == 200
    assert csp_of(page)["form-action"] == source


def test_redirect_uri_mismatch_page_names_the_uri_received_and_those_registered() -> None:
    registered = ("http://127.0.0.1:8000/oauth/gist/callback", "http://localhost:8000/oauth/gist/callback?a=1&b=2")
    sandbox = create_app(clients=[SandboxClient("cid", "csecret", registered)])
    received = 'http://127.0.0.1:8001/oauth/gist/callback?<script>alert("x")</script>'
    with ServerThread(sandbox) as server, browser_client() as http:
        page = http.get(
            f"{server.url}/oauth/authorize",
            params={"response_type": "code", "client_id": "cid", "redirect_uri": received, "scope": "read_teams"},
        )
    assert page.status_code == 400 and "location" not in page.headers
    assert "<script>" not in page.text
    assert (
        '<code id="received">http://127.0.0.1:8001/oauth/gist/callback?&lt;script&gt;alert(&quot;x&quot;)'
        "&lt;/script&gt;</code>" in page.text
    )
    assert "<li><code>http://127.0.0.1:8000/oauth/gist/callback</code></li>" in page.text
    assert "<li><code>http://localhost:8000/oauth/gist/callback?a=1&amp;b=2</code></li>" in page.text


def test_approve_redirects_with_code_and_state(served: Served) -> None:
    blob, csrf = served.consent(state="xyz")
    answer = served.http.post(
        f"{served.url}/oauth/authorize", data={"request": blob, "csrf_token": csrf, "decision": "approve"}
    )
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?")
    assert query_of(location)["state"] == "xyz"
    assert query_of(location)["code"]
    assert query_of(location)["iss"] == served.url  # RFC 9207


def test_deny_redirects_with_access_denied(served: Served) -> None:
    blob, csrf = served.consent(state="xyz")
    answer = served.http.post(
        f"{served.url}/oauth/authorize", data={"request": blob, "csrf_token": csrf, "decision": "deny"}
    )
    assert query_of(answer.headers["location"]) == {"error": "access_denied", "state": "xyz", "iss": served.url}


def test_consent_post_without_the_csrf_cookie_is_refused(served: Served) -> None:
    blob, csrf = served.consent()
    with browser_client() as other_site:  # no cookie: a cross-site post
        answer = other_site.post(
            f"{served.url}/oauth/authorize", data={"request": blob, "csrf_token": csrf, "decision": "approve"}
        )
    assert answer.status_code == 403
    assert "location" not in answer.headers


def test_consent_post_from_another_origin_is_refused(served: Served) -> None:
    blob, csrf = served.consent()
    answer = served.http.post(
        f"{served.url}/oauth/authorize",
        data={"request": blob, "csrf_token": csrf, "decision": "approve"},
        headers={"origin": "https://evil.example"},
    )
    assert answer.status_code == 403


def test_consent_post_with_a_forged_request_is_refused(served: Served) -> None:
    _, csrf = served.consent()
    answer = served.http.post(
        f"{served.url}/oauth/authorize", data={"request": "forged", "csrf_token": csrf, "decision": "approve"}
    )
    assert answer.status_code == 400
    assert "location" not in answer.headers


@pytest.mark.parametrize(
    "overrides",
    [
        {"client_id": "unknown"},
        {"redirect_uri": "http://127.0.0.1:9/oauth/gist/callback/"},
        {"redirect_uri": "https://evil.example/cb"},
        {"redirect_uri": None},
    ],
)
def test_an_unknown_client_or_redirect_uri_gets_an_error_page_never_a_redirect(
    served: Served, overrides: dict[str, str]
) -> None:
    page = served.http.get(f"{served.url}/oauth/authorize", params=served.authorize_params(**overrides))
    assert page.status_code == 400
    assert "location" not in page.headers
    assert "<h1>" in page.text


def test_auto_approve_skips_the_consent_page() -> None:
    sandbox = create_app(clients=[SandboxClient("cid", "csecret", (REDIRECT,))], auto_approve=True)
    with ServerThread(sandbox) as server, browser_client() as http:
        answer = http.get(
            f"{server.url}/oauth/authorize",
            params={
                "response_type": "code",
                "client_id": "cid",
                "redirect_uri": REDIRECT,
                "scope": "read_teams",
            },
        )
    assert answer.status_code == 302
    assert "code" in query_of(answer.headers["location"])


# --- Gist-initiated installs -------------------------------------------------------------------------


def install_page(served: Served, scope: str = "read_teammates read_teams") -> httpx2.Response:
    return served.http.get(f"{served.url}/install", params={"client_id": "cid", "scope": scope})


def form_fields(page: httpx2.Response) -> tuple[str, str]:
    blob = page.text.split('name="request" value="')[1].split('"')[0]
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    return blob, csrf


def test_an_install_asks_the_admin_naming_the_app_the_workspace_and_the_scopes(served: Served) -> None:
    page = install_page(served)
    assert page.status_code == 200
    assert "location" not in page.headers  # no code before the admin approves
    assert "<h1>Install Acme CRM sync</h1>" in page.text
    assert served.sandbox.workspace.name in page.text
    assert "List and view teammates" in page.text and "List and view teams" in page.text
    assert 'action="/install"' in page.text and ">Approve<" in page.text and ">Deny<" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    policy = csp_of(page)
    assert policy["form-action"] == "'self' http://127.0.0.1:9"
    assert policy["frame-ancestors"] == "'none'" and policy["default-src"] == "'none'" and "script-src" not in policy
    assert "path=/install" in page.headers["set-cookie"].lower()


def test_an_approved_install_sends_a_code_and_the_workspace_id_to_the_apps_redirect_uri(served: Served) -> None:
    blob, csrf = form_fields(install_page(served))
    answer = served.http.post(
        f"{served.url}/install", data={"request": blob, "csrf_token": csrf, "decision": "approve"}
    )
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?")
    assert query_of(location)["state"] == str(served.sandbox.workspace.id)
    token = served.exchange(query_of(location)["code"]).json()["access_token"]
    headers = {"authorization": f"Bearer {token}"}
    assert served.http.get(f"{served.url}/teams", headers=headers).status_code == 200  # the scopes approved
    assert served.http.get(f"{served.url}/tags", headers=headers).status_code == 403


def test_a_declined_install_stays_in_gist_and_sends_the_app_nothing(served: Served) -> None:
    blob, csrf = form_fields(install_page(served))
    answer = served.http.post(f"{served.url}/install", data={"request": blob, "csrf_token": csrf, "decision": "deny"})
    assert answer.status_code == 200
    assert "location" not in answer.headers
    assert "<h1>Installation cancelled</h1>" in answer.text
    assert served.sandbox.token_requests == [] and served.sandbox.tokens_issued == 0


def test_an_install_decision_without_the_csrf_cookie_or_from_another_origin_is_refused(served: Served) -> None:
    blob, csrf = form_fields(install_page(served))
    with browser_client() as other_site:  # no cookie: a cross-site post
        answer = other_site.post(
            f"{served.url}/install", data={"request": blob, "csrf_token": csrf, "decision": "approve"}
        )
    assert answer.status_code == 403 and "location" not in answer.headers
    answer = served.http.post(
        f"{served.url}/install",
        data={"request": blob, "csrf_token": csrf, "decision": "approve"},
        headers={"origin": "https://evil.example"},
    )
    assert answer.status_code == 403 and "location" not in answer.headers


def test_a_login_consent_cannot_be_posted_as_an_install_nor_the_reverse(served: Served) -> None:
    login_blob, login_csrf = served.consent()
    install_blob, install_csrf = form_fields(install_page(served))
    as_install = served.http.post(
        f"{served.url}/install", data={"request": login_blob, "csrf_token": install_csrf, "decision": "approve"}
    )
    as_login = served.http.post(
        f"{served.url}/oauth/authorize",
        data={"request": install_blob, "csrf_token": login_csrf, "decision": "approve"},
    )
    for answer in (as_install, as_login):
        assert answer.status_code == 400 and "location" not in answer.headers
        assert "Consent expired" in answer.text


def test_an_install_of_an_unknown_app_or_scope_gets_an_error_page(served: Served) -> None:
    unknown_app = served.http.get(f"{served.url}/install", params={"client_id": "nobody"})
    unknown_scope = install_page(served, scope="read_contacts")
    for page in (unknown_app, unknown_scope):
        assert page.status_code == 400 and "location" not in page.headers and "<form" not in page.text


def test_auto_approve_skips_the_install_consent_page() -> None:
    sandbox = create_app(clients=[SandboxClient("cid", "csecret", (REDIRECT,))], auto_approve=True)
    with ServerThread(sandbox) as server, browser_client() as http:
        answer = http.get(sandbox.install_url(server.url, "cid"))
    assert answer.status_code == 302
    assert query_of(answer.headers["location"])["state"] == str(sandbox.workspace.id)
    assert query_of(answer.headers["location"])["code"]


# --- token endpoint ----------------------------------------------------------------------------------


def test_token_response_is_access_token_alone(served: Served) -> None:
    answer = served.exchange(served.code())
    assert answer.status_code == 200
    assert list(answer.json()) == ["access_token"]
    assert answer.headers["cache-control"] == "no-store"


def test_token_endpoint_accepts_a_json_body(served: Served) -> None:
    code = served.code()
    answer = served.http.post(
        f"{served.url}/oauth/token",
        json={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": "cid",
            "client_secret": "csecret",
        },
    )
    assert answer.status_code == 200
    assert answer.json()["access_token"]


def test_http_basic_client_auth_is_refused(served: Served) -> None:
    code = served.code()
    answer = served.http.post(
        f"{served.url}/oauth/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        auth=("cid", "csecret"),
    )
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"
    # RFC 6749 section 5.2: the scheme the client tried, named in the challenge.
    assert answer.headers["www-authenticate"] == 'Basic realm="Gist sandbox", charset="UTF-8"'


def test_wrong_secret_is_invalid_client(served: Served) -> None:
    # Credentials in the body are no HTTP authentication: a 400, as a 401 must name a scheme (RFC 9110 15.5.2).
    answer = served.exchange(served.code(), client_secret="nope")
    assert answer.status_code == 400 and "www-authenticate" not in answer.headers
    assert answer.json()["error"] == "invalid_client"
    assert "csecret" not in answer.text and "nope" not in answer.text


def test_a_code_works_once_and_its_replay_revokes_the_token(served: Served) -> None:
    code = served.code()
    token = served.exchange(code).json()["access_token"]
    assert served.http.get(f"{served.url}/teammates", headers={"authorization": f"Bearer {token}"}).status_code == 200
    again = served.exchange(code)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert served.http.get(f"{served.url}/teammates", headers={"authorization": f"Bearer {token}"}).status_code == 401


def test_a_code_expires_after_ten_minutes(served: Served) -> None:
    code = served.code()
    served.clock.now += 601
    assert served.exchange(code).json()["error"] == "invalid_grant"


def test_redirect_uri_must_equal_the_authorized_one(served: Served) -> None:
    assert served.exchange(served.code(), redirect_uri="http://127.0.0.1:9/other").json()["error"] == "invalid_grant"
    assert served.exchange(served.code(), redirect_uri=None).json()["error"] == "invalid_request"  # missing


def test_unsupported_grant_type(served: Served) -> None:
    answer = served.exchange(served.code(), grant_type="client_credentials")
    assert answer.json()["error"] == "unsupported_grant_type"


def test_pkce_is_verified_when_a_challenge_was_sent(served: Served) -> None:
    verifier = "v" * 43
    code = served.code(code_challenge=s256(verifier), code_challenge_method="S256")
    assert served.exchange(code, code_verifier="w" * 43).json()["error"] == "invalid_grant"
    code = served.code(code_challenge=s256(verifier), code_challenge_method="S256")
    assert served.exchange(code).json()["error"] == "invalid_grant"  # no verifier at all
    code = served.code(code_challenge=s256(verifier), code_challenge_method="S256")
    assert served.exchange(code, code_verifier=verifier).status_code == 200


def test_token_requests_are_counted_without_secrets(served: Served) -> None:
    served.exchange(served.code())
    served.exchange("bogus")
    records = served.sandbox.token_requests
    assert [(r.status, r.error) for r in records] == [(200, None), (400, "invalid_grant")]
    assert "csecret" not in repr(records)


# --- REST API ----------------------------------------------------------------------------------------


def test_teammates_with_gist_wrapping_and_fields(served: Served) -> None:
    token = served.exchange(served.code()).json()["access_token"]
    headers = {"authorization": f"Bearer {token}"}
    teammates = served.http.get(f"{served.url}/teammates", headers=headers).json()["teammates"]
    assert len(teammates) == 3
    assert set(teammates[0]) >= {
        "id",
        "name",
        "email",
        "avatar",
        "agent_status",
        "team_ids",
        "has_inbox_seat",
    }
    one = served.http.get(f"{served.url}/teammates/{teammates[1]['id']}", headers=headers).json()
    assert one == {"teammate": teammates[1]}
    assert served.http.get(f"{served.url}/teammates/424242", headers=headers).status_code == 404


def test_token_info_names_the_workspace(served: Served) -> None:
    token = served.exchange(served.code()).json()["access_token"]
    for path in ("/token", "/token/info"):
        info = served.http.get(f"{served.url}{path}", headers={"authorization": f"Bearer {token}"}).json()
        assert info["workspace_id"] == served.sandbox.workspace.id
        assert info["workspace_name"] == served.sandbox.workspace.name


@pytest.mark.parametrize(
    ("header", "challenge"),
    [
        (None, 'Bearer realm="Gist sandbox"'),
        ("Bearer", 'Bearer realm="Gist sandbox"'),
        ("Basic Y2lkOmNzZWNyZXQ=", 'Bearer realm="Gist sandbox"'),
        (
            "Bearer unknown-token",
            'Bearer realm="Gist sandbox", error="invalid_token", '
            'error_description="The access token is unknown, revoked or expired"',
        ),
    ],
)
def test_missing_or_unknown_bearer_gets_401_json_and_a_bearer_challenge(
    served: Served, header: str | None, challenge: str
) -> None:
    # RFC 6750 section 3: every 401 names the Bearer scheme; an error code only when a token was sent.
    headers = {"authorization": header} if header else {}
    answer = served.http.get(f"{served.url}/teammates", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["errors"][0]["code"] == "unauthorized"
    assert answer.headers["www-authenticate"] == challenge


def test_token_without_read_teammates_gets_403(served: Served) -> None:
    token = served.exchange(served.code(scope="read_teams")).json()["access_token"]
    answer = served.http.get(f"{served.url}/teammates", headers={"authorization": f"Bearer {token}"})
    assert answer.status_code == 403
    assert "read_teammates" in answer.json()["errors"][0]["message"]
    challenge = 'Bearer realm="Gist sandbox", error="insufficient_scope", scope="read_teammates"'
    assert answer.headers["www-authenticate"] == challenge


def test_revoked_token_gets_401(served: Served) -> None:
    token = served.sandbox.issue_token("cid")["access_token"]
    headers = {"authorization": f"Bearer {token}"}
    assert served.http.get(f"{served.url}/teammates", headers=headers).status_code == 200
    served.sandbox.revoke(token)
    revoked = served.http.get(f"{served.url}/teammates", headers=headers)
    assert revoked.status_code == 401 and 'error="invalid_token"' in revoked.headers["www-authenticate"]


def test_custom_scopes_are_accepted_when_the_catalogue_has_them() -> None:
    from gist_authlib import GistProvider

    provider = GistProvider().with_scopes({"read_campaigns": "List campaigns"})
    sandbox = create_app(clients=[SandboxClient("cid", "csecret", (REDIRECT,))], scopes=provider.scopes)
    with ServerThread(sandbox) as server, browser_client() as http:
        page = http.get(
            f"{server.url}/oauth/authorize",
            params={
                "response_type": "code",
                "client_id": "cid",
                "redirect_uri": REDIRECT,
                "scope": "read_campaigns",
            },
        )
    assert page.status_code == 200
    assert "List campaigns" in page.text


def test_the_server_thread_serves_https_with_a_given_certificate(tmp_path: Path) -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)
    sandbox = create_app()
    server = ServerThread(ssl_certfile=str(tmp_path / "cert.pem"), ssl_keyfile=str(tmp_path / "key.pem"))
    assert server.url.startswith("https://127.0.0.1:")
    with server.start(sandbox), httpx2.Client(verify=trusted, trust_env=False) as http:
        assert http.get(server.url + "/").status_code == 200
        with pytest.raises(httpx2.ConnectError):  # a client that does not trust the CA refuses it
            httpx2.get(server.url + "/", trust_env=False)


def test_stopping_the_server_thread_closes_idle_keep_alive_connections_and_refuses_new_ones() -> None:
    server = ServerThread(create_app()).start()
    with browser_client() as http:
        assert http.get(server.url + "/").status_code == 200  # the connection stays open (keep-alive)
        server.stop()
        assert server._thread is not None and not server._thread.is_alive()
        with pytest.raises(httpx2.TransportError):  # the kept connection was closed, and nothing listens
            http.get(server.url + "/")


def stop_during_a_request(server: ServerThread, started: threading.Event) -> list[tuple[int, str]]:
    """Request ``/`` in a thread, stop the server once the app says the request has ``started`` (an Event), and
    return what the request got back."""
    answers: list[httpx2.Response] = []
    with browser_client(timeout=10) as http:
        request = threading.Thread(target=lambda: answers.append(http.get(server.url + "/")))
        request.start()
        assert started.wait(10)
        server.stop()
        request.join(10)
    return [(a.status_code, a.text) for a in answers]


def test_a_request_running_when_the_server_thread_stops_still_gets_its_response() -> None:
    import asyncio

    started = threading.Event()
    server = ServerThread()

    async def slow(scope: dict[str, object], receive: object, send: object) -> None:
        started.set()
        while not server._server.should_exit:  # answer only once the stop has begun
            await asyncio.sleep(0.001)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"finished"})

    server.start(slow)
    assert stop_during_a_request(server, started) == [(200, "finished")]
    assert not server._thread.is_alive()


def test_with_lifespan_the_server_thread_runs_the_apps_startup_and_shutdown() -> None:
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette

    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    quiet = ServerThread(Starlette(lifespan=lifespan)).start()  # off by default: any ASGI callable can be served
    quiet.stop()
    assert events == []
    server = ServerThread(Starlette(lifespan=lifespan), lifespan=True).start()
    assert events == ["startup"]
    server.stop()  # a forced stop, which uvicorn would end without the app's shutdown
    assert events == ["startup", "shutdown"]

    @asynccontextmanager
    async def failing(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield

    refused = ServerThread(Starlette(lifespan=failing), lifespan=True)
    with pytest.raises(RuntimeError, match="lifespan startup failed"):
        refused.start()
    assert refused._socket.fileno() == -1  # closed, not left to the garbage collector


def test_with_lifespan_a_request_still_running_is_answered_before_the_apps_shutdown() -> None:
    import asyncio
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    events: list[str] = []
    started = threading.Event()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        events.append("shutdown")

    async def slow(request: Request) -> PlainTextResponse:
        started.set()
        await asyncio.sleep(0.3)  # still running when the stop begins
        events.append("answered")
        return PlainTextResponse("finished")

    server = ServerThread(Starlette(routes=[Route("/", slow)], lifespan=lifespan), lifespan=True).start()
    assert stop_during_a_request(server, started) == [(200, "finished")]
    assert events == ["answered", "shutdown"]  # what the request used was still open while it ran


def test_a_client_hanging_up_mid_token_request_is_answered_quietly_and_changes_nothing() -> None:
    # A token request that timed out on the client's side: half its body, then the client is gone. Starlette
    # raises ClientDisconnect; the sandbox answers nobody and logs no "Exception in ASGI application".
    sandbox = create_app(clients=[SandboxClient("hang-id", "hang-secret", ["https://app.example/cb"])])
    sent = hang_up(sandbox, "/oauth/token", {"content-type": "application/x-www-form-urlencoded"})
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 400
    assert sandbox.token_requests == [] and sandbox.tokens_issued == 0
