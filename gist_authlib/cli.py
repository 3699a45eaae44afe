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

__all__ = [
    "main",
]

#: The sandbox's registered redirect URIs by default: an app on port 8000, reached by either loopback name, and
#: ``gist-authlib login``'s loopback address.
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
        help="which example app to run; with --check, 'all' checks the four in turn",
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
    sandbox.add_argument(
        "--client-secret",
        default=None,
        help=f"the app's client secret (default: ${SANDBOX_SECRET_VARIABLE}, else a new random one each run)",
    )
    sandbox.add_argument(
        "--redirect-uri",
        action="append",
        default=None,
        metavar="URI",
        help="a registered redirect URI (repeatable; default: " + " and ".join(DEFAULT_REDIRECT_URIS) + ")",
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
            from .demo import run_demo

            # A headless check needs no fixed ports: free ones avoid clashing with a running demo.
            frameworks = DEMO_FRAMEWORKS if args.framework == "all" else (args.framework,)
            for framework in frameworks:
                args.framework = framework  # the extra to install, should this one's imports fail
                code = run_demo(
                    framework=framework,
                    host=args.host,
                    port=args.port if args.port is not None else (0 if args.check else 8000),
                    sandbox_port=args.sandbox_port if args.sandbox_port is not None else (0 if args.check else 8765),
                    check=args.check,
                )
                if code:
                    return code
            return 0
        return _sandbox(args)
    except ImportError as exc:
        # The demo extra brings Starlette and uvicorn; the other frameworks' examples need their own extra.
        framework = getattr(args, "framework", "starlette")
        extra = "demo" if framework == "starlette" else f"demo,{framework}"
        print(
            f"gist-authlib: {exc.name or 'a module'} is not installed; install what this needs: "
            f"pip install 'gist-authlib[{extra}]'",
            file=sys.stderr,
        )
        return 2
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"gist-authlib: {exc}", file=sys.stderr)
        return 1


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
        if isinstance(exc, InsufficientScopeError) and exc.scope:
            print(
                f"gist-authlib {args.command}: to get it: gist-authlib login --scope {exc.scope} ...", file=sys.stderr
            )
        return 1


def _sandbox(args: argparse.Namespace) -> int:
    from .provider import GistProvider
    from .sandbox import CanvasApp, SandboxClient, ServerThread, create_app

    prefix = _settings_prefix(args.name)
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
    secret = args.client_secret or os.environ.get(SANDBOX_SECRET_VARIABLE) or secrets.token_urlsafe(24)
    redirect_uris = tuple(dict.fromkeys(args.redirect_uri or DEFAULT_REDIRECT_URIS))
    canvas = [CanvasApp.at(args.client_id, args.canvas_url)] if args.canvas_url else []
    sandbox = create_app(
        clients=[SandboxClient(args.client_id, secret, redirect_uris)],
        scopes=provider.scopes,
        auto_approve=args.auto_approve,
        canvas_apps=canvas,
    )
    server = ServerThread(sandbox, host=args.host, port=args.port).start()
    print(f"Gist sandbox on {server.url}/")
    print(f"  {prefix}_CLIENT_ID={args.client_id}")
    print(f"  {prefix}_CLIENT_SECRET={secret}")
    print(f"  {prefix}_AUTHORIZE_URL={server.url}/oauth/authorize")
    print(f"  {prefix}_ACCESS_TOKEN_URL={server.url}/oauth/token")
    print(f"  {prefix}_API_BASE_URL={server.url}/")
    print(f"  redirect URIs: {', '.join(redirect_uris)}")
    if canvas:
        print(f"  canvas app: {canvas[0].initialize_url} and {canvas[0].submit_url}; inbox at {server.url}/inbox")
    if extra:
        print(f"  extra scopes: {' '.join(extra)} (in the app: provider=GistProvider().with_scopes({extra!r}))")
    if args.auto_approve:
        print("  every login is approved without a consent page")
    print("Ctrl-C stops.")
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


def _settings_prefix(name: str) -> str:
    """``GIST_EU`` for the registration ``gist_eu``: the prefix under which Authlib reads its settings."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"--name must be a registration name such as gist or gist_eu, not {name!r}.")
    return name.upper()
