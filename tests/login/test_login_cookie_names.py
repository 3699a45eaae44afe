"""The login cookie is read by its exact name from the raw ``Cookie`` header, in every framework under WSGI and ASGI.

Django decodes cookie names as UTF-8 and strips Unicode whitespace, so ``\\u2000__Host-gist_login_gist``, which a
sibling subdomain can set even over http (Chromium stores and sends it), would be read as the ``__Host-`` login
cookie: an attacker who plants their own signed login cookie under that name and sends the victim their callback
URL would log the victim into the attacker's workspace (login CSRF). Each app here is served as
``https://app.test``: an ASGI app through httpx2's transport seam, a WSGI app by the standard library's server on
loopback (which, unlike httpx2's WSGI transport, takes any header byte, as real servers do), the sandbox in process.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from support.in_memory import Memory, Router, SyncASGITransport
from support.web import browser_client

import gist_authlib
from gist_authlib import GistProvider
from gist_authlib.sandbox import SandboxClient, WSGIServerThread, create_app

APP = "https://app.test"
CALLBACK = f"{APP}/oauth/gist/callback"
COOKIE = "__Host-gist_login_gist"


def starlette_app(gist_for: Callable[[Any, bool], Any]) -> Any:
    from authlib.integrations.starlette_client import OAuth
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.responses import PlainTextResponse

    from gist_authlib.starlette import gist_routes

    gist = gist_for(OAuth(), True)
    routes = gist_routes(gist, on_login=lambda request, token: PlainTextResponse(token["userinfo"]["sub"]))
    return Starlette(routes=routes, middleware=[Middleware(SessionMiddleware, secret_key="s" * 32, https_only=True)])


def flask_app(gist_for: Callable[[Any, bool], Any]) -> Any:
    from authlib.integrations.flask_client import OAuth
    from flask import Flask

    from gist_authlib.flask import gist_blueprint

    app = Flask("cookie_names")
    app.secret_key = "s" * 32
    gist = gist_for(OAuth(app), False)
    app.register_blueprint(gist_blueprint(gist, on_login=lambda token: token["userinfo"]["sub"]))
    return app


def django_app(gist_for: Callable[[Any, bool], Any], asgi: bool) -> Any:
    from authlib.integrations.django_client import OAuth
    from django.core.handlers.asgi import ASGIHandler
    from django.core.handlers.wsgi import WSGIHandler
    from django.http import HttpResponse
    from django.urls import clear_url_caches
    from support import django_urlconf

    from gist_authlib.django import gist_urls

    gist = gist_for(OAuth(), False)
    django_urlconf.urlpatterns[:] = gist_urls(
        gist, on_login=lambda request, token: HttpResponse(token["userinfo"]["sub"])
    )
    clear_url_caches()
    return ASGIHandler() if asgi else WSGIHandler()


#: (framework, server interface): each framework under each interface it is served with.
SERVED = [("starlette", "asgi"), ("flask", "wsgi"), ("django", "wsgi"), ("django", "asgi")]


class ToLoopback(httpx2.BaseTransport):
    """Requests for ``https://app.test`` sent, as they are (the Host header and every header byte), to a server on
    loopback, as a TLS-terminating proxy in front of it would."""

    def __init__(self, port: int) -> None:
        self.port, self.http = port, httpx2.HTTPTransport()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self.port)
        forwarded = httpx2.Request(request.method, url, headers=request.headers.raw, content=request.read())
        response = self.http.handle_request(forwarded)
        response.read()
        return response


@contextlib.contextmanager
def https_app(memory: Memory, framework: str, interface: str) -> Iterator[tuple[Any, httpx2.BaseTransport]]:
    """The sandbox and an app of ``framework`` on ``https://app.test``, and the browsers' transport to both."""
    sandbox_origin = memory.origin()
    client_id, client_secret = "app-" + secrets.token_hex(4), "secret-" + secrets.token_urlsafe(16)
    sandbox = create_app(clients=[SandboxClient(client_id, client_secret, (CALLBACK,))], auto_approve=True)

    def gist_for(oauth: Any, async_app: bool) -> Any:
        to_sandbox = httpx2.ASGITransport(sandbox) if async_app else SyncASGITransport(sandbox, memory.loop)
        return gist_authlib.register(
            oauth,
            client_id=client_id,
            client_secret=client_secret,
            provider=GistProvider.at(sandbox_origin),
            redirect_uri=CALLBACK,
            client_kwargs={"transport": Router({sandbox_origin: to_sandbox})},
        )

    if framework == "starlette":
        app = starlette_app(gist_for)
    elif framework == "flask":
        app = flask_app(gist_for)
    else:
        app = django_app(gist_for, asgi=interface == "asgi")
    with contextlib.ExitStack() as stack:
        if framework == "django":
            from django.test.utils import override_settings

            stack.enter_context(override_settings(ALLOWED_HOSTS=["app.test"]))
        to_app: Any = SyncASGITransport(app, memory.loop)
        if interface == "wsgi":
            server = stack.enter_context(WSGIServerThread(app))
            to_app = ToLoopback(server.port)
        yield sandbox, Router({sandbox_origin: SyncASGITransport(sandbox, memory.loop), APP: to_app})


