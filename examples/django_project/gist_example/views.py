"""The example's views: a welcome page, and a page for logged-in users showing their Gist workspace's teammates."""

from __future__ import annotations

from typing import Any

from authlib.integrations.django_client import OAuth
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.html import escape

from gist_authlib import InstallLimit
from gist_authlib.django import register

oauth = OAuth()
# No token_store: with gist_authlib.django installed, tokens go to the project's database (GIST_TOKEN_KEY).
gist = register(
    oauth, scopes=settings.GIST_SCOPES, install_limit=InstallLimit(trusted_proxies=settings.GIST_TRUSTED_PROXIES)
)


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
    response = gist.get("teammates", token=stored[0].token)
    if response.status_code != 200:
        return HttpResponse(f"<h1>Gist answered HTTP {response.status_code}</h1>", status=502)
    return teammates_page(request, link, response.json().get("teammates", []))


def teammates_page(request: HttpRequest, link: Any, teammates: list[dict[str, Any]]) -> HttpResponse:
    rows = "".join(f"<li>{escape(t.get('name', ''))} &lt;{escape(t.get('email', ''))}&gt;</li>" for t in teammates)
    return HttpResponse(
        "<!doctype html><link rel=icon href=data:,><title>Your Gist teammates</title><h1>Logged in with Gist</h1>"
        f"<p>Signed in as {escape(request.user.get_username())}, for the workspace "
        f'{escape(link.workspace_name)} ({escape(link.workspace_id)}).</p><p id="count">It has {len(teammates)} '
        f'teammates:</p><ul id="teammates">{rows}</ul><p><a href="/">Home</a></p>'
    )
