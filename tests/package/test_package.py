"""The package as a user meets it: imports, the command line, the demo's headless check."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from support.servers import free_port

import gist_authlib


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def test_import_pulls_in_no_web_framework() -> None:
    code = (
        "import sys, gist_authlib, gist_authlib._flow, gist_authlib._registry, gist_authlib.provider;"
        "print(','.join(m for m in ('starlette', 'flask', 'django') if m in sys.modules))"
    )
    result = _run(sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_every_public_name_is_exported_and_documented() -> None:
    for name in gist_authlib.__all__:
        obj = getattr(gist_authlib, name)
        if callable(obj) and not isinstance(obj, str):
            assert obj.__doc__, name


# `gist-authlib demo --check` in every framework runs in tests/checks/test_wheel.py (nox -s release), from the
# built wheel.


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "gist-authlib"  # beside the interpreter, activated or not
    result = _run(str(script), "--help")
    assert result.returncode == 0
    assert "demo" in result.stdout and "sandbox" in result.stdout


def test_demo_on_a_busy_port_fails_with_a_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    from gist_authlib.cli import main
    from gist_authlib.sandbox import ServerThread

    busy, sandbox_port = ServerThread(), free_port()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            code = main(["demo", "--check", "--port", str(busy.port), "--sandbox-port", str(sandbox_port)])
            gc.collect()
    finally:
        busy.stop()
    printed = capsys.readouterr()
    assert code == 1
    assert f"Cannot listen on 127.0.0.1:{busy.port}" in printed.err
    assert "Traceback" not in printed.err
    # The sandbox's server, bound before the app's failed, was closed on the way out, not left to the collector
    # (whose warning names the socket's address; earlier tests' garbage may warn here too, about other ports).
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert [message for message in unclosed if f"'127.0.0.1', {sandbox_port})" in message] == []


def test_ctrl_c_during_a_demo_check_is_a_failed_check_not_a_pass() -> None:
    from gist_authlib.demo import run_demo

    def interrupted(line: str) -> None:  # Ctrl-C as the check prints its first finding
        raise KeyboardInterrupt

    # 130, as a shell reports a command ended by SIGINT; `demo --check --framework all` stops at the first
    # non-zero code instead of going on to the next framework.
    assert run_demo(framework="starlette", port=0, sandbox_port=0, check=True, out=interrupted) == 130


def test_demo_serves_one_framework_at_a_time_and_checks_all_only_with_check(capsys: pytest.CaptureFixture[str]) -> None:
    from gist_authlib.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["demo", "--framework", "all"])
    assert exited.value.code == 2
    assert "--framework all needs --check" in capsys.readouterr().err


def test_sandbox_command_serves_and_prints_what_to_configure(tmp_path: Path) -> None:
    import httpx2

    process = subprocess.Popen(
        [sys.executable, "-m", "gist_authlib", "sandbox", "--port", "0", "--client-id", "my-app"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path)},  # where it keeps its secret: not the home's
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(8)]
        settings = dict(line.strip().split("=", 1) for line in lines if "=" in line)
        origin = lines[0].split(" on ")[1].strip().rstrip("/")
        assert settings["GIST_CLIENT_ID"] == "my-app" and len(settings["GIST_CLIENT_SECRET"]) > 20
        assert settings["GIST_AUTHORIZE_URL"] == f"{origin}/oauth/authorize"
        page = httpx2.get(
            settings["GIST_AUTHORIZE_URL"],
            params={
                "response_type": "code",
                "client_id": "my-app",
                "scope": "read_teammates",
                "redirect_uri": "http://127.0.0.1:8000/oauth/gist/callback",
            },
            trust_env=False,
        )
        assert page.status_code == 200 and ">Approve<" in page.text
    finally:
        process.terminate()
        process.wait(10)
