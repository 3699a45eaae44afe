"""``gist-authlib sandbox`` as a user runs it: a subprocess on a free port, its printed settings, its rules (and
its refusals of bad flags, which need no subprocess)."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
from support.web import browser_client, query_of

from gist_authlib.cli import main

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Running:
    origin: str
    settings: dict[str, str]
    lines: list[str]  # stripped
    raw: list[str]  # as printed, indentation included
    stderr: str  # filled in when the command has stopped


@contextmanager
def sandbox_command(*args: str, env: dict[str, str] | None = None, state: Path | None = None) -> Iterator[Running]:
    """Run ``python -m gist_authlib sandbox --port 0 ARGS`` until the block ends; yield what it printed.

    Its client secret is kept under ``state`` ($XDG_STATE_HOME), a fresh folder unless given: never the home's.
    """
    environ = {k: v for k, v in os.environ.items() if k != "GIST_SANDBOX_CLIENT_SECRET"}
    fresh = tempfile.TemporaryDirectory() if state is None else contextlib.nullcontext(str(state))
    with fresh as folder:
        environ["XDG_STATE_HOME"] = folder
        with _running(args, {**environ, **(env or {})}) as running:
            yield running


@contextmanager
def _running(args: tuple[str, ...], env: dict[str, str]) -> Iterator[Running]:
    process = subprocess.Popen(
        [sys.executable, "-m", "gist_authlib", "sandbox", "--port", "0", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        raw: list[str] = []
        while not raw or raw[-1] != "Ctrl-C stops.":
            line = process.stdout.readline()
            assert line, f"the sandbox stopped: {process.stderr.read()}"
            raw.append(line.rstrip("\n"))
        lines = [line.strip() for line in raw]
        settings = dict(line.split("=", 1) for line in lines if "=" in line and " " not in line.split("=", 1)[0])
        running = Running(lines[0].split(" on ")[1].rstrip("/"), settings, lines, raw, "")
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


def test_the_secret_is_kept_privately_across_restarts_and_a_new_one_tells_the_old_one_it_changed(
    tmp_path: Path,
) -> None:
    from gist_authlib.sandbox._settings import keep_secret

    folder = tmp_path / "gist-authlib" / "sandbox"
    with sandbox_command(state=tmp_path) as first:
        pass
    kept = folder / "gist-sandbox-app.json"
    old = first.settings["GIST_CLIENT_SECRET"]
    assert f"client secret: made and kept in {kept}: the same on every run (--new-secret replaces it)" in first.lines
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert keep_secret(folder, "gist-sandbox-app").secret == old  # what the next run reads
    with sandbox_command("--new-secret", "--auto-approve", state=tmp_path) as second:
        redirect_uri = "http://localhost:5000/oauth/gist/callback"  # flask run's port, on the default registration
        code = query_of(authorize(second.origin, redirect_uri).headers["location"])["code"]
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        refused = httpx2.post(
            f"{second.origin}/oauth/token",
            data={**form, "client_id": "gist-sandbox-app", "client_secret": old},
            trust_env=False,
        )
    new = second.settings["GIST_CLIENT_SECRET"]
    assert new != old and keep_secret(folder, "gist-sandbox-app").secret == new
    assert f"client secret: new, kept in {kept}; an app sending the previous one is told it changed" in second.lines
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_client"
    assert "was replaced" in refused.json()["error_description"]
    assert old not in refused.text and new not in refused.text and old not in kept.read_text()


def test_an_app_still_sending_the_replaced_secret_shows_its_users_that_the_site_failed_and_logs_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The case issue 28 reports: the sandbox restarted with --new-secret, the app not updated. Its end users read
    that the site could not complete the login (no Gist words, no pointless "Log in again"); the developer reads
    the sandbox's explanation in the log, and on the page in debug mode."""
    from authlib.integrations.starlette_client import OAuth
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware

    import gist_authlib.starlette
    from gist_authlib import GistProvider
    from gist_authlib.sandbox import ServerThread

    with sandbox_command(state=tmp_path) as first:
        old = first.settings["GIST_CLIENT_SECRET"]
    with sandbox_command("--new-secret", "--auto-approve", state=tmp_path) as second:
        server = ServerThread()
        gist = gist_authlib.starlette.register(
            OAuth(), client_id="gist-sandbox-app", client_secret=old, provider=GistProvider.at(second.origin)
        )
        app = Starlette(
            routes=gist_authlib.starlette.gist_routes(gist, on_login=lambda request, token: None),
            middleware=[Middleware(SessionMiddleware, secret_key="new-secret-test")],
        )
        server.start(app)
        try:
            with browser_client(follow_redirects=True) as browser:
                page = browser.get(f"{server.url}/auth/gist")
                app.debug = True
                debug_page = browser.get(f"{server.url}/auth/gist")
        finally:
            server.stop()
    assert page.status_code == 502 and page.url.path == "/oauth/gist/callback"
    assert "<title>This site could not complete the login</title>" in page.text
    assert "Gist did not complete the login" not in page.text and "Log in again" not in page.text
    assert "replaced" not in page.text and "--new-secret" not in page.text
    assert "invalid_client (token_endpoint_error)" in page.text
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("gist_authlib")]
    assert any("invalid_client" in line and "--new-secret" in line for line in logged), logged
    assert "For the developer:" in debug_page.text and "--new-secret" in debug_page.text
    assert "Log in again" not in debug_page.text
    assert old not in page.text + debug_page.text + "".join(logged)


