"""``gist-authlib sandbox`` as a user runs it: a subprocess on a free port, its printed settings, its rules (and
its refusals of bad flags, which need no subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from support.web import query_of

from gist_authlib.cli import main

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Running:
    origin: str
    settings: dict[str, str]
    lines: list[str]
    stderr: str  # filled in when the command has stopped


@contextmanager
def sandbox_command(*args: str, env: dict[str, str] | None = None) -> Iterator[Running]:
    """Run ``python -m gist_authlib sandbox --port 0 ARGS`` until the block ends; yield what it printed."""
    environ = {k: v for k, v in os.environ.items() if k != "GIST_SANDBOX_CLIENT_SECRET"}
    process = subprocess.Popen(
        [sys.executable, "-m", "gist_authlib", "sandbox", "--port", "0", *args],
        cwd=ROOT,
        env={**environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        lines: list[str] = []
        while not lines or lines[-1] != "Ctrl-C stops.":
            line = process.stdout.readline()
            assert line, f"the sandbox stopped: {process.stderr.read()}"
            lines.append(line.strip())
        settings = dict(line.split("=", 1) for line in lines if "=" in line and " " not in line.split("=", 1)[0])
        running = Running(lines[0].split(" on ")[1].rstrip("/"), settings, lines, "")
        yield running
    finally:
        process.terminate()
        process.wait(10)
        if process.stderr is not None:
            running.stderr = process.stderr.read()  # complete once the process has ended
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def authorize(origin: str, redirect_uri: str, scope: str = "read_teammates") -> httpx2.Response:
    params = {"response_type": "code", "client_id": "gist-sandbox-app", "scope": scope, "redirect_uri": redirect_uri}
    return httpx2.get(f"{origin}/oauth/authorize", params=params, trust_env=False)


def test_by_default_both_loopback_names_are_registered_on_any_port_and_a_mismatch_names_them() -> None:
    with sandbox_command() as sandbox:
        # flask run's 5000, uvicorn's 8000, Django's runserver 8000: any port of a loopback callback (RFC 8252 7.3)
        for host, port in (("127.0.0.1", 8000), ("localhost", 8000), ("127.0.0.1", 5000), ("localhost", 5000)):
            page = authorize(sandbox.origin, f"http://{host}:{port}/oauth/gist/callback")
            assert page.status_code == 200 and ">Approve<" in page.text
        mismatch = authorize(sandbox.origin, "http://127.0.0.1:5000/auth/callback")
    assert mismatch.status_code == 400 and "location" not in mismatch.headers
    assert '<code id="received">http://127.0.0.1:5000/auth/callback</code>' in mismatch.text
    assert '<code id="fix">--redirect-uri http://127.0.0.1:5000/auth/callback</code>' in mismatch.text
    for registered in ("http://127.0.0.1:8000/oauth/gist/callback", "http://localhost:8000/oauth/gist/callback"):
        assert f"<li><code>{registered}</code></li>" in mismatch.text
    assert len(sandbox.settings["GIST_CLIENT_SECRET"]) > 20


def test_flags_set_scopes_redirect_uris_a_stable_secret_and_the_settings_prefix() -> None:
    mine = "http://127.0.0.1:9000/auth/callback"
    other = "http://app.test:9000/auth/callback"
    with sandbox_command(
        *("--name", "gist_eu", "--scope", "read_campaigns", "--scope", "read_forms"),
        *("--redirect-uri", mine, "--redirect-uri", other, "--auto-approve"),
        env={"GIST_SANDBOX_CLIENT_SECRET": "stable-secret-from-the-environment"},
    ) as sandbox:
        approved = authorize(sandbox.origin, mine, "read_campaigns read_forms read_teammates")
        assert approved.status_code == 302  # --auto-approve: no consent page
        callback = approved.headers["location"]
        token = httpx2.post(
            sandbox.settings["GIST_EU_ACCESS_TOKEN_URL"],
            data={
                "grant_type": "authorization_code",
                "code": query_of(callback)["code"],
                "redirect_uri": mine,
                "client_id": sandbox.settings["GIST_EU_CLIENT_ID"],
                "client_secret": "stable-secret-from-the-environment",
            },
            trust_env=False,
        )
        assert authorize(sandbox.origin, other).status_code == 302
        default = authorize(sandbox.origin, "http://127.0.0.1:8000/oauth/gist/callback")
        unknown = query_of(authorize(sandbox.origin, mine, "read_invoices").headers["location"])
    assert callback.startswith(mine + "?")
    assert token.status_code == 200 and token.json()["access_token"]
    assert default.status_code == 400  # the flags replace the default redirect URIs
    assert unknown["error"] == "invalid_scope" and "--scope NAME" in unknown["error_description"]
    assert sandbox.settings == {
        "GIST_EU_CLIENT_ID": "gist-sandbox-app",
        "GIST_EU_CLIENT_SECRET": "stable-secret-from-the-environment",
        "GIST_EU_AUTHORIZE_URL": f"{sandbox.origin}/oauth/authorize",
        "GIST_EU_ACCESS_TOKEN_URL": f"{sandbox.origin}/oauth/token",
        "GIST_EU_API_BASE_URL": f"{sandbox.origin}/",
    }
    assert f"redirect URIs: {mine}, {other}" in sandbox.lines
    assert any("extra scopes: read_campaigns read_forms" in line for line in sandbox.lines)


def test_the_flag_wins_over_the_environment_and_extra_scopes_show_on_the_consent_page() -> None:
    with sandbox_command(
        *("--client-secret", "from-the-flag", "--scope", "read_campaigns", "--scope", "read_contacts"),
        env={"GIST_SANDBOX_CLIENT_SECRET": "env"},
    ) as sandbox:
        page = authorize(sandbox.origin, "http://localhost:8000/oauth/gist/callback", "read_campaigns read_contacts")
    assert sandbox.settings["GIST_CLIENT_SECRET"] == "from-the-flag"
    assert page.status_code == 200 and "<li><strong>read_campaigns</strong></li>" in page.text
    # Accepted as asked, with a word about the likely typo.
    assert "<li><strong>read_contacts</strong></li>" in page.text
    assert "note: read_contacts looks like a mistake for read_contact" in sandbox.stderr
    assert "read_campaigns" not in sandbox.stderr


def test_bad_flags_fail_with_a_clear_message_before_serving(capsys: pytest.CaptureFixture[str]) -> None:
    # In this process: the command's own entry point, which the console script hands its exit code to.
    for args, says in [
        (["--scope", "read_a,read_b"], "without spaces or commas"),
        (["--name", "gist-eu"], "--name must be a registration name"),
    ]:
        assert main(["sandbox", "--port", "0", *args]) == 1
        printed = capsys.readouterr()
        assert says in printed.err and "Traceback" not in printed.err
        assert printed.out == ""
