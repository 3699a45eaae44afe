"""The ``gist-authlib`` command: ``demo``, ``sandbox``, and ``login``, ``whoami`` and ``api`` for scripts."""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
import time
from collections.abc import Sequence

from ._cli_login import DEFAULT_REDIRECT_URI, add_commands, printable, run_command
from .errors import ConfigurationError, GistAuthError, InsufficientScopeError

#: The forms ``gist-authlib sandbox --print-settings`` prints (gist_authlib.sandbox._settings renders them).
SETTINGS_FORMS = ("env", "flask", "django")

__all__ = [
    "main",
]

#: The sandbox's registered redirect URIs by default: an app's callback reached by either loopback name, and
#: ``gist-authlib login``'s loopback address. Loopback redirect URIs match on any port (RFC 8252 section 7.3), so
#: these also serve ``flask run``'s port 5000 and any other.
DEFAULT_REDIRECT_URIS = (
    "http://127.0.0.1:8000/oauth/gist/callback",
    "http://localhost:8000/oauth/gist/callback",
    DEFAULT_REDIRECT_URI,
)
#: The frameworks ``gist-authlib demo`` has an example app in.
DEMO_FRAMEWORKS = ("starlette", "fastapi", "flask", "django")
#: Where ``gist-authlib sandbox`` takes a stable client secret from (safer than a flag, which ps shows).
SANDBOX_SECRET_VARIABLE = "GIST_SANDBOX_CLIENT_SECRET"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gist-authlib", description="Gist as an OAuth 2 provider for Authlib.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the sandbox and an example app on localhost, wired together")
    demo.add_argument(
        "--framework",
        default="starlette",
        choices=[*DEMO_FRAMEWORKS, "all"],
        help="which example app to run; with --check, 'all' checks each one whose framework is installed, in turn",
    )
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=None, help="the example app's port (default 8000)")
    demo.add_argument("--sandbox-port", type=int, default=None, help="the sandbox's port (default 8765)")
    demo.add_argument(
        "--check",
        action="store_true",
        help="log in headlessly, print the teammates seen and exit (0 on success)",
    )

    sandbox = commands.add_parser(
        "sandbox",
        help="serve the local Gist sandbox",
        description="Serve a local Gist (OAuth server and REST API) and print the settings an app needs.",
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sandbox.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    sandbox.add_argument("--client-id", default="gist-sandbox-app", help="the registered app's client id")
    secret = sandbox.add_mutually_exclusive_group()
    secret.add_argument(
        "--client-secret",
        default=None,
        help=f"the app's client secret (default: ${SANDBOX_SECRET_VARIABLE}, else the one kept in --state-dir, "
        "made on the first run and the same on every run after)",
    )
    secret.add_argument(
        "--new-secret",
        action="store_true",
        help="replace the kept client secret with a new one (an app still sending the old one is told it changed)",
    )
    sandbox.add_argument(
        "--state-dir",
        default=None,
        metavar="DIR",
        help="where the client secret is kept, in a file only you can read "
        "(default: $XDG_STATE_HOME/gist-authlib/sandbox, else ~/.local/state/gist-authlib/sandbox)",
    )
    sandbox.add_argument(
        "--redirect-uri",
        action="append",
        default=None,
        metavar="URI",
        help="a registered redirect URI (repeatable; replaces the defaults: "
        + ", ".join(DEFAULT_REDIRECT_URIS)
        + "); one on localhost or a loopback IP matches on any port",
    )
    sandbox.add_argument(
        "--exact-ports",
        action="store_true",
        help="match the port of loopback redirect URIs too, as for any other host",
    )
    sandbox.add_argument(
        "--print-settings",
        default="env",
        choices=SETTINGS_FORMS,
        help="print the app's settings as environment lines (env, the default: a .env file, Starlette's Config), "
        "Flask's app.config.update(...) or Django's AUTHLIB_OAUTH_CLIENTS",
    )
    sandbox.add_argument(
        "--write-env",
        default=None,
        metavar="PATH",
        help="also set the settings in this .env file (its other lines are kept; it is made readable by you only)",
    )
    sandbox.add_argument(
        "--scope",
        action="append",
        default=[],
        metavar="NAME",
        help="a scope to accept besides Gist's official ones, as Gist may add (repeatable)",
    )
    sandbox.add_argument(
        "--name",
        default="gist",
        help="the registration name whose settings to print (gist_eu prints GIST_EU_CLIENT_ID, ...; default gist)",
    )
    sandbox.add_argument("--auto-approve", action="store_true", help="approve every login without a consent page")
    sandbox.add_argument(
        "--canvas-url",
        default=None,
        help="install the app's canvas: its routes' base URL (e.g. http://127.0.0.1:8001/gist/canvas), shown at /inbox",
    )
    add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gist-authlib`` command and of ``python -m gist_authlib``."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo" and args.framework == "all" and not args.check:
        parser.error("--framework all needs --check (the demo serves one example app at a time)")
    try:
        if args.command in ("login", "whoami", "api"):
            return _script_command(args)
        if args.command == "demo":
            return _demo(args)
        return _sandbox(args)
    except ImportError as exc:
        print(f"gist-authlib: {_missing(exc, getattr(args, 'framework', 'starlette'))}", file=sys.stderr)
        return 2
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"gist-authlib: {exc}", file=sys.stderr)
        return 1


