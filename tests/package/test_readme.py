"""The README is a front page that works: its quick start is CI's command, its example for each framework logs in
against the sandbox as written, and every page it links to exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support.snippets import FRAMEWORKS, ROOT, blocks, serve_example, start_sandbox
from support.web import browser_client

README = "README.md"


def test_the_quick_start_is_cis_command_and_the_demo() -> None:
    commands = blocks(README, "bash")[0].code.splitlines()
    ci_command = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[0] == 'pip install -e ".[demo]" && gist-authlib demo'
    assert commands[1] in ci_command  # the README's test command, verbatim


def test_the_readme_stays_a_front_page() -> None:
    text = (ROOT / README).read_text()
    assert len(text.splitlines()) <= 250
    # Links into the docs resolve (pages move; a dead link on the front page is the first thing users meet).
    targets = re.findall(r"\]\(((?:docs/|CHANGELOG)[^)#]*)", text)
    assert len(targets) >= 10
    assert [target for target in targets if not (ROOT / target).exists()] == []


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_each_frameworks_example_logs_in_as_written(
    framework: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    found = [block for block in blocks(README, "python") if block.heading == framework]
    assert len(found) == 1
    served = start_sandbox(FRAMEWORKS[framework], "/oauth/gist/callback", monkeypatch, tmp_path)
    try:
        with serve_example(framework, found, served), browser_client(follow_redirects=True, timeout=10) as browser:
            before = browser.get(f"{served.app_url}/")
            page = browser.get(f"{served.app_url}/auth/gist")
            callback = next(str(hop.url) for hop in page.history if "/oauth/gist/callback" in str(hop.url))
            again = browser.get(callback)  # a refresh of the callback's page after the login
    finally:
        for server in served.servers:
            server.stop()
    assert (before.status_code, before.text) == (200, '<a href="/auth/gist">Log in with Gist</a>')
    assert page.status_code == 200 and str(page.url) == f"{served.app_url}/", page.text
    assert re.fullmatch(r"\S.* has \d+ people\.", page.text), page.text
    assert (again.status_code, again.text) == (200, page.text)  # on to the same page, not "Not Found"
