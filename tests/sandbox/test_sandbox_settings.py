"""What ``gist-authlib sandbox`` hands an app, read back the way each framework reads it; and its kept secret."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from dotenv import dotenv_values
from starlette.config import Config

import gist_authlib
from gist_authlib.sandbox._rules import secret_digest
from gist_authlib.sandbox._settings import keep_secret, render_settings, sandbox_settings, write_env_file

ORIGIN = "http://127.0.0.1:8765"


def pasted(lines: list[str]) -> dict[str, Any]:
    """Run printed Python as a user pastes it, in a namespace with an ``app`` whose config it may update."""

    from types import SimpleNamespace

    namespace: dict[str, Any] = {"app": SimpleNamespace(config={})}
    exec("\n".join(lines), namespace)
    return namespace


def test_the_django_form_is_what_authlibs_django_integration_reads() -> None:
    from authlib.integrations.django_client import OAuth
    from django.test import override_settings

    settings = sandbox_settings("gist_eu", "my-app", "s3cret", ORIGIN)
    namespace = pasted(render_settings("django", "gist_eu", settings))
    with override_settings(AUTHLIB_OAUTH_CLIENTS=namespace["AUTHLIB_OAUTH_CLIENTS"]):
        gist = gist_authlib.register(OAuth(), "gist_eu")
    assert (gist.client_id, gist.client_secret) == ("my-app", "s3cret")
    assert (gist.authorize_url, gist.access_token_url) == (f"{ORIGIN}/oauth/authorize", f"{ORIGIN}/oauth/token")
    assert gist.api_base_url == f"{ORIGIN}/"


def test_the_flask_and_env_forms_set_the_same_settings() -> None:
    settings = sandbox_settings("gist", "my app", "s3cret$HOME", ORIGIN)  # a space and a $: quoted, not expanded
    assert pasted(render_settings("flask", "gist", settings))["app"].config == settings
    env = render_settings("env", "gist", settings)
    assert env[0] == "  GIST_CLIENT_ID='my app'" and env[1] == "  GIST_CLIENT_SECRET='s3cret$HOME'"
    assert env[4] == f"  GIST_API_BASE_URL={ORIGIN}/"
    with pytest.raises(ValueError, match="Settings come in the forms env, flask and django"):
        render_settings("yaml", "gist", settings)


def test_write_env_replaces_its_own_lines_keeps_the_others_and_makes_the_file_private(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# my app\nSESSION_SECRET=abc\nexport GIST_CLIENT_ID=old-id\nGIST_CLIENT_ID=twice\nGIST_CLIENT_IDS=other\n"
    )
    env_file.chmod(0o644)
    settings = sandbox_settings("gist", "new id", "s3cret$HOME", ORIGIN)
    assert write_env_file(env_file, settings) == env_file
    lines = env_file.read_text().splitlines()
    assert lines[:5] == [
        "# my app",
        "SESSION_SECRET=abc",
        "export GIST_CLIENT_ID='new id'",
        "GIST_CLIENT_IDS=other",
        "# the Gist sandbox (gist-authlib sandbox)",
    ]
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    read = dotenv_values(env_file)
    assert {key: read[key] for key in settings} == settings  # python-dotenv: what flask run loads
    # Starlette's Config reads no "export" line (a shell's syntax, kept as the file had it): the others it does.
    assert all(Config(env_file)(key) == settings[key] for key in list(settings)[1:])
    assert read["SESSION_SECRET"] == "abc" and read["GIST_CLIENT_IDS"] == "other"
    write_env_file(env_file, settings)
    assert env_file.read_text().splitlines() == lines  # a second run changes nothing


def test_write_env_refuses_a_value_a_env_file_cannot_hold_and_writes_nothing(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("SESSION_SECRET=abc\n")
    with pytest.raises(ValueError, match="a quote or a line break"):
        write_env_file(env_file, sandbox_settings("gist", "it's", "s", ORIGIN))
    assert env_file.read_text() == "SESSION_SECRET=abc\n" and [p.name for p in tmp_path.iterdir()] == [".env"]


SETTINGS = {"GIST_CLIENT_ID": "gist-sandbox-app", "GIST_CLIENT_SECRET": "s3cret-value"}


def test_write_env_does_not_rewrite_a_file_a_symlink_points_to_outside_its_folder(tmp_path: Path) -> None:
    """A project checked out with ``.env -> ~/.bashrc`` (a symbolic link can come in a git repository): ``--write-env
    .env`` rewrites the link's target, a file outside the project, as a new 0600 file holding the client secret.
    The sandbox's own secret file refuses links; the .env file follows them anywhere."""
    project, home = tmp_path / "project", tmp_path / "home"
    project.mkdir()
    home.mkdir()
    victim = home / ".bashrc"
    victim.write_text("alias ll='ls -l'\n")
    victim.chmod(0o644)
    (project / ".env").symlink_to(victim)
    with contextlib.suppress(OSError, ValueError):  # refused: fine
        write_env_file(project / ".env", SETTINGS)
    assert victim.read_text() == "alias ll='ls -l'\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root can make another user's file")
