"""The code blocks of the README and the docs pages, read as a reader reads them, and the means to run them.

Python blocks are executed; an app a block builds is served on loopback and logged in through, against the
sandbox. Shell blocks are checked command by command: every ``gist-authlib`` line is parsed by the command's own
parser, every extra named in ``pip install`` exists, every module, file and folder named exists, and every
``python -c`` runs. No command of an unknown kind passes unchecked.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import shlex
import subprocess
import sys
import tomllib
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gist_authlib.cli import DEFAULT_REDIRECT_URIS
from gist_authlib.sandbox import SandboxClient, ServerThread, WSGIServerThread, create_app
from support.web import browser_client

ROOT = Path(__file__).resolve().parents[2]
#: The pages whose blocks the suite reads: the README and every page of the documentation site.
PAGES = sorted(["README.md", *(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").rglob("*.md"))])
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^(#{1,6}) (.+)$", re.MULTILINE)


@dataclass(frozen=True)
class Block:
    """A fenced code block of a page."""

    page: str  # relative to the repository's root
    line: int  # of the opening fence, from 1
    lang: str  # "python", "bash", ... ("" when the fence names none)
    code: str
    heading: str  # the nearest heading above it, without the #s

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def blocks(page: str, lang: str | None = None) -> list[Block]:
    """The page's code blocks in order (MyST directives such as ``{toctree}`` are not code), of one language
    if ``lang`` is given."""
    text = (ROOT / page).read_text()
    fences = list(FENCE.finditer(text))
    headings = [  # a comment line inside a block (``# urls.py``) is no heading
        (m.start(), m.group(2).strip())
        for m in HEADING.finditer(text)
        if not any(fence.start() < m.start() < fence.end() for fence in fences)
    ]
    found = []
    for match in fences:
        info = match.group(1).strip()
        if info.startswith("{"):
            continue
        heading = next((title for start, title in reversed(headings) if start < match.start()), "")
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(page, line, info.split()[0] if info else "", match.group(2), heading))
    return [block for block in found if lang is None or block.lang == lang]


def run_blocks(found: list[Block], namespace: dict[str, Any]) -> None:
    """Execute Python blocks in order in one namespace, as a reader pastes them one after the other."""
    for block in found:
        try:
            exec(compile(block.code, block.where, "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"the block at {block.where} failed: {type(exc).__name__}: {exc}") from exc


# --- logging in through the apps the examples build --------------------------------------------------------

#: The headings of the per-framework examples, and how each one's app is served.
FRAMEWORKS = {"Starlette": "asgi", "FastAPI": "asgi", "Flask": "wsgi", "Django": "wsgi"}
CLIENT_ID, CLIENT_SECRET = "docs-id", "docs-secret-" + "s" * 24


@dataclass
class Served:
    """The sandbox and the app server of one example."""

    app_url: str
    sandbox_url: str
    servers: list[Any]

    def log_in(self, path: str = "/auth/gist") -> Any:
        """Open the login path in a fresh browser and follow every redirect; the last page."""
        with browser_client(follow_redirects=True, timeout=10) as browser:
            return browser.get(f"{self.app_url}{path}")


def start_sandbox(kind: str, callback_path: str, monkeypatch: Any, folder: Path) -> Served:
    """A sandbox with one client whose redirect URI is the app server's callback, and the settings every
    framework reads (a ``.env`` in ``folder``, ``FLASK_*`` and ``GIST_*`` variables), in place."""
    app_server = ServerThread() if kind == "asgi" else WSGIServerThread()
    # The redirect URIs `gist-authlib sandbox` registers by default (on loopback they match any port): a snippet
    # whose callback is elsewhere would not run against the sandbox as a user starts it.
    assert callback_path in {urlsplit(uri).path for uri in DEFAULT_REDIRECT_URIS}, callback_path
    sandbox = ServerThread().start(
        create_app(clients=[SandboxClient(CLIENT_ID, CLIENT_SECRET, DEFAULT_REDIRECT_URIS)], auto_approve=True)
    )
    settings = {
        "GIST_CLIENT_ID": CLIENT_ID,
        "GIST_CLIENT_SECRET": CLIENT_SECRET,
        "GIST_AUTHORIZE_URL": f"{sandbox.url}/oauth/authorize",
        "GIST_ACCESS_TOKEN_URL": f"{sandbox.url}/oauth/token",
        "GIST_API_BASE_URL": f"{sandbox.url}/",
    }
    monkeypatch.chdir(folder)
    (folder / ".env").write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
        monkeypatch.setenv(f"FLASK_{key}", value)
    monkeypatch.setenv("FLASK_SECRET_KEY", "docs-flask-secret")
    return Served(app_server.url, sandbox.url, [app_server, sandbox])


def _is_settings(block: Block) -> bool:
    """A Django example's ``settings.py`` block: the file it belongs in is its first line's comment."""
    return block.code.startswith("# settings.py")


def django_settings(found: list[Block], sandbox_url: str) -> dict[str, Any]:
    """The settings a Django example's ``settings.py`` block sets (none if it has none), with the sandbox's
    endpoints added to its Gist client."""
    namespace: dict[str, Any] = {}
    run_blocks([block for block in found if _is_settings(block)], namespace)
    clients = namespace.get("AUTHLIB_OAUTH_CLIENTS", {"gist": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}})
    clients["gist"].update(
        authorize_url=f"{sandbox_url}/oauth/authorize",
        access_token_url=f"{sandbox_url}/oauth/token",
        api_base_url=f"{sandbox_url}/",
    )
    return {"AUTHLIB_OAUTH_CLIENTS": clients}


@contextmanager
def serve_example(framework: str, found: list[Block], served: Served) -> Iterator[None]:
    """Run an example's blocks and serve the app they build until the generator is closed."""
    from django.test import override_settings

    if framework != "Django":
        namespace: dict[str, Any] = {"__name__": "docs_snippet"}
        run_blocks(found, namespace)
        app = namespace["app"] if "app" in namespace else namespace["create_app"]()
        served.servers[0].start(app)
        yield
        return
    from django.core.handlers.wsgi import WSGIHandler

    urls = types.ModuleType("docs_snippet_urls")
    with override_settings(**django_settings(found, served.sandbox_url)):
        run_blocks([block for block in found if not _is_settings(block)], urls.__dict__)
        with override_settings(ROOT_URLCONF=urls):  # once it has its urlpatterns: Django caches what it finds
            served.servers[0].start(WSGIHandler())
            yield


