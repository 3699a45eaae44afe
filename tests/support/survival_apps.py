"""Small apps for the "logins that survive" browser suite: each route style, a ``SameSite=Strict`` session, and
a session that every page writes.

Every app has the same pages:

* ``/`` counts visits in the session (as apps that touch the session on every request do) and says who is
  logged in; ``/somewhere`` says the same without writing;
* ``/touch?hold=1`` writes the session after ``/release`` was called: a request of another tab that began
  before a login started and ends after it (its response carries the session as it was when it began);
* ``/logout`` clears the session;
* the login starts at ``/auth/gist`` (the library's routes) or ``/login/gist`` (hand-written Authlib routes),
  and comes back to ``/oauth/gist/callback``; ``GIST_REDIRECT_URI`` names it on ``127.0.0.1``.

Starlette, FastAPI and Flask are built in the test process. Django runs in a child process (this file, as a
script), with database sessions in a SQLite file: Django's settings are global to a process.

    python tests/support/survival_apps.py django|django+authlib SANDBOX_URL CLIENT_ID SECRET PORT
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from typing import Any

STYLES = ["starlette", "fastapi", "flask", "django", "starlette+authlib", "flask+authlib", "django+authlib"]
CALLBACK_PATH = "/oauth/gist/callback"


class Gate:
    """Holds ``/touch?hold=1`` until ``/release``."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def wait(self) -> None:
        self.event.wait(10)
        self.event.clear()


def _page(title: str, visits: Any, user: Any) -> str:
    return f"<!doctype html><title>{title}</title><h1>{title}</h1><p id=state>visits={visits} user={user}</p>"


def register_kwargs(sandbox_url: str, client_id: str, secret: str, redirect_uri: str) -> dict[str, Any]:
    from gist_authlib import GistProvider

    return {
        "client_id": client_id,
        "client_secret": secret,
        "provider": GistProvider.at(sandbox_url),
        "redirect_uri": redirect_uri,
    }


def starlette_app(style: str, settings: dict[str, Any]) -> Any:
    from authlib.integrations.starlette_client import OAuth, OAuthError
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, RedirectResponse, Response
    from starlette.routing import Route

    import gist_authlib
    from gist_authlib.starlette import gist_routes

    oauth = OAuth()
    gist = gist_authlib.starlette.register(oauth, **settings)
    gate = Gate()

    async def home(request: Request) -> Response:
        request.session["visits"] = request.session.get("visits", 0) + 1
        return HTMLResponse(_page("Home", request.session["visits"], request.session.get("user")))

    async def somewhere(request: Request) -> Response:
        return HTMLResponse(_page("Somewhere", request.session.get("visits"), request.session.get("user")))

    async def touch(request: Request) -> Response:
        import anyio.to_thread

        await anyio.to_thread.run_sync(gate.wait)
        request.session["touched"] = request.session.get("touched", 0) + 1
        return HTMLResponse("touched")

    async def release(request: Request) -> Response:
        gate.event.set()
        return HTMLResponse("released")

    async def logout(request: Request) -> Response:
        request.session.clear()
        return HTMLResponse("logged out")

    routes = [Route(p, f) for p, f in [("/", home), ("/somewhere", somewhere), ("/touch", touch)]]
    routes += [Route("/release", release), Route("/logout", logout)]
    if style.endswith("+authlib"):

        async def login(request: Request) -> Response:
            response: Response = await gist.authorize_redirect(
                request, request.url_for("auth"), next=request.query_params.get("next")
            )
            return response

        async def auth(request: Request) -> Response:
            bounce = await gist.gist_bounce(request)  # a SameSite=Strict session: the one line it takes
            if bounce is not None:
                return bounce
            try:
                await gist.authorize_access_token(request)
            except OAuthError as error:
                if error.error_code == "callback_repeated" and request.session.get("user"):
                    return RedirectResponse(error.next_path or "/", status_code=303)
                return HTMLResponse(f"<h1>Login failed</h1><p>{error.error_code}</p>", status_code=400)
            request.session["user"] = "gist-user"
            return RedirectResponse(request.state.gist_next, status_code=303)

        routes += [Route("/login/gist", login), Route(CALLBACK_PATH, auth, name="auth")]
    else:

        def on_login(request: Request, token: dict[str, Any]) -> None:
            request.session["user"] = "gist-user"

        routes += gist_routes(gist, on_login=on_login)
    middleware = [Middleware(SessionMiddleware, secret_key="survival-secret", same_site="strict")]
    if style == "fastapi":
        from fastapi import FastAPI

        app = FastAPI(middleware=middleware)
        app.router.routes.extend(routes)
        return app
    return Starlette(routes=routes, middleware=middleware)


