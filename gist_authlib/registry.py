"""register(oauth, ...): add Gist to any Authlib ``OAuth`` registry (Starlette, Flask or Django)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from ._version import USER_AGENT
from .errors import InvalidTokenResponseError, MissingCredentialsError, TokenEndpointError
from .flow import LoginFlow, check_token_response, check_transport
from .provider import GistProvider

__all__ = ["USER_AGENT", "GistAppMixin", "register", "registration_name"]

DEFAULT_TIMEOUT = 10.0

# The keys Authlib reads from framework configuration, and which of them have a provider default.
_ENDPOINT_KEYS = ("authorize_url", "access_token_url", "api_base_url")


class GistAppMixin:
    """Mixed into the Authlib app class of each Gist registration.

    It fills what neither the caller nor the framework configuration set from the provider, and
    carries the registration's provider, scopes and :class:`~gist_authlib.flow.LoginFlow`. A new class
    is made for every registration, so nothing is shared between two of them.
    """

    gist_provider: GistProvider
    gist_scopes: tuple[str, ...]
    gist_flow: LoginFlow
    gist_token_store: Any
    gist_allow_insecure_http: bool
    _gist_defaults: dict[str, Any]
    _gist_setting_names: dict[str, str]

    # Set by Authlib's base classes.
    name: str
    client_id: str | None
    client_secret: str | None
    authorize_url: str | None
    access_token_url: str | None
    api_base_url: str | None

    def __init__(self, framework: Any, name: str | None = None, **kwargs: Any) -> None:
        for key, default in self._gist_defaults.items():
            if kwargs.get(key) is None:
                kwargs[key] = default
        if kwargs.get("api_base_url") and not str(kwargs["api_base_url"]).endswith("/"):
            kwargs["api_base_url"] = str(kwargs["api_base_url"]) + "/"
        for key in _ENDPOINT_KEYS:
            check_transport(str(kwargs[key]), key.replace("_", " "), allow_insecure_http=self.gist_allow_insecure_http)
        super().__init__(framework, name, **kwargs)  # type: ignore[call-arg]

    def gist_credentials(self) -> tuple[str, str]:
        """The client id and secret, or a :class:`MissingCredentialsError` naming the setting to fill in."""
        if not self.client_id:
            raise MissingCredentialsError(self._gist_setting_names["client_id"], "client id")
        if not self.client_secret:
            raise MissingCredentialsError(self._gist_setting_names["client_secret"], "client secret")
        return str(self.client_id), str(self.client_secret)

    def __repr__(self) -> str:
        return f"<Gist OAuth app {self.name!r} at {self.authorize_url!r}>"


def register(
    oauth: Any,
    name: str = "gist",
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    scopes: str | Iterable[str] | None = None,
    provider: GistProvider | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    state_ttl: float = 600.0,
    max_pending_logins: int = 8,
    pkce: bool = True,
    token_store: Any = None,
    allow_insecure_http: bool = False,
    **overrides: Any,
) -> Any:
    """Register Gist in an Authlib ``OAuth`` registry and return the registered app (``oauth.<name>``).

    Works with ``authlib.integrations.starlette_client.OAuth``, ``flask_client.OAuth`` and
    ``django_client.OAuth``. Each setting is taken from, in order: the arguments here; the framework's
    configuration under Authlib's own names (``GIST_CLIENT_ID``, ``GIST_CLIENT_SECRET``,
    ``GIST_AUTHORIZE_URL``, ``GIST_ACCESS_TOKEN_URL``, ``GIST_API_BASE_URL`` in a Starlette ``Config`` or
    Flask ``app.config``; ``AUTHLIB_OAUTH_CLIENTS["gist"]`` in Django settings); the provider's defaults.

    Args:
        oauth: the Authlib registry.
        name: the registration's name; also the prefix of its settings (``GIST_`` for ``"gist"``).
        client_id: the app's client id from Gist's Developer Hub.
        client_secret: the app's client secret.
        scopes: a list or a space-separated string; defaults to ``["read_teammates"]``.
        provider: the endpoints and scope catalogue; defaults to production Gist.
        timeout: seconds allowed for each request to the token endpoint.
        state_ttl: seconds a started login stays valid.
        max_pending_logins: logins one browser may have pending at once (tabs).
        pkce: send an S256 PKCE challenge with every login.
        token_store: a :mod:`gist_authlib.tokens` store. The login routes then save each token under the
            subject ``on_login`` names, the session keeps only that subject, and Authlib's ``fetch_token`` and
            ``update_token`` read and write the store (so ``gist.get(..., request=request)`` finds the token).
        allow_insecure_http: allow ``http://`` endpoints and redirect URIs on hosts that are not loopback
            (a development flag; loopback is always allowed).
        **overrides: passed on to ``oauth.register`` (``authorize_params``, ``fetch_token``,
            ``update_token``, ``client_kwargs``, an explicit ``authorize_url``, ...).

    Returns:
        The Authlib app, with ``gist_provider``, ``gist_scopes`` and ``gist_flow`` attributes. On Flask
        before ``init_app``, Authlib's lazy proxy to it.

    Raises:
        UnknownScopeError: a scope is not in the provider's catalogue (the message names the nearest).
    """
    provider = provider or GistProvider()
    granted = provider.validate_scopes(scopes)
    base = oauth.oauth2_client_cls
    attrs: dict[str, Any] = {
        "gist_provider": provider,
        "gist_scopes": granted,
        "gist_flow": LoginFlow(name, state_ttl=state_ttl, max_pending=max_pending_logins, pkce=pkce),
        "_gist_defaults": provider.authlib_kwargs(),
        "_gist_setting_names": _setting_names(oauth, name),
        "gist_token_store": token_store,
        "gist_allow_insecure_http": allow_insecure_http,
    }
    sync_client = _sync_httpx_client(base)
    if sync_client is not None:
        # Authlib's Flask and Django apps default to requests; one HTTP stack (httpx2) serves all.
        attrs["client_cls"] = sync_client
    app_cls = type(f"Gist{base.__name__}", (GistAppMixin, base), attrs)

    client_kwargs: dict[str, Any] = {
        "token_endpoint_auth_method": provider.token_endpoint_auth_method,
        "scope": " ".join(granted),
        "timeout": timeout,
        "follow_redirects": False,
        "trust_env": False,
    }
    client_kwargs.update(overrides.pop("client_kwargs", None) or {})
    client_kwargs["follow_redirects"] = False  # a redirected token request could carry the code elsewhere
    kwargs: dict[str, Any] = {
        "client_cls": app_cls,
        "client_kwargs": client_kwargs,
        "compliance_fix": _gist_compliance_fix,
        "user_agent": USER_AGENT,
    }
    if client_id is not None:
        kwargs["client_id"] = client_id
    if client_secret is not None:
        kwargs["client_secret"] = client_secret
    if token_store is not None:
        is_async = sync_client is None and _is_async_app(base)
        kwargs["fetch_token"] = _store_fetcher(token_store, attrs["gist_flow"], is_async, _session_reader(oauth))
        kwargs["update_token"] = _store_updater(token_store, is_async)
    kwargs.update(overrides)
    app = oauth.register(name, **kwargs)
    if getattr(oauth, "app", True) is None:
        # Flask before init_app: Authlib hands back an anonymous lazy proxy. Ours also knows its name,
        # so that adapters can name their routes before the Flask app exists.
        return _lazy_flask_app(oauth, name)
    return app


def registration_name(app: Any) -> str:
    """The name ``app`` was registered under, without resolving a lazy Flask proxy."""
    own = getattr(type(app), "gist_registration_name", None)
    if isinstance(own, str):
        return own
    return str(app.name)


def _lazy_flask_app(oauth: Any, name: str) -> Any:
    from werkzeug.local import LocalProxy

    class LazyGistApp(LocalProxy[Any]):
        """Authlib's Flask app for this registration, created on first use inside the Flask app."""

        gist_registration_name = name

    return LazyGistApp(lambda: oauth.create_client(name))


