"""The example's views: a welcome page, and a page for logged-in users showing their Gist workspace's teammates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from authlib.integrations.django_client import OAuth
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect
from django.utils.html import escape

from gist_authlib import GistAuthError, GistClient, InstallLimit
from gist_authlib.django import default_on_error, register

oauth = OAuth()
# No token_store: with gist_authlib.django installed, tokens go to the project's database (GIST_TOKEN_KEY).
gist = register(
    oauth, scopes=settings.GIST_SCOPES, install_limit=InstallLimit(trusted_proxies=settings.GIST_TRUSTED_PROXIES)
)
api = GistClient.from_authlib(gist, None)  # one pool for every user's calls: each call names its token


class GistErrors:
    """Middleware: any GistAuthError a view raises (the token database down: 503; Gist failing: 502) gets the
    library's error page, never a bare 500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponseBase | None:
        return default_on_error(request, exception) if isinstance(exception, GistAuthError) else None


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        body = f'<p>Signed in as {escape(request.user.get_username())}. <a href="/me/teammates">Your teammates</a></p>'
    else:
        body = '<p><a href="/auth/gist">Log in with Gist</a></p>'
    return HttpResponse(f"<!doctype html><link rel=icon href=data:,><title>Gist example</title><h1>Welcome</h1>{body}")


@login_required  # type: ignore[untyped-decorator]  # Django ships no type hints
def my_teammates(request: HttpRequest) -> HttpResponse:
    link = request.user.gist_workspaces.first()  # the Gist workspace connected to this user (gist_authlib's model)
    store = gist.gist_registration.store  # the project's database (gist_authlib.django is installed)
    stored = store.list_by_workspace(link.workspace_id) if link is not None and store is not None else []
    if not stored:  # a user who signed in with a password connects a workspace by logging in with Gist
        return redirect("/auth/gist?next=/me/teammates")
    teammates = api.with_token(stored[0].token).teammates.list()  # typed; Gist failing: a GistAPIError (502)
    return teammates_page(request, link, teammates)


def teammates_page(request: HttpRequest, link: Any, teammates: list[Any]) -> HttpResponse:
    rows = "".join(f"<li>{escape(t.name or '')} &lt;{escape(t.email or '')}&gt;</li>" for t in teammates)
    return HttpResponse(
        "<!doctype html><link rel=icon href=data:,><title>Your Gist teammates</title><h1>Logged in with Gist</h1>"
        f"<p>Signed in as {escape(request.user.get_username())}, for the workspace "
        f'{escape(link.workspace_name)} ({escape(link.workspace_id)}).</p><p id="count">It has {len(teammates)} '
        f'teammates:</p><ul id="teammates">{rows}</ul><p><a href="/">Home</a></p>'
    )
