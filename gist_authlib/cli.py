"""The ``gist-authlib`` command: ``demo`` and ``sandbox``."""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gist-authlib", description="Gist as an OAuth 2 provider for Authlib.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the sandbox and an example app on localhost, wired together")
    demo.add_argument(
        "--framework",
        default="starlette",
        choices=["starlette", "fastapi", "flask", "django"],
        help="which example app to run",
    )
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=None, help="the example app's port (default 8000)")
    demo.add_argument("--sandbox-port", type=int, default=None, help="the sandbox's port (default 8765)")
    demo.add_argument(
        "--check",
        action="store_true",
        help="log in headlessly, print the teammates seen and exit (0 on success)",
    )

    sandbox = commands.add_parser("sandbox", help="serve the local Gist sandbox")
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sandbox.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    sandbox.add_argument("--client-id", default="gist-sandbox-app", help="the registered app's client id")
    sandbox.add_argument("--client-secret", default=None, help="the app's client secret (random by default)")
    sandbox.add_argument(
        "--redirect-uri",
        action="append",
        default=None,
        help="a registered redirect URI (repeatable; default http://127.0.0.1:8000/oauth/gist/callback)",
    )
    sandbox.add_argument("--auto-approve", action="store_true", help="approve every login without a consent page")
    sandbox.add_argument(
        "--canvas-url",
        default=None,
        help="install the app's canvas: its routes' base URL (e.g. http://127.0.0.1:8001/gist/canvas), shown at /inbox",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gist-authlib`` command and of ``python -m gist_authlib``."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            from .demo import run_demo

            # A headless check needs no fixed ports: free ones avoid clashing with a running demo.
            return run_demo(
                framework=args.framework,
                host=args.host,
                port=args.port if args.port is not None else (0 if args.check else 8000),
                sandbox_port=args.sandbox_port if args.sandbox_port is not None else (0 if args.check else 8765),
                check=args.check,
            )
        return _sandbox(args)
    except ImportError as exc:
        print(
            f"gist-authlib: {exc.name or 'a module'} is not installed; install the demo extra: "
            "pip install 'gist-authlib[demo]'",
            file=sys.stderr,
        )
        return 2
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"gist-authlib: {exc}", file=sys.stderr)
        return 1


def _sandbox(args: argparse.Namespace) -> int:
    from .sandbox import CanvasApp, SandboxClient, ServerThread, create_app

    secret = args.client_secret or secrets.token_urlsafe(24)
    redirect_uris = tuple(args.redirect_uri or ["http://127.0.0.1:8000/oauth/gist/callback"])
    canvas = [CanvasApp.at(args.client_id, args.canvas_url)] if args.canvas_url else []
    client = SandboxClient(args.client_id, secret, redirect_uris)
    sandbox = create_app(clients=[client], auto_approve=args.auto_approve, canvas_apps=canvas)
    server = ServerThread(sandbox, host=args.host, port=args.port).start()
    print(f"Gist sandbox on {server.url}/")
    print(f"  GIST_CLIENT_ID={args.client_id}")
    print(f"  GIST_CLIENT_SECRET={secret}")
    print(f"  GIST_AUTHORIZE_URL={server.url}/oauth/authorize")
    print(f"  GIST_ACCESS_TOKEN_URL={server.url}/oauth/token")
    print(f"  GIST_API_BASE_URL={server.url}/")
    print(f"  redirect URIs: {', '.join(redirect_uris)}")
    if canvas:
        print(f"  canvas app: {canvas[0].initialize_url} and {canvas[0].submit_url}; inbox at {server.url}/inbox")
    print("Ctrl-C stops.")
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()