def test_print_settings_flask_and_write_env_wire_a_flask_app_that_logs_in(tmp_path: Path) -> None:
    from authlib.integrations.flask_client import OAuth
    from dotenv import dotenv_values
    from flask import Flask
    from starlette.config import Config

    import gist_authlib
    from gist_authlib.flask import gist_blueprint

    env_file = tmp_path / ".env"
    env_file.write_text("SESSION_SECRET=kept-as-it-was\nGIST_CLIENT_ID=an-old-one\n")
    with sandbox_command("--print-settings", "flask", "--write-env", str(env_file)) as sandbox:
        snippet = "\n".join(sandbox.raw[1 : sandbox.raw.index(")") + 1])
        app = Flask(__name__)
        app.config["SECRET_KEY"] = "test-secret"
        exec(snippet, {"app": app})  # as pasted into an app factory
        gist = gist_authlib.register(OAuth(app))
        app.register_blueprint(
            gist_blueprint(
                gist, on_login=lambda token: gist.get("teammates", token=token).json()["teammates"][0]["name"]
            )
        )
        # Flask's test client is http://localhost: the default registration's port does not matter on loopback.
        page = log_in_with_flask(app.test_client())
    assert page.status_code == 200 and page.text == "Ada Lovelace"
    assert snippet.startswith("# Flask: in your app factory") and "app.config.update(" in snippet
    assert f"settings written to {env_file}" in sandbox.lines
    written = {key: app.config[key] for key in app.config if key.startswith("GIST_")}
    assert len(written) == 5 and written["GIST_ACCESS_TOKEN_URL"] == f"{sandbox.origin}/oauth/token"
    assert {k: v for k, v in dotenv_values(env_file).items() if k.startswith("GIST_")} == written
    assert dotenv_values(env_file)["SESSION_SECRET"] == "kept-as-it-was"
    assert all(Config(env_file)(key) == value for key, value in written.items())
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600


def log_in_with_flask(client: Any) -> Any:
    """Walk a login through a Flask test client, approving on the sandbox's consent page over real HTTP."""
    start = client.get("/auth/gist")
    assert start.status_code == 302, start.text
    with httpx2.Client(trust_env=False) as browser:
        consent = browser.get(start.headers["location"])
        assert consent.status_code == 200, consent.text
        fields = {
            name: consent.text.split(f'name="{name}" value="')[1].split('"')[0] for name in ("request", "csrf_token")
        }
        approved = browser.post(
            f"{urlsplit(str(consent.url))._replace(query='').geturl()}", data={**fields, "decision": "approve"}
        )
    callback = urlsplit(approved.headers["location"])
    assert callback.netloc == "localhost", callback
    return client.get(f"{callback.path}?{callback.query}")


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
    assert f"redirect URIs: {mine}, {other} (on localhost or a loopback IP, any port)" in sandbox.lines
    assert "client secret: from $GIST_SANDBOX_CLIENT_SECRET (kept nowhere)" in sandbox.lines
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


def test_bad_flags_fail_with_a_clear_message_before_serving(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # In this process: the command's own entry point, which the console script hands its exit code to.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    for args, says in [
        (["--scope", "read_a,read_b"], "without spaces or commas"),
        (["--name", "gist-eu"], "--name must be a registration name"),
        (["--write-env", str(tmp_path / "no-such-folder" / ".env")], "No such file or directory"),
        (["--state-dir", str(tmp_path / "a-file")], "not a directory"),
        (["--redirect-uri", "http://[::1/oauth/gist/callback"], "is not a redirect URI"),
    ]:
        (tmp_path / "a-file").write_text("")
        assert main(["sandbox", "--port", "0", *args]) == 1
        printed = capsys.readouterr()
        assert says in printed.err and "Traceback" not in printed.err
        assert printed.out == ""
    monkeypatch.setenv("GIST_SANDBOX_CLIENT_SECRET", "from-the-environment")
    assert main(["sandbox", "--port", "0", "--new-secret"]) == 1
    assert "GIST_SANDBOX_CLIENT_SECRET is set and wins: unset it" in capsys.readouterr().err
    for args, says in [
        (["--new-secret", "--client-secret", "x"], "--client-secret: not allowed with argument --new-secret"),
        (["--print-settings", "yaml"], "invalid choice: 'yaml'"),
    ]:
        with pytest.raises(SystemExit) as exited:
            main(["sandbox", *args])
        assert exited.value.code == 2 and says in capsys.readouterr().err
