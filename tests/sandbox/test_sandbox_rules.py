"""Where the RFCs are strict, the sandbox is too: repeated and missing parameters, errors sent back to the app,
PKCE misuse, loopback redirect URIs on any port, and refusals that name what fixes them."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from support.sandbox_http import REDIRECT, Served, s256, served_sandbox
from support.web import browser_client, query_of

from gist_authlib.sandbox import SandboxClient, ServerThread, create_app
from gist_authlib.sandbox._rules import description, redirect_uri_matches, secret_digest

VERIFIER = "v" * 43


@pytest.fixture
def served() -> Iterator[Served]:
    with served_sandbox() as served:
        yield served


# --- the authorization endpoint: once the app and its redirect URI are known good, errors go back to the app ----


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"scope": "read_contacts"}, "invalid_scope"),
        ({"scope": ""}, "invalid_scope"),  # sent without a value: as if omitted (RFC 6749 section 3.1)
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": None}, "invalid_request"),
        ({"code_challenge": s256(VERIFIER), "code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": s256(VERIFIER)}, "invalid_request"),  # no method means plain (RFC 7636 section 4.3)
        ({"code_challenge_method": "S256"}, "invalid_request"),
        ({"code_challenge": "too-short", "code_challenge_method": "S256"}, "invalid_request"),
    ],
)
def test_a_bad_request_from_a_known_app_is_sent_back_to_its_redirect_uri_with_the_error_and_state(
    served: Served, overrides: dict[str, str | None], error: str
) -> None:
    answer = served.http.get(f"{served.url}/oauth/authorize", params=served.authorize_params(**overrides))
    assert answer.status_code == 302
    assert answer.headers["location"].startswith(REDIRECT + "?")
    query = query_of(answer.headers["location"])
    assert (query["error"], query["state"], query["iss"]) == (error, "s1", served.url)
    assert query["error_description"] and "code" not in query
    assert served.sandbox.token_requests == [] and served.sandbox.tokens_issued == 0


def test_an_unknown_scope_is_sent_back_as_invalid_scope_naming_the_flag_that_accepts_it(served: Served) -> None:
    answer = served.http.get(
        f"{served.url}/oauth/authorize", params=served.authorize_params(scope="read_teammates read_invoices")
    )
    described = query_of(answer.headers["location"])["error_description"]
    assert "read_invoices" in described and "--scope NAME" in described and "read_teammates" not in described


def test_a_parameter_repeated_at_the_authorization_endpoint_is_invalid_request(served: Served) -> None:
    params = [(k, v) for k, v in served.authorize_params().items()]
    answer = served.http.get(f"{served.url}/oauth/authorize", params=[*params, ("scope", "read_tags")])
    query = query_of(answer.headers["location"])
    assert (query["error"], query["state"]) == ("invalid_request", "s1")
    assert "Sent more than once: scope" in query["error_description"]
    # A repeated state cannot be sent back: which one would it be?
    answer = served.http.get(f"{served.url}/oauth/authorize", params=[*params, ("state", "s2")])
    assert query_of(answer.headers["location"]) == {
        "error": "invalid_request",
        "error_description": "Sent more than once: state (RFC 6749 section 3.1).",
        "iss": served.url,
    }
    # A repeated value that is empty is no repetition: the empty one counts as omitted.
    assert served.http.get(f"{served.url}/oauth/authorize", params=[*params, ("scope", "")]).status_code == 200


@pytest.mark.parametrize("name", ["client_id", "redirect_uri"])
def test_a_repeated_client_id_or_redirect_uri_gets_a_page_never_a_redirect(served: Served, name: str) -> None:
    params = [*served.authorize_params().items(), (name, served.authorize_params()[name])]
    page = served.http.get(f"{served.url}/oauth/authorize", params=params)
    assert page.status_code == 400 and "location" not in page.headers
    assert f"{name} was sent more than once" in page.text


def test_a_redirect_uri_not_registered_is_refused_with_the_flag_that_registers_it(served: Served) -> None:
    received = "http://app.test:5000/oauth/gist/callback?next=/a&b=1"
    page = served.http.get(f"{served.url}/oauth/authorize", params=served.authorize_params(redirect_uri=received))
    assert page.status_code == 400 and "location" not in page.headers
    assert (
        '<code id="fix">--redirect-uri &#x27;http://app.test:5000/oauth/gist/callback?next=/a&amp;b=1&#x27;</code>'
        in (page.text)
    )
    assert "Developer Hub" not in page.text


def test_an_unknown_client_id_is_refused_naming_the_setting_the_flag_and_the_registered_ids(served: Served) -> None:
    page = served.http.get(f"{served.url}/oauth/authorize", params=served.authorize_params(client_id="<mine>"))
    assert page.status_code == 400 and "location" not in page.headers
    assert '<code id="received">&lt;mine&gt;</code>' in page.text and "<code>cid</code>" in page.text
    assert "<code>GIST_CLIENT_ID</code>" in page.text and "--client-id &#x27;&lt;mine&gt;&#x27;" in page.text


# --- loopback redirect URIs on any port (RFC 8252 section 7.3) --------------------------------------------------


@pytest.mark.parametrize(
    ("registered", "received", "matches"),
    [
        ("http://127.0.0.1:8000/cb", "http://127.0.0.1:5000/cb", True),
        ("http://127.0.0.1/cb", "http://127.0.0.1:51234/cb", True),
        ("http://localhost:8000/cb", "http://localhost/cb", True),
        ("http://[::1]:8000/cb?x=1", "http://[::1]:9/cb?x=1", True),
        ("http://127.0.0.2:8000/cb", "http://127.0.0.2:1/cb", True),  # all of 127.0.0.0/8 is loopback
        ("http://127.0.0.1:8000/cb", "http://127.0.0.1:5000/cb/", False),  # the path is exact
        ("http://127.0.0.1:8000/cb", "http://127.0.0.1:5000/cb?x=1", False),  # and the query
        ("http://127.0.0.1:8000/cb", "https://127.0.0.1:5000/cb", False),  # and the scheme
        ("http://127.0.0.1:8000/cb", "http://localhost:8000/cb", False),  # and the host as written
        ("http://localhost:8000/cb", "http://LOCALHOST:8000/cb", False),
        ("http://127.0.0.1:8000/cb", "http://127.0.0.1:05000/cb", False),  # a port as no browser writes it
        ("http://127.0.0.1:8000/cb", "http://127.0.0.1:0/cb", False),
        ("http://127.0.0.1:8000/cb", "http://127.0.0.1:65536/cb", False),
        ("http://127.0.0.1:8000/cb", "http://127.0.0.1:/cb", False),
        ("http://127.0.0.1:8000/cb", "http://user@127.0.0.1:5000/cb", False),
        ("http://127.0.0.1:8000/cb", "http://127.0.0.1:5000/cb#x", False),
        ("http://[::1]:8000/cb", "http://[0:0::1]:5000/cb", False),
        ("https://app.example:8443/cb", "https://app.example:9443/cb", False),  # not loopback: exact
        ("http://10.0.0.1:8000/cb", "http://10.0.0.1:5000/cb", False),
        ("http://localhost.example:8000/cb", "http://localhost.example:5000/cb", False),
    ],
)
def test_a_loopback_redirect_uri_matches_on_any_port_and_nothing_else_loosens(
    registered: str, received: str, matches: bool
) -> None:
    assert redirect_uri_matches(registered, received) is matches
    assert redirect_uri_matches(registered, received, any_loopback_port=False) is (received == registered)


@pytest.mark.parametrize(
    "received",
    [
        "http://127.0.0.1:9/c\tb",  # urlsplit drops TAB, CR and LF anywhere (WHATWG), so the path compares equal
        "http://127.0.0.1:9/cb\n",
        "http://127.0.0.1\t:9/cb",
        "http://127.0.0.1:9/cb?",  # an empty query is not no query (RFC 3986 section 6.2.3)
    ],
)
def test_a_loopback_redirect_uri_may_differ_from_the_registered_one_in_its_port_only(received: str) -> None:
    """RFC 8252 section 7.3 lets the port vary, nothing else; the sandbox then redirects to ``received`` as it
    came (``/c%09b``, ``/cb%0A``, ``/cb??code=``), a URI the app never registered."""
    assert not redirect_uri_matches("http://127.0.0.1:8000/cb", received)


def test_flask_runs_port_logs_in_with_the_default_registration_and_the_exchange_names_that_port() -> None:
    on_5000 = "http://127.0.0.1:5000/oauth/gist/callback"
    sandbox = create_app(clients=[SandboxClient("cid", "csecret", ("http://127.0.0.1:8000/oauth/gist/callback",))])
    strict = create_app(
        clients=[SandboxClient("cid", "csecret", ("http://127.0.0.1:8000/oauth/gist/callback",))],
        any_loopback_port=False,
    )
    params = {"response_type": "code", "client_id": "cid", "redirect_uri": on_5000, "scope": "read_teams"}
    with ServerThread(sandbox) as server, ServerThread(strict) as exact, browser_client() as http:
        consent = http.get(f"{server.url}/oauth/authorize", params=params)
        refused = http.get(f"{exact.url}/oauth/authorize", params=params)
        blob = consent.text.split('name="request" value="')[1].split('"')[0]
        csrf = consent.text.split('name="csrf_token" value="')[1].split('"')[0]
        approved = http.post(
            f"{server.url}/oauth/authorize", data={"request": blob, "csrf_token": csrf, "decision": "approve"}
        )
        code = query_of(approved.headers["location"])["code"]
        form = {"grant_type": "authorization_code", "client_id": "cid", "client_secret": "csecret", "code": code}
        registered = http.post(
            f"{server.url}/oauth/token", data={**form, "redirect_uri": "http://127.0.0.1:8000/oauth/gist/callback"}
        )
        exchanged = http.post(f"{server.url}/oauth/token", data={**form, "redirect_uri": on_5000})
    assert consent.status_code == 200
    assert "form-action 'self' http://127.0.0.1:5000" in consent.headers["content-security-policy"]
    assert approved.headers["location"].startswith(on_5000 + "?")
    # The exchange repeats the redirect URI of the authorization request, port included (RFC 6749 4.1.3).
    assert registered.json()["error"] == "invalid_grant"
    assert exchanged.status_code == 200
    assert refused.status_code == 400 and "and the port too;" in refused.text


# --- the token endpoint ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("repeated", ["code", "client_secret", "grant_type", "redirect_uri"])
def test_a_repeated_token_parameter_is_invalid_request_and_spends_nothing(served: Served, repeated: str) -> None:
    code = served.code()
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": "cid",
        "client_secret": "csecret",
    }
    second = {"code": "another-code", "client_secret": "other"}.get(repeated, form[repeated])
    answer = served.http.post(
        f"{served.url}/oauth/token",
        content=urlencode([*form.items(), (repeated, second)]),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "invalid_request",
        "error_description": f"Sent more than once: {repeated} (RFC 6749 section 3.2).",
    }
    assert served.exchange(code).status_code == 200  # the code was not spent


def test_a_json_body_with_a_repeated_member_is_invalid_request(served: Served) -> None:
    code = served.code()
    # json.dumps cannot repeat a member: the body is written out.
    body = (
        f'{{"grant_type": "authorization_code", "code": "{code}", "code": "x", "redirect_uri": "{REDIRECT}", '
        '"client_id": "cid", "client_secret": "csecret"}'
    )
    answer = served.http.post(f"{served.url}/oauth/token", content=body, headers={"content-type": "application/json"})
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"grant_type=authorization_code", "text/plain"),
        (b'[["grant_type", "authorization_code"]]', "application/json"),
        (b'{"grant_type": "authorization_code", "code": {"nested": 1}}', "application/json"),
        (b"{not json", "application/json"),
        (b"code=\xff", "application/x-www-form-urlencoded"),
    ],
)
def test_a_body_that_is_not_a_form_nor_a_json_object_of_strings_is_invalid_request(
    served: Served, content: bytes, content_type: str
) -> None:
    answer = served.http.post(f"{served.url}/oauth/token", content=content, headers={"content-type": content_type})
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")


@pytest.mark.parametrize("missing", ["code", "redirect_uri", "grant_type"])
def test_a_missing_token_parameter_is_invalid_request_not_invalid_grant(served: Served, missing: str) -> None:
    code = served.code()
    answer = served.exchange(code, **{missing: None})
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")
    assert missing in answer.json()["error_description"]
    assert served.exchange(code).status_code == 200


def test_a_verifier_for_a_code_issued_without_pkce_is_refused(served: Served) -> None:
    # RFC 9700 section 2.1.1: otherwise a code stolen from a login without PKCE could be injected into one with it.
    code = served.code()
    answer = served.exchange(code, code_verifier=VERIFIER)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant")
    assert "no code_challenge" in answer.json()["error_description"]
    assert served.exchange(code, code_verifier="").status_code == 200  # sent without a value: omitted


def test_a_malformed_verifier_is_invalid_request(served: Served) -> None:
    short = "v" * 42  # RFC 7636 section 4.1: 43 characters at least
    code = served.code(code_challenge=s256(short), code_challenge_method="S256")
    answer = served.exchange(code, code_verifier=short)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")


def test_a_replaced_secret_is_told_apart_from_a_wrong_one_and_neither_is_shown() -> None:
    retired = "the-secret-before-restart"
    client = SandboxClient("cid", "the-secret-now", (REDIRECT,), retired_secret_digests=(secret_digest(retired),))
    with ServerThread(create_app(clients=[client])) as server, browser_client() as http:
        form = {"grant_type": "authorization_code", "code": "c", "redirect_uri": REDIRECT, "client_id": "cid"}
        replaced = http.post(f"{server.url}/oauth/token", data={**form, "client_secret": retired})
        wrong = http.post(f"{server.url}/oauth/token", data={**form, "client_secret": "a-guess"})
        unknown = http.post(f"{server.url}/oauth/token", data={**form, "client_id": "nobody", "client_secret": "x"})
    for answer in (replaced, wrong, unknown):
        assert (answer.status_code, answer.json()["error"]) == (400, "invalid_client")
        assert "the-secret" not in answer.text and "a-guess" not in answer.text
    assert "was replaced" in replaced.json()["error_description"]
    assert "--new-secret" in replaced.json()["error_description"]
    assert "replaced" not in wrong.json()["error_description"]
    assert "--client-id" in unknown.json()["error_description"]
    assert "the-secret" not in repr(client)


def test_an_error_description_holds_only_what_rfc_6749_allows() -> None:
    assert description('a "quoted" \\ path\n\u00e9') == "a ?quoted? ? path??"
