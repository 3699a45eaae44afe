"""A local Gist: an OAuth 2 server and a slice of the REST API, as an ASGI app (needs the starlette extra).

>>> from gist_authlib.sandbox import create_app, SandboxClient
>>> sandbox = create_app(clients=[SandboxClient("id", "secret", ("http://127.0.0.1:8000/oauth/gist/callback",))])

Serve it with any ASGI server (``uvicorn``), or with :func:`serve` in a test.
"""

from __future__ import annotations

from ._api import ApiFault, RateLimit
from ._app import GistSandbox, TokenFault, TokenRequestRecord, create_app
from ._inbox import CanvasApp, CanvasCall, Inbox
from ._server import ServerThread, WSGIServerThread, serve
from ._state import DEFAULT_CONTACTS, DEFAULT_TEAMMATES, SandboxClient, SandboxLimits, Workspace

__all__ = [
    "DEFAULT_CONTACTS",
    "DEFAULT_TEAMMATES",
    "ApiFault",
    "CanvasApp",
    "CanvasCall",
    "GistSandbox",
    "Inbox",
    "RateLimit",
    "SandboxClient",
    "SandboxLimits",
    "ServerThread",
    "TokenFault",
    "TokenRequestRecord",
    "WSGIServerThread",
    "Workspace",
    "create_app",
    "serve",
]
