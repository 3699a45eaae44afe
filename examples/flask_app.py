"""Gist's Ruby quickstart, redone with Flask and gist_authlib (an application factory).

Routes: ``/`` welcomes with a login link, ``/auth/gist`` starts the login, ``/oauth/gist/callback``
exchanges the code, fetches ``/teammates`` with the new token and shows them; ``/me/teammates`` shows them
again with the token kept in the encrypted store (GIST_TOKEN_KEY; GIST_TOKEN_DB, a SQLite file or a database URL
such as postgresql://... that several instances share). Every page answers a failure with the library's error
page: 502 when Gist fails, 503 when the token store is down.

Settings come from the environment (as in the Starlette example): GIST_CLIENT_ID, GIST_CLIENT_SECRET,
SESSION_SECRET (required); GIST_AUTHORIZE_URL, GIST_ACCESS_TOKEN_URL, GIST_API_BASE_URL, GIST_SCOPES,
GIST_TRUSTED_PROXIES (optional).

Run it:  flask --app gist_authlib.examples.flask_app:create_app run --port 8000
Or:      gist-authlib demo --framework flask
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from authlib.integrations.flask_client import OAuth
from flask import Flask, redirect, render_template_string, session

import gist_authlib
from gist_authlib import GistAuthError, GistClient, InstallLimit
from gist_authlib.flask import default_on_error, gist_blueprint, stored_token
from gist_authlib.tokens import open_token_store

HOME = """<!doctype html><link rel=icon href=data:,><title>Gist example</title><h1>Welcome</h1>
{% if logged_in %}<p>Logged in with Gist. <a href="/me/teammates">Your teammates</a></p>{% endif %}
<p><a href="{{ url_for('gist_auth.login') }}">Log in with Gist</a></p>"""

TEAMMATES = """<!doctype html><link rel=icon href=data:,><title>Your Gist teammates</title><h1>Logged in with Gist</h1>
<p>Your workspace has {{ teammates|length }} teammates:</p>
<ul id="teammates">{% for t in teammates %}<li>{{ t.name }} &lt;{{ t.email }}&gt;</li>{% endfor %}</ul>
<p><a href="/">Home</a></p>"""


def create_app(environ: Mapping[str, str] | None = None) -> Flask:
    """Build the example app from ``environ`` (the process environment by default)."""
    env = environ if environ is not None else os.environ
    app = Flask(__name__)
    app.secret_key = env["SESSION_SECRET"]
    app.config.update({k: v for k, v in env.items() if k.startswith("GIST_")})
    app.config.update(SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_SECURE=env.get("SESSION_HTTPS_ONLY") == "1")
    oauth = OAuth(app)
    store = open_token_store(env.get("GIST_TOKEN_DB", "gist_tokens.sqlite3"), key=env.get("GIST_TOKEN_KEY"))
    gist = gist_authlib.register(
        oauth,
        scopes=env.get("GIST_SCOPES", "read_teammates"),
        token_store=store,
        install_limit=InstallLimit(trusted_proxies=env.get("GIST_TRUSTED_PROXIES", "")),
    )

    # One connection pool for the whole process; each user's calls go through with_token(...) on it.
    api = GistClient.from_authlib(gist, None)

    def teammates_page(client: GistClient) -> Any:
        # Gist failing: a GistAPIError, answered by default_on_error below (502)
        return render_template_string(TEAMMATES, teammates=client.teammates.list())

    def on_login(token: dict[str, Any]) -> Any:
        # Already stored, keyed by workspace; gist_blueprint(..., subject=...) keys it by your own user id instead.
        return teammates_page(api.with_token(token))

    @app.get("/me/teammates")
    def my_teammates() -> Any:
        record = stored_token(gist)  # the store down: a TokenStoreError (503 page)
        if record is None:
            return redirect("/auth/gist?next=/me/teammates")
        # A 401 deletes the stored token (the app was uninstalled); the next visit logs in again.
        return teammates_page(api.with_token(record.token, store=store, subject=record.subject))

    # Any GistAuthError a page raises gets the library's error page with its status, never a bare 500.
    app.register_error_handler(GistAuthError, default_on_error)

    # Who is logged in is in the session alone: the home page reads no token store.
    app.add_url_rule(
        "/", "home", lambda: render_template_string(HOME, logged_in=gist.gist_registration.subject_key in session)
    )
    # Installs started inside Gist: stored by workspace, then on to Gist's acknowledgement (None).
    app.register_blueprint(gist_blueprint(gist, on_login=on_login, on_install=lambda token, workspace_id: None))
    return app


if __name__ == "__main__":
    create_app().run(host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
