"""The example's views: a welcome page, and what happens after a Gist login."""

from __future__ import annotations

from typing import Any

from authlib.integrations.django_client import OAuth
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.html import escape

import gist_authlib
from gist_authlib import InstallLimit
from gist_authlib.django import stored_token
from gist_authlib.tokens import open_token_store

oauth = OAuth()
store = open_token_store(settings.GIST_TOKEN_DB, key=settings.GIST_TOKEN_KEY)
gist = gist_authlib.register(
    oauth,
    scopes=settings.GIST_SCOPES,
    token_store=store,
    install_limit=InstallLimit(trusted_proxies=settings.GIST_TRUSTED_PROXIES),
)


def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse(
        "<!doctype html><link rel=icon href=data:,>"
        '<title>Gist example</title><h1>Welcome</h1><p><a href="/auth/gist">Log in with Gist</a></p>'
    )


def on_login(request: HttpRequest, token: dict[str, Any]) -> HttpResponse:
    # Already stored, keyed by workspace; gist_urls(..., subject=...) keys it by your own user id instead.
    return teammates_page(gist.get("teammates", token=token))


def my_teammates(request: HttpRequest) -> HttpResponse:
    if stored_token(request, gist) is None:
        return redirect("/auth/gist?next=/me/teammates")
    return teammates_page(gist.get("teammates", request=request))  # Authlib's fetch_token: the stored token


def teammates_page(response: Any) -> HttpResponse:
    if response.status_code != 200:
        return HttpResponse(f"<h1>Gist answered HTTP {response.status_code}</h1>", status=502)
    teammates = response.json().get("teammates", [])
    rows = "".join(f"<li>{escape(t.get('name', ''))} &lt;{escape(t.get('email', ''))}&gt;</li>" for t in teammates)
    return HttpResponse(
        "<!doctype html><link rel=icon href=data:,><title>Your Gist teammates</title><h1>Logged in with Gist</h1>"
        f'<p>Your workspace has {len(teammates)} teammates:</p><ul id="teammates">{rows}</ul>'
        '<p><a href="/">Home</a></p>'
    )
