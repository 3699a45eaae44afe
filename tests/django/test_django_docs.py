"""docs/DJANGO.md as written: its "Settings", "URLs" and "Your own users" blocks make a Django project (in the
suite's database, tests/support/django_project.py) that logs a visitor in against the sandbox over HTTP, through
``@login_required`` and back, and lets only the workspaces the hook knows in."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from support.django_project import django_project
from support.snippets import blocks, run_blocks
from support.web import browser_client

from gist_authlib.sandbox import SandboxClient, ServerThread, WSGIServerThread, create_app
from gist_authlib.tokens import TokenCipher

PAGE = "docs/DJANGO.md"
CLIENT_ID, CLIENT_SECRET = "django-docs-app", "django-docs-secret"


def block(heading: str) -> Any:
    (found,) = [block for block in blocks(PAGE, "python") if block.heading == heading]
    return found


@contextmanager
def served_page(monkeypatch: pytest.MonkeyPatch, **settings: Any) -> Iterator[str]:
    """The page's project on loopback with the sandbox's settings in the environment; its URL."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import override_settings
    from django.urls import clear_url_caches

    app_server, sandbox_server = WSGIServerThread(), ServerThread()
    callback = f"{app_server.url}/oauth/gist/callback"
    sandbox = create_app(clients=[SandboxClient(CLIENT_ID, CLIENT_SECRET, (callback,))], auto_approve=True)
    for key, value in {
        "GIST_CLIENT_ID": CLIENT_ID,
        "GIST_CLIENT_SECRET": CLIENT_SECRET,
        "GIST_TOKEN_KEY": TokenCipher.generate_key(),
    }.items():
        monkeypatch.setenv(key, value)
    page_settings: dict[str, Any] = {}
    run_blocks([block("Settings")], page_settings)
    page_settings = {key: value for key, value in page_settings.items() if key.isupper()}
    page_settings["AUTHLIB_OAUTH_CLIENTS"]["gist"].update(
        authorize_url=f"{sandbox_server.url}/oauth/authorize",
        access_token_url=f"{sandbox_server.url}/oauth/token",
        api_base_url=f"{sandbox_server.url}/",
    )
    try:
        sandbox_server.start(sandbox)
        with django_project(**page_settings, **settings):
            urls = types.ModuleType("docs_django_urls")
            run_blocks([block("URLs")], urls.__dict__)
            with override_settings(ROOT_URLCONF=urls):
                clear_url_caches()
                app_server.start(WSGIHandler())
                yield app_server.url
    finally:
        app_server.stop()
        sandbox_server.stop()


def test_the_page_logs_a_django_user_in_through_login_required(monkeypatch: pytest.MonkeyPatch) -> None:
    with served_page(monkeypatch) as url, browser_client(follow_redirects=True, timeout=10) as browser:
        bounced = browser.get(f"{url}/", follow_redirects=False)
        page = browser.get(f"{url}/")
        admin = browser.get(f"{url}/admin/", follow_redirects=False)
    assert bounced.headers["location"] == "/auth/gist?next=/"
    assert page.status_code == 200 and str(page.url) == f"{url}/"
    assert page.text == "gist-100001: your workspace's teammates are Ada Lovelace, Grace Hopper, Alan Turing."
    assert admin.status_code == 302  # the admin is there, for staff only


@pytest.mark.parametrize(("known", "status"), [(["100001"], 200), ([], 403)])
def test_the_pages_hook_lets_only_known_workspaces_in(
    monkeypatch: pytest.MonkeyPatch, known: list[str], status: int
) -> None:
    myapp, auth = types.ModuleType("myapp"), types.ModuleType("myapp.auth")
    myapp.auth = auth  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "myapp", myapp)
    monkeypatch.setitem(sys.modules, "myapp.auth", auth)
    hook = block("Your own users")
    assert hook.code.startswith('# myapp/auth.py, named in settings.py: GIST_AUTHLIB_USER_FOR_LOGIN = "myapp.auth.')
    settings = {"GIST_AUTHLIB_USER_FOR_LOGIN": "myapp.auth.user_for_login", "GIST_WORKSPACES": known}
    with served_page(monkeypatch, **settings) as url, browser_client(follow_redirects=True, timeout=10) as browser:
        # Run inside the project, as in a real one: the block imports Django's auth models, which need their apps
        # installed (run before, it failed whenever no earlier test of the process had imported them).
        run_blocks([hook], auth.__dict__)
        page = browser.get(f"{url}/")
    assert page.status_code == status
