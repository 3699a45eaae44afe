"""A Django project with the ``gist_authlib.django`` app, inside the test process: the suite's Django settings
(tests/conftest.py) with the app, ``django.contrib.auth``, the admin and database sessions installed, in a SQLite
database of this process, migrated once and emptied for each test; and the app that tests/django serves over
HTTP against the sandbox: ``gist_urls(gist)`` with no ``on_login``, a ``@login_required`` page and the admin.

The other tests keep the suite's plain settings: the app is installed only while :func:`django_project` is open.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from gist_authlib.tokens import TokenCipher

APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "gist_authlib.django",
]
#: The key the project's settings give its token store (settings.GIST_TOKEN_KEY).
TOKEN_KEY = TokenCipher.generate_key()
SETTINGS: dict[str, Any] = {
    "INSTALLED_APPS": APPS,
    "MIDDLEWARE": [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    ],
    "SESSION_ENGINE": "django.contrib.sessions.backends.db",
    "AUTHENTICATION_BACKENDS": ["django.contrib.auth.backends.ModelBackend", "gist_authlib.django.GistBackend"],
    "LOGIN_URL": "/auth/gist",
    "LOGIN_REDIRECT_URL": "/private",
    "STATIC_URL": "/static/",
    "GIST_TOKEN_KEY": TOKEN_KEY,
    "TEMPLATES": [
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
    ],
}
_migrated = False


@contextmanager
def django_project(**settings: Any) -> Iterator[None]:
    """The app installed, its database migrated (once a process) and empty, until the block ends."""
    from django.core.management import call_command
    from django.test import override_settings

    global _migrated
    with override_settings(**{**SETTINGS, **settings}):
        if not _migrated:
            call_command("migrate", verbosity=0)
            _migrated = True
        call_command("flush", interactive=False, verbosity=0, inhibit_post_migrate=True)
        yield


@dataclass
class Site:
    """The project served on loopback, and the sandbox it logs in with."""

    url: str
    sandbox: Any
    sandbox_url: str
    gist: Any


def project_urls(gist: Any) -> list[Any]:
    """The project's URLs: the Gist login with no ``on_login`` (Django users), a ``@login_required`` page
    naming the user and their workspaces, and the admin."""
    from django.contrib import admin
    from django.contrib.auth.decorators import login_required
    from django.http import JsonResponse
    from django.urls import include, path

    from gist_authlib.django import gist_urls, stored_token

    @login_required
    def private(request: Any) -> Any:
        record = stored_token(request, gist)
        return JsonResponse(
            {
                "user": request.user.get_username(),
                "workspaces": sorted(link.workspace_id for link in request.user.gist_workspaces.all()),
                "token_subject": record.subject if record is not None else None,
            }
        )

    return [path("admin/", admin.site.urls), path("private", private), path("", include(gist_urls(gist)))]


@contextmanager
def serve_site(*, auto_approve: bool = True, **settings: Any) -> Iterator[Site]:
    """The project (with ``settings`` on top of its own) and a sandbox (approving every login unless
    ``auto_approve=False``: then its consent page asks), both on loopback."""
    from authlib.integrations.django_client import OAuth
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.handlers.wsgi import WSGIHandler
    from django.urls import clear_url_caches

    from gist_authlib import GistProvider
    from gist_authlib.django import register
    from gist_authlib.sandbox import SandboxClient, ServerThread, WSGIServerThread, create_app
    from support import django_urlconf

    app_server, sandbox_server = WSGIServerThread(), ServerThread()
    sandbox = create_app(
        clients=[SandboxClient("django-app", "django-secret", (f"{app_server.url}/oauth/gist/callback",))],
        auto_approve=auto_approve,
    )
    try:
        with django_project(**settings):
            sandbox_server.start(sandbox)
            provider = GistProvider.at(sandbox_server.url)
            gist = register(OAuth(), client_id="django-app", client_secret="django-secret", provider=provider)
            django_urlconf.urlpatterns[:] = project_urls(gist)
            clear_url_caches()
            app_server.start(StaticFilesHandler(WSGIHandler()))  # the admin's CSS and scripts, as runserver
            yield Site(app_server.url, sandbox, sandbox_server.url, gist)
    finally:
        app_server.stop()
        sandbox_server.stop()


def team_user_for_login(request: Any, token: Any) -> Any:
    """A ``GIST_AUTHLIB_USER_FOR_LOGIN`` of a project's own: the default mapping, and the user named after the
    workspace."""
    from gist_authlib.django.auth import user_for_login

    user = user_for_login(request, token)
    if user is not None:
        user.first_name = token["userinfo"]["workspace_name"]
        user.save(update_fields=["first_name"])
    return user


def refuse_every_login(request: Any, token: Any) -> None:
    """A ``GIST_AUTHLIB_USER_FOR_LOGIN`` that lets no workspace in."""
    return None
