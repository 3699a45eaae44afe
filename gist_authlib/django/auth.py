"""Django users from Gist logins: the authentication backend, and the login that follows a finished Gist login.

A Gist login identifies a workspace, not a person. By default each workspace logs in one Django user: created on
the workspace's first login (``gist-<workspace id>``, with no usable password), or the user who was already
logged in when they logged in with Gist (the workspace is then connected to them). ``WorkspaceLink`` rows (in the
admin) record which user each workspace logs in.

One setting maps logins to your own users instead, as ``SOCIALACCOUNT_ADAPTER`` does for django-allauth::

    GIST_AUTHLIB_USER_FOR_LOGIN = "myapp.auth.user_for_login"   # (request, token) -> a user, or None to refuse
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model, login
from django.contrib.auth.backends import ModelBackend
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.utils import timezone
from django.utils.module_loading import import_string

from .._flow import SESSION_KEY_PREFIX, safe_next_path
from ..errors import ConfigurationError, LoginError, TokenExchangeError
from .apps import BACKEND

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

__all__ = ["GistBackend", "login_from_gist", "user_for_login"]

log = logging.getLogger("gist_authlib.django")

#: The setting that names your own ``user_for_login(request, token)``.
HOOK_SETTING = "GIST_AUTHLIB_USER_FOR_LOGIN"


class GistBackend(ModelBackend):  # type: ignore[misc]  # Django ships no type hints
    """The authentication backend of Gist logins: add ``"gist_authlib.django.GistBackend"`` to
    ``AUTHENTICATION_BACKENDS``, beside ``ModelBackend``.

    ``authenticate(request, gist_workspace_id=..., gist_token=...)`` returns the Django user of a finished Gist
    login (see :func:`user_for_login`, or your ``GIST_AUTHLIB_USER_FOR_LOGIN``), or ``None``. Call it only with
    the workspace of a login that just finished: it trusts its caller, as Django's ``RemoteUserBackend`` does.
    Passwords are left to the other backends; permissions and ``get_user`` are ``ModelBackend``'s.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        gist_workspace_id: str | int | None = None,
        gist_token: Mapping[str, object] | None = None,
    ) -> AbstractBaseUser | None:
        if gist_workspace_id is None:
            return None
        workspace_id = str(gist_workspace_id)
        token = dict(gist_token or {})
        token.setdefault("userinfo", {"sub": workspace_id, "workspace_id": workspace_id})
        if str(_userinfo(token).get("sub")) != workspace_id:
            return None
        user = _hook()(request, token)
        return user if user is not None and self.user_can_authenticate(user) else None


def user_for_login(request: HttpRequest | None, token: Mapping[str, object]) -> AbstractBaseUser | None:
    """The default mapping of a Gist login to a Django user, through the ``WorkspaceLink`` table.

    The workspace's linked user; else, for a request whose user is logged in, that user (the workspace is
    connected to them); else a new user ``gist-<workspace id>`` with no usable password. ``None`` (the login is
    refused) when a logged-in user logs in with a workspace linked to someone else, or when the new user's
    username is taken by a user the workspace is not linked to (link them in the admin).

    A ``GIST_AUTHLIB_USER_FOR_LOGIN`` function of your own may call this one and add to it.
    """
    from .models import WorkspaceLink

    userinfo = _userinfo(token)
    workspace_id = str(userinfo["sub"])
    workspace_name = str(userinfo.get("workspace_name") or userinfo.get("name") or "")[:255]
    current = getattr(request, "user", None)
    current = current if current is not None and current.is_authenticated else None
    for _ in range(2):  # a second look, when another login of the same workspace created its link meanwhile
        try:
            with transaction.atomic():
                link = WorkspaceLink.objects.select_related("user").filter(workspace_id=workspace_id).first()
                if link is None:
                    user = current if current is not None else _new_user(workspace_id)
                    link = WorkspaceLink(user=user, workspace_id=workspace_id)
                elif current is not None and link.user_id != current.pk:
                    log.warning("Gist workspace %s is linked to another user than the one logged in.", workspace_id)
                    return None
                link.workspace_name, link.last_login = workspace_name, timezone.now()
                link.save()
                return link.user
        except IntegrityError:
            continue
    log.warning(
        "Gist workspace %s has no linked user, and the username of a new one is taken: link the workspace to a "
        "user in the admin (Gist workspace links).",
        workspace_id,
    )
    return None


