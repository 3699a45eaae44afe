"""The docs pages run as written: every Python block executes, each framework's example logs in against the
sandbox, every shell command is checked, the DDL builds the tables the store uses, and the tests the security
page cites exist. (The site itself is built by nox -s docs.)"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from support.snippets import (
    FRAMEWORKS,
    PAGES,
    ROOT,
    Block,
    blocks,
    check_command,
    run_blocks,
    serve_example,
    shell_commands,
    start_sandbox,
)
from support.web import browser_client

from gist_authlib.tokens import TokenCipher

GETTING_STARTED = "docs/GETTING_STARTED.md"
AUTHLIB = "docs/AUTHLIB.md"
#: Pages whose Python blocks a test of their own runs, each block found by its heading there.
DEDICATED = {
    "docs/TESTING.md": "tests/package/test_testing_plugin.py",
    "docs/CANVAS.md": "tests/canvas/test_canvas_docs.py",
    "docs/DJANGO.md": "tests/django/test_django_docs.py",
}
#: Blocks the login tests below (and test_readme.py) serve and log in through.
LOGIN_BLOCKS = {("README.md", framework) for framework in FRAMEWORKS} | {
    *((GETTING_STARTED, framework) for framework in FRAMEWORKS),
    (AUTHLIB, "Already using Authlib?"),
}


def _generic(page: str) -> list[Block]:
    return [block for block in blocks(page, "python") if (page, block.heading) not in LOGIN_BLOCKS]


@pytest.mark.parametrize("page", [page for page in PAGES if page not in DEDICATED and _generic(page)])
def test_every_python_block_runs(page: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A page's blocks run in order in one namespace, as a reader pastes them, in a folder with a ``.env``."""
    monkeypatch.chdir(tmp_path)
    settings = {"GIST_CLIENT_ID": "docs-id", "GIST_CLIENT_SECRET": "docs-secret", "GIST_TOKEN_KEY": ""}
    settings["GIST_TOKEN_DB"] = str(tmp_path / "tokens.sqlite3")
    settings["GIST_TOKEN_KEY"] = TokenCipher.generate_key()
    (tmp_path / ".env").write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    namespace: dict[str, object] = {"__name__": "docs_snippet"}
    run_blocks(_generic(page), namespace)
    assert len(namespace) > 2  # the blocks defined what they show


