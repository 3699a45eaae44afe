"""A local Gist: an OAuth 2 server and a slice of the REST API, as an ASGI app (needs the starlette extra).

>>> from gist_authlib.sandbox import create_app, SandboxClient
>>> sandbox = create_app(clients=[SandboxClient("id", "secret", ("http://127.0.0.1:8000/oauth/gist/callback",))])

Serve it with any ASGI server (``uvicorn``), or with :func:`serve` in a test.
"""

from __future__ import annotations

from ._api import ApiFault, RateLimit
from ._app import GistSandbox, TokenFault, create_app
from ._inbox import CanvasApp, Inbox
from ._server import ServerThread, WSGIServerThread, serve
from ._state import SandboxClient, SandboxLimits, Workspace

__all__ = [
    "ApiFault",
    "CanvasApp",
    "GistSandbox",
    "Inbox",
    "RateLimit",
    "SandboxClient",
    "SandboxLimits",
    "ServerThread",
    "TokenFault",
    "WSGIServerThread",
    "Workspace",
    "create_app",
    "serve",
]
