"""The behaviour contract: the same login scenarios against Starlette, FastAPI, Flask and Django.

Every test runs once per route style: the library's routes in each framework and hand-written Authlib routes
(the ``stack`` and ``route`` fixtures in conftest.py). The scenarios reach the app and the sandbox through
httpx2's transport seam, in process (``wire="memory"``: the browser's requests and the app's own token
exchange and API calls alike); a whole login, the token endpoint's timeout and an unreachable token endpoint
run over real sockets on loopback in every route style (``wire="socket"``).
"""

from __future__ import annotations

import contextlib
import html
import logging
from collections.abc import Callable
from typing import Any

import pytest
from support.stacks import Stack
from support.web import query_of

from gist_authlib.errors import (
    AccessDeniedError,
    ConfigurationError,
    InvalidTokenResponseError,
    LoginError,
    MissingCredentialsError,
    StateError,
    TokenEndpointError,
    TokenExchangeError,
    UnknownStateError,
)
from gist_authlib.sandbox import ServerThread


@pytest.fixture
def make_stack(make_stack: Callable[..., Stack]) -> Callable[..., Stack]:
    """In this module a stack is in memory, unless the test asks for sockets (``wire="socket"``)."""
    return lambda *args, **kwargs: make_stack(*args, **{"wire": "memory", **kwargs})


@pytest.mark.parametrize("wire", ["memory", "socket"])
def test_login_hands_token_to_on_login_and_lists_teammates(make_stack: Any, route: str, wire: str) -> None:
    stack: Stack = make_stack(route, wire=wire)
    assert stack.wire == wire
    response = stack.login()
    assert response.status_code == 200
    assert response.json()["teammates"] == [t["name"] for t in stack.sandbox.workspace.teammates]
    assert len(stack.tokens) == 1
    # The token, and who logged in as Authlib's OpenID providers say it (Gist identifies the workspace).
    assert set(stack.tokens[0]) == {"access_token", "userinfo"}
    workspace = stack.sandbox.workspace
    assert stack.tokens[0]["userinfo"] == {
        "sub": str(workspace.id),
        "name": workspace.name,
        "workspace_id": str(workspace.id),
        "workspace_name": workspace.name,
    }
    assert stack.errors == []
    assert [r.status for r in stack.sandbox.token_requests] == [200]


def test_authorize_redirect_carries_gist_parameters(stack: Stack) -> None:
    with stack.browser() as browser:
        url = stack.start_login(browser)
    assert url.startswith(f"{stack.sandbox_url}/oauth/authorize?")
    params = query_of(url)
    assert params["response_type"] == "code"
    assert params["client_id"] == stack.client_id
    assert params["redirect_uri"] == f"{stack.callback_url()}"
    assert params["scope"] == "read_teammates"
    assert len(params["state"]) >= 43
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43


def test_callback_answers_with_no_store_and_no_referrer(stack: Stack) -> None:
    ok = stack.login()
    with stack.browser() as browser:
        failed = browser.get(f"{stack.callback_url()}?code=x&state=y")
    for response in (ok, failed):
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["referrer-policy"] == "no-referrer"


def test_next_path_is_kept_server_side_and_checked(stack: Stack) -> None:
    with stack.browser() as browser:
        callback = stack.authorize(browser, stack.start_login(browser, next="/reports?week=48"))
        assert "next" not in query_of(callback)
        assert browser.get(callback).json()["next"] == "/reports?week=48"
    with stack.browser() as browser:
        callback = stack.authorize(browser, stack.start_login(browser, next="//evil.example/"))
        assert browser.get(callback).json()["next"] == "/"


