"""The login sequence driven by hand, one effect at a time, as httpx's tests drive ``Auth.auth_flow``.

No server and no driver: each test starts a login on a plain dict session, then sends the sequence the
answers a driver would, and checks what it asks for next.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

import httpx2
import pytest

from gist_authlib import GistProvider, LoginResult
from gist_authlib._effects import Blocking, UserCode
from gist_authlib._install_limit import InstallLimit
from gist_authlib._limits import Answer, Send
from gist_authlib._login import Registration, authorization, callback_steps, remember
from gist_authlib._web import Request
from gist_authlib.errors import InstallError, InvalidTokenResponseError, StateError, TokenEndpointError
from gist_authlib.tokens import MemoryTokenStore

REDIRECT = "http://127.0.0.1:8000/oauth/gist/callback"
TOKEN = {"access_token": "at-1", "token_type": "Bearer", "refresh_token": "rt-1", "expires_in": 3600}


def registration(**changes: Any) -> Registration:
    provider = GistProvider()
    settings: dict[str, Any] = {
        "name": "gist",
        "client_id": "the-id",
        "client_secret": "the-secret",
        "provider": provider,
        "scopes": ("read_teammates",),
        "authorize_url": provider.authorize_url,
        "token_url": provider.access_token_url,
        "api_base_url": provider.api_base_url,
        "redirect_uri": REDIRECT,
    }
    settings.update(changes)
    return Registration(**settings)


def started(reg: Registration, session: dict[str, Any], next_path: str | None = "/teammates") -> dict[str, Any]:
    data = authorization(reg, None, {"next": next_path})
    remember(reg, session, data)
    return data


def callback(reg: Registration, session: dict[str, Any], query: list[tuple[str, str]], **options: Any) -> Any:
    """The callback's flow, for a browser whose pending login is in ``session`` (no login cookie)."""
    cookie = reg.cookie.load(None, reg.secret, secure=False)
    return callback_steps(reg, Request("GET", REDIRECT, query, {}, session), cookie, **options)


def answer(body: Any, status: int = 200) -> Answer:
    """What the driver sends back for a request: Gist's answer, read."""
    return Answer(status, httpx2.Headers({"content-type": "application/json"}), json.dumps(body).encode())


def form_of(effect: Send) -> dict[str, str]:
    return dict(parse_qsl(effect.request.read().decode()))


def finished(steps: Any, sent: Any) -> LoginResult:
    with pytest.raises(StopIteration) as done:
        steps.send(sent)
    result: LoginResult = done.value.value
    return result


WORKSPACE = {"workspace_id": "ws-7", "workspace_name": "Acme"}


def test_a_login_without_a_store_asks_for_the_token_and_who_granted_it() -> None:
    reg, session = registration(), {}
    data = started(reg, session)
    steps = callback(reg, session, [("code", "the-code"), ("state", data["state"])])

    effect = next(steps)
    assert isinstance(effect, Send) and effect.request.url == reg.token_url
    params = form_of(effect)
    assert params["code"] == "the-code"
    assert params["redirect_uri"] == REDIRECT
    assert params["code_verifier"]  # S256 PKCE: the verifier goes with the code
    assert params["client_secret"] == "the-secret"  # client_secret_post, as Gist expects
    assert "the-code" not in repr(effect)  # secrets stay out of reprs

    lookup = steps.send(answer(TOKEN))  # who logged in: the workspace, as userinfo (no store needed)
    assert isinstance(lookup, Send) and lookup.request.url == reg.api_base_url + "token"
    assert lookup.request.headers["authorization"] == "Bearer at-1"
    result = finished(steps, answer(WORKSPACE))
    assert result.token["access_token"] == TOKEN["access_token"]
    assert result.token["userinfo"] == {"sub": "ws-7", "name": "Acme", "workspace_id": "ws-7", "workspace_name": "Acme"}
    assert result.next_path == "/teammates"
    assert result.subject is None and result.workspace_id == "ws-7"


