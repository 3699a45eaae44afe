"""register(): every Authlib registry, the precedence of settings, client_secret_post, isolation."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs

import django
import httpx2
import pytest
from authlib.integrations.django_client import OAuth as DjangoOAuth
from authlib.integrations.flask_client import OAuth as FlaskOAuth
from authlib.integrations.starlette_client import OAuth as StarletteOAuth
from django.conf import settings
from django.test.utils import override_settings
from flask import Flask
from starlette.config import Config

import gist_authlib
from gist_authlib import GistProvider
from gist_authlib.errors import (
    InvalidTokenResponseError,
    MissingCredentialsError,
    TokenEndpointError,
    UnknownScopeError,
)
from gist_authlib.starlette import GistStarletteApp

if not settings.configured:
    settings.configure(SECRET_KEY="test-only", AUTHLIB_OAUTH_CLIENTS={}, USE_TZ=True)
    django.setup()

CONFIG_URLS = {
    "authorize_url": "https://config.example/authorize",
    "access_token_url": "https://config.example/token",
    "api_base_url": "https://config.example/api/",
}


def starlette_oauth(values: dict[str, str] | None = None) -> StarletteOAuth:
    env = {f"GIST_{k.upper()}": v for k, v in (values or {}).items()}
    return StarletteOAuth(Config(environ=env))


def flask_oauth(values: dict[str, str] | None = None) -> FlaskOAuth:
    app = Flask(__name__)
    app.config.update({f"GIST_{k.upper()}": v for k, v in (values or {}).items()})
    return FlaskOAuth(app)


# --- the three registries ----------------------------------------------------------------------------


def test_registers_into_starlette_with_gist_defaults() -> None:
    gist = gist_authlib.register(starlette_oauth(), client_id="id", client_secret="secret")
    assert gist.name == "gist"
    assert gist.authorize_url == "https://app.getgist.com/oauth/authorize"
    assert gist.access_token_url == "https://api.getgist.com/oauth/token"
    assert gist.api_base_url == "https://api.getgist.com/"
    assert gist.client_kwargs["token_endpoint_auth_method"] == "client_secret_post"
    assert gist.client_kwargs["scope"] == "read_teammates"
    assert gist.gist_registration.scopes == ("read_teammates",)


def test_register_returns_the_registry_attribute() -> None:
    oauth = starlette_oauth()
    gist = gist_authlib.register(oauth, client_id="id", client_secret="secret")
    assert oauth.gist is gist
    assert oauth.create_client("gist") is gist


def test_starlette_config_fills_what_the_arguments_leave_out() -> None:
    oauth = starlette_oauth({"client_id": "cfg-id", "client_secret": "cfg-secret", **CONFIG_URLS})
    gist = gist_authlib.register(oauth)
    assert (gist.client_id, gist.client_secret) == ("cfg-id", "cfg-secret")
    assert gist.authorize_url == CONFIG_URLS["authorize_url"]
    assert gist.access_token_url == CONFIG_URLS["access_token_url"]
    assert gist.api_base_url == CONFIG_URLS["api_base_url"]


def test_explicit_arguments_beat_configuration() -> None:
    oauth = starlette_oauth({"client_id": "cfg-id", "client_secret": "cfg-secret", **CONFIG_URLS})
    gist = gist_authlib.register(
        oauth, client_id="arg-id", client_secret="arg-secret", authorize_url="https://arg.example/authorize"
    )
    assert (gist.client_id, gist.client_secret) == ("arg-id", "arg-secret")
    assert gist.authorize_url == "https://arg.example/authorize"
    assert gist.access_token_url == CONFIG_URLS["access_token_url"]  # not given explicitly: config wins


def test_configuration_beats_the_provider_given_to_register() -> None:
    oauth = starlette_oauth({"authorize_url": "https://config.example/authorize"})
    gist = gist_authlib.register(oauth, provider=GistProvider.at("http://127.0.0.1:9"))
    assert gist.authorize_url == "https://config.example/authorize"
    assert gist.access_token_url == "http://127.0.0.1:9/oauth/token"


def test_flask_app_config_is_read() -> None:
    oauth = flask_oauth({"client_id": "flask-id", "client_secret": "flask-secret", **CONFIG_URLS})
    gist = gist_authlib.register(oauth, client_secret="arg-secret")
    assert (gist.client_id, gist.client_secret) == ("flask-id", "arg-secret")
    assert gist.authorize_url == CONFIG_URLS["authorize_url"]


def test_flask_factory_pattern_reads_config_at_init_app() -> None:
    oauth = FlaskOAuth()
    gist = gist_authlib.register(oauth)  # no app yet: Authlib hands back a lazy proxy
    app = Flask(__name__)
    app.config.update(GIST_CLIENT_ID="late-id", GIST_CLIENT_SECRET="late-secret")
    oauth.init_app(app)
    with app.app_context():
        assert gist.client_id == "late-id"
        assert gist.authorize_url == "https://app.getgist.com/oauth/authorize"
        assert gist.gist_credentials() == ("late-id", "late-secret")


def test_django_settings_are_read() -> None:
    clients = {"gist": {"client_id": "dj-id", "client_secret": "dj-secret", **CONFIG_URLS}}
    with override_settings(AUTHLIB_OAUTH_CLIENTS=clients):
        gist = gist_authlib.register(DjangoOAuth(), scopes="read_teams")
    assert (gist.client_id, gist.client_secret) == ("dj-id", "dj-secret")
    assert gist.api_base_url == CONFIG_URLS["api_base_url"]
    assert gist.gist_registration.scopes == ("read_teams",)


def test_django_missing_secret_names_the_settings_path() -> None:
    with override_settings(AUTHLIB_OAUTH_CLIENTS={"gist": {"client_id": "dj-id"}}):
        gist = gist_authlib.register(DjangoOAuth())
    with pytest.raises(MissingCredentialsError) as info:
        gist.gist_credentials()
    assert 'AUTHLIB_OAUTH_CLIENTS["gist"]["client_secret"]' in str(info.value)


@pytest.mark.parametrize(("name", "setting"), [("gist", "GIST_CLIENT_ID"), ("gist_eu", "GIST_EU_CLIENT_ID")])
def test_missing_client_id_names_the_setting(name: str, setting: str) -> None:
    gist = gist_authlib.register(starlette_oauth(), name)
    with pytest.raises(MissingCredentialsError) as info:
        gist.gist_credentials()
    assert info.value.setting == setting
    assert setting in str(info.value)


# --- scopes ------------------------------------------------------------------------------------------


def test_scopes_as_string_or_list() -> None:
    a = gist_authlib.register(starlette_oauth(), "a", scopes="read_teams read_tags")
    b = gist_authlib.register(starlette_oauth(), "b", scopes=["read_teams", "read_tags"])
    assert a.gist_registration.scopes == b.gist_registration.scopes == ("read_teams", "read_tags")
    assert a.client_kwargs["scope"] == "read_teams read_tags"


def test_unknown_scope_is_refused_at_registration_with_a_suggestion() -> None:
    with pytest.raises(UnknownScopeError, match="Did you mean read_contact"):
        gist_authlib.register(starlette_oauth(), scopes=["read_contacts"])


def test_extended_provider_accepts_its_custom_scope() -> None:
    provider = GistProvider().with_scopes({"read_campaigns": "List campaigns"})
    gist = gist_authlib.register(starlette_oauth(), scopes="read_campaigns", provider=provider)
    assert gist.gist_registration.scopes == ("read_campaigns",)


# --- isolation ---------------------------------------------------------------------------------------


def test_two_registrations_do_not_share_state() -> None:
    oauth = starlette_oauth()
    eu = gist_authlib.register(oauth, "gist_eu", client_id="eu", provider=GistProvider.at("http://127.0.0.1:1"))
    us = gist_authlib.register(oauth, "gist_us", client_id="us", scopes="read_teams")
    assert eu.authorize_url == "http://127.0.0.1:1/oauth/authorize"
    assert us.authorize_url == "https://app.getgist.com/oauth/authorize"
    assert (eu.client_id, us.client_id) == ("eu", "us")
    assert eu.gist_registration.scopes != us.gist_registration.scopes
    assert type(eu) is type(us) is GistStarletteApp  # one declared class; the state is per registration
    assert eu.gist_registration.login_state is not us.gist_registration.login_state
    assert eu.gist_registration.cookie.session_key != us.gist_registration.cookie.session_key
    assert eu.gist_registration.subject_key != us.gist_registration.subject_key
    assert eu.client_kwargs is not us.client_kwargs
    # Authlib's OAUTH_APP_CONFIG class attribute is mutated by Authlib itself: never used here.
    assert type(eu).OAUTH_APP_CONFIG is None and type(us).OAUTH_APP_CONFIG is None


def test_gist_beside_another_provider_in_one_registry() -> None:
    oauth = starlette_oauth()
    other = oauth.register(
        "other",
        client_id="o",
        client_secret="s",
        authorize_url="https://other.example/a",
        access_token_url="https://other.example/t",
    )
    gist = gist_authlib.register(oauth, client_id="g", client_secret="s")
    assert other.authorize_url == "https://other.example/a"
    assert not hasattr(other, "gist_registration")
    assert gist.authorize_url == "https://app.getgist.com/oauth/authorize"


def test_client_kwargs_override_is_merged_not_replacing() -> None:
    gist = gist_authlib.register(starlette_oauth(), client_kwargs={"timeout": 3.0})
    assert gist.client_kwargs["timeout"] == 3.0
    assert gist.client_kwargs["token_endpoint_auth_method"] == "client_secret_post"


# --- the token request, through httpx2's transport seam ----------------------------------------------


class TokenEndpoint:
    """A token endpoint behind httpx2.MockTransport that records what it received."""

    def __init__(self, status: int = 200, body: bytes = b'{"access_token": "tok-123"}') -> None:
        self.status, self.body = status, body
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        return httpx2.Response(self.status, content=self.body, headers={"content-type": "application/json"})

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.requests[0].content.decode()).items()}


def _registered(oauth: Any, endpoint: TokenEndpoint) -> Any:
    return gist_authlib.register(
        oauth,
        client_id="the-id",
        client_secret="the-secret",
        client_kwargs={"transport": httpx2.MockTransport(endpoint)},
    )


def _assert_client_secret_post(endpoint: TokenEndpoint) -> None:
    request = endpoint.requests[0]
    assert request.method == "POST"
    assert str(request.url) == "https://api.getgist.com/oauth/token"
    assert "authorization" not in request.headers
    assert request.headers["user-agent"].startswith("gist-authlib/")
    assert endpoint.form() == {
        "grant_type": "authorization_code",
        "code": "the-code",
        "redirect_uri": "https://app.example/cb",
        "client_id": "the-id",
        "client_secret": "the-secret",
    }


def test_starlette_token_request_uses_client_secret_post_over_httpx2() -> None:
    endpoint = TokenEndpoint()
    gist = _registered(starlette_oauth(), endpoint)
    token = asyncio.run(gist.fetch_access_token(code="the-code", redirect_uri="https://app.example/cb"))
    assert token["access_token"] == "tok-123"
    _assert_client_secret_post(endpoint)


def test_flask_token_request_uses_client_secret_post_over_httpx2() -> None:
    endpoint = TokenEndpoint()
    gist = _registered(flask_oauth(), endpoint)
    token = gist.fetch_access_token(code="the-code", redirect_uri="https://app.example/cb")
    assert token["access_token"] == "tok-123"
    _assert_client_secret_post(endpoint)


def test_django_token_request_uses_client_secret_post_over_httpx2() -> None:
    endpoint = TokenEndpoint()
    gist = _registered(DjangoOAuth(), endpoint)
    token = gist.fetch_access_token(code="the-code", redirect_uri="https://app.example/cb")
    assert token["access_token"] == "tok-123"
    _assert_client_secret_post(endpoint)


@pytest.mark.parametrize(
    ("status", "body", "error_type"),
    [
        (400, b'{"error": "invalid_grant"}', TokenEndpointError),
        (502, b"<html>bad gateway</html>", TokenEndpointError),
        (302, b"", TokenEndpointError),
        (200, b"<html>not json</html>", InvalidTokenResponseError),
        (200, b'{"token_type": "bearer"}', InvalidTokenResponseError),
        (200, b'{"access_token": ""}', InvalidTokenResponseError),
        (200, b'{"access_token": "a b"}', InvalidTokenResponseError),
        (200, b'{"access_token": "x", "token_type": "mac"}', InvalidTokenResponseError),
        (200, json.dumps({"access_token": ["x"]}).encode(), InvalidTokenResponseError),
    ],
)
def test_bad_token_responses_raise_typed_errors_even_through_plain_authlib(
    status: int, body: bytes, error_type: type
) -> None:
    endpoint = TokenEndpoint(status, body)
    gist = _registered(flask_oauth(), endpoint)
    with pytest.raises(error_type) as info:
        gist.fetch_access_token(code="the-code", redirect_uri="https://app.example/cb")
    assert "the-secret" not in str(info.value)
    assert len(endpoint.requests) == 1


# --- transport -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("origin", ["http://gist.example.com", "http://10.0.0.8:8765", "http://[2001:db8::1]:80"])
def test_http_endpoints_off_loopback_are_refused(origin: str) -> None:
    from gist_authlib.errors import InsecureTransportError

    with pytest.raises(InsecureTransportError, match="allow_insecure_http"):
        gist_authlib.register(starlette_oauth(), client_id="id", client_secret="s", provider=GistProvider.at(origin))
    app = gist_authlib.register(
        starlette_oauth(), client_id="id", client_secret="s", provider=GistProvider.at(origin), allow_insecure_http=True
    )
    assert app.authorize_url.startswith("http://")


@pytest.mark.parametrize(
    "origin", ["http://127.0.0.1:8765", "http://localhost:8765", "http://[::1]:8765", "http://127.8.9.10"]
)
def test_http_on_loopback_is_allowed(origin: str) -> None:
    app = gist_authlib.register(starlette_oauth(), client_id="id", client_secret="s", provider=GistProvider.at(origin))
    assert app.access_token_url == f"{origin}/oauth/token"


def test_an_http_redirect_uri_off_loopback_is_refused_at_login() -> None:
    from gist_authlib.errors import InsecureTransportError

    app = gist_authlib.register(starlette_oauth(), client_id="id", client_secret="s")
    with pytest.raises(InsecureTransportError, match="redirect URI"):
        asyncio.run(app.create_authorization_url("http://app.example.com/oauth/gist/callback"))
    created = asyncio.run(app.create_authorization_url("https://app.example.com/oauth/gist/callback"))
    assert created["url"].startswith("https://")


def test_the_token_request_never_follows_redirects_whatever_client_kwargs_say() -> None:
    endpoint = TokenEndpoint(302, b"")
    gist = gist_authlib.register(
        flask_oauth(),
        client_id="the-id",
        client_secret="the-secret",
        client_kwargs={"transport": httpx2.MockTransport(endpoint), "follow_redirects": True},
    )
    assert gist.client_kwargs["follow_redirects"] is False
    with pytest.raises(TokenEndpointError):
        gist.fetch_access_token(code="the-code", redirect_uri="https://app.example/cb")
    assert len(endpoint.requests) == 1
