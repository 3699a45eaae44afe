"""The example's views: a welcome page, and what happens after a Gist login."""

from __future__ import annotations

from typing import Any

from authlib.integrations.django_client import OAuth
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.html import escape

import gist_authlib

oauth = OAuth()
gist = gist_authlib.register(oauth, scopes=settings.GIST_SCOPES)


def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse(
        '<!doctype html><title>Gist example</title><h1>Welcome</h1><p><a href="/auth/gist">Log in with Gist</a></p>'
    )


def on_login(request: HttpRequest, token: dict[str, Any]) -> HttpResponse:
    # The token is used right here and not kept: this example only shows who is on the team.
    response = gist.get("teammates", token=token)
    if response.status_code != 200:
        return HttpResponse(f"<h1>Gist answered HTTP {response.status_code}</h1>", status=502)
    teammates = response.json().get("teammates", [])
    rows = "".join(f"<li>{escape(t.get('name', ''))} &lt;{escape(t.get('email', ''))}&gt;</li>" for t in teammates)
    return HttpResponse(
        "<!doctype html><title>Your Gist teammates</title><h1>Logged in with Gist</h1>"
        f'<p>Your workspace has {len(teammates)} teammates:</p><ul id="teammates">{rows}</ul>'
        '<p><a href="/">Home</a></p>'
    )
