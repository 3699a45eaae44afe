"""What an end user reads when a login fails: never developer text nor Gist's ``error_description`` (they go to
the log and, in debug mode, the page), and when the site's own setup stopped the login, that the site could not
complete it, with no "Log in again" that cannot help."""

from __future__ import annotations

import re

import pytest

from gist_authlib._pages import error_page
from gist_authlib.errors import (
    AccessDeniedError,
    AuthorizationError,
    ConfigurationError,
    GistAuthError,
    InsecureTransportError,
    InstallError,
    InvalidTokenResponseError,
    LoginError,
    MissingCredentialsError,
    MixUpError,
    StateError,
    TokenDecryptionError,
    TokenEndpointError,
    TokenExchangeError,
    TokenStoreError,
    UnknownScopeError,
    UnknownStateError,
)

SECRET_REPLACED = "This client secret was replaced: the sandbox was restarted with a new one (--new-secret)."

#: The site's own setup stopped these logins: logging in again cannot help.
SITE_SIDE: list[GistAuthError] = [
    TokenEndpointError(400, "invalid_client", SECRET_REPLACED),
    TokenEndpointError(401),  # no error name: the status says invalid_client
    TokenEndpointError(400, "unauthorized_client", "OAuth is not enabled for this app"),
    TokenEndpointError(400, "invalid_request", "redirect_uri does not match the one registered"),
    TokenEndpointError(400, "redirect_uri_mismatch"),
    AuthorizationError("unauthorized_client", "The app is not allowed to ask for a code"),
    AuthorizationError("invalid_request", "The redirect URI is not registered for this app"),
    AuthorizationError("invalid_scope", "Not in the catalogue: read_contacts"),
    ConfigurationError("GIST_REDIRECT_URI does not reach the mounted callback /oauth/gist/callback."),
    ConfigurationError.no_session("Add SessionMiddleware to the app's middleware."),
    MissingCredentialsError("GIST_CLIENT_SECRET", "client secret"),
    UnknownScopeError("read_contacts", "read_contact"),
    InsecureTransportError("redirect URI", "http://app.example/cb"),
]

#: Failures a new login may get past.
RETRYABLE: list[GistAuthError] = [
    TokenEndpointError(400, "invalid_grant", "Unknown authorization code."),
    TokenEndpointError(400, "invalid_request", "grant_type is missing."),
    TokenEndpointError(500),
    AuthorizationError("server_error", "Something broke on Gist's side"),
    AuthorizationError("temporarily_unavailable"),
    AccessDeniedError("The user said no"),
    TokenExchangeError.unreachable("ConnectError"),
    InvalidTokenResponseError("the answer is not JSON"),
    StateError.missing("The callback's state is malformed, so it was refused."),
    StateError.expired("/next"),
    StateError.replayed(),
    UnknownStateError("login_cookie_missing"),
    MixUpError("https://evil.example"),
    LoginError.missing_code("The callback's code is too long to be genuine."),
    InstallError.link_invalid(),
    TokenStoreError("The token database failed (OperationalError); nothing was written."),
]

#: Words of a developer's explanation or a protocol, which an end user's sentence never needs.
DEVELOPER_WORDS = re.compile(
    r"GIST_|--|register\(|RFC|error_description|Developer Hub|client secret|client id|redirect URI|middleware|"
    r"session|state|callback|token endpoint|OperationalError|ConnectError|JSON|iss\b",
    re.IGNORECASE,
)


def _remote_text(error: GistAuthError) -> str | None:
    """Text from the other side (Gist's description, the reason or detail given) that must stay off the page."""
    return getattr(error, "remote_description", None) or getattr(error, "reason", None)


@pytest.mark.parametrize("error", SITE_SIDE, ids=lambda e: f"{type(e).__name__}-{e.error}")
def test_a_misconfiguration_says_the_site_could_not_complete_the_login_and_offers_no_retry(
    error: GistAuthError,
) -> None:
    assert error.retry is False
    assert error.title == "This site could not complete the login"
    assert error.message.startswith("This site could not complete the login")
    html = error_page(error, retry_url="/auth/gist")
    assert "Log in again" not in html and 'href="/auth/gist"' not in html
    assert "<title>This site could not complete the login</title>" in html
    assert error.hint and error.hint not in html  # the developer's cause: the log's, and debug mode's
    assert "For the developer" in error_page(error, retry_url="/auth/gist", debug=True)


