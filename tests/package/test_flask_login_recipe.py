"""docs/GETTING_STARTED.md's Flask-Login recipe, run as written against the sandbox: ``@login_required`` sends a
visitor through the Gist login and back, logged in as the workspace's user, and the next login finds that user."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.snippets import blocks, run_blocks, start_sandbox
from support.web import browser_client

GETTING_STARTED = "docs/GETTING_STARTED.md"


def test_the_flask_login_recipe_logs_the_workspaces_user_in(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (recipe,) = [block for block in blocks(GETTING_STARTED, "python") if block.heading == "Flask-Login"]
    served = start_sandbox("wsgi", "/oauth/gist/callback", monkeypatch, tmp_path)
    namespace: dict[str, Any] = {"__name__": "flask_login_recipe"}
    run_blocks([recipe], namespace)
    try:
        served.servers[0].start(namespace["create_app"]())
        with browser_client(timeout=10) as browser:
            bounced = browser.get(f"{served.app_url}/?tab=2")
            page = browser.get(f"{served.app_url}/?tab=2", follow_redirects=True)
            again = browser.get(f"{served.app_url}/")
        with browser_client(follow_redirects=True, timeout=10) as stranger:
            second = stranger.get(f"{served.app_url}/auth/gist")
    finally:
        for server in served.servers:
            server.stop()
    assert bounced.status_code == 302 and bounced.headers["location"] == "/auth/gist?next=%2F%3Ftab%3D2"
    assert page.status_code == 200 and str(page.url) == f"{served.app_url}/?tab=2"  # back where it started
    assert page.text == "Logged in for the workspace Sandbox Workspace (100001)."
    assert again.status_code == 200 and again.text == page.text  # Flask-Login's session
    assert second.text == page.text
    assert list(namespace["users"]) == ["100001"]  # the second login found the workspace's user
