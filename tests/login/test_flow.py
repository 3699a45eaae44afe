"""The framework-free login rules (the login core's callback checks, over pending logins kept in a plain dict
session as ``save_authorize_data`` keeps them), with a fake clock."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.web import query_of

from gist_authlib import GistProvider
from gist_authlib._flow import check_token_response, safe_next_path
from gist_authlib._login import Grant, Registration, authorization, check_callback, remember
from gist_authlib._pending import COOKIE_BUDGET, Pending, PendingLogins
from gist_authlib.errors import (
    AccessDeniedError,
    AuthorizationError,
    LoginError,
    StateError,
    UnknownStateError,
)

SECRET = "client-secret-for-tests"
REDIRECT = "https://app.example/oauth/gist/callback"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Flow:
    """One registration's login rules as these tests drive them: start a login into a session, finish it."""

    def __init__(
        self,
        name: str,
        *,
        state_ttl: float = 600.0,
        max_pending: int = 8,
        pkce: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        provider = GistProvider()
        self.reg = Registration(
            name=name,
            client_id="cid",
            client_secret=SECRET,
            provider=provider,
            scopes=("read_teammates", "read_teams"),
            authorize_url=provider.authorize_url,
            token_url=provider.access_token_url,
            api_base_url=provider.api_base_url,
            state_ttl=state_ttl,
            max_pending=max_pending,
            pkce=pkce,
            clock=clock,
        )
        self.session_key = self.reg.cookie.session_key

    def start(self, session: dict[str, Any], next_path: str | None = None) -> Any:
        data = authorization(self.reg, REDIRECT, {"next": next_path})
        remember(self.reg, session, data)
        return type("Started", (), {"url": data["url"], "state": data["state"]})

    def finish(self, session: dict[str, Any], query: list[tuple[str, str]]) -> Grant:
        params: dict[str, list[str]] = {}
        for key, value in query:
            params.setdefault(key, []).append(value)
        kept = self.reg.cookie.load_session(session)
        try:
            no_cookie = PendingLogins("absent", "no-cookie-browser")
            return check_callback(self.reg, [no_cookie, kept], params, redirect_uri=REDIRECT, installs=False)
        finally:
            if kept.changed:
                self.reg.cookie.save_session(kept, session)

    def pending_count(self, session: dict[str, Any]) -> int:
        return len(self.reg.cookie.load_session(session).pending)


def start(flow: Flow, session: dict[str, Any], **kwargs: Any) -> dict[str, str]:
    request = flow.start(session, **kwargs)
    params = query_of(request.url)
    assert params["state"] == request.state
    return params


def finish(flow: Flow, session: dict[str, Any], query: list[tuple[str, str]]) -> Any:
    return flow.finish(session, query)


def test_start_builds_the_authorize_url() -> None:
    params = start(Flow("gist"), {})
    assert params["response_type"] == "code"
    assert params["client_id"] == "cid"
    assert params["scope"] == "read_teammates read_teams"
    assert params["redirect_uri"] == REDIRECT


def test_states_are_long_random_and_unique() -> None:
    flow = Flow("gist", max_pending=100)
    session: dict[str, Any] = {}
    states = {start(flow, session)["state"] for _ in range(50)}
    assert len(states) == 50
    assert all(len(s) >= 43 for s in states)  # 256 bits, base64url


def test_pkce_challenge_matches_the_verifier_sent_with_the_code() -> None:
    flow = Flow("gist")
    session: dict[str, Any] = {}
    params = start(flow, session)
    grant = finish(flow, session, [("code", "abc"), ("state", params["state"])])
    assert grant.code_verifier is not None and len(grant.code_verifier) >= 43
    digest = hashlib.sha256(grant.code_verifier.encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == params["code_challenge"]
    assert params["code_challenge_method"] == "S256"
    assert grant.token_params() == {
        "code": "abc",
        "redirect_uri": REDIRECT,
        "code_verifier": grant.code_verifier,
    }


def test_the_session_never_holds_the_verifier_or_anything_secret() -> None:
    flow = Flow("gist")
    session: dict[str, Any] = {}
    params = start(flow, session)
    grant = finish(flow, session, [("code", "abc"), ("state", params["state"])])
    stored = json.dumps(session)
    assert grant.code_verifier not in stored
    assert SECRET not in stored
    assert "abc" not in stored


def test_pkce_can_be_turned_off() -> None:
    flow = Flow("gist", pkce=False)
    session: dict[str, Any] = {}
    params = start(flow, session)
    assert "code_challenge" not in params
    assert finish(flow, session, [("code", "abc"), ("state", params["state"])]).code_verifier is None


def test_state_is_single_use_and_a_replay_is_named_as_such() -> None:
    flow = Flow("gist")
    session: dict[str, Any] = {}
    state = start(flow, session)["state"]
    finish(flow, session, [("code", "abc"), ("state", state)])
    with pytest.raises(StateError):
        finish(flow, session, [("code", "abc"), ("state", state)])


def test_state_expires() -> None:
    clock = Clock()
    flow = Flow("gist", state_ttl=600, clock=clock)
    session: dict[str, Any] = {}
    state = start(flow, session)["state"]
    clock.now += 601
    with pytest.raises(StateError):
        finish(flow, session, [("code", "abc"), ("state", state)])


def test_several_pending_logins_and_the_oldest_is_dropped() -> None:
    clock = Clock()
    flow = Flow("gist", max_pending=8, clock=clock)
    session: dict[str, Any] = {}
    states = []
    for _ in range(9):
        states.append(start(flow, session)["state"])
        clock.now += 1
    assert flow.pending_count(session) == 8
    with pytest.raises(UnknownStateError):
        finish(flow, session, [("code", "c"), ("state", states[0])])
    for state in reversed(states[1:]):
        assert finish(flow, session, [("code", "c"), ("state", state)]).code == "c"


def test_pending_logins_keep_the_login_cookie_within_its_budget() -> None:
    flow = Flow("gist", max_pending=10)
    logins = PendingLogins("ok", "browser-id-1234")
    for n in range(20):
        logins.add(f"state-{n:02d}" + "s" * 60, Pending(time.time() + 600, "/" + "n" * 500 + str(n), REDIRECT), 10)
    cookie = flow.reg.cookie.save(logins, SECRET)
    assert len(cookie.value) <= COOKIE_BUDGET
    assert len(logins.pending) == 10  # every pending login stays: their next paths went first


def test_registrations_keep_separate_state() -> None:
    session: dict[str, Any] = {}
    state = start(Flow("gist_a"), session)["state"]
    with pytest.raises(UnknownStateError):
        finish(Flow("gist_b"), session, [("code", "c"), ("state", state)])
    assert finish(Flow("gist_a"), session, [("code", "c"), ("state", state)]).code == "c"


def test_error_callbacks_for_a_real_login_are_reported_as_such() -> None:
    flow = Flow("gist")
    session: dict[str, Any] = {}
    state = start(flow, session)["state"]
    with pytest.raises(AccessDeniedError):
        finish(flow, session, [("error", "access_denied"), ("state", state)])
    state = start(flow, session)["state"]
    with pytest.raises(AuthorizationError) as info:
        finish(
            flow,
            session,
            [("error", "invalid_scope"), ("error_description", "<script>x</script>"), ("state", state)],
        )
    assert info.value.error == "invalid_scope"


@pytest.mark.parametrize(
    ("query", "error_type"),
    [
        ([("code", "c")], StateError),
        ([("code", "c"), ("state", "a"), ("state", "b")], StateError),
        ([("code", "c"), ("state", "x" * 5000)], StateError),
        ([("code", "c"), ("state", "forged")], UnknownStateError),
    ],
)
def test_bad_states(query: list[tuple[str, str]], error_type: type) -> None:
    flow = Flow("gist")
    session: dict[str, Any] = {}
    start(flow, session)
    with pytest.raises(error_type):
        finish(flow, session, query)
    assert flow.pending_count(session) == 1  # a forged callback does not consume the real login


@pytest.mark.parametrize("codes", [[], [""], ["a", "b"], ["x" * 5000]])
def test_bad_codes_consume_the_state(codes: list[str]) -> None:
    flow = Flow("gist")
    session: dict[str, Any] = {}
    state = start(flow, session)["state"]
    with pytest.raises(LoginError):
        finish(flow, session, [("state", state), *[("code", c) for c in codes]])
    with pytest.raises(StateError):
        finish(flow, session, [("state", state), ("code", "late")])


def test_a_tampered_session_is_read_as_empty_not_crashed_on() -> None:
    flow = Flow("gist")
    session: dict[str, Any] = {flow.session_key: {"p": {"s": "not-a-list"}, "u": {"d": "x"}}}
    assert flow.pending_count(session) == 0
    with pytest.raises(UnknownStateError):
        finish(flow, session, [("code", "c"), ("state", "s")])


@pytest.mark.parametrize(
    "value",
    [
        "//evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "https://evil.example",
        "http:evil.example",
        "javascript:alert(1)",
        "evil.example",
        "/%2F%2Fevil.example",
        "/%5Cevil.example",
        "/\tevil",
        "/\n/evil.example",
        "/\r\nLocation: https://evil",
        "",
        "/" + "a" * 5000,
        " /path",
    ],
)
def test_unsafe_next_paths_are_refused(value: str) -> None:
    assert safe_next_path(value) is None


@pytest.mark.parametrize("value", ["/", "/dashboard", "/reports?week=48&sort=asc", "/a/b#frag", "/caf%C3%A9"])
def test_same_origin_paths_are_kept(value: str) -> None:
    assert safe_next_path(value) == value


#: The app's origin: a kept next path, resolved against a page of the app, must stay on it.
APP_ORIGIN = "https://app.example"
#: What browsers strip from both ends of a URL (C0 controls and space; the WHATWG URL standard).
C0_AND_SPACE = "".join(map(chr, range(0x21)))
#: How a next path may begin: the shapes a browser or a proxy reads as another origin, and plain ones (each piece
#: below may follow a plain "/" as well).
NEXT_STARTS = [
    "/", "//", "///", "/\\", "\\", "/%2f", "/%5C", "/%252f", "/%09/", "/%0a/", "/\t/", "/\r\n/", "/ /", "/\x00/",
    " /", "\t/", "\x00/", "",
]  # fmt: skip
#: What may follow: hosts, credentials, schemes, separators and their encodings, control and whitespace
#: characters, unicode lookalikes.
NEXT_PIECES = [
    "/", "//", "\\", "%2f", "%2F", "%5c", "%5C", "%252f", "%09", "%0a", "%00", "\t", "\n", "\r", "\x00", "\x0b",
    "\x1f", "\x7f", " ", "\xa0", "\u2028", "\u3000", "\uff0f", "\uff3c", "\u2215", "@", ":", "evil.example",
    "evil.example:443", "user:pw@evil.example", "https:", "http:", "javascript:alert(1)", "data:", ".", "..", "?",
    "#", "&", "é", "\u0130",
]  # fmt: skip
next_paths = st.builds(
    lambda start, pieces: start + "".join(pieces),
    st.sampled_from(NEXT_STARTS),
    st.lists(st.sampled_from(NEXT_PIECES) | st.text(max_size=3), max_size=6),
)


def as_a_browser_reads_it(url: str) -> str:
    """The WHATWG URL parser's view of an http(s) URL's characters: C0 controls and spaces stripped from both ends,
    tabs and newlines removed everywhere, and a backslash read as a slash."""
    return url.strip(C0_AND_SPACE).replace("\t", "").replace("\n", "").replace("\r", "").replace("\\", "/")


def assert_same_origin(path: str) -> None:
    """``path``, read by urllib and as a browser reads it, is a path on the app's own origin."""
    for reading in (path, as_a_browser_reads_it(path)):
        parts = urlsplit(reading)
        assert parts.scheme == "" and parts.netloc == "", reading
        # "//host" names another host (a network-path reference); browsers skip any further slashes ("///host").
        assert reading.startswith("/") and not reading.startswith("//"), reading
        resolved = urlsplit(urljoin(f"{APP_ORIGIN}/some/page", reading))
        assert f"{resolved.scheme}://{resolved.netloc}" == APP_ORIGIN, reading


# About 0.5 s. With any one of safe_next_path's checks on "//", backslashes, control characters, "/%2f" or "%0"
# removed, 10 runs of 10 (--hypothesis-seed=1..10) fail.
@settings(max_examples=300)
@given(next_paths)
def test_any_kept_next_path_is_same_origin(value: str) -> None:
    """Whatever ``safe_next_path`` keeps stays on the app's origin, as urllib and as a browser read it, and still
    after a proxy or a framework decodes it once more (``%2f`` becoming ``/``)."""
    kept = safe_next_path(value)
    if kept is not None:
        assert kept == value
        assert_same_origin(kept)
        assert_same_origin(unquote(kept))


@pytest.mark.parametrize(
    "token",
    [
        None,
        "tok",
        [],
        {},
        {"access_token": None},
        {"access_token": ""},
        {"access_token": 5},
        {"error": "x", "access_token": "a"},
    ],
)
def test_check_token_response_refuses_unusable_tokens(token: Any) -> None:
    from gist_authlib.errors import InvalidTokenResponseError

    with pytest.raises(InvalidTokenResponseError):
        check_token_response(token)


def test_check_token_response_keeps_unknown_fields() -> None:
    token = {"access_token": "abc", "workspace_id": 7}
    assert check_token_response(token) == token


@pytest.mark.parametrize("iss", ["\x80", "https://évil.example", "\ud800"])
def test_a_non_ascii_iss_is_a_mix_up_not_a_crash(iss: str) -> None:
    # Found by the adversarial suite: hmac.compare_digest refuses non-ASCII str, which gave a 500.
    from gist_authlib.errors import MixUpError

    flow = Flow("gist")
    session: dict[str, Any] = {}
    state = start(flow, session)["state"]
    with pytest.raises(MixUpError):
        flow.finish(session, [("state", state), ("code", "c"), ("iss", iss)])


def test_the_right_iss_is_accepted_and_a_missing_one_too() -> None:
    flow = Flow("gist")
    session: dict[str, Any] = {}
    state = start(flow, session)["state"]
    assert flow.reg.issuer == "https://app.getgist.com"
    grant = flow.finish(session, [("state", state), ("code", "c"), ("iss", "https://app.getgist.com")])
    assert grant.code == "c"
    state = start(flow, session)["state"]
    assert flow.finish(session, [("state", state), ("code", "d")]).code == "d"


@pytest.mark.parametrize("code", ["ab\ncd", "\x00", "caf\u00e9", "\ufffd\ufffd"])
def test_codes_outside_vschar_are_refused(code: str) -> None:
    flow = Flow("gist")
    session: dict[str, Any] = {}
    state = start(flow, session)["state"]
    with pytest.raises(LoginError, match="malformed"):
        finish(flow, session, [("state", state), ("code", code)])