def _logins(sandbox: Any) -> int:
    return sum(1 for request in sandbox.token_requests if request.grant_type == "authorization_code")


@pytest.mark.parametrize(("framework", "interface"), SERVED)
def test_a_login_cookie_under_a_name_that_normalises_to_the_host_one_finishes_nothing(
    memory: Memory, framework: str, interface: str
) -> None:
    with https_app(memory, framework, interface) as (sandbox, transport):
        refused = _planted_attack(transport)
    assert refused.status_code == 400, refused.text
    assert "login_cookie_missing" in refused.text
    assert _logins(sandbox) == 0  # no token request: the attacker's code was never redeemed


def _planted_attack(transport: httpx2.BaseTransport) -> httpx2.Response:
    with browser_client(follow_redirects=False, transport=transport) as attacker:
        start = attacker.get(f"{APP}/auth/gist")
        own = _set_cookie(start)
        assert start.status_code == 302 and own
        callback = attacker.get(start.headers["location"]).headers["location"]  # approved, never opened by them
    # The victim's browser sends the attacker's signed value under "\u2000__Host-...", planted from a sibling.
    planted = f"\u2000{COOKIE}={own}".encode()
    with httpx2.Client(transport=transport, follow_redirects=False) as victim:
        return victim.get(callback, headers={"cookie": planted})


@pytest.mark.parametrize(("framework", "interface"), SERVED)
def test_the_login_cookie_under_its_exact_name_in_a_raw_header_finishes_the_login(
    memory: Memory, framework: str, interface: str
) -> None:
    """The same raw header, under the exact name, is read: the refusal above is the name's, not the header's."""
    with https_app(memory, framework, interface) as (sandbox, transport):
        with browser_client(follow_redirects=False, transport=transport) as browser:
            start = browser.get(f"{APP}/auth/gist")
            value = _set_cookie(start)
            callback = browser.get(start.headers["location"]).headers["location"]
        with httpx2.Client(transport=transport, follow_redirects=False) as same_browser:
            finished = same_browser.get(callback, headers={"cookie": f"other=1; {COOKIE}={value}".encode()})
    assert (finished.status_code, finished.text) == (200, str(sandbox.workspace.id)), finished.text
    assert _logins(sandbox) == 1


def _set_cookie(response: httpx2.Response) -> str:
    """The login cookie's value as the response sets it (over the loopback hop the jar would keep no Secure one)."""
    header = next(h for h in response.headers.get_list("set-cookie") if h.startswith(f"{COOKIE}="))
    return header.partition("=")[2].partition(";")[0]