def flask_app(style: str, settings: dict[str, Any]) -> Any:
    from authlib.integrations.flask_client import OAuth, OAuthError
    from flask import Flask, g, redirect, request, session, url_for

    import gist_authlib
    from gist_authlib.flask import gist_blueprint

    app = Flask("survival")
    app.config.update(SECRET_KEY="survival-secret", SESSION_COOKIE_SAMESITE="Strict")
    oauth = OAuth(app)
    gist = gist_authlib.flask.register(oauth, **settings)
    gate = Gate()

    @app.get("/")
    def home() -> Any:
        session["visits"] = session.get("visits", 0) + 1
        return _page("Home", session["visits"], session.get("user"))

    @app.get("/somewhere")
    def somewhere() -> Any:
        return _page("Somewhere", session.get("visits"), session.get("user"))

    @app.get("/touch")
    def touch() -> Any:
        gate.wait()
        session["touched"] = session.get("touched", 0) + 1
        return "touched"

    @app.get("/release")
    def release() -> Any:
        gate.event.set()
        return "released"

    @app.get("/logout")
    def logout() -> Any:
        session.clear()
        return "logged out"

    if style.endswith("+authlib"):

        @app.get("/login/gist")
        def login() -> Any:
            return gist.authorize_redirect(url_for("auth", _external=True), next=request.args.get("next"))

        @app.get(CALLBACK_PATH, endpoint="auth")
        def auth() -> Any:
            bounce = gist.gist_bounce()  # a SameSite=Strict session: the one line it takes
            if bounce is not None:
                return bounce
            try:
                gist.authorize_access_token()
            except OAuthError as error:
                if error.error_code == "callback_repeated" and session.get("user"):
                    return redirect(error.next_path or "/", 303)
                return f"<h1>Login failed</h1><p>{error.error_code}</p>", 400
            session["user"] = "gist-user"
            return redirect(g.gist_next, 303)

    else:

        def on_login(token: dict[str, Any]) -> None:
            session["user"] = "gist-user"

        app.register_blueprint(gist_blueprint(gist, on_login=on_login))
    return app


def serve_django(style: str, sandbox_url: str, client_id: str, secret: str, port: int) -> None:
    """Serve the Django app of ``style`` with database sessions, until stdin closes."""
    import django
    from django.conf import settings

    folder = tempfile.mkdtemp(prefix="gist-survival-")
    settings.configure(
        SECRET_KEY="survival-secret-key-for-tests-only",
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
        SESSION_ENGINE="django.contrib.sessions.backends.db",
        SESSION_COOKIE_SAMESITE="Strict",
        INSTALLED_APPS=["django.contrib.sessions"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(folder, "db.sqlite3")}},
        AUTHLIB_OAUTH_CLIENTS={},
        USE_TZ=True,
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    global urlpatterns
    urlpatterns = _django_urls(style, register_kwargs(sandbox_url, client_id, secret, _callback(port)))
    from django.core.handlers.wsgi import WSGIHandler

    from gist_authlib.sandbox import WSGIServerThread

    with WSGIServerThread(WSGIHandler(), host="127.0.0.1", port=port) as server:
        print(server.url, flush=True)
        sys.stdin.read()


def _callback(port: int) -> str:
    return f"http://127.0.0.1:{port}{CALLBACK_PATH}"


def _django_urls(style: str, settings: dict[str, Any]) -> list[Any]:
    from authlib.integrations.django_client import OAuth, OAuthError
    from django.http import HttpResponse, HttpResponseRedirect
    from django.urls import path

    import gist_authlib
    from gist_authlib.django import gist_urls

    gist = gist_authlib.django.register(OAuth(), **settings)
    gate = Gate()

    def home(request: Any) -> Any:
        request.session["visits"] = request.session.get("visits", 0) + 1
        return HttpResponse(_page("Home", request.session["visits"], request.session.get("user")))

    def somewhere(request: Any) -> Any:
        return HttpResponse(_page("Somewhere", request.session.get("visits"), request.session.get("user")))

    def touch(request: Any) -> Any:
        gate.wait()
        request.session["touched"] = request.session.get("touched", 0) + 1
        return HttpResponse("touched")

    def release(request: Any) -> Any:
        gate.event.set()
        return HttpResponse("released")

    def logout(request: Any) -> Any:
        request.session.flush()
        return HttpResponse("logged out")

    patterns = [path("", home), path("somewhere", somewhere), path("touch", touch)]
    patterns += [path("release", release), path("logout", logout)]
    if style.endswith("+authlib"):

        def login(request: Any) -> Any:
            return gist.authorize_redirect(
                request, request.build_absolute_uri(CALLBACK_PATH), next=request.GET.get("next")
            )

        def auth(request: Any) -> Any:
            bounce = gist.gist_bounce(request)  # a SameSite=Strict session: the one line it takes
            if bounce is not None:
                return bounce
            try:
                gist.authorize_access_token(request)
            except OAuthError as error:
                if error.error_code == "callback_repeated" and request.session.get("user"):
                    return HttpResponseRedirect(error.next_path or "/")
                return HttpResponse(f"<h1>Login failed</h1><p>{error.error_code}</p>", status=400)
            request.session["user"] = "gist-user"
            return HttpResponseRedirect(request.gist_next)

        return [*patterns, path("login/gist", login), path(CALLBACK_PATH.lstrip("/"), auth)]

    def on_login(request: Any, token: dict[str, Any]) -> None:
        request.session["user"] = "gist-user"

    return [*patterns, *gist_urls(gist, on_login=on_login)]


urlpatterns: list[Any] = []

if __name__ == "__main__":
    serve_django(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
