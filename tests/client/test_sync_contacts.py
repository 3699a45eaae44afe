"""examples/sync_contacts.py against the sandbox: summary, re-runs without duplicates, bad rows."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gist_authlib import GistClient
from gist_authlib.examples import sync_contacts as module
from gist_authlib.sandbox import GistSandbox, SandboxClient, ServerThread, create_app

CSV = """email,user_id,name,phone,plan
beatrix@customer.example,,Beatrix B,,enterprise
new1@example.com,,New One,+353 1 555 0101,free
,u-9001,Only User Id,,pro
,,No Key At All,,free
new2@example.com,u-9002,New Two,,
"""


@pytest.fixture
def served() -> Iterator[tuple[GistSandbox, str, str]]:
    sandbox = create_app(clients=[SandboxClient("cid", "csecret", ("http://127.0.0.1:9/cb",))])
    token = sandbox.issue_token("cid", ["read_contact", "write_contact"])["access_token"]
    with ServerThread(sandbox) as server:
        yield sandbox, server.url, token


def test_sync_counts_created_updated_failed_and_reruns_without_duplicates(
    served: tuple[GistSandbox, str, str],
) -> None:
    sandbox, url, token = served
    seen: list[tuple[int, int | None]] = []
    with GistClient(token, base_url=url) as client:
        first = module.sync_contacts(
            client, module.read_rows(io.StringIO(CSV)), total=5, progress=lambda d, t: seen.append((d, t))
        )
        assert (first.created, first.updated) == (3, 1)
        assert first.failed == [(5, "no email or user_id")]
        assert seen[-1] == (5, 5)
        count = len(sandbox.workspace.contacts)
        again = module.sync_contacts(client, module.read_rows(io.StringIO(CSV)))
    assert (again.created, again.updated, len(again.failed)) == (0, 4, 1)
    assert len(sandbox.workspace.contacts) == count == 5 + 3
    beatrix = next(c for c in sandbox.workspace.contacts if c["email"] == "beatrix@customer.example")
    assert beatrix["name"] == "Beatrix B" and beatrix["custom_properties"]["plan"] == "enterprise"


def test_an_interrupted_sync_resumes_by_running_again(served: tuple[GistSandbox, str, str]) -> None:
    sandbox, url, token = served
    rows = list(module.read_rows(io.StringIO(CSV)))
    with GistClient(token, base_url=url) as client:
        module.sync_contacts(client, rows[:2])  # "killed" after two rows
        resumed = module.sync_contacts(client, rows)
    assert (resumed.created, resumed.updated) == (2, 2)
    emails = [c["email"] for c in sandbox.workspace.contacts if c["email"]]
    assert len(emails) == len(set(emails))


def test_command_line_prints_the_summary(served: tuple[GistSandbox, str, str], tmp_path: Path) -> None:
    _, url, token = served
    source = tmp_path / "contacts.csv"
    source.write_text(CSV)
    root = Path(__file__).resolve().parents[2]
    script, env = root / "examples" / "sync_contacts.py", {**os.environ, "PYTHONPATH": str(root)}
    # As a user of a checkout runs it: python examples/sync_contacts.py (this worktree's, and its package).
    result = subprocess.run(
        [sys.executable, str(script), str(source), "--token", token, "--base-url", url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1  # one row failed
    assert "created 3, updated 1, failed 1" in result.stdout
    assert "line 5: no email or user_id" in result.stdout
    assert "5/5" in result.stderr


def test_a_wrong_token_exits_2_with_a_clear_message(
    served: tuple[GistSandbox, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, url, _ = served
    source = tmp_path / "contacts.csv"
    source.write_text(CSV)
    assert module.main([str(source), "--token", "wrong", "--base-url", url]) == 2  # the script's entry point
    printed = capsys.readouterr()
    assert "revoked or is wrong" in printed.out
    assert "wrong" not in printed.err