def _missing(exc: ImportError, framework: str) -> str:
    """What to install when an example's imports fail: the demo extra brings Starlette and uvicorn, the other
    frameworks' examples need their own extra too."""
    extra = "demo" if framework == "starlette" else f"demo,{framework}"
    return f"{exc.name or 'a module'} is not installed; install what this needs: pip install 'gist-authlib[{extra}]'"


def _demo(args: argparse.Namespace) -> int:
    """``gist-authlib demo``: one example served, or checked headlessly. ``--framework all`` checks the Starlette
    example and each other one whose framework is installed, and says which it skipped and what to install: the
    demo extra brings Starlette alone, so that the quick start's install stays small."""
    from .demo import run_demo

    every = args.framework == "all"
    for framework in DEMO_FRAMEWORKS if every else (args.framework,):
        args.framework = framework  # the extra to install, should this one's imports fail
        try:
            # A headless check needs no fixed ports: free ones avoid clashing with a running demo.
            code = run_demo(
                framework=framework,
                host=args.host,
                port=args.port if args.port is not None else (0 if args.check else 8000),
                sandbox_port=args.sandbox_port if args.sandbox_port is not None else (0 if args.check else 8765),
                check=args.check,
            )
        except ModuleNotFoundError as exc:
            # Only another framework left out is skipped: the demo's own needs, or a broken install, are errors.
            if not every or framework == "starlette" or (exc.name or "gist_authlib").split(".")[0] == "gist_authlib":
                raise
            print(f"Skipped the {framework} example: {_missing(exc, framework)}")
            continue
        if code:
            return code
    return 0


def _script_command(args: argparse.Namespace) -> int:
    """``login``, ``whoami`` or ``api``: exit 0, 1 when Gist or the login said no, 2 when a setting is wrong."""
    try:
        return run_command(args)
    except ConfigurationError as exc:
        print(f"gist-authlib {args.command}: {printable(str(exc))}", file=sys.stderr)
        return 2
    except GistAuthError as exc:  # the package's messages are safe to show: never a token, code or secret
        # They may quote what a server said (an error description): no control character reaches the terminal.
        print(f"gist-authlib {args.command}: {printable(str(exc))}", file=sys.stderr)
        if exc.hint and exc.hint != str(exc):  # the terminal's reader is the developer: the cause and its fix
            print(f"gist-authlib {args.command}: {printable(exc.hint)}", file=sys.stderr)
        if isinstance(exc, InsufficientScopeError) and exc.scope:
            print(
                f"gist-authlib {args.command}: to get it: gist-authlib login --scope {exc.scope} ...", file=sys.stderr
            )
        return 1


