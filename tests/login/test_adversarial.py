"""The adversarial suite: hostile callbacks, malformed token responses and open-redirect payloads against every
framework adapter, with logging at DEBUG, counting what reaches the sandbox and what leaks.

The fixed hostile callbacks go to servers on loopback, through each server's own HTTP parsing (non-UTF-8 bytes,
NUL, CRLF); the random callbacks, the malformed token responses and the redirect payloads reach the same apps
through httpx2's transport seam, in process.

The figures are tallied in ``ADVERSARIAL`` and printed at the end of the run (conftest.py). Every test
asserts its own zeros: token requests sent on bad input, tokens stored from bad input, secrets found in
logs, pages or error texts, and redirects off-site.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote, urlsplit

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.adversarial import ADVERSARIAL
from support.stacks import Stack
from support.web import query_of

from gist_authlib._flow import pkce_verifier
from gist_authlib.tokens import MemoryTokenStore


class Clock:
    """The login flows' time source (the registration's ``clock``): the real time, plus what a test lets pass."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class Watch:
    """One framework's stack, a token store, and everything needed to look for leaks."""

    def __init__(self, stack: Stack, store: MemoryTokenStore, caplog: pytest.LogCaptureFixture) -> None:
        self.stack, self.store, self.caplog = stack, store, caplog
        self.pages: list[str] = []
        self.secrets: set[str] = {stack.client_secret}
        self.states: list[str] = []
        self.clock = Clock()
        for app in stack.apps.values():
            app.gist_registration = replace(app.gist_registration, clock=self.clock)

    def start(self, browser: httpx2.Client, name: str = "gist", **params: str) -> str:
        """Start a real login; return its state (and remember its PKCE verifier as a secret)."""
        state = query_of(self.stack.start_login(browser, name, **params))["state"]
        self.states.append(state)
        app = self.stack.apps[name]
        self.secrets.add(pkce_verifier(app.client_secret, name, state))  # the verifier it will send
        return state

    def stored(self) -> list[str]:
        """The subjects the store holds (a read-only look)."""
        return self.store._all_subjects()

    def login_url(self, browser: httpx2.Client, name: str = "gist", **params: str) -> str:
        """Start a login and get Gist's callback URL for it (its code and verifier are secrets)."""
        authorize = self.stack.start_login(browser, name, **params)
        state = query_of(authorize)["state"]
        self.states.append(state)
        app = self.stack.apps[name]
        self.secrets.add(pkce_verifier(app.client_secret, name, state))
        callback = self.stack.authorize(browser, authorize)
        self.secrets.add(query_of(callback)["code"])
        return callback

    def send(self, browser: httpx2.Client, url: str) -> httpx2.Response:
        response = browser.get(url)
        self.pages.append(response.text)
        return response

    def leaks(self) -> int:
        """How many secrets appear in what the servers logged, the pages served, or the errors raised."""
        server_logs = [r.getMessage() for r in self.caplog.records if r.threadName != "MainThread"]
        haystack = "\n".join(server_logs + self.pages + [f"{e} {e!r}" for e in self.stack.errors])
        for token in self.stack.tokens:
            self.secrets.add(token["access_token"])
        return sum(1 for secret in self.secrets if secret and secret in haystack)


def _watch(make_stack: Any, route: str, caplog: pytest.LogCaptureFixture, wire: str) -> Watch:
    caplog.set_level(logging.DEBUG)
    store = MemoryTokenStore()
    stack: Stack = make_stack(
        route, register_kwargs={"token_store": store, "state_ttl": 2.0}, redirect_after_login=True, wire=wire
    )
    return Watch(stack, store, caplog)


@pytest.fixture
def watch(make_stack: Any, route: str, caplog: pytest.LogCaptureFixture) -> Watch:
    """A stack reached through httpx2's transport seam, in process (the browser's requests and the app's)."""
    return _watch(make_stack, route, caplog, "memory")


@pytest.fixture
def watch_socket(make_stack: Any, route: str, caplog: pytest.LogCaptureFixture) -> Watch:
    """A stack served on loopback: the hostile callbacks go through each server's own HTTP parsing."""
    return _watch(make_stack, route, caplog, "socket")


def _off_site(response: httpx2.Response, app_url: str) -> bool:
    location = response.headers.get("location")
    if location is None:
        return False
    parts = urlsplit(location)
    if parts.scheme or parts.netloc or location.startswith(("//", "/\\", "\\")):
        return not location.startswith(app_url + "/")
    return False


# --- hostile callbacks --------------------------------------------------------------------------------


