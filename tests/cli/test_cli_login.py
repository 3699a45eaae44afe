"""``gist-authlib login``, ``whoami`` and ``api`` end to end against the sandbox on loopback.

The login runs as its users run it, ``python -m gist_authlib login --no-browser`` in a process of its own; this
test reads the authorization URL it prints and is the browser: it opens the URL at the auto-approving sandbox,
which redirects to the command's one-shot loopback server, and follows that redirect. The error paths of
``api`` and ``whoami`` run in this process through ``cli.main``, with their settings in the environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from support.browser import BROWSER_TESTS
from support.servers import free_port
from support.web import browser_client

from gist_authlib import GistClient, cli
from gist_authlib.sandbox import GistSandbox, SandboxClient, ServerThread, create_app
from gist_authlib.tokens import SQLiteTokenStore, TokenCipher, open_token_store

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID, CLIENT_SECRET = "cli-app", "cli-app-secret-0123456789"


@dataclass
class Gist:
    """The sandbox, served, with the command line's app registered at a loopback redirect URI."""

    sandbox: GistSandbox
    url: str
    redirect_uri: str

    def settings(self) -> dict[str, str]:
        return {
            "GIST_CLIENT_ID": CLIENT_ID,
            "GIST_CLIENT_SECRET": CLIENT_SECRET,
            "GIST_AUTHORIZE_URL": f"{self.url}/oauth/authorize",
            "GIST_ACCESS_TOKEN_URL": f"{self.url}/oauth/token",
            "GIST_API_BASE_URL": f"{self.url}/",
        }


@pytest.fixture(scope="module")
def gist() -> Iterator[Gist]:
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
    sandbox = create_app(clients=[SandboxClient(CLIENT_ID, CLIENT_SECRET, (redirect_uri,))], auto_approve=True)
    with ServerThread(sandbox) as server:
        yield Gist(sandbox, server.url, redirect_uri)


