"""Apps built when their module is imported, with Gist beside another provider and Authlib's generic routes.

This module is such an app four times (Starlette, FastAPI, Flask, Django): each registers Gist with production
settings and GitHub with plain Authlib at import, and serves ``/login/<name>`` and ``/auth/<name>`` calling
``oauth.create_client(name).authorize_redirect(...)`` / ``authorize_access_token(...)``, as Authlib's demos do.
Each test points the Gist registration at the sandbox with ``gist_sandbox.use(...)`` and logs in through the
framework's own test client; after the fixture's teardown the registration must hold its very objects again.

The callback reads the token alone: Authlib's demos read ``token["userinfo"]`` there, which is not asserted here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.integrations.django_client import OAuth as DjangoOAuth
from authlib.integrations.flask_client import OAuth as FlaskOAuth
from authlib.integrations.starlette_client import OAuth as StarletteOAuth
from django.http import JsonResponse
from django.test import Client as DjangoClient
from django.test import override_settings
from django.urls import path, reverse
from fastapi import FastAPI
from fastapi.testclient import TestClient as FastAPIClient
from flask import Flask, url_for
from starlette.applications import Starlette
from starlette.config import Config
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

import gist_authlib
from gist_authlib import GistProvider
from gist_authlib.testing import GistSandboxFixture

#: What each app reads at import, as in production.
PRODUCTION = {
    "GIST_CLIENT_ID": "production-client-id",
    "GIST_CLIENT_SECRET": "production-client-secret",
    "GIST_REDIRECT_URI": "https://app.example.com/auth/gist",
}
GITHUB = {
    "client_id": "github-client-id",
    "client_secret": "github-client-secret",
    "authorize_url": "https://github.com/login/oauth/authorize",
    "access_token_url": "https://github.com/login/oauth/access_token",
    "api_base_url": "https://api.github.com/",
    "client_kwargs": {"scope": "read:user"},
}
#: What the generic callback asks each provider for, with the token it just got.
API_CHECK = {"gist": "teammates", "github": "user"}


def names_of(answer: Any) -> list[str]:
    return [teammate["name"] for teammate in answer.json()["teammates"]]


# --- Starlette, as Authlib's Starlette demo is laid out -----------------------------------------------------

starlette_oauth = StarletteOAuth(Config(environ=PRODUCTION))
gist_authlib.register(starlette_oauth)
starlette_oauth.register("github", **GITHUB)


async def starlette_login(request: Request) -> Response:
    name = request.path_params["name"]
    client = starlette_oauth.create_client(name)
    redirect: Response = await client.authorize_redirect(request, str(request.url_for("auth", name=name)))
    return redirect


async def starlette_auth(request: Request) -> Response:
    name = request.path_params["name"]
    client = starlette_oauth.create_client(name)
    token = await client.authorize_access_token(request)
    answer = await client.get(API_CHECK[name], token=token)
    return JSONResponse({"provider": name, "teammates": names_of(answer)})


starlette_app = Starlette(
    routes=[Route("/login/{name}", starlette_login), Route("/auth/{name}", starlette_auth, name="auth")],
    middleware=[Middleware(SessionMiddleware, secret_key="module-level-secret")],
)


# --- FastAPI -------------------------------------------------------------------------------------------------

fastapi_oauth = StarletteOAuth(Config(environ=PRODUCTION))
gist_authlib.register(fastapi_oauth)
fastapi_oauth.register("github", **GITHUB)
fastapi_app = FastAPI()
fastapi_app.add_middleware(SessionMiddleware, secret_key="module-level-secret")


@fastapi_app.get("/login/{name}")
async def fastapi_login(name: str, request: Request) -> Response:
    client = fastapi_oauth.create_client(name)
    redirect: Response = await client.authorize_redirect(request, str(request.url_for("fastapi_auth", name=name)))
    return redirect


@fastapi_app.get("/auth/{name}")
async def fastapi_auth(name: str, request: Request) -> dict[str, Any]:
    client = fastapi_oauth.create_client(name)
    token = await client.authorize_access_token(request)
    answer = await client.get(API_CHECK[name], token=token)
    return {"provider": name, "teammates": names_of(answer)}


# --- Flask, its registry initialised later (init_app): the registration is Authlib's lazy proxy ------------------

flask_oauth = FlaskOAuth()
flask_gist = gist_authlib.register(flask_oauth)
flask_oauth.register("github", **GITHUB)
flask_app = Flask(__name__)
flask_app.config.update(SECRET_KEY="module-level-secret", **PRODUCTION)
flask_oauth.init_app(flask_app)


@flask_app.route("/login/<name>")
def flask_login(name: str) -> Any:
    return flask_oauth.create_client(name).authorize_redirect(url_for("flask_auth", name=name, _external=True))


@flask_app.route("/auth/<name>")
def flask_auth(name: str) -> Any:
    client = flask_oauth.create_client(name)
    token = client.authorize_access_token()
    return {"provider": name, "teammates": names_of(client.get(API_CHECK[name], token=token))}


# --- Django: this module is the URLconf of its test ------------------------------------------------------------

django_oauth = DjangoOAuth()
gist_authlib.register(
    django_oauth,
    client_id=PRODUCTION["GIST_CLIENT_ID"],
    client_secret=PRODUCTION["GIST_CLIENT_SECRET"],
    redirect_uri=PRODUCTION["GIST_REDIRECT_URI"],
)
django_oauth.register("github", **GITHUB)


def django_login(request: Any, name: str) -> Any:
    client = django_oauth.create_client(name)
    return client.authorize_redirect(request, request.build_absolute_uri(reverse("auth", args=[name])))


def django_auth(request: Any, name: str) -> Any:
    client = django_oauth.create_client(name)
    token = client.authorize_access_token(request)
    return JsonResponse({"provider": name, "teammates": names_of(client.get(API_CHECK[name], token=token))})


urlpatterns = [path("login/<str:name>", django_login), path("auth/<str:name>", django_auth, name="auth")]

# -------------------------------------------------------------------------------------------------------------

REGISTRIES = {
    "Starlette": starlette_oauth,
    "FastAPI": fastapi_oauth,
    "Flask": flask_oauth,
    "Django": django_oauth,
}


@pytest.fixture(autouse=True)
def registrations_come_back() -> Iterator[None]:
    """Set up before ``gist_sandbox`` and torn down after it: every registration holds its own objects again."""
    apps = [oauth.create_client(name) for oauth in REGISTRIES.values() for name in ("gist", "github")]
    before = [dict(vars(app)) for app in apps]
    yield
    for app, attributes in zip(apps, before, strict=True):
        assert vars(app).keys() == attributes.keys(), app
        changed = [key for key, value in attributes.items() if vars(app)[key] is not value]
        assert changed == [], f"{app!r}: {changed}"
    for oauth in REGISTRIES.values():
        assert oauth.gist.client_id == PRODUCTION["GIST_CLIENT_ID"]
        assert oauth.gist.client_secret == PRODUCTION["GIST_CLIENT_SECRET"]
        assert oauth.gist.authorize_url == GistProvider().authorize_url
        assert oauth.gist.gist_registration.redirect_uri == PRODUCTION["GIST_REDIRECT_URI"]
        assert oauth.gist.gist_registration.allow_insecure_http is False


def test_nothing_left_running_at_import_points_anywhere_but_production() -> None:
    for oauth in REGISTRIES.values():
        assert oauth.gist.access_token_url == GistProvider().access_token_url
        assert oauth.gist.api_base_url == GistProvider().api_base_url
        assert oauth.github.authorize_url == GITHUB["authorize_url"]


def log_in_both(gist_sandbox: GistSandboxFixture, client: Any, origin: str) -> Any:
    """Start a GitHub login (left pending), then log in with Gist through the same routes and session."""
    no_follow = {} if isinstance(client, DjangoClient) else {"follow_redirects": False}
    github = client.get("/login/github", **no_follow)
    location = urlsplit(github.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == GITHUB["authorize_url"]
    assert parse_qs(location.query)["client_id"] == [GITHUB["client_id"]]
    gist_sandbox.allow_redirect_uri(f"{origin}/auth/gist")
    return gist_sandbox.login(client, "/login/gist")


def answer_of(response: Any) -> Any:
    assert response.status_code == 200, getattr(response, "text", response)
    return response.json() if callable(response.json) else response.json  # Flask's is a property


@pytest.mark.parametrize("framework", ["Starlette", "FastAPI"])
def test_an_asgi_app_built_at_import_logs_in_with_the_sandbox(gist_sandbox: GistSandboxFixture, framework: str) -> None:
    oauth = REGISTRIES[framework]
    gist = gist_sandbox.use(oauth.gist).app
    assert gist is oauth.gist and gist.client_id == gist_sandbox.client_id
    app = starlette_app if framework == "Starlette" else fastapi_app
    with TestClient(app) if framework == "Starlette" else FastAPIClient(app) as client:
        answer = answer_of(log_in_both(gist_sandbox, client, "http://testserver"))
    assert answer == {"provider": "gist", "teammates": ["Ada Lovelace", "Grace Hopper", "Alan Turing"]}
    assert gist_sandbox.sandbox.tokens_issued == 1
    assert gist._gist_pools  # the test's own pool, dropped when the registration is put back


def test_a_flask_app_built_at_import_logs_in_with_the_sandbox(gist_sandbox: GistSandboxFixture) -> None:
    used = gist_sandbox.use(flask_gist)  # the lazy proxy, resolved
    assert used.app is flask_oauth.create_client("gist")
    answer = answer_of(log_in_both(gist_sandbox, flask_app.test_client(), "http://localhost"))
    assert answer["provider"] == "gist" and answer["teammates"][0] == "Ada Lovelace"
    assert gist_sandbox.sandbox.tokens_issued == 1
    assert used.app._gist_stack is not None  # the test's own pool, closed when the registration is put back


def test_a_django_app_built_at_import_logs_in_with_the_sandbox(gist_sandbox: GistSandboxFixture) -> None:
    with (
        gist_sandbox.use(django_oauth.gist) as gist,
        override_settings(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["testserver"]),
    ):
        assert (
            gist.gist_registration.redirect_uri is None
        )  # production's set aside: the callback is on the test client's host
        answer = answer_of(log_in_both(gist_sandbox, DjangoClient(), "http://testserver"))
        pool = gist._gist_stack[0]
    assert answer["provider"] == "gist" and answer["teammates"][-1] == "Alan Turing"
    assert pool is not None and pool._pool.connections == []  # closed on leaving the block
    assert gist.client_id == PRODUCTION["GIST_CLIENT_ID"]  # put back already, before the fixture's teardown