# --- shell commands ------------------------------------------------------------------------------------------


def _substitutions(line: str) -> tuple[str, list[str]]:
    """``line`` with each ``$(...)`` replaced by a placeholder, and the commands those held."""
    inner: list[str] = []
    out, i = [], 0
    while i < len(line):
        if line.startswith("$(", i):
            depth, j, quote = 1, i + 2, ""
            while depth:
                char = line[j]
                if quote:
                    quote = "" if char == quote else quote
                elif char in "\"'":
                    quote = char
                elif char == "(":
                    depth += 1
                elif char == ")":
                    depth -= 1
                j += 1
            inner.append(line[i + 2 : j - 1])
            out.append("SUBSTITUTED")
            i = j
        else:
            out.append(line[i])
            i += 1
    return "".join(out), inner


def shell_commands(code: str) -> list[list[str]]:
    """The simple commands of a shell block, each as its words (continuations joined, comments, ``&&`` and a
    trailing ``&`` split off; ``$(...)`` substitutions are commands of their own)."""
    commands: list[list[str]] = []
    for line in code.replace("\\\n", " ").splitlines():
        line, inner = _substitutions(line)
        for command in inner:
            commands.extend(shell_commands(command))
        words = shlex.split(line, comments=True)
        current: list[str] = []
        for word in [*words, "&&"]:
            if word in ("&&", "&", ";", "|"):
                if current:
                    commands.append(current)
                current = []
            else:
                current.append(word)
    return commands


def _extras() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project["optional-dependencies"])


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def check_command(words: list[str], cwd: Path, scratch: Path) -> Path:
    """Check one command; returns the folder the next command runs in (``cd`` changes it). Raises
    AssertionError naming what is wrong."""
    from gist_authlib.cli import _parser

    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):  # VAR=value before a command
        words = words[1:]
    if not words:
        return cwd
    shown = shlex.join(words)
    if words[:3] in (["python", "-m", "nox"], ["python3", "-m", "nox"]):
        words = ["nox", *words[3:]]
    program, args = words[0], words[1:]
    if program == "export":
        assert all(re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", word) for word in args), shown
    elif program == "cd":
        assert (cwd / args[0]).is_dir(), shown
        return cwd / args[0]
    elif program == "gist-authlib":
        _parser().parse_args(args)  # SystemExit (2) on anything the command would refuse
    elif program == "pip":
        assert args[0] == "install", shown
        for spec in (word for word in args[1:] if not word.startswith("-")):
            name, _, extras = spec.partition("[")
            assert name in (".", "gist-authlib"), shown
            missing = {extra for extra in extras.rstrip("]").split(",") if extra} - _extras()
            assert not missing, f"{shown}: no extra {sorted(missing)} in pyproject.toml"
    elif program in ("python", "python3"):
        if args[0] == "-m":
            assert _module_exists(args[1]), shown
        elif args[0] == "-c":
            result = subprocess.run(
                [sys.executable, "-c", args[1]], cwd=scratch, capture_output=True, text=True, timeout=60, check=False
            )
            assert result.returncode == 0, f"{shown}: {result.stderr}"
        else:
            assert (cwd / args[0]).is_file(), shown
    elif program == "uvicorn":
        target = next(word for word in args if ":" in word)
        module, _, attribute = target.partition(":")
        assert hasattr(importlib.import_module(module), attribute), shown
    elif program == "bash":
        assert (cwd / args[0]).is_file(), shown
    elif program == "nox":
        assert _module_exists("nox"), shown
        sessions = args[args.index("-s") + 1 :] if "-s" in args else []
        noxfile = (ROOT / "noxfile.py").read_text()
        for session in sessions[: sessions.index("--")] if "--" in sessions else sessions:
            # a session is named by its function, or by name="..." (a Python suffix such as -3.12 aside)
            named = rf'^def {session.split("-")[0]}\(|name="{session}"'
            assert re.search(named, noxfile, re.MULTILINE), shown
    elif program == "sphinx-build":
        assert _module_exists("sphinx") and (cwd / "docs" / "conf.py").is_file(), shown
    else:
        raise AssertionError(f"{shown}: a command the docs test does not know how to check; add a check for it")
    return cwd
