"""Hand-written Authlib routes, as Authlib's documentation shows them (the "+authlib" route styles).

Nothing of gist_authlib's routes is used: only oauth.<name>.authorize_redirect / authorize_access_token, and an
``except OAuthError`` as any Authlib app has. ``next=`` and ``subject=`` are gist_authlib's keyword arguments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from support.apps import django_handler

if TYPE_CHECKING:
    from support.stacks import Stack


def _failed_page(stack: Stack, error: Exception) -> tuple[str, int]:
    """What a hand-written handler shows: the error's description, escaped, with its status when it has one."""
    import html

    stack.errors.append(error)  # type: ignore[arg-type]
    return f"<h1>Login failed</h1><p>{html.escape(str(getattr(error, 'description', '')))}</p>", int(
        getattr(error, "status_code", 400)
    )


def starlette_authlib_app(stack: Stack, oauth: Any, sessions: bool) -> Any:
    from authlib.integrations.starlette_client import OAuthError
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
    from starlette.routing import Route

    async def login(request: Request) -> Response:
        name = request.path_params["name"]
        redirect_uri = request.url_for("auth", name=name)
        try:
            response: Response = await oauth.create_client(name).authorize_redirect(
                request, redirect_uri, next=request.query_params.get("next")
            )
        except OAuthError as error:
            return HTMLResponse(*_failed_page(stack, error))
        return response

    async def auth(request: Request) -> Response:
        name = request.path_params["name"]
        client = oauth.create_client(name)
        try:
            token = await client.authorize_access_token(request, subject=f"{name}-user")
        except OAuthError as error:
            response: Response = HTMLResponse(*_failed_page(stack, error))
        else:
            stack.logins.append((name, token))
            if stack.redirect_after_login:
                response = RedirectResponse(request.state.gist_next, status_code=303)
            else:
                teammates = (await client.get("teammates", token=token)).json()["teammates"]
                response = JSONResponse({"teammates": [t["name"] for t in teammates], "next": request.state.gist_next})
        response.headers.update({"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
        return response

    async def me(request: Request) -> Response:
        subject = request.session.get(oauth.gist.gist_registration.subject_key)
        if subject is None:
            return JSONResponse({"error": "not logged in"}, status_code=401)
        teammates = (await oauth.gist.get("teammates", request=request)).json()["teammates"]
        return JSONResponse({"subject": subject, "teammates": [t["name"] for t in teammates]})

    async def log_out(request: Request) -> Response:
        subject = request.session.pop(oauth.gist.gist_registration.subject_key, None)
        if subject:
            oauth.gist.gist_registration.store.delete(subject)
        return JSONResponse({"subject": subject})

    routes = [
        Route("/auth/{name}", login),
        Route("/oauth/{name}/callback", auth, name="auth"),
        Route("/me", me),
        Route("/logout", log_out),
    ]
    middleware = [Middleware(SessionMiddleware, secret_key="test-session-secret")] if sessions else []
    return Starlette(routes=routes, middleware=middleware)


def flask_authlib_app(stack: Stack, oauth: Any, sessions: bool) -> Any:
    from authlib.integrations.flask_client import OAuthError
    from flask import Flask, g, jsonify, redirect, session, url_for

    app = Flask("contract_authlib")
    if sessions:
        app.secret_key = "test-session-secret"

    @app.get("/auth/<name>")
    def login(name: str) -> Any:
        from flask import request

        try:
            return oauth.create_client(name).authorize_redirect(
                url_for("auth", name=name, _external=True), next=request.args.get("next")
            )
        except OAuthError as error:
            return _failed_page(stack, error)

    @app.get("/oauth/<name>/callback")
    def auth(name: str) -> Any:
        client = oauth.create_client(name)
        try:
            token = client.authorize_access_token(subject=f"{name}-user")
        except OAuthError as error:
            response = app.make_response(_failed_page(stack, error))
        else:
            stack.logins.append((name, token))
            if stack.redirect_after_login:
                response = redirect(g.gist_next, 303)
            else:
                teammates = client.get("teammates", token=token).json()["teammates"]
                response = jsonify({"teammates": [t["name"] for t in teammates], "next": g.gist_next})
        response.headers.update({"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
        return response

    @app.get("/me")
    def me() -> Any:
        subject = session.get(oauth.gist.gist_registration.subject_key)
        if subject is None:
            return jsonify({"error": "not logged in"}), 401
        teammates = oauth.gist.get("teammates").json()["teammates"]
        return jsonify({"subject": subject, "teammates": [t["name"] for t in teammates]})

    @app.get("/logout")
    def log_out() -> Any:
        subject = session.pop(oauth.gist.gist_registration.subject_key, None)
        if subject:
            oauth.gist.gist_registration.store.delete(subject)
        return jsonify({"subject": subject})

    return app


def django_authlib_app(stack: Stack, oauth: Any, sessions: bool) -> Any:
    from authlib.integrations.django_client import OAuthError
    from django.http import HttpResponse, JsonResponse
    from django.urls import clear_url_caches, path, reverse

    from support import django_urlconf

    def login(request: Any, name: str) -> Any:
        redirect_uri = request.build_absolute_uri(reverse("auth", kwargs={"name": name}))
        try:
            return oauth.create_client(name).authorize_redirect(request, redirect_uri, next=request.GET.get("next"))
        except OAuthError as error:
            body, status = _failed_page(stack, error)
            return HttpResponse(body, status=status)

    def auth(request: Any, name: str) -> Any:
        client = oauth.create_client(name)
        try:
            token = client.authorize_access_token(request, subject=f"{name}-user")
        except OAuthError as error:
            body, status = _failed_page(stack, error)
            response: Any = HttpResponse(body, status=status)
        else:
            stack.logins.append((name, token))
            if stack.redirect_after_login:
                response = HttpResponse(status=303)
                response["Location"] = request.gist_next
            else:
                teammates = client.get("teammates", token=token).json()["teammates"]
                response = JsonResponse({"teammates": [t["name"] for t in teammates], "next": request.gist_next})
        response["Cache-Control"] = "no-store"
        response["Referrer-Policy"] = "no-referrer"
        return response

    def me(request: Any) -> Any:
        subject = request.session.get(oauth.gist.gist_registration.subject_key)
        if subject is None:
            return JsonResponse({"error": "not logged in"}, status=401)
        teammates = oauth.gist.get("teammates", request=request).json()["teammates"]
        return JsonResponse({"subject": subject, "teammates": [t["name"] for t in teammates]})

    def log_out(request: Any) -> Any:
        subject = request.session.pop(oauth.gist.gist_registration.subject_key, None)
        if subject:
            oauth.gist.gist_registration.store.delete(subject)
        return JsonResponse({"subject": subject})

    django_urlconf.urlpatterns[:] = [
        path("auth/<str:name>", login),
        path("oauth/<str:name>/callback", auth, name="auth"),
        path("me", me),
        path("logout", log_out),
    ]
    clear_url_caches()
    return django_handler(sessions)