def hostile_callbacks(watch: Watch, browser: httpx2.Client) -> Iterator[tuple[str, str]]:
    """(label, query string) pairs; those that need it use a real pending login of this browser."""
    sandbox = watch.stack.sandbox_url

    def real() -> str:
        return watch.start(browser)

    yield "no parameters", ""
    yield "code only", "code=abc"
    yield "empty state", "code=abc&state="
    yield "forged state", "code=abc&state=forged-state-value"
    with watch.stack.browser() as other:
        yield "state of another browser", f"code=abc&state={watch.start(other)}"
    s = real()
    yield "duplicated state", f"code=abc&state={s}&state={s}"
    yield "duplicated state, one forged", f"state=forged&state={real()}&code=abc"
    yield "duplicated code", f"state={real()}&code=a&code=b"
    yield "oversized state", "code=abc&state=" + "A" * 20000
    yield "oversized code", f"state={real()}&code=" + "c" * 20000
    yield "non-UTF-8 state", "state=%ff%fe%fd&code=abc"
    yield "non-UTF-8 code", f"state={real()}&code=%ff%fe"
    yield "NUL in state", "state=ab%00cd&code=abc"
    yield "CRLF in state", "state=a%0d%0aSet-Cookie:%20x=1&code=abc"
    yield "control character in code", f"state={real()}&code=ab%0acd"
    yield "foreign iss", f"state={real()}&code=abc&iss=https://evil.example"
    yield "duplicated iss", f"state={real()}&code=abc&iss={quote(sandbox)}&iss={quote(sandbox)}"
    yield "foreign iss, no state", "iss=https://evil.example&code=abc"
    yield (
        "script in error_description",
        f"state={real()}&error=access_denied&error_description=%3Cscript%3Ealert(1)%3C/script%3E",
    )
    yield "script in error", f"state={real()}&error=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E"
    yield "error without state", "error=access_denied"
    yield "error and code together", f"state={real()}&error=server_error&code=abc"
    yield "HTML in state", "state=%3Cscript%3Ex%3C/script%3E&code=abc"
    yield "unicode state", "state=%E2%80%AEabc&code=abc"
    yield "array-style names", "state[]=x&code[]=y"
    yield "100 junk parameters", "&".join(f"p{i}=v" for i in range(100)) + f"&state={real()}&code="
    yield "state with a suffix", f"state={real()}x&code=abc"
    with watch.stack.browser():
        yield "state of the other registration", f"code=abc&state={watch.start(browser, 'gist_b')}"
    expiring = real()
    watch.clock.offset += 2.1  # the 2-second lifetime of a pending login passes
    yield "expired state", f"state={expiring}&code=abc"


def test_hostile_callbacks_send_no_token_request_and_store_nothing(watch_socket: Watch) -> None:
    watch = watch_socket
    stack = watch.stack
    assert stack.wire == "socket"
    tried = sent = stored = off_site = 0
    with stack.browser() as browser:
        # A genuine login first, so that a replay can be tried too.
        good = watch.login_url(browser)
        assert watch.send(browser, good).status_code == 303
        baseline, stored_before = len(stack.sandbox.token_requests), len(watch.stored())
        # The genuine callback once more: from this browser, its own completed login, on to its next page (the
        # routes) or the error named (hand-written routes); from another browser, refused.
        again = watch.send(browser, good)
        if stack.framework.endswith("+authlib"):
            assert (again.status_code, stack.errors[-1].error_code) == (400, "callback_repeated")
        else:
            assert (again.status_code, again.headers["location"]) == (303, "/")
        with stack.browser() as other:
            replayed = watch.send(other, good)
        assert replayed.status_code == 400 and stack.errors[-1].error_code == "callback_replayed"
        tried += 2
        for label, query in hostile_callbacks(watch, browser):
            response = watch.send(browser, f"{stack.callback_url()}?{query}")
            tried += 1
            assert 400 <= response.status_code < 500, (label, response.status_code, response.text[:300])
            # Quoted text is escaped: no tag of the input survives as markup.
            assert "<script>alert" not in response.text and "<img src=x onerror" not in response.text, label
            off_site += _off_site(response, stack.app_url)
        sent = len(stack.sandbox.token_requests) - baseline
        stored = len(watch.stored()) - stored_before
    leaks = watch.leaks()
    ADVERSARIAL.update(
        callbacks=tried,
        token_requests_on_bad_input=sent,
        tokens_stored_from_bad_input=stored,
        secrets_found=leaks,
        off_site_redirects=off_site,
    )
    assert tried >= 25
    assert (sent, stored, leaks, off_site) == (0, 0, 0, 0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["state", "code", "error", "error_description", "iss", "next", "x"]),
            st.one_of(  # values arrive percent-encoded, as a browser would send them
                st.text(max_size=60).map(lambda text: quote(text, safe="")),
                st.binary(max_size=30).map(lambda raw: "".join(f"%{byte:02x}" for byte in raw)),
            ),
        ),
        max_size=6,
    )
)
def test_random_callbacks_are_refused_without_a_token_request(watch: Watch, pairs: list[tuple[str, str]]) -> None:
    stack = watch.stack
    before = len(stack.sandbox.token_requests)
    query = "&".join(f"{quote(k)}={v}" for k, v in pairs)
    with stack.browser() as browser:
        watch.start(browser)  # a pending login the random callback does not match
        response = watch.send(browser, f"{stack.callback_url()}?{query}")
    ADVERSARIAL.update(callbacks=1)
    assert 400 <= response.status_code < 500
    assert not _off_site(response, stack.app_url)
    assert len(stack.sandbox.token_requests) == before
    assert watch.stored() == []


