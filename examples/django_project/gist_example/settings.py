"""Settings of the Django example: a project with users, the admin and sessions in its database, where a Gist login
logs a Django user in (one per Gist workspace) and the Gist tokens are kept, encrypted, in the same database.

From the environment: GIST_CLIENT_ID, GIST_CLIENT_SECRET, SESSION_SECRET, GIST_TOKEN_KEY (required);
GIST_AUTHORIZE_URL, GIST_ACCESS_TOKEN_URL, GIST_API_BASE_URL, GIST_SCOPES, GIST_TRUSTED_PROXIES, DJANGO_DB (the
SQLite file; db.sqlite3 in the current folder by default), DJANGO_DEBUG (optional). gist_authlib reads Authlib's
own Django setting, AUTHLIB_OAUTH_CLIENTS["gist"].
"""

from __future__ import annotations

import os

SECRET_KEY = os.environ["SESSION_SECRET"]
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", *os.environ.get("ALLOWED_HOSTS", "").split()]
ROOT_URLCONF = "gist_example.urls"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "gist_authlib.django",  # Gist tokens and workspace links in this database, and their admin pages
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "gist_example.views.GistErrors",  # a GistAuthError a view raises gets the library's error page (503, 502)
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ.get("DJANGO_DB", "db.sqlite3")}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = os.environ.get("SESSION_HTTPS_ONLY") == "1"
USE_TZ = True
STATIC_URL = "static/"

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",  # passwords (the admin's superuser)
    "gist_authlib.django.GistBackend",  # Gist logins
]
LOGIN_URL = "/auth/gist"  # @login_required sends visitors to the Gist login, with ?next=
LOGIN_REDIRECT_URL = "/me/teammates"  # where a login without ?next= lands

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
GIST_TOKEN_KEY = os.environ.get("GIST_TOKEN_KEY")  # encrypts the stored tokens; required
# Your reverse proxies' networks ("10.0.0.0/8, ..."): the install limit then counts callers by X-Forwarded-For.
GIST_TRUSTED_PROXIES = os.environ.get("GIST_TRUSTED_PROXIES", "")
