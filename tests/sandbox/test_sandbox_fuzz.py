"""Whatever a client sends the sandbox's authorization and token endpoints, the answer is never a 500: a malformed
request is the client's mistake (a 4xx, or a redirect carrying ``error`` once the app and its redirect URI are known
good), served on loopback over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import quote

import httpx2
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.web import browser_client

from gist_authlib.sandbox import SandboxClient, ServerThread, create_app

REGISTERED = ("http://127.0.0.1:8000/cb", "http://[::1]:8000/cb?x=1", "https://app.example/cb", "com.example.app:/cb")
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    sandbox = create_app(clients=[SandboxClient("cid", "csecret", REGISTERED)])
    with ServerThread(sandbox) as server:
        yield server.url


@pytest.fixture(scope="module")
def http() -> Iterator[httpx2.Client]:
    with browser_client(timeout=10) as client:
        yield client


# A redirect URI: one registered, one a near miss (another port, a bracket left open, a stray character), or any text.
_PIECES = st.sampled_from(
    ["[", "]", "::1", "%", "%zz", "@", ":", "#", "?", " ", "\t", "\\", "..", "\u0000", "é", "99999"]
)
REDIRECT_URIS = st.one_of(
    st.sampled_from(REGISTERED),
    st.builds(
        lambda uri, at, piece: uri[:at] + piece + uri[at:], st.sampled_from(REGISTERED), st.integers(0, 30), _PIECES
    ),
    st.builds(
        "{}://{}{}/{}".format,
        st.sampled_from(["http", "https", "com.example.app", "", "HTTP"]),
        st.sampled_from(["127.0.0.1", "[::1", "::1]", "[::1]", "localhost", "[v1.x]", "[127.0.0.1]", "a@b"]),
        st.sampled_from(["", ":", ":8000", ":0", ":65536", ":-1", ":8000:1", ":١٢"]),
        st.text(max_size=12),
    ),
    st.text(max_size=40),
)
NAMES = st.sampled_from(
    ["response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method", "x"]
)
VALUES = st.one_of(
    st.sampled_from(["code", "cid", "read_teammates read_teams", "S256", "plain", "a" * 43]),
    REDIRECT_URIS,
    st.text(max_size=30),
)
# Parameters as a client sends them, a name sent twice included; the redirect URI and client id usually the app's,
# so that the checks past them are reached.
AUTHORIZE_PARAMS = st.tuples(
    st.fixed_dictionaries({"client_id": st.sampled_from(["cid", "cid", "", "other"]), "redirect_uri": REDIRECT_URIS}),
    st.lists(st.tuples(NAMES, VALUES), max_size=6),
).map(lambda both: [*both[0].items(), *both[1]])


@FUZZ
@given(params=AUTHORIZE_PARAMS)
@example(params=[("client_id", "cid"), ("redirect_uri", "http://[::1/cb")])  # issue 29's 500
@example(params=[("client_id", "cid"), ("redirect_uri", "http://[::1]:8000/cb?x=1"), ("response_type", "code")])
def test_the_authorize_endpoint_never_answers_500(
    sandbox_url: str, http: httpx2.Client, params: list[tuple[str, str]]
) -> None:
    for method in ("GET", "POST"):  # the POST is the consent form's, with none of its fields
        answer = http.request(method, f"{sandbox_url}/oauth/authorize", params=params)
        assert answer.status_code in (200, 302, 400, 403), (method, params, answer.status_code)
        if answer.status_code == 302:  # only ever to a registered redirect URI
            assert answer.headers["location"].startswith(REGISTERED), params


@FUZZ
@given(raw=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=80))
@example(raw="client_id=cid&redirect_uri=http://[::1/cb")
@example(raw="client_id=cid&redirect_uri=%ff%fe&scope=%")
def test_a_raw_query_string_never_gets_a_500(sandbox_url: str, http: httpx2.Client, raw: str) -> None:
    query = quote(raw, safe="=&%[]:/?@+")  # as typed into an address bar: invalid percent-escapes kept
    answer = http.get(f"{sandbox_url}/oauth/authorize?{query}")
    assert answer.status_code in (200, 302, 400), (raw, answer.status_code)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=8,
)
TOKEN_NAMES = st.sampled_from(
    ["grant_type", "client_id", "client_secret", "code", "redirect_uri", "code_verifier", "refresh_token", "x"]
)
TOKEN_VALUES = st.one_of(
    st.sampled_from(["authorization_code", "refresh_token", "cid", "csecret", *REGISTERED, "a" * 43]),
    REDIRECT_URIS,
    st.text(max_size=30),
)
TOKEN_BODIES = st.one_of(
    st.lists(st.tuples(TOKEN_NAMES, TOKEN_VALUES), max_size=8).map(
        lambda pairs: (
            "application/x-www-form-urlencoded",
            "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs).encode(),
        )
    ),
    st.dictionaries(TOKEN_NAMES, st.one_of(TOKEN_VALUES, JSON), max_size=6).map(
        lambda data: ("application/json", json.dumps(data).encode())
    ),
    st.tuples(
        st.sampled_from(
            ["application/json", "application/x-www-form-urlencoded", "text/plain", "", "multipart/form-data"]
        ),
        st.binary(max_size=60),
    ),
)


@FUZZ
@given(body=TOKEN_BODIES, basic=st.booleans())
@example(body=("application/json", b"[" * 100_000), basic=False)  # nested deeper than the JSON parser recurses
@example(
    body=("application/x-www-form-urlencoded", b"client_id=cid&client_secret=csecret&redirect_uri=http://[::1/cb"),
    basic=False,
)
def test_the_token_endpoint_never_answers_500(
    sandbox_url: str, http: httpx2.Client, body: tuple[str, bytes], basic: bool
) -> None:
    content_type, content = body
    headers = {"content-type": content_type} if content_type else {}
    if basic:
        headers["authorization"] = "Basic Y2lkOmNzZWNyZXQ="
    answer = http.post(f"{sandbox_url}/oauth/token", content=content, headers=headers)
    assert answer.status_code in (400, 401), (body, answer.status_code)
    assert "error" in answer.json()


def test_a_redirect_uri_that_is_not_a_uri_cannot_be_registered() -> None:
    for uri in ("http://[::1/cb", "/relative/cb", "http://127.0.0.1:8000/cb#fragment", ""):
        with pytest.raises(ValueError, match="not a redirect URI"):
            SandboxClient("cid", "csecret", (uri,))
