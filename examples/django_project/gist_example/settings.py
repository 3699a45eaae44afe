"""Settings of the Django example. Everything secret or site-specific comes from the environment.

GIST_CLIENT_ID, GIST_CLIENT_SECRET, SESSION_SECRET, GIST_TOKEN_KEY (required); GIST_AUTHORIZE_URL,
GIST_ACCESS_TOKEN_URL, GIST_API_BASE_URL, GIST_SCOPES, GIST_TOKEN_DB (a SQLite file, or a database URL such as
postgresql://... that several instances share), GIST_TRUSTED_PROXIES (optional). gist_authlib reads Authlib's own
Django setting, AUTHLIB_OAUTH_CLIENTS["gist"].
"""

from __future__ import annotations

import os

SECRET_KEY = os.environ["SESSION_SECRET"]
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", *os.environ.get("ALLOWED_HOSTS", "").split()]
ROOT_URLCONF = "gist_example.urls"
INSTALLED_APPS = ["django.contrib.sessions"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# Signed-cookie sessions need no database; the login keeps only a state (no secret) in the session.
# With a database, the default engine works the same way.
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = os.environ.get("SESSION_HTTPS_ONLY") == "1"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

AUTHLIB_OAUTH_CLIENTS = {
    "gist": {
        key: value
        for key, value in {
            "client_id": os.environ.get("GIST_CLIENT_ID"),
            "client_secret": os.environ.get("GIST_CLIENT_SECRET"),
            "authorize_url": os.environ.get("GIST_AUTHORIZE_URL"),
            "access_token_url": os.environ.get("GIST_ACCESS_TOKEN_URL"),
            "api_base_url": os.environ.get("GIST_API_BASE_URL"),
        }.items()
        if value
    }
}
GIST_SCOPES = os.environ.get("GIST_SCOPES", "read_teammates")
GIST_TOKEN_DB = os.environ.get("GIST_TOKEN_DB", "gist_tokens.sqlite3")  # a file path or a database URL
GIST_TOKEN_KEY = os.environ.get("GIST_TOKEN_KEY")  # encrypts stored tokens; required
# Your reverse proxies' networks ("10.0.0.0/8, ..."): the install limit then counts callers by X-Forwarded-For.
GIST_TRUSTED_PROXIES = os.environ.get("GIST_TRUSTED_PROXIES", "")
