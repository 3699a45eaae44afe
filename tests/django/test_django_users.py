"""Django users from Gist logins, over HTTP against the sandbox: a Django project with ``gist_authlib.django`` in
INSTALLED_APPS and ``gist_urls(gist)`` without ``on_login`` (tests/support/django_project.py), logged into by a
scripted browser. The first login creates the workspace's user, the next ones log it in again, a logged-in user
connects the workspace to themselves, ``@login_required`` goes through ``/auth/gist?next=`` and back, and the
setting ``GIST_AUTHLIB_USER_FOR_LOGIN`` maps logins to a project's own users."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from support.django_project import TOKEN_KEY, Site, serve_site
from support.web import browser_client

WORKSPACE = "100001"  # the sandbox's workspace


@pytest.fixture
def site() -> Iterator[Site]:
    with serve_site() as served:
        yield served


def browser() -> httpx2.Client:
    return browser_client(follow_redirects=True, timeout=10)


def log_in(site: Site, client: httpx2.Client | None = None, path: str = "/auth/gist") -> httpx2.Response:
    """A whole Gist login in ``client`` (a fresh browser by default), following every redirect."""
    if client is not None:
        return client.get(site.url + path)
    with browser() as fresh:
        return fresh.get(site.url + path)


def logged_in_as(user: Any) -> httpx2.Client:
    """A browser whose session is ``user``'s, logged in with a password beforehand (Django's own login)."""
    from django.conf import settings
    from django.test import Client

    django_client = Client()
    django_client.force_login(user)
    client = browser()
    client.cookies.set(settings.SESSION_COOKIE_NAME, django_client.cookies[settings.SESSION_COOKIE_NAME].value)
    return client


def users() -> list[str]:
    from django.contrib.auth import get_user_model

    return sorted(user.get_username() for user in get_user_model().objects.all())


def test_the_first_login_creates_the_workspaces_user_and_the_next_logs_it_in_again(site: Site) -> None:
    from gist_authlib.django.models import GistToken, WorkspaceLink

    first = log_in(site)
    assert first.status_code == 200 and first.url == f"{site.url}/private"  # LOGIN_REDIRECT_URL
    assert first.json() == {
        "user": f"gist-{WORKSPACE}",
        "workspaces": [WORKSPACE],
        "token_subject": f"workspace:{WORKSPACE}",
    }
    link = WorkspaceLink.objects.get()
    assert (link.workspace_id, link.workspace_name, link.user.has_usable_password()) == (
        WORKSPACE,
        site.sandbox.workspace.name,
        False,
    )
    stored = GistToken.objects.get()  # in the project's database, encrypted with settings.GIST_TOKEN_KEY
    assert stored.subject == f"workspace:{WORKSPACE}" and stored.workspace_id == WORKSPACE
    access_token = site.gist.gist_registration.store.get(stored.subject).token["access_token"]
    assert access_token not in stored.token
    second = log_in(site)  # another browser, the same workspace: the same user
    assert second.json()["user"] == f"gist-{WORKSPACE}"
    assert users() == [f"gist-{WORKSPACE}"]
    assert len(site.sandbox.token_requests) == 2


def test_login_required_goes_through_the_gist_login_and_back(site: Site) -> None:
    with browser() as client:
        bounced = client.get(f"{site.url}/private?tab=2", follow_redirects=False)
        assert bounced.status_code == 302
        assert bounced.headers["location"] == "/auth/gist?next=/private%3Ftab%3D2"  # LOGIN_URL = "/auth/gist"
        page = client.get(f"{site.url}/private?tab=2")
        assert page.url == f"{site.url}/private?tab=2" and page.json()["user"] == f"gist-{WORKSPACE}"
        assert client.get(f"{site.url}/private", follow_redirects=False).status_code == 200  # still logged in


def test_a_logged_in_user_connects_the_workspace_and_its_logins_then_log_that_user_in(site: Site) -> None:
    from django.contrib.auth import get_user_model

    ada = get_user_model().objects.create_user("ada", password="correct horse battery staple")
    with logged_in_as(ada) as client:
        assert client.get(f"{site.url}/private").json()["workspaces"] == []
        connected = log_in(site, client, "/auth/gist?next=/private")
        assert connected.json() == {"user": "ada", "workspaces": [WORKSPACE], "token_subject": f"workspace:{WORKSPACE}"}
    assert log_in(site).json()["user"] == "ada"  # a new browser logging in with the workspace is ada
    assert users() == ["ada"]


def test_a_workspace_connected_to_another_user_is_refused(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    from django.contrib.auth import get_user_model

    log_in(site)  # the workspace's own user
    grace = get_user_model().objects.create_user("grace", password="another long password")
    with logged_in_as(grace) as client, caplog.at_level(logging.WARNING, "gist_authlib.django"):
        refused = log_in(site, client)
        assert refused.status_code == 403 and "Sign-in refused" in refused.text
        assert client.get(f"{site.url}/private").json()["user"] == "grace"  # still grace, nothing linked
    assert "login_refused" in caplog.text
    assert users() == ["gist-100001", "grace"]


def test_an_inactive_user_is_refused(site: Site) -> None:
    from django.contrib.auth import get_user_model

    log_in(site)
    get_user_model().objects.filter(username=f"gist-{WORKSPACE}").update(is_active=False)
    with browser() as client:
        refused = log_in(site, client)
        assert refused.status_code == 403
        assert client.get(f"{site.url}/private", follow_redirects=False).status_code == 302  # not logged in


def test_the_setting_maps_logins_to_the_projects_own_users() -> None:
    with serve_site(GIST_AUTHLIB_USER_FOR_LOGIN="support.django_project.team_user_for_login") as site:
        from django.contrib.auth import get_user_model

        assert log_in(site).json()["user"] == f"gist-{WORKSPACE}"
        assert get_user_model().objects.get().first_name == site.sandbox.workspace.name
    with serve_site(GIST_AUTHLIB_USER_FOR_LOGIN="support.django_project.refuse_every_login") as site:
        assert log_in(site).status_code == 403
        assert users() == []


def test_without_the_backend_the_login_says_what_to_add_and_the_check_warns() -> None:
    from django.core import checks

    with serve_site(AUTHENTICATION_BACKENDS=["django.contrib.auth.backends.ModelBackend"]) as site:
        failed = log_in(site)
        assert failed.status_code == 503
        assert [message.id for message in checks.run_checks() if message.id.startswith("gist_")] == [
            "gist_authlib.W001"
        ]
        assert users() == []


def test_the_backend_is_djangos_own_authenticate() -> None:
    from django.contrib.auth import authenticate

    with serve_site():
        from django.contrib.auth import get_user_model

        bob = get_user_model().objects.create_user("bob", password="bob's long password")
        assert authenticate(None, username="bob", password="bob's long password") == bob  # passwords: ModelBackend
        user = authenticate(None, gist_workspace_id=42)
        assert user is not None and user.get_username() == "gist-42" and user.backend.endswith("GistBackend")
        assert authenticate(None, gist_workspace_id=42) == user
        assert authenticate(None, gist_workspace_id=43, gist_token={"userinfo": {"sub": "42"}}) is None  # mismatch


def test_without_a_token_key_the_login_fails_and_stores_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GIST_TOKEN_KEY", raising=False)
    with serve_site(GIST_TOKEN_KEY=None) as site:
        from gist_authlib.django.models import GistToken

        failed = log_in(site)
        assert failed.status_code == 503
        assert (GistToken.objects.count(), users()) == (0, [])
    assert TOKEN_KEY  # the other tests' project has one


def test_a_login_whose_workspace_gist_did_not_name_logs_no_one_in(django_project: None) -> None:
    from django.test import RequestFactory

    from gist_authlib.django.auth import login_from_gist
    from gist_authlib.errors import TokenExchangeError

    request = RequestFactory().get("/oauth/gist/callback")
    with pytest.raises(TokenExchangeError) as info:  # Gist's token information could not be read
        login_from_gist(request, {"access_token": "gat-x"}, "/")
    assert info.value.error_code == "workspace_unknown" and users() == []


@pytest.mark.parametrize(
    ("apps", "message"),
    [
        (["django.contrib.sessions"], "django.contrib.auth in INSTALLED_APPS"),
        (["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions"], '"gist_authlib.django"'),
    ],
)
def test_gist_urls_without_on_login_says_which_app_is_missing(apps: list[str], message: str) -> None:
    from authlib.integrations.django_client import OAuth
    from django.test import override_settings

    import gist_authlib
    from gist_authlib import ConfigurationError
    from gist_authlib.django import gist_urls

    gist = gist_authlib.register(OAuth(), client_id="id", client_secret="secret")
    with override_settings(INSTALLED_APPS=apps), pytest.raises(ConfigurationError, match=message):
        gist_urls(gist)
    assert gist_urls(gist, on_login=lambda request, token: None)  # with on_login, no app is needed
