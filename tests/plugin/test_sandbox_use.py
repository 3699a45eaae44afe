"""gist_sandbox.use(): what it changes on a registration, what it refuses, and how it puts everything back."""

from __future__ import annotations

from typing import Any

import pytest
from authlib.integrations.django_client import OAuth as DjangoOAuth
from authlib.integrations.flask_client import OAuth as FlaskOAuth
from authlib.integrations.starlette_client import OAuth
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.testclient import TestClient

import gist_authlib
from gist_authlib import GistProvider
from gist_authlib.starlette import gist_routes
from gist_authlib.testing import GistSandboxFixture

PRODUCTION = {"client_id": "production-id", "client_secret": "production-secret"}


def starlette_app(gist: Any) -> Starlette:
    async def on_login(request: Request, token: dict[str, Any]) -> PlainTextResponse:
        teammates = await gist.get("teammates", token=token)  # 403 unless the login granted read_teammates
        return PlainTextResponse(f"logged in, teammates {teammates.status_code}")

    return Starlette(
        routes=gist_routes(gist, on_login=on_login),
        middleware=[Middleware(SessionMiddleware, secret_key="test-secret")],
    )


def test_only_a_gist_registration_is_taken(gist_sandbox: GistSandboxFixture) -> None:
    oauth = OAuth()
    oauth.register("github", client_id="id", authorize_url="https://github.com/login/oauth/authorize")
    with pytest.raises(TypeError, match=r"takes a Gist registration .* not authlib\..*StarletteOAuth2App"):
        gist_sandbox.use(oauth.github)
    with pytest.raises(TypeError, match=r"not builtins\.str"):
        gist_sandbox.use("gist")
    lazy = gist_authlib.register(FlaskOAuth())  # a Flask registry with no app yet
    with pytest.raises(TypeError, match=r"OAuth is not init with Flask app\. Call oauth\.init_app\(app\)"):
        gist_sandbox.use(lazy)
    assert gist_sandbox._uses == []


def test_an_issuer_and_extra_scopes_of_the_apps_provider_work_against_the_sandbox(
    gist_sandbox: GistSandboxFixture,
) -> None:
    provider = GistProvider(issuer="https://app.getgist.com").with_scopes(["read_campaigns"])
    gist = gist_authlib.register(OAuth(), scopes="read_campaigns", provider=provider, **PRODUCTION)
    with gist_sandbox.use(gist):
        assert gist.gist_registration.provider.scopes == provider.scopes  # the sandbox now accepts read_campaigns
        assert gist_sandbox.login(TestClient(starlette_app(gist))).text == "logged in, teammates 403"
    assert gist.gist_registration.provider is provider and gist.gist_registration.scopes == ("read_campaigns",)


def test_a_configured_redirect_uri_is_set_aside_or_replaced(gist_sandbox: GistSandboxFixture) -> None:
    gist = gist_authlib.register(
        OAuth(),
        redirect_uri="https://app.example.com/oauth/gist/callback",
        client_kwargs={"redirect_uri": "https://app.example.com/oauth/gist/callback"},
        **PRODUCTION,
    )
    own_kwargs = gist.client_kwargs
    with gist_sandbox.use(gist):
        assert gist.gist_registration.redirect_uri is None and "redirect_uri" not in gist.client_kwargs
        assert gist_sandbox.login(TestClient(starlette_app(gist))).text == "logged in, teammates 200"
    assert gist.client_kwargs is own_kwargs and own_kwargs["redirect_uri"].startswith("https://app.example.com/")
    # Named: every login uses it, and the sandbox has it registered.
    with gist_sandbox.use(gist, redirect_uri="http://localhost/oauth/gist/callback"):
        assert "http://localhost/oauth/gist/callback" in gist_sandbox.redirect_uris
        response = gist_sandbox.login(TestClient(starlette_app(gist), base_url="http://localhost"))
        assert response.text == "logged in, teammates 200"
    assert gist.gist_registration.redirect_uri == "https://app.example.com/oauth/gist/callback"


