"""The README is a front page that works: its quick start is CI's command, its example for each framework logs in
against the sandbox as written, and every page it links to exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support.snippets import FRAMEWORKS, ROOT, blocks, serve_example, start_sandbox

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
        with serve_example(framework, found, served):
            page = served.log_in()
    finally:
        for server in served.servers:
            server.stop()
    assert page.status_code == 200, page.text
    assert re.fullmatch(r"Your team has \d+ people\.", page.text), page.text