def _setting_names(oauth: Any, name: str) -> dict[str, str]:
    module = type(oauth).__module__
    if "django" in module:
        return {
            "client_id": f'settings.AUTHLIB_OAUTH_CLIENTS["{name}"]["client_id"]',
            "client_secret": f'settings.AUTHLIB_OAUTH_CLIENTS["{name}"]["client_secret"]',
        }
    prefix = name.upper()
    return {"client_id": f"{prefix}_CLIENT_ID", "client_secret": f"{prefix}_CLIENT_SECRET"}


def _sync_httpx_client(base: type) -> type | None:
    import httpx2

    client_cls = getattr(base, "client_cls", None)
    if client_cls is None or issubclass(client_cls, (httpx2.Client, httpx2.AsyncClient)):
        return None
    from authlib.integrations.httpx_client import OAuth2Client

    sync_cls: type = OAuth2Client
    return sync_cls


def _is_async_app(base: type) -> bool:
    import httpx2

    client_cls = getattr(base, "client_cls", None)
    return client_cls is not None and issubclass(client_cls, httpx2.AsyncClient)


def _session_reader(oauth: Any) -> Any:
    """How Authlib's ``fetch_token(request)`` finds the session: on the request, except in Flask."""
    if type(oauth).__module__.startswith("authlib.integrations.flask"):
        from .integrations.flask import current_session  # Flask's session is a context global

        return lambda request: current_session()
    return lambda request: getattr(request, "session", None)


