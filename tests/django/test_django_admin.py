"""The admin's pages of the gist_authlib app, as a superuser sees them over HTTP: who has a token and which
workspace logs in whom, never a token, its ciphertext or its hash."""

from __future__ import annotations

from support.django_project import serve_site
from support.web import browser_client


def test_the_admin_shows_tokens_and_links_but_never_a_token() -> None:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    with serve_site() as site:
        from gist_authlib.django.models import GistToken

        with browser_client(follow_redirects=True, timeout=10) as gist_user:
            assert gist_user.get(f"{site.url}/auth/gist").status_code == 200
            assert gist_user.get(f"{site.url}/admin/", follow_redirects=False).status_code == 302  # not staff
        row = GistToken.objects.get()
        secrets = [row.token, row.token_hash, site.gist.gist_registration.store.get(row.subject).token["access_token"]]
        admin_user = get_user_model().objects.create_superuser("admin", password="admin's long password")
        django_client = Client()
        django_client.force_login(admin_user)
        with browser_client(timeout=10) as admin:
            admin.cookies.set(settings.SESSION_COOKIE_NAME, django_client.cookies[settings.SESSION_COOKIE_NAME].value)
            pages = {
                path: admin.get(f"{site.url}/admin/gist_authlib/{path}")
                for path in (
                    "gisttoken/",
                    f"gisttoken/{row.subject}/change/",
                    "gisttoken/add/",
                    "workspacelink/",
                    f"gisttoken/{row.subject}/delete/",
                )
            }
    assert {path: page.status_code for path, page in pages.items()} == {
        "gisttoken/": 200,
        "gisttoken/workspace:100001/change/": 200,  # a read-only view
        "gisttoken/add/": 403,  # tokens come from logins only
        "workspacelink/": 200,
        "gisttoken/workspace:100001/delete/": 200,  # forgetting a token is allowed
    }
    assert "workspace:100001" in pages["gisttoken/"].text and site.sandbox.workspace.name in pages["gisttoken/"].text
    assert "gist-100001" in pages["workspacelink/"].text
    for path, page in pages.items():
        for secret in secrets:
            assert secret not in page.text, path
    assert 'name="token"' not in pages["gisttoken/workspace:100001/change/"].text


def test_what_the_admin_names_a_row_carries_no_token(django_project: None) -> None:
    from gist_authlib.django.models import GistToken, WorkspaceLink

    row = GistToken(subject="workspace:1", token="gAAAA-ciphertext", token_hash="f" * 64, version=1)
    assert (str(row), str(WorkspaceLink(workspace_id="1"))) == ("Gist token of workspace:1", "Gist workspace 1")
    assert "gAAAA" not in repr(row) and "f" * 64 not in repr(row)