def _sandbox(args: argparse.Namespace) -> int:
    from .provider import GistProvider
    from .sandbox import CanvasApp, SandboxClient, ServerThread, create_app
    from .sandbox._settings import render_settings, sandbox_settings, write_env_file

    _settings_prefix(args.name)  # refuses a name Authlib could not read settings by
    official = GistProvider()
    provider = official.with_scopes(args.scope)  # refuses a malformed name (ValueError)
    extra = [scope for scope in dict.fromkeys(args.scope) if scope not in official.scopes]
    for scope in extra:
        suggestion, reasons = official.diagnose_scope(scope)
        if reasons:  # accepted all the same: rehearsing a wrong name can be the point
            print(
                f"gist-authlib: note: {scope} looks like a mistake for {suggestion or 'an official scope'}; "
                "the sandbox accepts it, Gist would not.",
                file=sys.stderr,
            )
    secret, retired, where = _sandbox_secret(args)
    redirect_uris = tuple(dict.fromkeys(args.redirect_uri or DEFAULT_REDIRECT_URIS))
    canvas = [CanvasApp.at(args.client_id, args.canvas_url)] if args.canvas_url else []
    sandbox = create_app(
        clients=[SandboxClient(args.client_id, secret, redirect_uris, retired_secret_digests=retired)],
        scopes=provider.scopes,
        auto_approve=args.auto_approve,
        canvas_apps=canvas,
        any_loopback_port=not args.exact_ports,
    )
    server = ServerThread(sandbox, host=args.host, port=args.port).start()
    try:
        settings = sandbox_settings(args.name, args.client_id, secret, server.url)
        written = write_env_file(args.write_env, settings) if args.write_env else None
    except BaseException:
        server.stop()
        raise
    print(f"Gist sandbox on {server.url}/")
    print("\n".join(render_settings(args.print_settings, args.name, settings)))
    ports = "" if args.exact_ports else " (on localhost or a loopback IP, any port)"
    print(f"  redirect URIs: {', '.join(redirect_uris)}{ports}")
    if canvas:
        print(f"  canvas app: {canvas[0].initialize_url} and {canvas[0].submit_url}; inbox at {server.url}/inbox")
    if extra:
        print(f"  extra scopes: {' '.join(extra)} (in the app: provider=GistProvider().with_scopes({extra!r}))")
    if args.auto_approve:
        print("  every login is approved without a consent page")
    print(f"  client secret: {where}")
    if written is not None:
        print(f"  settings written to {written}")
    print("Ctrl-C stops.")
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


def _sandbox_secret(args: argparse.Namespace) -> tuple[str, tuple[str, ...], str]:
    """The sandbox app's client secret, the digests of those it replaced, and where it came from (for the output).

    A secret given (the flag, then the variable) is used as it is and kept nowhere; otherwise the one kept under
    the state directory, made on the first run and replaced with ``--new-secret``. Where nothing can be kept (a
    read-only home), a new secret serves this run, and a note says why.
    """
    from .sandbox._settings import default_state_dir, keep_secret

    if args.client_secret:
        return args.client_secret, (), "from --client-secret (kept nowhere)"
    given = os.environ.get(SANDBOX_SECRET_VARIABLE)
    if given and args.new_secret:
        raise ValueError(
            f"--new-secret replaces the kept client secret, but ${SANDBOX_SECRET_VARIABLE} is set and wins: unset it."
        )
    if given:
        return given, (), f"from ${SANDBOX_SECRET_VARIABLE} (kept nowhere)"
    state_dir = args.state_dir or default_state_dir()
    try:
        kept = keep_secret(state_dir, args.client_id, rotate=args.new_secret)
    except OSError as exc:
        if args.new_secret or args.state_dir:  # asked for explicitly: a failure to keep it is an error
            raise
        print(f"gist-authlib: note: the client secret cannot be kept ({exc}); this run has its own.", file=sys.stderr)
        return secrets.token_urlsafe(24), (), "new for this run only (it could not be kept)"
    if kept.new and kept.retired_digests:
        where = f"new, kept in {kept.path}; an app sending the previous one is told it changed"
    else:
        made = "made and " if kept.new else ""
        where = f"{made}kept in {kept.path}: the same on every run (--new-secret replaces it)"
    return kept.secret, kept.retired_digests, where


def _settings_prefix(name: str) -> str:
    """``GIST_EU`` for the registration ``gist_eu``: the prefix under which Authlib reads its settings."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"--name must be a registration name such as gist or gist_eu, not {name!r}.")
    return name.upper()