def test_a_login_with_a_store_looks_up_the_workspace_then_stores_under_it() -> None:
    store = MemoryTokenStore()
    reg, session = registration(store=store), {}
    data = started(reg, session)
    steps = callback(reg, session, [("code", "c"), ("state", data["state"])])

    assert isinstance(next(steps), Send)
    lookup = steps.send(answer(TOKEN))
    assert isinstance(lookup, Send) and lookup.request.headers["authorization"] == "Bearer at-1"
    save = steps.send(answer(WORKSPACE))
    assert isinstance(save, Blocking)  # a store write: a worker thread in async apps
    assert store.get("workspace:ws-7") is None  # nothing is stored until the driver performs it
    save.call(*save.args)

    result = finished(steps, None)
    assert result.subject == "workspace:ws-7" and result.workspace_name == "Acme"
    assert store.get("workspace:ws-7") is not None
    assert session[reg.subject_key] == "workspace:ws-7"


def test_a_subject_callback_is_user_code_and_names_the_stored_token() -> None:
    store = MemoryTokenStore()
    reg, session = registration(store=store), {}
    data = started(reg, session)

    def subject(token: dict[str, Any]) -> str:
        return "user-42"

    steps = callback(reg, session, [("code", "c"), ("state", data["state"])], subject=subject)
    next(steps)
    steps.send(answer(TOKEN))
    call = steps.send(answer(WORKSPACE))
    assert isinstance(call, UserCode) and call.call is subject
    assert call.args[0]["access_token"] == TOKEN["access_token"] and call.args[0]["userinfo"]["sub"] == "ws-7"
    save = steps.send("user-42")
    assert isinstance(save, Blocking)
    save.call(*save.args)
    assert finished(steps, None).subject == "user-42"


def test_a_failed_exchange_thrown_back_becomes_a_typed_error_and_stores_nothing() -> None:
    store = MemoryTokenStore()
    reg, session = registration(store=store), {}
    data = started(reg, session)
    steps = callback(reg, session, [("code", "c"), ("state", data["state"])])
    next(steps)
    with pytest.raises(TokenEndpointError) as caught:
        steps.send(answer({"error": "invalid_client"}, 401))
    assert caught.value.error == "invalid_client"
    assert store.get("workspace:ws-7") is None


def test_an_unusable_token_answer_is_refused_before_any_lookup() -> None:
    reg, session = registration(store=MemoryTokenStore()), {}
    data = started(reg, session)
    steps = callback(reg, session, [("code", "c"), ("state", data["state"])])
    next(steps)
    with pytest.raises(InvalidTokenResponseError):
        steps.send(answer({"token_type": "bearer"}))  # no access_token


def test_a_replayed_callback_asks_for_nothing() -> None:
    reg = registration()
    session: dict[str, Any] = {}
    data = started(reg, session)
    query = [("code", "c"), ("state", data["state"])]
    copy = dict(session)  # an older copy of the cookie, replayed after the login
    steps = callback(reg, session, query)
    next(steps)
    steps.send(answer(TOKEN))
    finished(steps, answer({"workspace_id": "ws-7"}))
    # The same browser (its older cookie still names the login): a repeat, with the login's next page.
    with pytest.raises(StateError) as caught:
        next(callback(reg, copy, query))
    assert caught.value.error_code == "callback_repeated"
    # The same callback from a browser that never started it: a replay.
    with pytest.raises(StateError) as caught:
        next(callback(reg, {}, query))
    assert caught.value.error_code == "callback_replayed"


def test_an_install_checks_the_workspace_gist_names_against_the_state() -> None:
    reg = registration(store=MemoryTokenStore(), install_limit=InstallLimit())
    steps = callback(reg, {}, [("code", "c"), ("state", "1234")], installs=True, redirect_uri=REDIRECT)
    fetch = next(steps)
    assert isinstance(fetch, Send) and "code_verifier" not in form_of(fetch)  # Gist started this flow
    assert isinstance(steps.send(answer(TOKEN)), Send)
    with pytest.raises(InstallError) as caught:
        # the token belongs to another workspace than the state claims
        steps.send(answer({"workspace_id": "9999", "workspace_name": "Someone else"}))
    assert caught.value.error_code == "install_failed" and caught.value.status_code == 400