def _store_fetcher(store: Any, flow: LoginFlow, is_async: bool, session_of: Any) -> Any:
    """Authlib's ``fetch_token(request)``: the token stored for the session's subject."""
    key = flow.subject_key

    def fetch(request: Any = None) -> dict[str, Any] | None:  # Flask's app calls it with no request
        session = session_of(request)
        subject = session.get(key) if session is not None else None
        record = store.get(subject) if isinstance(subject, str) else None
        return dict(record.token) if record is not None else None

    if not is_async:
        return fetch

    async def fetch_async(request: Any) -> dict[str, Any] | None:
        import anyio.to_thread

        return await anyio.to_thread.run_sync(fetch, request)

    return fetch_async


def _store_updater(store: Any, is_async: bool) -> Any:
    """Authlib's ``update_token``: write a refreshed token over the one it replaces, with a compare-and-set."""

    def update(token: dict[str, Any], refresh_token: str | None = None, access_token: str | None = None) -> None:
        from .errors import StaleTokenError

        # Authlib names the token being replaced by its refresh token (after a refresh) or its access token.
        if refresh_token:
            record = store.find_by_refresh_token(refresh_token)
        else:
            record = store.find_by_token(access_token) if access_token else None
        if record is None:
            return
        with contextlib.suppress(StaleTokenError):  # another process stored a newer token first: keep it
            store.compare_and_set(record.subject, token, expected_version=record.version)

    if not is_async:
        return update

    async def update_async(
        token: dict[str, Any], refresh_token: str | None = None, access_token: str | None = None
    ) -> None:
        import anyio.to_thread

        await anyio.to_thread.run_sync(lambda: update(token, refresh_token, access_token))

    return update_async


def _gist_compliance_fix(session: Any) -> None:
    session.register_compliance_hook("access_token_response", _check_token_http_response)
    session.register_compliance_hook("refresh_token_response", _check_token_http_response)


def _check_token_http_response(response: Any) -> Any:
    """Validate the token endpoint's answer before Authlib parses it; raise a typed error otherwise."""
    status = int(response.status_code)
    try:
        body = response.json()
        parsed = True
    except (ValueError, UnicodeDecodeError):
        body, parsed = None, False
    if not 200 <= status < 300:
        error = body.get("error") if isinstance(body, dict) else None
        description = body.get("error_description") if isinstance(body, dict) else None
        raise TokenEndpointError(
            status,
            str(error) if error is not None else None,
            str(description) if description is not None else None,
        )
    if not parsed:
        raise InvalidTokenResponseError("the answer is not JSON")
    check_token_response(body)
    return response