@pytest.mark.parametrize("error", RETRYABLE, ids=lambda e: f"{type(e).__name__}-{e.error_code}")
def test_a_failure_a_new_login_may_get_past_offers_to_log_in_again(error: GistAuthError) -> None:
    assert error.retry is True
    assert "could not complete the login because of a problem with its own setup" not in error.message
    html = error_page(error, retry_url="/auth/gist?next=%2Fnext")
    assert '<a class="button" href="/auth/gist?next=%2Fnext">Log in again</a>' in html


@pytest.mark.parametrize("error", SITE_SIDE + RETRYABLE, ids=lambda e: f"{type(e).__name__}-{e.error_code}")
def test_the_end_users_sentence_carries_no_developer_text_and_nothing_gist_said(error: GistAuthError) -> None:
    assert DEVELOPER_WORDS.search(error.message) is None, error.message
    remote = _remote_text(error)
    html = error_page(error, retry_url="/auth/gist")
    if remote:
        assert remote not in html
        assert remote in (error.hint or "")  # kept for the log line
    if error.hint:
        assert error.hint not in html
    # The code to quote when asking for help is always there (once, where the RFC 6749 name is the same).
    assert re.search(rf"Error code: [^<]*\b{error.error_code}\b", html), html


def test_the_new_secret_case_the_issue_reports_puts_gists_words_in_the_hint_only() -> None:
    error = TokenEndpointError(400, "invalid_client", SECRET_REPLACED)
    page = error_page(error, retry_url="/auth/gist")
    assert "--new-secret" not in page and "Gist did not complete the login" not in page
    assert "invalid_client (token_endpoint_error)" in page
    assert error.hint is not None and "--new-secret" in error.hint and "GIST_CLIENT_SECRET" in error.hint
    debug = error_page(error, retry_url="/auth/gist", debug=True)
    assert "--new-secret" in debug and "Log in again" not in debug


def test_the_developer_still_reads_a_setup_error_raised_to_their_code() -> None:
    # Raised at register() or by a store: the exception's text (a traceback, a CLI line) is the developer's fix.
    error = MissingCredentialsError("GIST_CLIENT_ID", "client id")
    assert "Set GIST_CLIENT_ID" in str(error) and "Set GIST_CLIENT_ID" in repr(error)
    with pytest.raises(ValueError, match="Did you mean read_contact"):
        raise UnknownScopeError("read_contacts", "read_contact")
    stale = TokenDecryptionError("workspace:1", "k2", ["k1"])
    assert (
        "Add that key" in str(stale)
        and stale.message == "This site could not save or read your connection to Gist. Try again later."
    )
    # Errors shown to the end user keep their sentence as their text, as Authlib's description.
    state = UnknownStateError()
    assert str(state) == state.message == state.description


def test_a_registration_renders_its_own_error_page_with_the_librarys_headers() -> None:
    """``register(error_page=...)``: the ready-made routes answer a failed login with the app's own page (its
    status and the page policy's headers still the library's), given the error, the retry link and debug mode."""
    from authlib.integrations.starlette_client import OAuth
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.testclient import TestClient

    import gist_authlib
    from gist_authlib.starlette import gist_routes

    seen: list[tuple[str, str | None, bool]] = []

    def our_page(error: GistAuthError, *, retry_url: str | None, debug: bool) -> str:
        seen.append((error.error_code, retry_url, debug))
        return f"<!doctype html><title>Sign-in</title><p>Our own page: {error.error_code}</p>"

    gist = gist_authlib.register(OAuth(), client_id="cid", client_secret="cs", error_page=our_page)
    app = Starlette(
        routes=gist_routes(gist, on_login=lambda request, token: None),
        middleware=[Middleware(SessionMiddleware, secret_key="test")],
    )
    with TestClient(app, base_url="http://127.0.0.1") as client:
        answer = client.get("/oauth/gist/callback", params={"code": "c"})  # no state: refused before any request
    assert answer.status_code == 400
    assert "Our own page: state_missing" in answer.text
    assert seen == [("state_missing", "http://127.0.0.1/auth/gist", False)]
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["cache-control"] == "no-store"