def test_consent_denied_is_a_typed_error_and_no_token_request(make_stack: Any, route: str) -> None:
    stack: Stack = make_stack(route, auto_approve=False)
    with stack.browser() as browser:
        consent = browser.get(stack.start_login(browser))
        assert consent.status_code == 200
        blob = consent.text.split('name="request" value="')[1].split('"')[0]
        csrf = consent.text.split('name="csrf_token" value="')[1].split('"')[0]
        denied = browser.post(
            f"{stack.sandbox_url}/oauth/authorize",
            data={"request": blob, "csrf_token": csrf, "decision": "deny"},
        )
        assert denied.status_code == 302
        assert query_of(denied.headers["location"])["error"] == "access_denied"
        page = browser.get(denied.headers["location"])
    assert page.status_code == 400
    assert "declined" in page.text
    assert isinstance(stack.errors[0], AccessDeniedError)
    assert stack.sandbox.token_requests == []


def test_user_who_never_comes_back_leaves_nothing_behind(stack: Stack) -> None:
    # The seed's variant of a refusal: Gist never calls back. The pending login simply expires;
    # a later login in the same browser still works.
    with stack.browser() as browser:
        stack.start_login(browser)
        assert browser.get(stack.authorize(browser, stack.start_login(browser))).status_code == 200
    assert len(stack.sandbox.token_requests) == 1


@pytest.mark.parametrize(
    ("query", "error_type"),
    [
        ("code=abc", StateError),
        ("code=abc&state=", StateError),
        ("code=abc&state=never-issued-by-us", UnknownStateError),
        ("error=access_denied&state=forged", UnknownStateError),
        ("", StateError),
    ],
)
def test_bad_state_is_refused_before_any_token_request(stack: Stack, query: str, error_type: type) -> None:
    with stack.browser() as browser:
        stack.start_login(browser)  # the browser has a pending login, just not this one
        response = browser.get(f"{stack.callback_url()}?{query}")
    assert response.status_code == 400
    assert type(stack.errors[0]) is error_type
    assert stack.sandbox.token_requests == []
    assert stack.tokens == []


def test_state_issued_to_another_browser_is_refused(stack: Stack) -> None:
    with stack.browser() as victim, stack.browser() as attacker:
        callback = stack.authorize(attacker, stack.start_login(attacker))
        response = victim.get(callback)
    assert response.status_code == 400
    assert isinstance(stack.errors[0], UnknownStateError)
    assert stack.sandbox.token_requests == []


def test_a_repeated_callback_goes_to_the_next_page_without_a_second_token_request(stack: Stack) -> None:
    with stack.browser() as browser:
        callback = stack.authorize(browser, stack.start_login(browser, next="/after"))
        assert browser.get(callback).status_code == 200
        again = browser.get(callback)  # a refresh, or the back button, after the login completed
    if stack.framework.endswith("+authlib"):
        # authorize_access_token returns a token, so a repeat is an error the app's route handles: it names
        # the cause and carries the login's next page.
        assert again.status_code == 400
        assert (stack.errors[0].error_code, stack.errors[0].next_path) == ("callback_repeated", "/after")
    else:
        assert (again.status_code, again.headers["location"]) == (303, "/after")
        assert stack.errors == []
    assert len(stack.sandbox.token_requests) == 1


def test_a_callback_replayed_by_another_browser_is_refused(stack: Stack) -> None:
    with stack.browser() as browser, stack.browser() as other:
        callback = stack.authorize(browser, stack.start_login(browser))
        assert browser.get(callback).status_code == 200
        replay = other.get(callback)
    assert replay.status_code == 400
    assert stack.errors[0].error_code == "callback_replayed"
    assert len(stack.sandbox.token_requests) == 1


def test_callback_without_code_is_refused(stack: Stack) -> None:
    with stack.browser() as browser:
        state = query_of(stack.start_login(browser))["state"]
        response = browser.get(f"{stack.callback_url()}", params={"state": state})
    assert response.status_code == 400
    assert isinstance(stack.errors[0], LoginError)
    assert stack.sandbox.token_requests == []


def test_two_tabs_finish_in_either_order(stack: Stack) -> None:
    with stack.browser() as browser:
        first = stack.authorize(browser, stack.start_login(browser))
        second = stack.authorize(browser, stack.start_login(browser))
        assert browser.get(second).status_code == 200
        assert browser.get(first).status_code == 200
    assert len(stack.tokens) == 2
    assert stack.tokens[0]["access_token"] != stack.tokens[1]["access_token"]