def test_write_env_does_not_take_over_another_users_env_file(tmp_path: Path) -> None:
    """In a shared (group-writable) project folder, a teammate's .env is replaced by one owned by whoever ran the
    sandbox, made 0600: its owner can no longer read their own settings. The kept secret's file refuses files of
    another user; the .env file does not."""
    env = tmp_path / ".env"
    env.write_text("DATABASE_URL=postgresql://db/app\n")
    os.chown(env, 54321, 54321)
    env.chmod(0o640)
    with contextlib.suppress(OSError, ValueError):  # refused: fine
        write_env_file(env, SETTINGS)
    assert env.stat().st_uid == 54321


def test_a_kept_secret_is_made_once_even_by_sandboxes_starting_together(tmp_path: Path) -> None:
    folder = tmp_path / "state" / "sandbox"
    secrets: list[str] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        secrets.append(keep_secret(folder, "app").secret)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(secrets) == 8 and len(set(secrets)) == 1
    assert sorted(p.name for p in folder.iterdir()) == ["app.json"]  # no temporary file left behind
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "app.json").stat().st_mode) == 0o600


def test_new_secrets_remember_at_most_five_digests_of_those_they_replaced(tmp_path: Path) -> None:
    made = [keep_secret(tmp_path, "app", rotate=True).secret for _ in range(7)]
    kept = keep_secret(tmp_path, "app")
    assert kept.secret == made[-1] and not kept.new
    assert kept.retired_digests == tuple(secret_digest(s) for s in reversed(made[1:-1]))
    assert made[-1] not in repr(kept) and made[0] not in (tmp_path / "app.json").read_text()


def test_a_damaged_or_loose_secret_file_is_refused_or_tightened_never_trusted_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "app.json"
    path.write_text("not json")
    with pytest.raises(ValueError, match="pass --new-secret"):
        keep_secret(tmp_path, "app")
    path.write_text(json.dumps({"client_id": "another-app", "client_secret": "x"}))
    with pytest.raises(ValueError, match="not a secret file"):
        keep_secret(tmp_path, "app")
    fresh = keep_secret(tmp_path, "app", rotate=True)  # what --new-secret is for
    assert fresh.new and fresh.retired_digests == ()
    path.chmod(0o644)
    tmp_path.chmod(0o755)
    assert keep_secret(tmp_path, "app").secret == fresh.secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(tmp_path.stat().st_mode) == 0o700


def test_a_secret_is_kept_neither_behind_a_symbolic_link_nor_under_an_odd_file_name(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(OSError, match="symbolic link"):
        keep_secret(tmp_path / "link", "app")
    (tmp_path / "real" / "app.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(OSError):
        keep_secret(tmp_path / "real", "app")
    assert not (tmp_path / "elsewhere.json").exists()
    odd = keep_secret(tmp_path / "real", "../../etc/passwd")
    assert odd.path.parent == tmp_path / "real" and odd.path.name.startswith("client-")
