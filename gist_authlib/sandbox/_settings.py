"""What ``gist-authlib sandbox`` hands an app: its settings in each framework's form, a ``.env`` file, and a client
secret that stays the same from one run to the next.

The secret is kept in a file only its user can read (0600, in a 0700 directory), by default under
``$XDG_STATE_HOME/gist-authlib/sandbox/`` (``~/.local/state/...``). A replaced secret leaves only its SHA-256 digest
behind, so that the sandbox can tell an app still sending it that the secret was replaced, without accepting it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ._rules import secret_digest

__all__ = [
    "KeptSecret",
    "default_state_dir",
    "keep_secret",
    "render_settings",
    "sandbox_settings",
    "write_env_file",
]

#: Authlib's names of the settings, as a suffix of the registration's prefix and as a Django key.
_KEYS = {
    "CLIENT_ID": "client_id",
    "CLIENT_SECRET": "client_secret",
    "AUTHORIZE_URL": "authorize_url",
    "ACCESS_TOKEN_URL": "access_token_url",
    "API_BASE_URL": "api_base_url",
}
#: How many replaced secrets are remembered (as digests) for the hint.
_RETIRED_KEPT = 5
# A value written bare in a .env line; anything else is single-quoted (no expansion in python-dotenv or a shell).
_BARE = re.compile(r"[A-Za-z0-9_./:@%+=,~\[\]-]*")
_ENV_LINE = re.compile(r"\s*(?P<export>export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*=")
_FILE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")


def sandbox_settings(name: str, client_id: str, client_secret: str, origin: str) -> dict[str, str]:
    """The settings of a registration named ``name`` (``gist`` gives ``GIST_CLIENT_ID``, ...) for a sandbox at
    ``origin``."""
    prefix = name.upper()
    values = (client_id, client_secret, f"{origin}/oauth/authorize", f"{origin}/oauth/token", f"{origin}/")
    return {f"{prefix}_{suffix}": value for suffix, value in zip(_KEYS, values, strict=True)}


def render_settings(form: str, name: str, settings: Mapping[str, str]) -> list[str]:
    """The lines that set ``settings`` (from :func:`sandbox_settings`) in ``form``: ``env``, ``flask`` or ``django``.

    ``env`` gives ``NAME=value`` lines, indented by two spaces; ``flask`` and ``django`` give Python to paste as it
    is (``app.config.update(...)``, ``AUTHLIB_OAUTH_CLIENTS = {...}``), each after a comment saying where it goes.
    """
    prefix = name.upper()
    if form == "env":
        return [f"  {key}={env_value(value)}" for key, value in settings.items()]
    if form == "flask":
        return [
            "# Flask: in your app factory, before gist_authlib.register(OAuth(app))",
            "app.config.update(",
            *(f"    {key}={json.dumps(value)}," for key, value in settings.items()),
            ")",
            f"# (or, for app.config.from_prefixed_env(), the same in the environment as FLASK_{prefix}_CLIENT_ID=...)",
        ]
    if form == "django":
        entries = {_KEYS[key.removeprefix(f"{prefix}_")]: value for key, value in settings.items()}
        return [
            "# Django: in settings.py (merged into AUTHLIB_OAUTH_CLIENTS if you have one)",
            "AUTHLIB_OAUTH_CLIENTS = {",
            f"    {json.dumps(name)}: {{",
            *(f"        {json.dumps(key)}: {json.dumps(value)}," for key, value in entries.items()),
            "    },",
            "}",
        ]
    raise ValueError(f"Settings come in the forms env, flask and django, not {form!r}.")


def env_value(value: str) -> str:
    """``value`` as a ``.env`` line holds it: bare, or single-quoted (read literally by python-dotenv and shells)."""
    if _BARE.fullmatch(value):
        return value
    if "'" in value or "\n" in value or "\r" in value:
        raise ValueError(f"A setting holds a quote or a line break, which a .env file cannot hold: {value[:40]!r}.")
    return f"'{value}'"


def write_env_file(path: str | os.PathLike[str], settings: Mapping[str, str]) -> Path:
    """Set ``settings`` in the ``.env`` file at ``path``: its lines for them are replaced, the others kept, missing
    ones added at the end. The file is written whole (a reader never sees half of it) and made 0600, as it holds a
    client secret. Returns the file's path.

    Raises:
        OSError: the path is a symbolic link (a checked-out ``.env -> ~/.bashrc`` must not be rewritten), not a
            regular file, or another user's file (theirs to edit, not to be replaced by one only we can read).
    """
    given = Path(path)
    target = given.parent.resolve() / given.name
    try:
        info = target.lstat()
    except FileNotFoundError:
        existing = []
    else:
        if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
            raise OSError(f"{target} is a symbolic link or not a regular file: the settings were not written there.")
        if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
            raise OSError(f"{target} belongs to another user: the settings were not written there.")
        existing = target.read_text(encoding="utf-8").splitlines()
    lines: list[str] = []
    written: set[str] = set()
    for line in existing:
        match = _ENV_LINE.match(line)
        if match is None or match["key"] not in settings:
            lines.append(line)
        elif match["key"] not in written:  # a key set twice keeps one line, in the first one's place
            key = match["key"]
            lines.append(f"{match['export'] or ''}{key}={env_value(settings[key])}")
            written.add(key)
    missing = [key for key in settings if key not in written]
    if missing:
        lines.append("# the Gist sandbox (gist-authlib sandbox)")
        lines.extend(f"{key}={env_value(settings[key])}" for key in missing)
    _write_private(target, "\n".join(lines) + "\n", replace=True)
    return target


# --- the kept client secret ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeptSecret:
    """A client secret kept between runs of the sandbox.

    Attributes:
        secret: the client secret.
        retired_digests: SHA-256 digests of the secrets it replaced, newest first.
        path: the file it is kept in.
        new: made by this run (the first run, or ``--new-secret``).
    """

    secret: str
    retired_digests: tuple[str, ...]
    path: Path
    new: bool

    def __repr__(self) -> str:
        return f"KeptSecret(path={str(self.path)!r}, new={self.new})"


def default_state_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where the sandbox keeps its secrets: ``$XDG_STATE_HOME/gist-authlib/sandbox`` (``~/.local/state/...``)."""
    state = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "gist-authlib" / "sandbox"