@pytest.mark.parametrize("page", sorted(DEDICATED))
def test_pages_with_tests_of_their_own_have_each_block_run_there(page: str) -> None:
    found = blocks(page, "python")
    headings = [block.heading for block in found]
    # The tests find each block by its heading and, where a heading has several, by the file its first line names.
    keys = [(block.heading, block.code.splitlines()[0]) for block in found]
    assert len(set(keys)) == len(keys), "one block per heading and first line: the tests find each by them"
    test = (ROOT / DEDICATED[page]).read_text()
    assert page.split("/")[-1] in test
    # TESTING.md's tests name the frameworks (or the section, "## Apps built at import time"), CANVAS.md's the
    # headings themselves.
    assert [heading for heading in headings if f'"{heading}"' not in test and f'# {heading}"' not in test] == []


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_getting_started_logs_in_in_each_framework(
    framework: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    found = [block for block in blocks(GETTING_STARTED, "python") if block.heading == framework]
    assert len(found) == (2 if framework == "Django" else 1)  # Django's settings, then its urls
    served = start_sandbox(FRAMEWORKS[framework], "/oauth/gist/callback", monkeypatch, tmp_path)
    try:
        with serve_example(framework, found, served):
            with browser_client(timeout=10) as browser:
                home = browser.get(f"{served.app_url}/")
            page = served.log_in()
    finally:
        for server in served.servers:
            server.stop()
    assert "Log in with Gist" in home.text
    assert page.status_code == 200 and str(page.url) == f"{served.app_url}/"  # on_login's redirect to next
    assert re.fullmatch(r"Your team has \d+ people\.", page.text), page.text


def test_hand_written_authlib_routes_log_in_and_refuse_a_forged_callback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    found = [block for block in blocks(AUTHLIB, "python") if block.heading == "Already using Authlib?"]
    served = start_sandbox("asgi", "/oauth/gist/callback", monkeypatch, tmp_path)
    try:
        with serve_example("Starlette", found, served):
            page = served.log_in("/login/gist")
            with browser_client(timeout=10) as browser:
                forged = browser.get(f"{served.app_url}/oauth/gist/callback", params={"code": "x", "state": "forged"})
    finally:
        for server in served.servers:
            server.stop()
    assert page.status_code == 200 and str(page.url) == f"{served.app_url}/"
    assert forged.status_code == 400 and "not issued by this site" in forged.text


def test_every_shell_command_is_checked(tmp_path: Path) -> None:
    checked = 0
    for page in PAGES:
        for block in blocks(page, "bash"):
            cwd = ROOT
            for words in shell_commands(block.code):
                try:
                    cwd = check_command(words, cwd, tmp_path)
                except (AssertionError, SystemExit) as failure:
                    raise AssertionError(f"{block.where}: {' '.join(words)}: {failure}") from None
                checked += 1
    assert checked >= 30


def test_a_command_that_is_wrong_fails_the_check(tmp_path: Path) -> None:
    for line in ("gist-authlib sandbox --no-such-option", 'pip install "gist-authlib[no_such_extra]"', "curl x"):
        with pytest.raises((AssertionError, SystemExit)):
            for words in shell_commands(line):
                check_command(words, ROOT, tmp_path)


def test_the_ddl_builds_the_tables_the_sqlalchemy_store_uses(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    from gist_authlib.tokens import SQLAlchemyTokenStore
    from gist_authlib.tokens._sqlalchemy import create_table_ddl

    (ddl,) = [block.code for page in PAGES for block in blocks(page, "sql")]

    def schema(statements: str, name: str) -> dict[str, list[str]]:
        with sqlite3.connect(tmp_path / name) as db:
            db.executescript(statements)
            tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY 1")]
            indexes = [
                row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='index' AND sql IS NOT NULL")
            ]
            return {t: [c[1] for c in db.execute(f"PRAGMA table_info({t})")] for t in tables} | {"": sorted(indexes)}

    assert schema(ddl, "docs.sqlite3") == schema(create_table_ddl(create_engine("sqlite://")), "code.sqlite3")
    key = TokenCipher.generate_key()
    store = SQLAlchemyTokenStore(f"sqlite:///{tmp_path / 'docs.sqlite3'}", key=key, create_table=False)
    store.save("user-1", {"access_token": "a-token"}, scopes=["read_teammates"])
    assert store.get("user-1") is not None and store.consume(["a-digest"], ttl=60)
    assert not store.consume(["a-digest"], ttl=60)  # the used-codes table keeps what it was given


def test_every_test_cited_in_the_security_page_exists() -> None:
    # cited as pytest node ids from the repository's root: tests/<area>/test_<name>.py::test_<name>
    cited = set(re.findall(r"`([\w/]*test_\w+\.py)::(test_\w+)`", (ROOT / "docs" / "SECURITY.md").read_text()))
    assert len(cited) >= 20
    missing = [
        f"{f}::{t}" for f, t in sorted(cited) if not (ROOT / f).is_file() or f"def {t}(" not in (ROOT / f).read_text()
    ]
    assert missing == []


def test_every_error_code_the_login_failures_page_names_is_raised_by_the_package() -> None:
    page = (ROOT / "docs" / "LOGIN_FAILURES.md").read_text()
    named = set(re.findall(r"^\| `(\w+)` \|", page, flags=re.MULTILINE)) - {"error_code"}
    source = (ROOT / "gist_authlib" / "errors.py").read_text()
    assert len(named) >= 10
    assert sorted(code for code in named if f'"{code}"' not in source) == []