def command(*args: str, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """``python -m gist_authlib ...`` of this worktree, from ``cwd``, with ``env`` on top of this process's."""
    full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    for name in ("GIST_TOKEN", "GIST_TOKEN_DB", "GIST_TOKEN_KEY", "GIST_SUBJECT", "GIST_SCOPES"):
        if name not in env:
            full_env.pop(name, None)
    return subprocess.Popen(
        [sys.executable, "-m", "gist_authlib", *args],
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def start_login(gist: Gist, *args: str, env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[str], str, str]:
    """Start ``login --no-browser``; the process, the authorization URL it printed, and stderr before it."""
    process = command(
        "login", "--no-browser", "--redirect-uri", gist.redirect_uri, "--timeout", "30", *args, env=env, cwd=cwd
    )
    assert process.stderr is not None
    before = ""
    while True:
        line = process.stderr.readline()
        if not line:
            process.wait(10)
            raise AssertionError(f"login printed no URL: {before}{process.stderr.read()}")
        if line.startswith(("http://", "https://")):
            return process, line.strip(), before
        before += line


def be_the_browser(authorization_url: str) -> tuple[httpx2.Response, httpx2.Response]:
    """Open the URL at the sandbox, which approves at once, and follow its redirect to the command's server."""
    with browser_client(timeout=10) as browser:
        approved = browser.get(authorization_url)
        assert approved.status_code in (302, 303), approved.text
        return approved, browser.get(approved.headers["location"])


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=30)
    return process.returncode, stdout, stderr


def test_login_json_prints_a_working_token_and_uses_state_and_pkce(gist: Gist, tmp_path: Path) -> None:
    requests_before = len(gist.sandbox.token_requests)
    process, url, _ = start_login(gist, "--json", "--scope", "read_teammates", env=gist.settings(), cwd=tmp_path)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith(f"{gist.url}/oauth/authorize?")
    assert query["redirect_uri"] == gist.redirect_uri and query["client_id"] == CLIENT_ID
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 43 and query["scope"] == "read_teammates"
    approved, page = be_the_browser(url)
    assert approved.headers["location"].startswith(gist.redirect_uri + "?")
    assert page.status_code == 200 and "You can close this tab" in page.text
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
    code, stdout, stderr = finish(process)
    assert code == 0, stderr
    token = json.loads(stdout)
    assert set(token) == {"access_token", "userinfo"}
    assert token["access_token"] not in stderr  # the token goes to stdout only
    assert [(r.grant_type, r.status) for r in gist.sandbox.token_requests[requests_before:]] == [
        ("authorization_code", 200)
    ]
    with GistClient(token, base_url=f"{gist.url}/") as client:
        assert client.token_info().workspace_name == "Sandbox Workspace"


@BROWSER_TESTS
def test_the_login_in_chromium_ends_on_its_page_with_no_console_error(
    gist: Gist, tmp_path: Path, chromium_browser: Any
) -> None:
    # What a person sees after `gist-authlib login`: the private file the command hands the browser, which
    # redirects to Gist, then the command's own page, in Chromium, with nothing on it that its strict CSP blocks
    # (its empty icon needs `img-src data:`). A stray request to the command's port sees its refusal page.
    handed = tmp_path / "handed.txt"
    recorder = tmp_path / "browser.py"
    recorder.write_text(f"import sys\nopen({str(handed)!r}, 'w').write(sys.argv[1])\n")
    process = command(
        "login", "--json", "--redirect-uri", gist.redirect_uri, "--timeout", "30",
        env={**gist.settings(), "BROWSER": f"{sys.executable} {recorder} %s"}, cwd=tmp_path,
    )  # fmt: skip
    for _ in range(400):  # bounded: the recorder runs in its own process
        if handed.exists() and handed.read_text():
            break
        time.sleep(0.05)
    file_uri = handed.read_text()
    assert file_uri.startswith("file://")
    context = chromium_browser.new_context()
    errors: list[str] = []
    try:
        stray = context.new_page()
        stray.goto(gist.redirect_uri)
        refused = stray.inner_text("body")
        page = context.new_page()
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
        page.goto(file_uri)  # redirects to Gist; the sandbox approves at once and sends the browser back
        page.wait_for_url(f"{gist.redirect_uri}?**")
        text = page.inner_text("body")
    finally:
        context.close()
    code, _, stderr = finish(process)
    assert code == 0, stderr
    assert "only receives Gist's answer to one login" in refused
    assert "You can close this tab" in text
    assert errors == []


def test_login_stores_the_token_and_whoami_and_api_use_it(gist: Gist, tmp_path: Path) -> None:
    key, db = TokenCipher.generate_key(), tmp_path / "tokens.sqlite3"
    env = {**gist.settings(), "GIST_TOKEN_KEY": key, "GIST_TOKEN_DB": str(db)}
    process, url, _ = start_login(gist, "--scope", "read_teammates", "--scope", "read_contact", env=env, cwd=tmp_path)
    _, page = be_the_browser(url)
    assert "You can close this tab" in page.text
    code, stdout, stderr = finish(process)
    assert code == 0, stderr
    assert stdout == ""
    assert f"stored encrypted in {db} under 'workspace:100001'" in stderr
    with SQLiteTokenStore(str(db), key=key) as store:
        record = store.get("workspace:100001")
    assert record is not None and record.workspace_name == "Sandbox Workspace"
    assert set(record.scopes) == {"read_teammates", "read_contact"}
    assert record.token["access_token"] not in stderr

    # The three at once: each is a process of its own, and they only read the store.
    whoami = command("whoami", env=env, cwd=tmp_path)
    teammates = command("api", "GET", "teammates", env=env, cwd=tmp_path)
    contacts = command("api", "GET", "contacts", "--paginate", "-F", "per_page=2", env=env, cwd=tmp_path)
    code, stdout, stderr = finish(whoami)
    assert (code, stdout) == (0, "Sandbox Workspace (workspace 100001)\n"), stderr
    code, stdout, stderr = finish(teammates)
    assert code == 0, stderr
    assert [t["name"] for t in json.loads(stdout)["teammates"]] == ["Ada Lovelace", "Grace Hopper", "Alan Turing"]
    assert stdout.startswith('{\n  "teammates": [')  # pretty
    code, stdout, stderr = finish(contacts)
    assert code == 0, stderr
    every = json.loads(stdout)["contacts"]  # three pages of two, followed by their links, in one list
    assert [c["email"] for c in every] == [c["email"] for c in gist.sandbox.workspace.contacts]
    assert len(every) == len(gist.sandbox.workspace.contacts) > 2


def test_a_forged_callback_is_turned_away_and_the_login_keeps_waiting(gist: Gist, tmp_path: Path) -> None:
    # Security round three: any request without the pending state (a made-up state, no query, another Host) used
    # to end the login, which freed the port for another process to take before the real callback arrived.
    requests_before = len(gist.sandbox.token_requests)
    process, url, _ = start_login(gist, "--json", env=gist.settings(), cwd=tmp_path)
    port = httpx2.URL(gist.redirect_uri).port
    with browser_client(timeout=10) as attacker:
        forged = attacker.get(gist.redirect_uri, params={"code": "stolen-code", "state": "forged-state"})
        bare = attacker.get(gist.redirect_uri)
        rebound = attacker.get(gist.redirect_uri, headers={"Host": f"evil.example:{port}"})
    assert [forged.status_code, bare.status_code, rebound.status_code] == [400, 400, 400]
    assert "stolen-code" not in forged.text
    assert len(gist.sandbox.token_requests) == requests_before  # refused before any token request
    # The genuine answer, arriving after them, still completes the login.
    with browser_client(timeout=10) as browser:
        approved = browser.get(url)
        back = approved.headers["location"]
        rebound_real = browser.get(back, headers={"Host": f"localhost:{port}"})  # the real query, a rebound name
        assert rebound_real.status_code == 400
        landed = browser.get(back)
    assert landed.status_code == 200
    code, stdout, stderr = finish(process)
    assert code == 0, stderr
    assert json.loads(stdout)["access_token"]
    assert "stolen-code" not in stderr and "Traceback" not in stderr
    assert len(gist.sandbox.token_requests) == requests_before + 1


# --- in this process: the commands' error paths ---------------------------------------------------------------


@pytest.fixture
def api_env(gist: Gist, monkeypatch: pytest.MonkeyPatch) -> Gist:
    """The sandbox's settings in the environment, and no token store or token from the machine."""
    for name in ("GIST_TOKEN", "GIST_TOKEN_DB", "GIST_TOKEN_KEY", "GIST_SUBJECT", "GIST_SCOPES"):
        monkeypatch.delenv(name, raising=False)
    for name, value in gist.settings().items():
        monkeypatch.setenv(name, value)
    return gist


def test_api_sends_fields_as_a_json_body_and_reads_gist_token(
    api_env: Gist, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    token = api_env.sandbox.issue_token(CLIENT_ID, ["read_contact", "write_contact"])["access_token"]
    monkeypatch.setenv("GIST_TOKEN", token)
    argv = ["api", "POST", "contacts", "-f", "email=cli@example.com", "-f", "name=From The CLI", "-F", "phone=null"]
    assert cli.main(argv) == 0
    created = json.loads(capsys.readouterr().out)["contact"]
    assert (created["email"], created["name"]) == ("cli@example.com", "From The CLI")
    stored = next(c for c in api_env.sandbox.workspace.contacts if c["email"] == "cli@example.com")
    assert stored["name"] == "From The CLI" and stored["phone"] is None
    assert cli.main(["api", "GET", "contacts", "-f", "email=cli@example.com"]) == 0
    assert json.loads(capsys.readouterr().out)["contact"]["name"] == "From The CLI"


def test_api_errors_exit_1_with_gists_message_and_body(
    api_env: Gist, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    token = api_env.sandbox.issue_token(CLIENT_ID, ["read_contact"])["access_token"]
    monkeypatch.setenv("GIST_TOKEN", token)
    assert cli.main(["api", "GET", "contacts/99999"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["errors"][0]["code"] == "not_found"  # Gist's error body, for scripts
    assert "gist-authlib api: Gist answered HTTP 404 to GET contacts/99999" in err
    assert cli.main(["api", "GET", "teams"]) == 1
    err = capsys.readouterr().err
    assert "lacks the read_teams scope" in err and "gist-authlib login --scope read_teams" in err
    assert token not in err
    assert cli.main(["api", "GET", "teammates", "--token", "not-a-token"]) == 1
    assert "HTTP 401" in capsys.readouterr().err
    assert cli.main(["api", "FETCH", "teammates"]) == 2
    assert "GET, POST, PUT, PATCH, DELETE" in capsys.readouterr().err
    assert cli.main(["api", "POST", "events", "--paginate"]) == 2
    assert cli.main(["api", "GET", "contacts", "-f", "no-equals-sign"]) == 2


def test_whoami_and_api_without_a_token_say_how_to_get_one(
    api_env: Gist, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["whoami", "--token-db", str(tmp_path / "t.sqlite3")]) == 2
    assert "GIST_TOKEN_KEY is not set" in capsys.readouterr().err
    key = TokenCipher.generate_key()
    monkeypatch.setenv("GIST_TOKEN_KEY", key)
    assert cli.main(["whoami", "--token-db", str(tmp_path / "t.sqlite3")]) == 1
    err = capsys.readouterr().err
    assert "No Gist token is stored" in err and "Run gist-authlib login first" in err
    with SQLiteTokenStore(str(tmp_path / "t.sqlite3"), key=key) as store:
        for subject in ("workspace:1", "workspace:2"):
            store.save(subject, api_env.sandbox.issue_token(CLIENT_ID, ["read_teammates"]))
    assert cli.main(["whoami", "--token-db", str(tmp_path / "t.sqlite3")]) == 1
    assert "pick one with --subject" in capsys.readouterr().err
    assert cli.main(["whoami", "--json", "--subject", "workspace:2", "--token-db", str(tmp_path / "t.sqlite3")]) == 0
    assert json.loads(capsys.readouterr().out) == {"workspace_id": 100001, "workspace_name": "Sandbox Workspace"}


def test_whoami_reads_a_store_named_by_a_database_url_and_never_prints_its_password(
    api_env: Gist, postgres_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from support.postgres import fresh_database

    # As a hosting service hands the URL out: no driver named, a password (the test server trusts loopback).
    url = fresh_database(postgres_url).replace("postgresql+psycopg://postgres@", "postgresql://postgres:pw-s3cret@")
    key = TokenCipher.generate_key()
    monkeypatch.setenv("GIST_TOKEN_KEY", key)
    monkeypatch.setenv("GIST_TOKEN_DB", url)
    assert cli.main(["whoami"]) == 1
    err = capsys.readouterr().err
    assert "No Gist token is stored in postgresql+psycopg://postgres:***@" in err and "pw-s3cret" not in err
    with open_token_store(url, key=key) as store:
        store.save("workspace:1", api_env.sandbox.issue_token(CLIENT_ID, ["read_teammates"]))
    assert cli.main(["whoami", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["workspace_name"] == "Sandbox Workspace"


def test_login_checks_its_settings_before_anything_starts(
    api_env: Gist, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    requests_before = len(api_env.sandbox.token_requests)
    assert cli.main(["login", "--no-browser", "--redirect-uri", api_env.redirect_uri]) == 2  # no key, no --json
    out, err = capsys.readouterr()
    assert "GIST_TOKEN_KEY is not set" in err and "--json" in err
    assert not [line for line in (out + err).splitlines() if line.startswith("http")]  # no login was started
    assert cli.main(["login", "--json", "--redirect-uri", "http://example.com:8787/callback"]) == 2
    assert "loopback" in capsys.readouterr().err
    assert cli.main(["login", "--json", "--scope", "read_contacts"]) == 2
    assert "Did you mean read_contact?" in capsys.readouterr().err
    monkeypatch.delenv("GIST_CLIENT_SECRET")
    assert cli.main(["login", "--json"]) == 2
    assert "Set GIST_CLIENT_SECRET" in capsys.readouterr().err
    assert len(api_env.sandbox.token_requests) == requests_before


def test_login_gives_up_cleanly_after_its_timeout(api_env: Gist, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["login", "--no-browser", "--json", "--redirect-uri", "http://127.0.0.1:0/callback", "--timeout", "0.3"]
    assert cli.main(argv) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "No answer came back from Gist within 0.3 s" in err
    printed = next(line for line in err.splitlines() if line.startswith("http"))
    # Port 0 asked for a free port: the URL names the one the system gave, and nothing listens there now.
    redirect_uri = parse_qs(urlsplit(printed).query)["redirect_uri"][0]
    assert urlsplit(redirect_uri).port not in (None, 0)
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(redirect_uri, trust_env=False)


# --- the command line as a public client (RFC 8252) ----------------------------------------------------------


def test_the_pkce_verifier_is_not_derivable_from_the_client_secret(gist: Gist, tmp_path: Path) -> None:
    import base64
    import hashlib

    from gist_authlib._flow import pkce_verifier

    # Before: the verifier was an HMAC of the state under the client secret, which a CLI cannot keep secret.
    process, url, _ = start_login(gist, "--json", env=gist.settings(), cwd=tmp_path)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    derivable = pkce_verifier(CLIENT_SECRET, "gist", query["state"])
    challenge = base64.urlsafe_b64encode(hashlib.sha256(derivable.encode()).digest()).rstrip(b"=").decode()
    assert query["code_challenge"] != challenge
    be_the_browser(url)
    code, stdout, stderr = finish(process)
    assert code == 0, stderr  # and the random verifier, kept in the process's memory, still redeems the code
    assert json.loads(stdout)["access_token"]


def test_a_localhost_redirect_uri_is_refused_with_advice(api_env: Gist, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["login", "--json", "--no-browser", "--redirect-uri", "http://localhost:8787/callback"]) == 2
    err = capsys.readouterr().err
    assert "use the loopback address itself" in err and "http://127.0.0.1:8787/callback" in err


def test_the_browser_is_opened_without_the_authorization_url_in_its_arguments(gist: Gist, tmp_path: Path) -> None:
    # webbrowser runs $BROWSER with the target as its argument: a recorder shows what any local user could read
    # in /proc/<pid>/cmdline.
    recorded = tmp_path / "argv.txt"
    recorder = tmp_path / "browser.py"
    recorder.write_text(
        "import os, sys, stat\n"
        "from urllib.parse import urlsplit, unquote\n"
        f"out = open({str(recorded)!r}, 'w')\n"
        "out.write(repr(sys.argv) + '\\n')\n"
        "path = unquote(urlsplit(sys.argv[1]).path)\n"
        "out.write(oct(stat.S_IMODE(os.stat(path).st_mode)) + '\\n')\n"
        "out.write(open(path).read())\n"
    )
    browser = f"{sys.executable} {recorder} %s"
    process = command(
        "login", "--json", "--redirect-uri", gist.redirect_uri, "--timeout", "30",
        env={**gist.settings(), "BROWSER": browser}, cwd=tmp_path,
    )  # fmt: skip
    assert process.stderr is not None
    url = ""
    while not url:
        line = process.stderr.readline()
        assert line, "login printed no URL"
        url = line.strip() if line.startswith("http") else ""
    for _ in range(400):  # bounded: the recorder runs in its own process
        if recorded.exists() and "http-equiv" in recorded.read_text():
            break
        time.sleep(0.05)
    argv, mode, page = recorded.read_text().split("\n", 2)
    assert "state=" not in argv and "code_challenge" not in argv and "file://" in argv
    assert mode == "0o600"
    assert "state=" in page and "http-equiv" in page  # the private file redirects to the authorization URL
    be_the_browser(url)
    code, _, stderr = finish(process)
    assert code == 0, stderr


def test_server_text_reaches_the_terminal_with_control_characters_escaped() -> None:
    from gist_authlib._cli_login import printable

    hostile = "Acme\x1b]0;pwned\x07\x1b[2J\u009b31m"
    shown = printable(hostile)
    assert shown.startswith("Acme") and "pwned" in shown
    assert not any(not ch.isprintable() for ch in shown)
    assert "\\x1b" in shown and "\\x07" in shown and "\\x9b" in shown
    assert printable("Café Übersee") == "Café Übersee"  # printable text is left as it is


def test_a_non_ascii_state_at_the_loopback_server_is_compared_not_crashed() -> None:
    from gist_authlib._cli_login import _same

    assert _same("état", "état") and not _same("état", "etat")
    assert not _same("\udcff", "x")  # a lone surrogate, as a decoded request line can hold


def test_whoami_json_is_ascii_for_terminals(api_env: Gist, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    process, url, _ = start_login(api_env, "--json", env=api_env.settings(), cwd=tmp_path)
    be_the_browser(url)
    code, stdout, stderr = finish(process)
    assert code == 0, stderr
    access = json.loads(stdout)["access_token"]
    original = api_env.sandbox.workspace.name
    api_env.sandbox.workspace.name = "Acme \u009b31m\x1b[2J"
    try:
        assert cli.main(["whoami", "--token", access, "--json"]) == 0
        out = capsys.readouterr().out
        assert out.isascii() and "\\u009b" in out and "\\u001b" in out
        assert cli.main(["whoami", "--token", access]) == 0
        line = capsys.readouterr().out
        assert "\x1b" not in line and "\u009b" not in line and "\\x1b" in line
    finally:
        api_env.sandbox.workspace.name = original


def test_error_messages_reach_the_terminal_escaped(api_env: Gist, capsys: pytest.CaptureFixture[str]) -> None:
    # Errors may quote what a server (or an argument) said: an error description, a scope name.
    assert cli.main(["login", "--json", "--scope", "read_\x1b]0;pwned\x07x"]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and "\\x1b" in err


def test_a_redirect_uri_a_browser_would_send_back_in_another_form_is_refused(
    api_env: Gist, capsys: pytest.CaptureFixture[str]
) -> None:
    # The loopback server answers only the exact Host of its redirect URI; browsers normalise these forms.
    for uri in ("http://127.0.0.1:80/cb", "http://[0:0:0:0:0:0:0:1]:8787/cb", "http://127.0.0.1:08787/cb"):
        assert cli.main(["login", "--json", "--no-browser", "--redirect-uri", uri]) == 2
        assert "as a browser sends it back" in capsys.readouterr().err