FAULTS = [
    ({"status": 400, "body": {"error": "invalid_grant"}}, TokenEndpointError, 502),
    ({"status": 401, "body": {"error": "invalid_client"}}, TokenEndpointError, 502),
    ({"status": 500, "body": "<html>oops</html>", "content_type": "text/html"}, TokenEndpointError, 502),
    (
        {"status": 200, "body": "not json at all", "content_type": "text/plain"},
        InvalidTokenResponseError,
        502,
    ),
    ({"status": 200, "body": {"token": "abc"}}, InvalidTokenResponseError, 502),
    ({"status": 200, "body": {"access_token": 12345}}, InvalidTokenResponseError, 502),
    (
        {"status": 200, "body": {"error": "invalid_grant", "access_token": "x"}},
        InvalidTokenResponseError,
        502,
    ),
    ({"status": 200, "body": "[1, 2]"}, InvalidTokenResponseError, 502),
]


@pytest.mark.parametrize(("fault", "error_type", "status"), FAULTS)
def test_token_endpoint_failures_give_a_clear_page(
    stack: Stack, fault: dict[str, Any], error_type: type, status: int
) -> None:
    stack.sandbox.fail_next_token_request(**fault)
    response = stack.login()
    assert response.status_code == status
    assert "<h1>" in response.text
    assert type(stack.errors[0]) is error_type
    assert stack.tokens == []


def test_slow_token_endpoint_times_out_cleanly(make_stack: Any, route: str) -> None:
    stack: Stack = make_stack(route, register_kwargs={"timeout": 0.1}, wire="socket")
    stack.sandbox.fail_next_token_request(status=None, delay=1.0)
    response = stack.login()
    assert response.status_code == 502
    assert isinstance(stack.errors[0], TokenExchangeError)
    assert stack.tokens == []


def test_unreachable_token_endpoint(make_stack: Any, route: str) -> None:
    closed = ServerThread()  # bound, never served, then closed: nothing listens there
    dead_url = f"{closed.url}/oauth/token"
    closed.stop()
    stack: Stack = make_stack(route, register_kwargs={"access_token_url": dead_url}, wire="socket")
    response = stack.login()
    assert response.status_code == 502
    assert isinstance(stack.errors[0], TokenExchangeError)


def test_missing_session_middleware_says_how_to_add_it(make_stack: Any, route: str) -> None:
    stack: Stack = make_stack(route, sessions=False)
    with stack.browser() as browser:
        response = browser.get(f"{stack.app_url}/auth/gist")
    assert response.status_code == 503
    hint = {"flask": "secret_key"}.get(route.split("+")[0], "SessionMiddleware")
    error = stack.errors[0]
    assert isinstance(error, ConfigurationError)
    # The developer's fix is the exception's text (and the log's); the end user reads that the site failed.
    assert hint in str(error) and error.hint is not None and hint in error.hint
    assert hint not in response.text and "This site could not complete the login" in response.text
    assert stack.sandbox.token_requests == []


def test_missing_client_secret_names_the_setting_at_login(make_stack: Any, route: str) -> None:
    stack: Stack = make_stack(route, register_kwargs={"client_secret": None})
    with stack.browser() as browser:
        response = browser.get(f"{stack.app_url}/auth/gist")
    assert response.status_code == 503
    error = stack.errors[0]
    assert isinstance(error, MissingCredentialsError)
    django_setting = 'settings.AUTHLIB_OAUTH_CLIENTS["gist"]["client_secret"]'
    expected = django_setting if route.startswith("django") else "GIST_CLIENT_SECRET"
    assert error.setting == expected
    assert expected in str(error) and html.escape(expected) not in response.text
    assert "This site could not complete the login" in response.text and "Log in again" not in response.text