def test_the_apps_own_pool_is_set_aside_and_kept_open(gist_sandbox: GistSandboxFixture) -> None:
    gist = gist_authlib.register(DjangoOAuth(), **PRODUCTION)
    gist.gist_transport()  # the app had pooled connections before the test
    own_pool = gist._gist_stack
    with gist_sandbox.use(gist):
        assert gist._gist_stack is None
        gist.gist_transport()
        test_pool = gist._gist_stack
    assert gist._gist_stack is own_pool and test_pool is not own_pool
    gist.gist_close()


def test_uses_are_undone_latest_first(gist_sandbox: GistSandboxFixture) -> None:
    gist = gist_authlib.register(OAuth(), **PRODUCTION)
    before = dict(vars(gist))
    outer = gist_sandbox.use(gist)
    inner = gist_sandbox.use(gist, redirect_uri="http://testserver/oauth/gist/callback")
    assert gist.gist_registration.redirect_uri == "http://testserver/oauth/gist/callback"
    outer.restore()  # undoes the inner use first, so that the registration ends as it began
    assert vars(gist) == before and gist_sandbox._uses == []
    inner.restore()  # nothing left to do
    outer.restore()
    assert vars(gist) == before
    assert "(restored)" in repr(inner)


def test_install_attempts_counted_under_one_use_do_not_refuse_installs_in_the_next(
    gist_sandbox: GistSandboxFixture,
) -> None:
    """use() swaps the endpoints and credentials but keeps the registration's install limit, whose memory counter
    lives as long as the app (built at import): every test's install callbacks from the test client count in the
    bucket "testclient", so the eleventh install within a minute, in whichever test, answers 429."""
    gist = gist_authlib.register(OAuth(), client_id="production-id", client_secret="production-secret")

    async def on_login(request: Request, token: dict[str, Any]) -> PlainTextResponse:
        return PlainTextResponse("logged in")

    async def on_install(request: Request, token: dict[str, Any], workspace: Any) -> PlainTextResponse:
        return PlainTextResponse("installed")

    app = Starlette(
        routes=gist_routes(gist, on_login=on_login, on_install=on_install),
        middleware=[Middleware(SessionMiddleware, secret_key="test-secret")],
    )
    callback = "/oauth/gist/callback?code=forged-{}&state=nrrjryb4"
    with gist_sandbox.use(gist), TestClient(app) as client:  # one test's installs (forged: Gist answers 400)
        first = [client.get(callback.format(i)).status_code for i in range(10)]
    assert 429 not in first, first
    with gist_sandbox.use(gist), TestClient(app) as client:  # the next test's first install
        assert client.get(callback.format("next")).status_code != 429


def test_a_test_never_writes_the_developers_token_database(
    gist_sandbox: GistSandboxFixture, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An app built at import time with the developer's token database: a test's login is stored in a fresh store
    of its own, and the developer's database is as it was, its rows still readable under the developer's key."""
    from gist_authlib.tokens import SQLiteTokenStore, TokenCipher

    monkeypatch.setenv("GIST_TOKEN_KEY", TokenCipher.generate_key())
    developers = tmp_path / "gist_tokens.sqlite3"
    gist = gist_authlib.register(OAuth(), **PRODUCTION, token_store=str(developers))
    own_store = gist.gist_registration.store
    assert isinstance(own_store, SQLiteTokenStore)
    own_store.save("workspace:100001", {"access_token": "the-developers-own-token"})
    with gist_sandbox.use(gist):
        test_store = gist.gist_registration.store
        assert test_store is not own_store
        response = gist_sandbox.login(TestClient(starlette_app(gist)))
        assert response.text == "logged in, teammates 200"
        assert test_store is not None and test_store.subjects() == [f"workspace:{gist_sandbox.sandbox.workspace.id}"]
    assert gist.gist_registration.store is own_store
    assert own_store.subjects() == ["workspace:100001"]
    stored = own_store.get("workspace:100001")
    assert stored is not None and stored.token["access_token"] == "the-developers-own-token"