def keep_secret(state_dir: str | os.PathLike[str], client_id: str, *, rotate: bool = False) -> KeptSecret:
    """The secret kept for ``client_id`` under ``state_dir``, made (and kept) on first use or when ``rotate``.

    Raises:
        OSError: the directory or the file cannot be made, is a symbolic link, or belongs to another user.
        ValueError: the file is not one this function wrote.
    """
    folder = Path(state_dir)
    _private_folder(folder)
    path = folder / _file_name(client_id)
    if not rotate:
        kept = _read_secret(path, client_id)
        if kept is not None:
            return kept
    previous = None
    if rotate:
        with contextlib.suppress(ValueError):  # a damaged file is what --new-secret is for
            previous = _read_secret(path, client_id)
    retired = (secret_digest(previous.secret), *previous.retired_digests) if previous is not None else ()
    secret = secrets.token_urlsafe(24)
    body = {"client_id": client_id, "client_secret": secret, "retired_secret_sha256": list(retired[:_RETIRED_KEPT])}
    if not _write_private(path, json.dumps(body, indent=2) + "\n", replace=rotate):
        # Another sandbox made the first secret at the same moment: its secret is the one kept.
        kept = _read_secret(path, client_id)
        if kept is not None:
            return kept
    return KeptSecret(secret, retired[:_RETIRED_KEPT], path, new=True)


def _file_name(client_id: str) -> str:
    """``<client id>.json`` for a plain client id; an unusual one is named by its digest."""
    if _FILE_NAME.fullmatch(client_id) and client_id not in (".", ".."):
        return f"{client_id}.json"
    return f"client-{secret_digest(client_id)[:32]}.json"


def _private_folder(folder: Path) -> None:
    """``folder``, made 0700 if missing, else checked: a directory of this user's, not a link, made 0700."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise OSError(f"{folder} is a symbolic link or not a directory: no secret is kept there.")
    _check_owner(folder, info)
    if stat.S_IMODE(info.st_mode) & 0o077:
        folder.chmod(0o700)


def _check_owner(path: Path, info: os.stat_result) -> None:
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise OSError(f"{path} belongs to another user: no secret is kept there.")


def _read_secret(path: Path, client_id: str) -> KeptSecret | None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    with os.fdopen(fd, encoding="utf-8") as file:
        info = os.fstat(file.fileno())
        _check_owner(path, info)
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.fchmod(file.fileno(), 0o600)
        text = file.read()
    try:
        body = json.loads(text)
        secret, retired = body["client_secret"], tuple(body.get("retired_secret_sha256", ()))
        if body["client_id"] != client_id or not isinstance(secret, str) or not secret:
            raise ValueError
        if not all(isinstance(digest, str) for digest in retired):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{path} is not a secret file of the sandbox's; remove it, or pass --new-secret.") from None
    return KeptSecret(secret, retired, path, new=False)


def _write_private(path: Path, text: str, *, replace: bool) -> bool:
    """Write ``text`` to ``path`` (0600) whole. Without ``replace``, only if no file is there yet: ``False`` if one
    was (and it is left as it is)."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(temporary, flags, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        if replace:
            os.replace(temporary, path)
            return True
        try:
            os.link(temporary, path)  # fails if a file is there: two first runs keep one secret
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
