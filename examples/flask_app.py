"""Gist's Ruby quickstart, redone with Flask and gist_authlib (application factory pattern).

Routes: ``/`` welcomes with a login link, ``/auth/gist`` starts the login, ``/oauth/gist/callback``
exchanges the code, fetches ``/teammates`` with the new token and shows them.

Settings come from the environment (as in the Starlette example): GIST_CLIENT_ID, GIST_CLIENT_SECRET,
SESSION_SECRET (required); GIST_AUTHORIZE_URL, GIST_ACCESS_TOKEN_URL, GIST_API_BASE_URL, GIST_SCOPES
(optional).

Run it:  flask --app examples.flask_app:create_app run --port 8000
Or:      gist-authlib demo --framework flask
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from authlib.integrations.flask_client import OAuth
from flask import Flask, render_template_string

import gist_authlib
from gist_authlib.flask import gist_blueprint

oauth = OAuth()
# Registered once at import, configured per app by init_app: the usual Flask extension pattern.
gist = gist_authlib.register(oauth, scopes=os.environ.get("GIST_SCOPES", "read_teammates"))

HOME = """<!doctype html><title>Gist example</title><h1>Welcome</h1>
<p><a href="{{ url_for('gist_auth.login') }}">Log in with Gist</a></p>"""

TEAMMATES = """<!doctype html><title>Your Gist teammates</title><h1>Logged in with Gist</h1>
<p>Your workspace has {{ teammates|length }} teammates:</p>
<ul id="teammates">{% for t in teammates %}<li>{{ t.name }} &lt;{{ t.email }}&gt;</li>{% endfor %}</ul>
<p><a href="/">Home</a></p>"""


def on_login(token: dict[str, Any]) -> Any:
    # The token is used right here and not kept: this example only shows who is on the team.
    response = gist.get("teammates", token=token)
    if response.status_code != 200:
        return f"<h1>Gist answered HTTP {response.status_code}</h1>", 502
    return render_template_string(TEAMMATES, teammates=response.json().get("teammates", []))


def create_app(environ: Mapping[str, str] | None = None) -> Flask:
    """Build the example app from ``environ`` (the process environment by default)."""
    env = environ if environ is not None else os.environ
    app = Flask(__name__)
    app.secret_key = env["SESSION_SECRET"]
    app.config.update({k: v for k, v in env.items() if k.startswith("GIST_")})
    app.config.update(SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_SECURE=env.get("SESSION_HTTPS_ONLY") == "1")
    oauth.init_app(app)
    app.add_url_rule("/", "home", lambda: render_template_string(HOME))
    app.register_blueprint(gist_blueprint(gist, on_login=on_login))
    return app


if __name__ == "__main__":
    create_app().run(host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