# --- malformed token responses ------------------------------------------------------------------------

TOKEN_FAULTS: list[tuple[str, dict[str, Any]]] = [
    ("400 invalid_grant", {"status": 400, "body": {"error": "invalid_grant"}}),
    ("401 invalid_client", {"status": 401, "body": {"error": "invalid_client"}}),
    ("500 HTML", {"status": 500, "body": "<html>oops</html>", "content_type": "text/html"}),
    ("502 empty", {"status": 502, "body": b""}),
    ("503 Retry-After", {"status": 503, "body": {"error": "temporarily_unavailable"}}),
    ("302 to another host", {"status": 302, "body": b"", "content_type": "text/plain"}),
    ("200 not JSON", {"status": 200, "body": "access_token=abc", "content_type": "text/plain"}),
    ("200 JSON array", {"status": 200, "body": '["abc"]'}),
    ("200 JSON null", {"status": 200, "body": "null"}),
    ("200 empty object", {"status": 200, "body": {}}),
    ("200 number token", {"status": 200, "body": {"access_token": 12345}}),
    ("200 empty token", {"status": 200, "body": {"access_token": ""}}),
    ("200 token with spaces", {"status": 200, "body": {"access_token": "a b c"}}),
    ("200 mac token type", {"status": 200, "body": {"access_token": "abc", "token_type": "mac"}}),
    ("200 error inside", {"status": 200, "body": {"access_token": "abc", "error": "invalid_grant"}}),
    ("200 oversized token", {"status": 200, "body": {"access_token": "x" * 10000}}),
    ("200 truncated JSON", {"status": 200, "body": '{"access_token": "ab'}),
]


def test_malformed_token_responses_store_nothing_and_are_not_retried(watch: Watch) -> None:
    stack = watch.stack
    for label, fault in TOKEN_FAULTS:
        before = len(stack.sandbox.token_requests)
        stack.sandbox.fail_next_token_request(**fault)
        with stack.browser() as browser:
            response = watch.send(browser, watch.login_url(browser))
        assert response.status_code == 502, (label, response.status_code)
        assert len(stack.sandbox.token_requests) == before + 1, label  # one request: never retried
        ADVERSARIAL.update(token_responses=1)
    assert stack.tokens == [] and watch.stored() == []
    leaks = watch.leaks()
    ADVERSARIAL.update(secrets_found=leaks)
    assert len(TOKEN_FAULTS) >= 13 and leaks == 0


# --- open redirects -----------------------------------------------------------------------------------

REDIRECT_PAYLOADS = [
    "//evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "https://evil.example",
    "http:evil.example",
    "https:/evil.example",
    "%2F%2Fevil.example",
    "/%2F%2Fevil.example",
    "/%5Cevil.example",
    "/\tevil.example",
    "/\n/evil.example",
    "\t//evil.example",
    " //evil.example",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "///evil.example",
    "//evil.example/%2F..",
    "\\/evil.example",
    "/\\/evil.example",
    "//evil%E3%80%82example",
]


def test_open_redirect_payloads_never_leave_the_site(watch: Watch) -> None:
    stack = watch.stack
    off_site = 0
    for payload in [*REDIRECT_PAYLOADS, "/reports?week=48"]:
        with stack.browser() as browser:
            response = watch.send(browser, watch.login_url(browser, next=payload))
        assert response.status_code == 303, (payload, response.status_code)
        location = response.headers["location"]
        off_site += _off_site(response, stack.app_url)
        expected = "/reports?week=48" if payload.startswith("/reports") else "/"
        assert location == expected, (payload, location)
        ADVERSARIAL.update(redirect_payloads=1)
    leaks = watch.leaks()
    ADVERSARIAL.update(off_site_redirects=off_site, secrets_found=leaks)
    assert off_site == 0 and leaks == 0
    assert len(REDIRECT_PAYLOADS) >= 15
