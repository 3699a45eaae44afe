"""A sandbox served on loopback with one registered app, and the steps of a login against it, by hand."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx2

from gist_authlib.sandbox import GistSandbox, SandboxClient, ServerThread, create_app
from support.web import browser_client, query_of

#: The registered app's redirect URI: a loopback port nothing listens on (the callback is read, never followed).
REDIRECT = "http://127.0.0.1:9/oauth/gist/callback"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def s256(verifier: str) -> str:
    """The S256 code challenge of ``verifier`` (RFC 7636 section 4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@dataclass
class Served:
    """A sandbox with the app ``cid``/``csecret`` (redirect URI :data:`REDIRECT`), its origin, clock and a browser."""

    sandbox: GistSandbox
    url: str
    clock: Clock
    http: httpx2.Client

    def authorize_params(self, **overrides: str | None) -> dict[str, str]:
        params: dict[str, str | None] = {
            "response_type": "code",
            "client_id": "cid",
            "redirect_uri": REDIRECT,
            "scope": "read_teammates read_teams",
            "state": "s1",
        }
        params.update(overrides)
        return {k: v for k, v in params.items() if v is not None}

    def consent(self, **overrides: str | None) -> tuple[str, str]:
        page = self.http.get(f"{self.url}/oauth/authorize", params=self.authorize_params(**overrides))
        assert page.status_code == 200, page.text
        blob = page.text.split('name="request" value="')[1].split('"')[0]
        csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        return blob, csrf

    def code(self, **overrides: str | None) -> str:
        blob, csrf = self.consent(**overrides)
        answer = self.http.post(
            f"{self.url}/oauth/authorize", data={"request": blob, "csrf_token": csrf, "decision": "approve"}
        )
        assert answer.status_code == 302, answer.text
        return query_of(answer.headers["location"])["code"]

    def exchange(self, code: str, /, **overrides: str | None) -> httpx2.Response:
        data: dict[str, str | None] = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": "cid",
            "client_secret": "csecret",
        }
        data.update(overrides)
        return self.http.post(f"{self.url}/oauth/token", data={k: v for k, v in data.items() if v is not None})


@contextmanager
def served_sandbox(**kwargs: Any) -> Iterator[Served]:
    """A :class:`Served` sandbox for the ``with`` block (``kwargs`` go to ``create_app``)."""
    clock = Clock()
    client = SandboxClient("cid", "csecret", (REDIRECT,), name="Acme CRM sync")
    sandbox = create_app(clients=[client], clock=clock, **kwargs)
    with ServerThread(sandbox) as server, browser_client(follow_redirects=False) as http:
        yield Served(sandbox, server.url, clock, http)
