"""Security, round three: token file modes, the install limit under a few networks, canvas submit bodies.

The command line's own findings (a public client's PKCE, the loopback server, the browser's arguments, terminal
text) are tested in the command line's tests.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from gist_authlib import GistProvider, InstallLimit
from gist_authlib._cli_login import _private_directory
from gist_authlib.canvas import Canvas, Text, canvas_signature, handle_canvas_request
from gist_authlib.errors import TokenStoreError
from gist_authlib.tokens import SQLiteTokenStore, TokenCipher

KEY = TokenCipher.generate_key()


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# --- token files and the configuration directory ---------------------------------------------------------------


def test_a_loose_token_database_and_its_wal_are_tightened(tmp_path: Path) -> None:
    db = tmp_path / "tokens.sqlite3"
    with SQLiteTokenStore(db, key=KEY) as store:
        store.save("user-1", {"access_token": "a"}, workspace_id="1", workspace_name="Acme")
        os.chmod(db, 0o644)  # as 0.1 left it
        wal = Path(f"{db}-wal")
        if wal.exists():
            os.chmod(wal, 0o644)
    assert mode(db) == 0o644
    with SQLiteTokenStore(db, key=KEY) as store:
        assert store.get("user-1") is not None
        assert mode(db) == 0o600
        for extra in (Path(f"{db}-wal"), Path(f"{db}-shm")):
            if extra.exists():
                assert mode(extra) & 0o077 == 0


def test_a_token_database_behind_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere.sqlite3"
    SQLiteTokenStore(real, key=KEY).close()
    link = tmp_path / "tokens.sqlite3"
    link.symlink_to(real)
    with pytest.raises(TokenStoreError, match="symbolic link"):
        SQLiteTokenStore(link, key=KEY)
    dangling = tmp_path / "dangling.sqlite3"
    dangling.symlink_to(tmp_path / "nowhere" / "x.sqlite3")
    with pytest.raises((TokenStoreError, OSError)):
        SQLiteTokenStore(dangling, key=KEY)
    assert not (tmp_path / "nowhere").exists()  # the link was not followed to create anything


def test_another_users_token_database_is_refused(tmp_path: Path) -> None:
    if os.getuid() == 0:
        db = tmp_path / "theirs.sqlite3"
        SQLiteTokenStore(db, key=KEY).close()
        os.chown(db, 65534, 65534)  # nobody's
    else:
        db = Path("/etc/passwd")  # root's, and never a token database: refused before it is opened
    before = os.lstat(db)
    with pytest.raises(TokenStoreError, match="another user"):
        SQLiteTokenStore(db, key=KEY)
    after = os.lstat(db)
    assert (after.st_mode, after.st_size, after.st_mtime_ns) == (before.st_mode, before.st_size, before.st_mtime_ns)


def test_the_command_lines_configuration_directory_is_private(tmp_path: Path) -> None:
    config = tmp_path / "config" / "gist-authlib"
    _private_directory(config)
    assert mode(config) == 0o700
    os.chmod(config, 0o755)  # an older release, or a umask, left it open
    _private_directory(config)
    assert mode(config) == 0o700
    target = tmp_path / "real"
    target.mkdir()
    link = tmp_path / "linked"
    link.symlink_to(target)
    with pytest.raises(TokenStoreError, match="symbolic link"):
        _private_directory(link)


# --- the install limit: a few networks cannot lock out every genuine install ------------------------------------


def test_ten_addresses_of_one_network_share_one_bucket() -> None:
    limit = InstallLimit(per_client=10, total=100, clock=lambda: 1000.0)
    allowed = sum(limit.allow(f"203.0.113.{host}") for host in range(1, 11) for _ in range(10))
    assert allowed == 10  # one /24: one bucket of 10, not ten
    assert limit.allow("198.51.100.7")  # and everybody else is untouched


def test_a_genuine_install_passes_after_ten_networks_spent_the_total() -> None:
    limit = InstallLimit(per_client=10, total=100, clock=lambda: 1000.0)
    forged = sum(limit.allow(f"203.0.{net}.9") for net in range(10) for _ in range(12))
    assert forged == 100  # the attack of the finding: ten networks, ten each, the whole total
    assert not limit.allow("203.0.0.9")  # the attackers get no more
    assert limit.allow("198.51.100.7")  # a genuine installer's first attempt still passes
    assert not limit.allow("198.51.100.7")  # past the total, only first attempts pass: the cost stays bounded


def test_ipv6_addresses_are_counted_by_their_48() -> None:
    limit = InstallLimit(per_client=2, total=100, clock=lambda: 1000.0)
    assert [limit.allow(f"2001:db8:1:2::{n:x}") for n in range(1, 5)] == [True, True, False, False]
    assert not limit.allow("2001:db8:1:3::1")  # another /64 of the same /48: the same site
    assert limit.allow("2001:db8:2::1")
    assert InstallLimit.network_of("::ffff:192.0.2.44") == "192.0.2.0/24"


def test_the_forwarded_address_counts_only_behind_a_trusted_proxy() -> None:
    limit = InstallLimit(trusted_proxies=["10.0.0.0/8"])
    assert limit.client_address("10.1.2.3", "198.51.100.7, 10.9.9.9") == "198.51.100.7"
    assert limit.client_address("203.0.113.5", "198.51.100.7") == "203.0.113.5"  # anyone can send the header
    assert InstallLimit().client_address("10.1.2.3", "198.51.100.7") == "10.1.2.3"  # no proxy named: ignored
    assert limit.client_address("10.1.2.3", "10.2.2.2") == "10.1.2.3"  # nothing outside the proxies


# --- canvas submit bodies ------------------------------------------------------------------------------------


def test_a_submit_without_component_id_is_refused_before_the_handler() -> None:
    calls: list[object] = []

    def handler(request: object) -> Canvas:
        calls.append(request)
        return Canvas([Text("hi")])

    secret = "canvas-secret"
    body = json.dumps({"workspace_id": "1", "admin": {"id": 1}, "contact": {"id": 2}}).encode()
    headers = {GistProvider().canvas_signature_header: canvas_signature(body, secret)}
    reply = handle_canvas_request(body, headers, "submit", handler, secret=secret)
    assert reply.status == 400 and calls == []
    assert b"component_id" in reply.body
    # The same body is a valid initialize request: the handler runs.
    assert handle_canvas_request(body, headers, "initialize", handler, secret=secret).status == 200
    assert len(calls) == 1


# --- the red-team pass over round three ------------------------------------------------------------------------


def test_forwarded_hops_with_ports_and_mapped_proxies_are_read_as_addresses() -> None:
    limit = InstallLimit(per_client=1, total=100, trusted_proxies=["10.0.0.0/8"], clock=lambda: 1000.0)
    assert limit.client_address("::ffff:10.0.0.1", "9.9.9.9:1234") == "9.9.9.9"  # a dual-stack proxy is trusted
    assert limit.client_address("10.0.0.1", "[2001:db8::1]:443, 10.0.0.2") == "2001:db8::1"
    assert limit.client_address("10.0.0.1", "5.5.5.5, ") == "5.5.5.5"  # an empty hop is no address
    # Each source port is not a bucket of its own.
    allowed = sum(limit.allow(limit.client_address("10.0.0.1", f"9.9.9.9:{port}")) for port in range(1000, 1100))
    assert allowed == 1


def test_first_attempts_past_the_total_are_bounded_too() -> None:
    limit = InstallLimit(per_client=10, total=5, clock=lambda: 1000.0)
    allowed = sum(limit.allow(f"2001:db8:{n:x}::1") for n in range(1000))  # a thousand networks (/48s)
    assert allowed == 10  # the total, then as many first attempts: twice the total a window, at most


def test_a_wal_planted_beside_a_new_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "tokens.sqlite3"
    wal = tmp_path / "tokens.sqlite3-wal"
    wal.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(TokenStoreError, match="symbolic link"):
        SQLiteTokenStore(db, key=KEY)
    assert not (tmp_path / "elsewhere").exists()


def test_a_non_ascii_state_at_the_loopback_server_is_compared_not_crashed() -> None:
    from gist_authlib._cli_login import _same

    assert _same("état", "état") and not _same("état", "etat")
    assert not _same("\udcff", "x")  # a lone surrogate, as a decoded request line can hold
