"""What an attacker can force on a victim's browser or on the app, and what it cannot cost them: logins started
with long ``next`` paths, and floods of callbacks that no browser can finish. In every framework, in memory."""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable
from typing import Any

import pytest
from support.stacks import Stack
from support.web import query_of


@pytest.fixture
def make_stack(make_stack: Callable[..., Stack]) -> Callable[..., Stack]:
    return lambda *args, **kwargs: make_stack(*args, **{"wire": "memory", **kwargs})


def _long_next() -> str:
    """A ``next`` path of 500 characters that does not compress."""
    return "/" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(499))


def test_a_pending_login_survives_eight_forced_starts_whatever_their_next(make_stack: Any, framework: str) -> None:
    """Eight navigations to ``/auth/gist?next=<500 characters>`` (a page the attacker controls can cause them) must
    not push the victim's own pending login out of the login cookie: long ``next`` paths are trimmed first."""
    stack: Stack = make_stack(framework)
    with stack.browser() as victim:
        callback = stack.authorize(victim, stack.start_login(victim, next="/my/page"))
        for _ in range(8):
            forced = victim.get(f"{stack.app_url}/auth/gist", params={"next": _long_next()})
            assert forced.status_code == 302
            assert all(len(header) < 4096 for header in forced.headers.get_list("set-cookie"))
        finished = victim.get(callback)
    assert finished.status_code == 200, finished.text
    assert finished.json()["next"] == "/my/page"  # the victim's own login kept its next path too


def test_cookieless_callbacks_with_new_codes_record_a_bounded_number_of_codes(make_stack: Any, framework: str) -> None:
    """One genuine state and 300 callbacks with new codes from a browser without its login cookie: each is refused,
    and the record of consumed codes grows by the per-network limit at most, not by one row a request."""
    stack: Stack = make_stack(framework)
    records = stack.apps["gist"].gist_registration.login_state
    with stack.browser() as attacker:
        state = query_of(stack.start_login(attacker))["state"]
        attacker.cookies.clear()
        before = records.used_values
        answers = {
            attacker.get(stack.callback_url(), params={"state": state, "code": secrets.token_urlsafe(12)}).status_code
            for _ in range(300)
        }
    assert answers == {400}
    assert records.used_values - before <= 30
    with stack.browser() as browser:  # the flood took nothing from a real login
        assert stack.login(browser).status_code == 200