def _userinfo(token: Mapping[str, object]) -> Mapping[str, object]:
    """Who logged in, as the login's token says (``sub``, the workspace's id, and ``workspace_name``)."""
    userinfo = token.get("userinfo")
    return userinfo if isinstance(userinfo, Mapping) else {}


def _new_user(workspace_id: str) -> AbstractBaseUser:
    user_model = get_user_model()
    user = user_model(**{user_model.USERNAME_FIELD: f"gist-{workspace_id}"})
    user.set_unusable_password()
    user.save()
    return user


#: What maps a finished Gist login to a Django user (``None`` refuses it): :func:`user_for_login`, or yours.
UserForLogin = Callable[[HttpRequest | None, Mapping[str, object]], "AbstractBaseUser | None"]


def _hook() -> UserForLogin:
    path = getattr(settings, HOOK_SETTING, None)
    if not path:
        return user_for_login
    try:
        hook: UserForLogin = import_string(path)
    except ImportError:
        raise ConfigurationError(f"settings.{HOOK_SETTING} names {path!r}, which cannot be imported.") from None
    return hook


def login_from_gist(
    request: HttpRequest, token: Mapping[str, object], next_path: str | None = None
) -> HttpResponseRedirect:
    """Log the Django user of a finished Gist login in (``django.contrib.auth.login``) and send the browser on:
    what :func:`~gist_authlib.django.gist_urls` does after a login when it is given no ``on_login``.

    Args:
        request: the callback's request.
        token: the login's token, whose ``userinfo`` names the workspace (``sub``, ``workspace_name``).
        next_path: where to go afterwards (a same-origin path); else ``settings.LOGIN_REDIRECT_URL``.

    Returns:
        A 303 to ``next_path`` or ``LOGIN_REDIRECT_URL``.

    Raises:
        ConfigurationError: ``GistBackend`` is not in ``AUTHENTICATION_BACKENDS``.
        TokenExchangeError: Gist did not say which workspace logged in (``error_code`` ``"workspace_unknown"``).
        LoginError: no user may log in for this login (``error_code`` ``"login_refused"``, a 403 page).
    """
    if BACKEND not in settings.AUTHENTICATION_BACKENDS:
        raise ConfigurationError(
            f'A Gist login logs a Django user in through "{BACKEND}": add it to AUTHENTICATION_BACKENDS, beside '
            "ModelBackend (or pass on_login= to gist_urls())."
        )
    userinfo = _userinfo(token)
    if not userinfo.get("sub"):
        raise TokenExchangeError(
            "Gist did not say which workspace logged in (its token information could not be read), so no user "
            "could be logged in. Try again in a moment.",
            error_code="workspace_unknown",
        )
    user = authenticate(request, gist_workspace_id=userinfo.get("sub"), gist_token=token)
    if user is None:
        raise LoginError(
            "This Gist workspace cannot sign in to this site. Ask the site's administrator to connect it to your "
            "account.",
            error="access_denied",
            error_code="login_refused",
            status_code=403,
            title="Sign-in refused",
            hint=f"{BACKEND} found no active user for this workspace (see {HOOK_SETTING}, the user's is_active, "
            "and the admin's Gist workspace links).",
        )
    # login() empties the session when another user was logged in: the Gist login's own entries (the subject its
    # token is stored under) are carried over.
    kept = {key: value for key, value in request.session.items() if key.startswith(SESSION_KEY_PREFIX)}
    login(request, user)
    request.session.update(kept)
    response = HttpResponseRedirect(safe_next_path(next_path) or resolve_url(settings.LOGIN_REDIRECT_URL))
    response.status_code = 303
    return response