def test_no_secret_reaches_pages_or_logs(make_stack: Any, route: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    stack: Stack = make_stack(route)
    pages: list[str] = []
    codes: list[str] = []
    with stack.browser() as browser:
        callback = stack.authorize(browser, stack.start_login(browser))
        codes.append(query_of(callback)["code"])
        ok = browser.get(callback)
        pages += [ok.text, browser.get(callback).text]  # success, then the same callback again
        stack.sandbox.fail_next_token_request(status=400, body={"error": "invalid_grant"})
        callback = stack.authorize(browser, stack.start_login(browser))
        codes.append(query_of(callback)["code"])
        pages.append(browser.get(callback).text)
    secrets_seen = [stack.client_secret, stack.tokens[0]["access_token"], *codes]
    # The scripted browser runs in the main thread and logs its own URLs (codes included), as any HTTP
    # client would; what the app and the sandbox log comes from their uvicorn threads.
    server_logs = [r.getMessage() for r in caplog.records if r.threadName != "MainThread"]
    assert any("oauth/token" in line for line in server_logs)  # the capture did see the token request
    text = "".join(server_logs) + "".join(pages) + "".join(str(e) + repr(e) for e in stack.errors)
    assert len(stack.errors) == (2 if stack.framework.endswith("+authlib") else 1)
    for secret in secrets_seen:
        assert secret not in text


def test_two_registrations_in_one_app_keep_their_state_and_tokens_apart(stack: Stack) -> None:
    with stack.browser() as browser:
        a = stack.authorize(browser, stack.start_login(browser, "gist"))
        b = stack.authorize(browser, stack.start_login(browser, "gist_b"))
        # A callback for one registration, delivered to the other's callback URL, is refused...
        crossed = browser.get(stack.callback_url("gist_b"), params=query_of(a))
        assert crossed.status_code == 400
        assert isinstance(stack.errors[0], UnknownStateError)
        assert stack.sandbox.token_requests == []
        # ...and spends neither registration's pending login.
        assert browser.get(b).status_code == 200
        assert browser.get(a).status_code == 200
    assert [name for name, _ in stack.logins] == ["gist_b", "gist"]
    assert stack.logins[0][1]["access_token"] != stack.logins[1][1]["access_token"]
    assert sorted(r.client_id or "" for r in stack.sandbox.token_requests) == sorted(
        [stack.client_id, stack.apps["gist_b"].client_id]
    )


def test_with_a_token_store_the_session_holds_only_a_subject(make_stack: Any, route: str) -> None:
    from gist_authlib.tokens import MemoryTokenStore

    store = MemoryTokenStore()
    stack: Stack = make_stack(route, register_kwargs={"token_store": store})
    with stack.browser() as browser:
        assert browser.get(f"{stack.app_url}/me").status_code == 401
        assert stack.login(browser).status_code == 200
        token = stack.tokens[0]
        record = store.get("gist-user")
        assert record is not None and record.token == token
        assert record.workspace_id == str(stack.sandbox.workspace.id)
        assert record.workspace_name == stack.sandbox.workspace.name
        cookies = " ".join(f"{c.name}={c.value}" for c in browser.cookies.jar)
        assert token["access_token"] not in cookies
        assert token["access_token"] not in _decoded_cookie_text(cookies)
        me = browser.get(f"{stack.app_url}/me")
        assert me.status_code == 200, me.text
        assert me.json() == {
            "subject": "gist-user",
            "teammates": [t["name"] for t in stack.sandbox.workspace.teammates],
        }
        assert browser.get(f"{stack.app_url}/logout").json() == {"subject": "gist-user"}
        assert store.get("gist-user") is None
        assert browser.get(f"{stack.app_url}/me").status_code == 401


def _decoded_cookie_text(cookies: str) -> str:
    """Every base64-looking piece of the cookies, decoded: signed sessions are readable by anyone."""
    import base64
    import re
    import zlib

    text = []
    for piece in re.findall(r"[A-Za-z0-9_\-]{16,}", cookies):
        try:
            raw = base64.urlsafe_b64decode(piece + "=" * (-len(piece) % 4))
        except ValueError:
            continue
        with contextlib.suppress(zlib.error):  # Django compresses its signed cookie
            raw = zlib.decompress(raw)
        text.append(raw.decode("latin-1"))
    return " ".join(text)


def test_gist_initiated_install_is_stored_by_workspace_and_acknowledged(make_stack: Any, framework: str) -> None:
    from gist_authlib.tokens import MemoryTokenStore

    store = MemoryTokenStore()
    stack: Stack = make_stack(framework, register_kwargs={"token_store": store}, accept_installs=True)
    workspace = str(stack.sandbox.workspace.id)
    with stack.browser() as browser:
        callback = browser.get(stack.sandbox.install_url(stack.sandbox_url, stack.client_id)).headers["location"]
        assert query_of(callback)["state"] == workspace  # Gist's way: the state is the workspace id
        done = browser.get(callback)
        assert done.status_code == 303
        assert done.headers["location"] == (
            f"{stack.sandbox_url}/install_success?client_id={stack.client_id}&workspace_id={workspace}"
        )
        assert done.headers["cache-control"] == "no-store"
        assert browser.get(done.headers["location"]).status_code == 200
        # Stored under the workspace, and attached to nobody's session.
        assert browser.get(f"{stack.app_url}/me").status_code == 401
    assert stack.sandbox.installs_acknowledged == [{"client_id": stack.client_id, "workspace_id": workspace}]
    record = store.get(f"workspace:{workspace}")
    assert record is not None and record.workspace_name == stack.sandbox.workspace.name
    assert stack.installs == [(workspace, record.token)]
    assert stack.logins == []


def test_an_install_whose_state_disagrees_with_its_token_is_refused(make_stack: Any, framework: str) -> None:
    from gist_authlib.errors import InstallError
    from gist_authlib.tokens import MemoryTokenStore

    store = MemoryTokenStore()
    stack: Stack = make_stack(framework, register_kwargs={"token_store": store}, accept_installs=True)
    with stack.browser() as browser:
        callback = browser.get(stack.sandbox.install_url(stack.sandbox_url, stack.client_id)).headers["location"]
        forged = {**query_of(callback), "state": "424242"}  # claims another workspace
        response = browser.get(stack.callback_url(), params=forged)
    assert response.status_code == 400  # a forged callback: the user's side (LoginError branch), not Gist's
    assert isinstance(stack.errors[0], InstallError) and stack.errors[0].error_code == "install_failed"
    assert store.get("workspace:424242") is None and store.get(f"workspace:{stack.sandbox.workspace.id}") is None
    assert stack.installs == []


def test_installs_are_refused_with_an_explanation_when_not_enabled(stack: Stack) -> None:
    with stack.browser() as browser:
        callback = browser.get(stack.sandbox.install_url(stack.sandbox_url, stack.client_id)).headers["location"]
        response = browser.get(callback)
    assert response.status_code == 400
    # The end user reads a short sentence; the developer's explanation (how to accept installs) is logged.
    assert "on_install" not in response.text
    assert isinstance(stack.errors[0], UnknownStateError) and stack.errors[0].install_hint
    assert "on_install" in (stack.errors[0].hint or "")
    assert stack.sandbox.token_requests == []


def test_every_refused_callback_writes_one_log_line_with_its_error_code(
    make_stack: Any, route: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Hand-written Authlib routes get the routes' log line too: it is written where the login refuses, once."""
    stack = make_stack(route)
    caplog.set_level(logging.INFO, logger="gist_authlib")
    with stack.browser() as browser, stack.browser() as other:
        callback = stack.authorize(browser, stack.start_login(browser))
        assert browser.get(callback).status_code == 200
        caplog.clear()
        other.get(callback)  # a replay from another browser
        lost = stack.authorize(other, stack.start_login(other))
        other.cookies.clear()  # a login whose cookie does not come back
        other.get(lost)
    failed = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert len(failed) == 2, failed
    assert failed[0].startswith("Gist login 'gist' failed: mismatching_state (callback_replayed)"), failed
    assert failed[1].startswith("Gist login 'gist' failed: mismatching_state (login_cookie_missing)"), failed
