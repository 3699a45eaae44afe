"""One app per framework, all with the same behaviour, on gist_authlib's own routes (the contract's stacks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gist_authlib import GistAuthError

if TYPE_CHECKING:
    from support.stacks import Stack


#: The registrations every contract app carries: Gist, and a second Gist app beside it.
REGISTRATIONS = ("gist", "gist_b")


def starlette_app(stack: Stack, gists: dict[str, Any], sessions: bool, fastapi: bool) -> Any:
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

    from gist_authlib.starlette import default_on_error, gist_routes

    def handlers(name: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
        gist = gists[name]

        async def on_login(request: Request, token: dict[str, Any]) -> Response | None:
            stack.logins.append((name, token))
            if stack.redirect_after_login:
                return None
            teammates = (await gist.get("teammates", token=token)).json()["teammates"]
            return JSONResponse({"teammates": [t["name"] for t in teammates], "next": request.state.gist_next})

        def on_error(request: Request, error: GistAuthError) -> Response:
            stack.errors.append(error)
            return default_on_error(request, error)

        return on_login, on_error

    from starlette.routing import Route

    from gist_authlib.starlette import logout, stored_token

    async def me(request: Request) -> Response:
        # Authlib's own call, with the token its fetch_token hook finds in the store for this session
        record = await stored_token(request, gists["gist"])
        if record is None:
            return JSONResponse({"error": "not logged in"}, status_code=401)
        teammates = (await gists["gist"].get("teammates", request=request)).json()["teammates"]
        return JSONResponse({"subject": record.subject, "teammates": [t["name"] for t in teammates]})

    async def log_out(request: Request) -> Response:
        return JSONResponse({"subject": await logout(request, gists["gist"], forget_token=True)})

    routes: list[Any] = [Route("/me", me), Route("/logout", log_out)]
    for name in REGISTRATIONS:
        on_login, on_error = handlers(name)

        def on_install(request: Request, token: dict[str, Any], workspace_id: str, name: str = name) -> None:
            stack.installs.append((workspace_id, token))

        routes += gist_routes(
            gists[name],
            on_login=on_login,
            on_error=on_error,
            subject=lambda request, token, name=name: f"{name}-user",
            on_install=on_install if stack.accept_installs else None,
            login_path=f"/auth/{name}",
            callback_path=f"/oauth/{name}/callback",
        )
    if fastapi:
        from fastapi import FastAPI

        app = FastAPI()
        app.router.routes.extend(routes)
        if sessions:
            app.add_middleware(SessionMiddleware, secret_key="test-session-secret")
        return app
    from starlette.applications import Starlette
    from starlette.middleware import Middleware

    middleware = [Middleware(SessionMiddleware, secret_key="test-session-secret")] if sessions else []
    return Starlette(routes=routes, middleware=middleware)


def flask_app(stack: Stack, gists: dict[str, Any], sessions: bool) -> Any:
    from flask import Flask, g, jsonify

    from gist_authlib.flask import default_on_error, gist_blueprint, logout, stored_token

    app = Flask("contract")
    if sessions:
        app.secret_key = "test-session-secret"

    @app.get("/me")
    def me() -> Any:
        record = stored_token(gists["gist"])
        if record is None:
            return jsonify({"error": "not logged in"}), 401
        teammates = gists["gist"].get("teammates").json()["teammates"]  # Authlib's fetch_token: the store
        return jsonify({"subject": record.subject, "teammates": [t["name"] for t in teammates]})

    @app.get("/logout")
    def log_out() -> Any:
        return jsonify({"subject": logout(gists["gist"], forget_token=True)})

    for name in REGISTRATIONS:
        gist = gists[name]

        def on_login(token: dict[str, Any], name: str = name, gist: Any = gist) -> Any:
            stack.logins.append((name, token))
            if stack.redirect_after_login:
                return None
            teammates = gist.get("teammates", token=token).json()["teammates"]
            return jsonify({"teammates": [t["name"] for t in teammates], "next": g.gist_next})

        def on_error(error: GistAuthError) -> Any:
            stack.errors.append(error)
            return default_on_error(error)

        app.register_blueprint(
            gist_blueprint(
                gist,
                on_login=on_login,
                on_error=on_error,
                subject=lambda token, name=name: f"{name}-user",
                on_install=(lambda token, workspace_id: stack.installs.append((workspace_id, token)))
                if stack.accept_installs
                else None,
                login_path=f"/auth/{name}",
                callback_path=f"/oauth/{name}/callback",
            )
        )
    return app


def django_app(stack: Stack, gists: dict[str, Any], sessions: bool) -> Any:
    from django.http import JsonResponse
    from django.urls import clear_url_caches, path

    from gist_authlib.django import default_on_error, gist_urls, logout, stored_token
    from support import django_urlconf

    def me(request: Any) -> Any:
        record = stored_token(request, gists["gist"])
        if record is None:
            return JsonResponse({"error": "not logged in"}, status=401)
        teammates = gists["gist"].get("teammates", request=request).json()["teammates"]
        return JsonResponse({"subject": record.subject, "teammates": [t["name"] for t in teammates]})

    def log_out(request: Any) -> Any:
        return JsonResponse({"subject": logout(request, gists["gist"], forget_token=True)})

    patterns: list[Any] = [path("me", me), path("logout", log_out)]
    for name in REGISTRATIONS:
        gist = gists[name]

        def on_login(request: Any, token: dict[str, Any], name: str = name, gist: Any = gist) -> Any:
            stack.logins.append((name, token))
            if stack.redirect_after_login:
                return None
            teammates = gist.get("teammates", token=token).json()["teammates"]
            return JsonResponse({"teammates": [t["name"] for t in teammates], "next": request.gist_next})

        def on_error(request: Any, error: GistAuthError) -> Any:
            stack.errors.append(error)
            return default_on_error(request, error)

        patterns += gist_urls(
            gist,
            on_login=on_login,
            on_error=on_error,
            subject=lambda request, token, name=name: f"{name}-user",
            on_install=(lambda request, token, workspace_id: stack.installs.append((workspace_id, token)))
            if stack.accept_installs
            else None,
            login_path=f"auth/{name}",
            callback_path=f"oauth/{name}/callback",
        )
    django_urlconf.urlpatterns[:] = patterns
    clear_url_caches()
    return django_handler(sessions)


def django_handler(sessions: bool) -> Any:
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.utils import override_settings

    if sessions:
        return WSGIHandler()
    without_sessions = override_settings(MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"])

    def app(environ: Any, start_response: Any) -> Any:
        with without_sessions:
            return WSGIHandler()(environ, start_response)

    return app
