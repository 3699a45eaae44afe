"""The one Gist login: start it, check its callback, exchange the code, learn the workspace, store, answer.

It is written once, without I/O of its own, over the one typed :class:`Registration` that :func:`gist_authlib.register`
builds. :func:`start_login` is a plain function of the request (no I/O); :func:`callback_steps` is a flow that
yields the effects it needs (an HTTP request to send, :class:`~gist_authlib._limits.Send`; blocking store work;
the app's own callbacks) and is sent their answers, as httpx's ``Auth.auth_flow`` is. The registered app drives it
with the package's sync or async driver over its one pooled HTTP client. Every login goes through here: Authlib's
own methods on the registered app, the ready-made routes (which call them) and ``gist-authlib login``.
"""

from __future__ import annotations

import base64
import collections
import functools
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import httpx2

from ._effects import Blocking, Steps, UserCode
from ._flow import (
    MAX_NEXT_LENGTH,
    MAX_PARAM_LENGTH,
    SESSION_KEY_PREFIX,
    browser_tag,
    check_token_answer,
    check_transport,
    digest,
    new_state,
    pkce_challenge,
    pkce_verifier,
    read_state,
    safe_next_path,
    same,
    vschar,
)
from ._install_limit import InstallLimit
from ._limits import Answer, AnswerTooLarge, Deadline, Send, read_json
from ._pending import LoginCookie, Pending, PendingLogins
from ._version import USER_AGENT
from ._web import Reply, Request
from .errors import (
    AccessDeniedError,
    AuthorizationError,
    ConfigurationError,
    GistAuthError,
    InstallError,
    InvalidTokenResponseError,
    LoginError,
    MissingCredentialsError,
    MixUpError,
    StateError,
    TokenEndpointError,
    TokenExchangeError,
    UnknownStateError,
)
from .provider import GistProvider

if TYPE_CHECKING:
    from authlib.oidc.core import UserInfo

    from .tokens import LoginState, TokenStore

__all__ = [
    "TOKEN_ANSWER_LIMIT",
    "Grant",
    "LoginResult",
    "Registration",
    "SubjectSource",
    "authorization",
    "callback_steps",
    "exchange_steps",
    "log_failure",
    "remember",
    "start_login",
    "trusted_userinfo",
    "userinfo_of",
]

log = logging.getLogger("gist_authlib.login")

#: What names the subject a fresh login's token is stored under: a fixed id, a function of the token (plain
#: or async) returning one, or ``None`` (then the Gist workspace, else a random opaque id).
SubjectSource: TypeAlias = str | Callable[[dict[str, Any]], str | Awaitable[str | None] | None] | None

#: The largest token endpoint answer read (a token is a few hundred bytes); a larger one is refused unread.
TOKEN_ANSWER_LIMIT = 64 * 1024
#: The largest token information answer read (``GET /token``).
TOKEN_INFO_LIMIT = 16 * 1024
# Keys of the dict ``create_authorization_url`` returns that only ``save_authorize_data`` reads. Authlib's own
# ``authorize_redirect`` passes ``redirect_uri=`` beside that dict, so the effective one travels under our name.
_REDIRECT_KEY = "gist_redirect_uri"
_NEXT_KEY = "gist_next"
# The query parameter a login moved to the redirect URI's host carries, so that it is never moved twice.
_MOVED_KEY = "gist_moved"
# OpenID Connect arguments Authlib's methods accept; Gist issues no ID token.
_OPENID_ONLY = ("claims_options", "claims_cls", "leeway", "nonce", "code_verifier")


def _memory_state() -> LoginState:
    from .tokens import MemoryLoginState  # here: import gist_authlib need not load the token stores

    return MemoryLoginState()


def _default_names(name: str) -> Mapping[str, str]:
    prefix = name.upper()
    return {key: f"{prefix}_{key.upper()}" for key in ("client_id", "client_secret", "redirect_uri")}


@dataclass(frozen=True, slots=True)
class Registration:
    """Everything the login knows about one Gist registration, typed and frozen; built once by
    :func:`gist_authlib.register` and held by the registered app as ``gist_registration``.

    Attributes:
        name: the registration's name (``"gist"``).
        client_id: the client id, or ``None`` when it is not configured.
        client_secret: the client secret, or ``None`` (secret: never log it).
        provider: the endpoints and scope catalogue.
        scopes: the scopes a login asks for, checked against the catalogue.
        authorize_url: the authorization endpoint in use (the provider's, or a configured one).
        token_url: the token endpoint in use.
        api_base_url: the REST API's base URL, for the workspace lookup.
        redirect_uri: the configured redirect URI, which wins over any other.
        default_redirect_uri: the redirect URI used when neither the configured one nor the caller's is set.
        allow_insecure_http: allow ``http://`` off loopback.
        authorize_params: extra parameters of every authorization URL (Authlib's ``authorize_params``).
        state_ttl: seconds a started login stays valid.
        max_pending: logins one browser may have pending at once.
        pkce: send an S256 PKCE challenge with every login.
        timeout: seconds the whole token exchange (with its workspace lookup) may take.
        store: the token store, or ``None``.
        login_state: where used states and codes and the limits' counts are recorded (a shared token store, or
            process memory: :class:`~gist_authlib.tokens.MemoryLoginState`).
        install_limit: the cost limit of Gist-initiated installs.
        refusal_limit: how many callbacks that cannot finish (no login cookie) may record their code, per network.
        setting_names: the configuration names of the client id, secret and redirect URI, for messages.
        fetch_token: Authlib's ``fetch_token(request)`` of this registration, or ``None``.
        error_page: renders the error page of a failed login instead of the library's (``error_page(error,
            retry_url=..., debug=...)`` returning HTML), or ``None``.
        pkce_key: what states and verifiers are derived under: ``None`` for the client secret (a confidential web
            app), or a random key kept for one login (a public client such as the command line).
        clock: the time source.
        issued: the workspaces of the tokens this process's logins issued (see :func:`trusted_userinfo`).
    """

    name: str
    client_id: str | None
    client_secret: str | None = field(repr=False)
    provider: GistProvider
    scopes: tuple[str, ...]
    authorize_url: str
    token_url: str
    api_base_url: str
    redirect_uri: str | None = None
    default_redirect_uri: str | None = None
    allow_insecure_http: bool = False
    authorize_params: Mapping[str, object] = field(default_factory=dict, repr=False)
    state_ttl: float = 600.0
    max_pending: int = 10
    pkce: bool = True
    timeout: float = 10.0
    store: TokenStore | None = None
    login_state: LoginState = field(default_factory=lambda: _memory_state())
    install_limit: InstallLimit = field(default_factory=InstallLimit)
    refusal_limit: InstallLimit = field(default_factory=lambda: InstallLimit(per_client=30, total=300))
    setting_names: Mapping[str, str] = field(default_factory=dict, repr=False)
    fetch_token: Callable[..., object] | None = field(default=None, repr=False)
    error_page: Callable[..., str] | None = field(default=None, repr=False)
    pkce_key: str | None = field(default=None, repr=False)
    clock: Callable[[], float] = field(default=time.time, repr=False)
    issued: IssuedTokens = field(default_factory=lambda: IssuedTokens(), repr=False)
    #: Where this registration's pending logins live.
    cookie: LoginCookie = field(init=False, repr=False)
    #: The issuer a callback may name (RFC 9207): the provider's, else the authorization endpoint's origin.
    issuer: str = field(init=False, repr=False)
    #: Where an install is acknowledged: the provider's URL, or the same path on a configured authorize origin.
    install_ack_url: str = field(init=False, repr=False)
    #: The session key of the logged-in subject (never a token).
    subject_key: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.state_ttl <= 0 or self.max_pending < 1:
            raise ConfigurationError("state_ttl must be positive and max_pending_logins at least 1.")
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(self.authorize_url))
        own = self.authorize_url == self.provider.authorize_url
        derived = {
            "cookie": LoginCookie(self.name, state_ttl=self.state_ttl, max_pending=self.max_pending, clock=self.clock),
            "issuer": str(self.provider.issuer) if own and self.provider.issuer else origin,
            "install_ack_url": self.provider.install_ack_url
            if own
            else origin + urlsplit(self.provider.install_ack_url).path,
            "subject_key": f"{SESSION_KEY_PREFIX}{self.name}:subject",
            "setting_names": self.setting_names or _default_names(self.name),
        }
        for key, value in derived.items():
            object.__setattr__(self, key, value)

    @property
    def secret(self) -> str:
        """What states, verifiers and the login cookie are derived under (see ``pkce_key``)."""
        return self.pkce_key or self.credentials()[1]

    def credentials(self) -> tuple[str, str]:
        """The client id and secret.

        Raises:
            MissingCredentialsError: one is not configured (the message names the setting to fill in).
        """
        if not self.client_id:
            raise MissingCredentialsError(self.setting_names["client_id"], "client id")
        if not self.client_secret:
            raise MissingCredentialsError(self.setting_names["client_secret"], "client secret")
        return self.client_id, self.client_secret

    def effective_redirect_uri(self, given: str | None) -> str:
        """The redirect URI of a login: the configured one when set (never the Host header), else ``given``.

        Raises:
            ConfigurationError: none is known.
            InsecureTransportError: it is ``http://`` off loopback.
        """
        uri = self.redirect_uri or (str(given) if given else None) or self.default_redirect_uri
        if not uri:
            raise ConfigurationError(
                "No redirect URI: pass redirect_uri to authorize_redirect, or set it once for the registration "
                f"(register(..., redirect_uri=...), or the setting {self.setting_names['redirect_uri']})."
            )
        check_transport(uri, "redirect URI", allow_insecure_http=self.allow_insecure_http)
        return uri

    def session_of(self, request: Request) -> MutableMapping[str, object]:
        """The request's session.

        Raises:
            ConfigurationError: the app has none (``session_not_configured``).
        """
        if request.session is None:
            raise ConfigurationError.no_session(
                "The Gist login keeps who logged in in the app's session, but this request has none. Add your "
                "framework's session middleware (Starlette: SessionMiddleware; Flask: a secret key, app.secret_key "
                "or FLASK_SECRET_KEY, which flask run reads from .env with python-dotenv installed; Django: "
                "SessionMiddleware)."
            )
        return request.session

    def pending_logins(self, request: Request, redirect_uri: str | None) -> PendingLogins:
        """The request's login cookie, opened and checked; ``redirect_uri`` is the login's as the caller knows it
        (a configured one wins): on https only the ``__Host-`` cookie is read."""
        secure = urlsplit(self.redirect_uri or redirect_uri or "").scheme == "https"
        return self.cookie.load(request.cookie_header, self.secret, secure=secure)


@dataclass(frozen=True, slots=True)
class LoginResult:
    """What a finished callback gave.

    Attributes:
        token: the validated token (secret: never log it).
        next_path: the checked same-origin path to go to afterwards (``"/"`` when none was given).
        subject: the key the token was stored under, or ``None`` without a token store.
        workspace_id: the Gist workspace of the token, when Gist said.
        workspace_name: its name, when Gist said.
        install: whether this was a Gist-initiated install rather than a login this browser started.
        ack_url: for an install, where Gist expects the browser next (its acknowledgement URL).
    """

    token: dict[str, Any] = field(repr=False)
    next_path: str = "/"
    subject: str | None = None
    workspace_id: str | None = None
    workspace_name: str | None = None
    install: bool = False
    ack_url: str | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    """A callback that passed every check: what the token request needs, and where to go afterwards.

    Attributes:
        code: the authorization code (secret).
        redirect_uri: the redirect URI to send with it.
        code_verifier: the PKCE verifier, or ``None`` (secret).
        next_path: the same-origin path to return to after the login.
        state: the consumed state.
        workspace_hint: for a Gist-initiated install, the state as Gist sent it (the installing workspace's id:
            a hint only, checked against what Gist says of the token); ``None`` for a login.
    """

    code: str = field(repr=False)
    redirect_uri: str
    code_verifier: str | None = field(default=None, repr=False)
    next_path: str | None = None
    state: str = field(default="", repr=False)
    workspace_hint: str | None = None

    def token_params(self) -> dict[str, str]:
        """The parameters of the token request."""
        params = {"code": self.code, "redirect_uri": self.redirect_uri}
        if self.code_verifier:
            params["code_verifier"] = self.code_verifier
        return params


# -- failures are logged once, wherever they are raised ---------------------------------------------------------


def log_failure(reg: Registration, error: GistAuthError) -> None:
    """The one log line of a failed login: the RFC 6749 ``error``, the library's ``error_code`` and the
    developer's explanation (never the message, which may quote the callback)."""
    explained = error.hint or (error.message if isinstance(error, ConfigurationError) else None)
    log.warning(
        "Gist login %r failed: %s (%s)%s", reg.name, error.error, error.error_code, f": {explained}" * bool(explained)
    )


def _logged(reg: Registration, error: GistAuthError) -> GistAuthError:
    log_failure(reg, error)
    return error


# -- starting a login (no I/O) -----------------------------------------------------------------------------------


def authorization(
    reg: Registration, redirect_uri: str | None, params: Mapping[str, Any], *, browser: str | None = None
) -> dict[str, Any]:
    """What ``create_authorization_url`` returns: the URL, the state, and what ``save_authorize_data`` records.

    ``params`` are the extra authorization parameters; gist_authlib reads ``next`` (a same-origin path to
    return to) and ``scope`` (checked against the catalogue) out of them and refuses ``state`` (it issues
    its own).

    Raises:
        MissingCredentialsError, UnknownScopeError, InsecureTransportError, ConfigurationError.
    """
    client_id, _ = reg.credentials()
    merged = {**reg.authorize_params, **params}
    extra = {key: value for key, value in merged.items() if key not in _OPENID_ONLY and value is not None}
    next_path = extra.pop("next", None)
    if "state" in extra:
        raise ConfigurationError("gist_authlib issues and checks the login state itself; do not pass state=.")
    scope = extra.pop("scope", None)
    uri = reg.effective_redirect_uri(redirect_uri)
    state = new_state(reg.secret, reg.name, reg.clock(), browser)
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": uri,
        "scope": " ".join(reg.provider.validate_scopes(scope) if scope else reg.scopes),
        "state": state,
    }
    verifier = pkce_verifier(reg.secret, reg.name, state) if reg.pkce else None
    if verifier:
        query.update(code_challenge=pkce_challenge(verifier), code_challenge_method="S256")
    for key, value in extra.items():
        query.setdefault(key, str(value))
    url = f"{reg.authorize_url}{'&' if '?' in reg.authorize_url else '?'}{urlencode(query)}"
    data: dict[str, Any] = {"url": url, "state": state, _REDIRECT_KEY: uri, _NEXT_KEY: next_path}
    if verifier:
        data["code_verifier"] = verifier  # as Authlib returns it; it is derived again at the callback
    return data


def _pending(reg: Registration, data: Mapping[str, Any]) -> Pending:
    checked = safe_next_path(data.get(_NEXT_KEY))
    uri = data.get(_REDIRECT_KEY) or data.get("redirect_uri")
    if not uri:
        raise ConfigurationError("save_authorize_data needs the redirect URI of the login it records.")
    next_path = checked if checked is None or len(checked) <= MAX_NEXT_LENGTH else None
    return Pending(round(reg.clock() + reg.state_ttl, 1), next_path, str(uri))


def remember(reg: Registration, session: MutableMapping[str, object], data: Mapping[str, Any]) -> None:
    """Record a login started by :func:`authorization` in the session (``save_authorize_data``): there is no
    response to set the login cookie on. Never the PKCE verifier (derived again from the state)."""
    state = data.get("state")
    if not isinstance(state, str) or not state:
        raise ConfigurationError("save_authorize_data needs the state create_authorization_url returned.")
    logins = reg.cookie.load_session(session)
    logins.add(state, _pending(reg, data), reg.max_pending)
    reg.cookie.save_session(logins, session)


def start_login(reg: Registration, request: Request, redirect_uri: str | None, params: Mapping[str, object]) -> Reply:
    """``authorize_redirect``, framework-free: move to the redirect URI's host, or issue a state, record it in the
    login cookie and send the browser to Gist. ``redirect_uri`` is the caller's (a configured one wins).

    Raises:
        GistAuthError: the errors of :func:`authorization`, logged once.
    """
    try:
        reg.session_of(request)
        uri = reg.effective_redirect_uri(redirect_uri)
        _check_callback_path(reg, uri, redirect_uri)
        moved = _canonical_move(reg, request.url, uri)
        if moved is not None:
            reg.credentials()  # a missing client id is reported here, not after the move
            return Reply(302, moved, headers={"Cache-Control": "no-store"})
        logins = reg.pending_logins(request, uri)
        data = authorization(reg, uri, params, browser=logins.browser)
        logins.add(data["state"], _pending(reg, data), reg.max_pending)
        cookie = reg.cookie.save(logins, reg.secret)
    except GistAuthError as error:
        raise _logged(reg, error) from None
    return Reply(302, data["url"], headers={"Cache-Control": "no-store"}, cookies=[cookie])


def _canonical_move(reg: Registration, request_url: str, redirect_uri: str) -> str | None:
    """Where to move a login that started on another host than its redirect URI's, or ``None``: the login
    cookie is set on the host the login starts on and must come back to the callback's. The move goes to the
    same path and query on the redirect URI's scheme and host, once (a request moved already is not moved again)."""
    target, here = urlsplit(redirect_uri), urlsplit(request_url)
    if not target.hostname or not here.hostname or target.hostname == here.hostname:
        return None
    query = parse_qsl(here.query, keep_blank_values=True)
    if any(key == _MOVED_KEY for key, _ in query):
        log.warning(
            "Gist login %r: the login was moved to %s, the redirect URI's host, but arrived as %s again; a proxy "
            "in front of the app may not pass the browser's Host header on.",
            reg.name,
            target.hostname,
            here.hostname,
        )
        return None
    query.append((_MOVED_KEY, "1"))
    return urlunsplit((target.scheme, target.netloc, here.path or "/", urlencode(query), ""))


def _check_callback_path(reg: Registration, configured: str, callback: str | None) -> None:
    """Refuse a configured redirect URI whose path cannot reach the app's callback route, before any user is
    sent to Gist. A proxy may strip a path prefix the app does not know of: a path ending with the callback's
    passes."""
    if not reg.redirect_uri or not callback:
        return
    wanted = urlsplit(configured).path.rstrip("/") or "/"  # a trailing slash is the framework's to settle
    mounted = urlsplit(str(callback)).path.rstrip("/") or "/"
    if wanted == mounted or wanted.endswith(mounted):
        return
    setting = reg.setting_names["redirect_uri"]
    raise ConfigurationError(
        f"{setting} is {configured!r}, whose path {wanted!r} is not where this app's Gist callback is mounted "
        f"({mounted!r}): Gist would send every user back to a route that cannot finish the login. Set {setting} "
        f"to the callback's URL (ending in {mounted!r}) and register it in Gist's Developer Hub, or mount the "
        f"callback at {wanted!r}."
    )


# -- checking a callback (no I/O) --------------------------------------------------------------------------------


def check_callback(
    reg: Registration,
    places: list[PendingLogins],
    params: dict[str, list[str]],
    *,
    redirect_uri: str | None,
    installs: bool,
) -> Grant:
    """Check a callback's parameters against this browser's pending logins (``places``: the login cookie's,
    then the session's) and consume its state, before anything else can fail.

    Raises:
        StateError (and UnknownStateError, MixUpError): not a login this browser has pending; ``error_code``
            names the one cause (no token request may follow).
        AccessDeniedError, AuthorizationError: Gist reported an error for a login we started.
        LoginError: no usable code (``code_missing``).
    """
    issuers = params.get("iss", [])
    if issuers and (len(issuers) > 1 or not same(issuers[0], reg.issuer)):
        raise MixUpError(issuers[0] if len(issuers) == 1 else None)
    states = params.get("state", [])
    if len(states) != 1 or not states[0] or len(states[0]) > MAX_PARAM_LENGTH:
        # An unauthenticated error callback is reported as what it claims only when it is harmless to believe
        # it; without a state it proves nothing.
        raise StateError.missing(None if len(states) < 2 else "The callback carries more than one state.")
    state = states[0]
    if not vschar(state):
        raise StateError.missing("The callback's state is malformed, so it was refused.")
    now, used_key = reg.clock(), digest(state)
    login = None
    for place in places:
        login = place.take(state, now, reg.state_ttl, reg.max_pending)
        if login is not None:
            break
        used = place.used.get(used_key)
        if used is not None:  # this browser's own login, whose callback came back once more
            raise StateError.repeated(used.next_path, completed=used.completed)
    if login is None:
        return _unknown(reg, state, params, now, places[0], redirect_uri, installs)
    if login.expires_at < now:
        raise StateError.expired(login.next_path)
    errors = params.get("error", [])
    if errors:
        description = params.get("error_description", [None])[0]
        if errors[0] == "access_denied":
            raise AccessDeniedError(description)
        raise AuthorizationError(errors[0], description)
    codes = params.get("code", [])
    if len(codes) != 1 or not codes[0]:
        raise LoginError.missing_code(None if len(codes) < 2 else "The callback carries more than one code.")
    if len(codes[0]) > MAX_PARAM_LENGTH or not vschar(codes[0]):
        raise LoginError.missing_code("The callback's code is malformed (RFC 6749 codes are printable ASCII).")
    exchange_uri = login.redirect_uri or redirect_uri
    if not exchange_uri:
        raise StateError.missing("This login was recorded without its redirect URI, so it cannot be finished.")
    verifier = pkce_verifier(reg.secret, reg.name, state) if reg.pkce else None
    return Grant(codes[0], exchange_uri, verifier, login.next_path, state)


def _unknown(
    reg: Registration,
    state: str,
    params: dict[str, list[str]],
    now: float,
    cookie: PendingLogins,
    redirect_uri: str | None,
    installs: bool,
) -> Grant:
    """A state this browser has no pending login for: a Gist-initiated install, or the one cause of the refusal."""
    issued = read_state(reg.secret, reg.name, state)
    if issued is None:  # not a state of ours: a Gist-initiated install, or forged
        codes = params.get("code", [])
        with_code = len(codes) == 1 and 0 < len(codes[0]) <= MAX_PARAM_LENGTH and vschar(codes[0])
        with_code = with_code and not params.get("error")
        pattern = reg.provider.install_state_pattern
        shaped = pattern is None or re.fullmatch(pattern, state) is not None
        if installs and with_code and redirect_uri and shaped:
            return Grant(codes[0], redirect_uri, workspace_hint=state)
        raise UnknownStateError(install_hint=with_code and not installs and shaped)
    issued_at, tag = issued
    if issued_at + reg.state_ttl < now:
        raise StateError.expired()
    if cookie.status == "ok":
        mine = hmac.compare_digest(tag, browser_tag(reg.secret, reg.name, cookie.browser))
        raise UnknownStateError("login_dropped" if mine else "state_other_browser")
    raise UnknownStateError("login_cookie_missing" if cookie.status == "absent" else "login_cookie_invalid")


# -- finishing a login: the sequence -----------------------------------------------------------------------------


def callback_steps(
    reg: Registration,
    request: Request,
    cookie: PendingLogins,
    *,
    redirect_uri: str | None = None,
    installs: bool = False,
    subject: SubjectSource = None,
    token_params: Mapping[str, object] | None = None,
) -> Steps[LoginResult]:
    """The callback of a login, as a flow of effects (see the module's docstring).

    Check the callback against this browser's pending logins, exchange the code, learn the workspace from
    Gist, store the token under its subject, and return a :class:`LoginResult`. The token is stored before the
    result reaches the app, so an app never acts on a login that was not kept. Every failure is logged once.

    Args:
        reg: the registration.
        request: the callback's request.
        cookie: the request's login cookie (:meth:`Registration.pending_logins`); the callback consumes its
            state there and marks the login completed (save it back when it ``changed``).
        redirect_uri: this callback's own URL: the redirect URI of an install (a login is exchanged with the
            redirect URI it was started with).
        installs: accept a callback with a code and a state this browser was never issued as a Gist-initiated
            install.
        subject: names the stored token's subject (see :data:`SubjectSource`).
        token_params: extra parameters for the token request (never the code, redirect URI or verifier).

    Raises:
        GistAuthError: every failure, as its typed subclass (each is an Authlib ``OAuthError`` too).
    """
    try:
        return (yield from _callback(reg, request, cookie, redirect_uri, installs, subject, token_params))
    except GistAuthError as error:
        raise _logged(reg, error) from None


def _callback(
    reg: Registration,
    request: Request,
    cookie: PendingLogins,
    redirect_uri: str | None,
    installs: bool,
    subject: SubjectSource,
    token_params: Mapping[str, object] | None,
) -> Steps[LoginResult]:
    session = reg.session_of(request)
    reg.credentials()
    install_uri = reg.effective_redirect_uri(redirect_uri) if installs and redirect_uri else redirect_uri
    params: dict[str, list[str]] = {}
    for name, value in request.params:
        params.setdefault(name, []).append(value)
    kept = reg.cookie.load_session(session)
    try:
        grant = check_callback(reg, [cookie, kept], params, redirect_uri=install_uri, installs=installs)
    except UnknownStateError as refused:
        yield from _burn(reg, request, refused, params)
        raise
    finally:
        if kept.changed:
            reg.cookie.save_session(kept, session)
    if grant.workspace_hint is not None:
        return (yield from _install(reg, request, grant))
    # A second callback racing the first (a double click), or a copy of an older cookie, would pass the cookie
    # check too: what was consumed is also recorded server-side, so neither sends a token request.
    fresh = yield from _single_use(reg, [("state", grant.state), ("code", grant.code)])
    if not fresh:
        raise StateError.repeated(grant.next_path, completed=False)
    extra = {key: str(value) for key, value in (token_params or {}).items() if key not in _OPENID_ONLY}
    token, workspace = yield from exchange_steps(reg, {**extra, **grant.token_params()}, lookup=True)
    workspace_id, workspace_name = workspace if workspace is not None else (None, None)
    named: object = subject
    if callable(subject):
        named = yield UserCode(subject, (dict(token),))
    if named is not None and not isinstance(named, str):
        raise ConfigurationError(f"The login's subject must be a string (a user id) or None, not {type(named)!r}.")
    key: str | None = None
    if reg.store is not None:
        key = named or (f"workspace:{workspace_id}" if workspace_id else f"login:{secrets.token_urlsafe(16)}")
        yield Blocking(_save(reg, key, token, workspace_id, workspace_name))
        session[reg.subject_key] = key
    for place in (cookie, kept):
        place.complete(grant.state)
    if kept.changed:
        reg.cookie.save_session(kept, session)
    log.info("Gist login %r completed", reg.name)
    return LoginResult(token, grant.next_path or "/", key, workspace_id, workspace_name)


def _burn(reg: Registration, request: Request, refused: UnknownStateError, params: dict[str, list[str]]) -> Steps[None]:
    """A state this app issued reached a browser that cannot finish its login: its code is consumed, so that this
    callback is used nowhere; a code consumed before is a replay. The state alone burns nothing: anyone who saw
    the authorization URL knows it. The codes one network may record so are limited (a flood of new codes for one
    state must not grow the record)."""
    states, codes = params.get("state", []), params.get("code", [])
    if refused.error_code == "state_unknown" or len(states) != 1 or len(codes) != 1:
        return
    if not (yield from _allowed(reg, reg.refusal_limit, request)):
        return
    if not (yield from _single_use(reg, [("code", codes[0])])):
        raise StateError.replayed() from None


def _install(reg: Registration, request: Request, grant: Grant) -> Steps[LoginResult]:
    if not (yield from _allowed(reg, reg.install_limit, request)):
        raise InstallError.rate_limited()
    if not (yield from _single_use(reg, [("code", grant.code)])):
        raise StateError.replayed()
    try:
        token, workspace = yield from exchange_steps(reg, grant.token_params(), lookup=True)
    except TokenEndpointError as refused:
        if refused.http_status < 500:  # Gist refused the code: a stale or forged link, not Gist failing
            raise InstallError.link_invalid() from None
        raise
    if workspace is None:
        raise TokenExchangeError(
            "Gist did not say which workspace installed the app (its token information could not be read), "
            "so the installation was not recorded. Try installing again.",
            error_code="workspace_unknown",
        )
    workspace_id, workspace_name = workspace
    # The workspace comes from Gist's answer about the token itself; the state (anyone can forge it) must agree.
    if workspace_id != grant.workspace_hint:
        raise InstallError("The installation callback names another workspace than its token; nothing was stored.")
    key = f"workspace:{workspace_id}"
    if reg.store is not None:
        yield Blocking(_save(reg, key, token, workspace_id, workspace_name))
    ack = reg.install_ack_url
    query = urlencode({"client_id": reg.client_id, "workspace_id": workspace_id})
    log.info("Gist install %r completed", reg.name)
    return LoginResult(
        token,
        subject=key if reg.store is not None else None,
        workspace_id=workspace_id,
        workspace_name=workspace_name,
        install=True,
        ack_url=f"{ack}{'&' if '?' in ack else '?'}{query}",
    )


def _save(
    reg: Registration, key: str, token: dict[str, Any], workspace_id: str | None, name: str | None
) -> Callable[[], object]:
    assert reg.store is not None
    return functools.partial(
        reg.store.save, key, token, scopes=reg.scopes, workspace_id=workspace_id, workspace_name=name
    )


def _allowed(reg: Registration, limit: InstallLimit, request: Request) -> Steps[bool]:
    """Count one attempt of the request's network against ``limit`` (a shared store's database: blocking I/O)."""
    client = limit.client_address(request.client, request.headers.get("x-forwarded-for"))
    admit = functools.partial(limit.allow, client)
    allowed: bool = (yield Blocking(admit)) if limit.shared else admit()
    return allowed


def _single_use(reg: Registration, values: list[tuple[str, str]]) -> Steps[bool]:
    """Record one-time values (state, code) as consumed; False (recording nothing) when one was consumed before."""
    salt = f"{reg.name}\0{reg.client_id}"
    digests = [hashlib.sha256(f"{salt}\0{kind}\0{value}".encode()).hexdigest() for kind, value in values]
    consume = functools.partial(reg.login_state.consume, digests, ttl=reg.state_ttl)
    # A token store's database is blocking I/O (a worker thread in async apps); process memory is not.
    fresh: bool = (yield Blocking(consume)) if reg.login_state.shared else consume()
    return fresh


# -- the token exchange and the workspace lookup: one deadline, bounded answers -----------------------------------


def token_request(reg: Registration, params: Mapping[str, str]) -> httpx2.Request:
    """The token request: client credentials as the provider expects them (in the body, ``client_secret_post``,
    unless the provider says ``client_secret_basic``)."""
    client_id, client_secret = reg.credentials()
    form = {"grant_type": "authorization_code", **params}
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
    if reg.provider.token_endpoint_auth_method == "client_secret_basic":
        pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    else:
        form.update(client_id=client_id, client_secret=client_secret)
    return httpx2.Request("POST", reg.token_url, data=form, headers=headers)


def exchange_steps(
    reg: Registration, params: Mapping[str, str], *, lookup: bool
) -> Steps[tuple[dict[str, Any], tuple[str, str | None] | None]]:
    """Exchange a code, then (``lookup``) ask Gist which workspace the token belongs to, all within one deadline
    (the registration's ``timeout``), every answer read within its cap. Returns the token and ``(workspace_id,
    workspace_name)``, or ``None`` for the workspace when Gist will not say.

    Raises:
        TokenExchangeError: every failure, typed (the message never quotes the request).
    """
    deadline = Deadline(reg.timeout)
    try:
        answer = yield Send(token_request(reg, params), TOKEN_ANSWER_LIMIT, deadline)
    except AnswerTooLarge:
        raise InvalidTokenResponseError(f"the answer is larger than {TOKEN_ANSWER_LIMIT} bytes") from None
    except httpx2.DecodingError:
        raise InvalidTokenResponseError("the answer could not be decoded") from None
    except httpx2.TimeoutException:
        raise TokenExchangeError.unreachable(f"no answer within {reg.timeout:g} seconds") from None
    except httpx2.TransportError as exc:
        raise TokenExchangeError.unreachable(type(exc).__name__) from None
    token = check_token_answer(answer.status, answer.body)
    token.pop("userinfo", None)  # who logged in is Gist's to say (GET /token), never the token answer's
    if not lookup:
        return token, None
    workspace = yield from _lookup(reg, token, deadline)
    if workspace is not None:
        token["userinfo"] = userinfo_of(*workspace)
        reg.issued.add(token["access_token"], workspace)
    return token, workspace


def _lookup(reg: Registration, token: Mapping[str, object], deadline: Deadline) -> Steps[tuple[str, str | None] | None]:
    """``GET /token`` with the fresh token, retried once on a failure of Gist's side within the deadline:
    ``(workspace_id, workspace_name)``, or ``None`` when Gist will not say.

    Raises:
        TokenExchangeError: Gist answered, but not with token information (``invalid_token_info``).
    """
    url = reg.api_base_url + "token"
    headers = {
        "Authorization": f"Bearer {token['access_token']}",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
    }
    for attempt in (1, 2):
        try:
            answer = yield Send(httpx2.Request("GET", url, headers=headers), TOKEN_INFO_LIMIT, deadline)
        except httpx2.DecodingError:
            answer = Answer(200, httpx2.Headers(), b"")  # Gist answered, but nothing readable: not token information
        except (httpx2.TransportError, AnswerTooLarge):
            answer = None
        if answer is not None and 200 <= answer.status < 300:
            return _workspace(answer.body)
        if attempt == 2 or (answer is not None and answer.status < 500) or not deadline.remaining():
            return None
    return None


def _workspace(body: bytes) -> tuple[str, str | None] | None:
    """The workspace of a token information answer; ``None`` when it names none.

    Raises:
        TokenExchangeError: the answer is not token information (``invalid_token_info``).
    """
    from .api import TokenInfo
    from .api._models import ShapeError

    try:
        info = TokenInfo.from_shape(read_json(body))
    except (ValueError, ShapeError):
        raise TokenExchangeError(
            "Gist's answer about the new token was not token information, so the login was not completed.",
            error_code="invalid_token_info",
        ) from None
    if info.workspace_id is None or info.workspace_id == "":
        return None
    return str(info.workspace_id), info.workspace_name if isinstance(info.workspace_name, str) else None


# -- who logged in ---------------------------------------------------------------------------------------------


def userinfo_of(workspace_id: str, workspace_name: str | None) -> UserInfo:
    """What a Gist login identifies, as the OpenID claims Authlib's providers put in ``token["userinfo"]``:
    ``sub`` (the workspace id: stable, and unique per workspace) and ``name`` (its name), plus Gist's own
    ``workspace_id`` and ``workspace_name``. A Gist login identifies the workspace that granted access, not the
    teammate who clicked Approve (Gist's API has no endpoint for that person)."""
    from authlib.oidc.core import UserInfo  # here: the OpenID package takes a tenth of a second to import

    claims = {"sub": str(workspace_id), "workspace_id": str(workspace_id)}
    if workspace_name is not None:
        claims.update(name=workspace_name, workspace_name=workspace_name)
    return UserInfo(claims)


class IssuedTokens:
    """The workspace (id and name) of each token this process's logins issued, by a digest of the token (the most
    recent ``max_entries``: ``userinfo(token=...)`` is asked about a fresh login's token, and a token store
    remembers the others): what lets ``userinfo(token=...)`` answer without asking Gist."""

    def __init__(self, max_entries: int = 1_000) -> None:
        self._workspaces: collections.OrderedDict[str, tuple[str, str | None]] = collections.OrderedDict()
        self._max, self._lock = max_entries, threading.Lock()

    def add(self, access_token: str, workspace: tuple[str, str | None]) -> None:
        """Remember that ``access_token`` belongs to ``workspace`` (its id and name)."""
        with self._lock:
            self._workspaces[digest(access_token)] = workspace
            while len(self._workspaces) > self._max:
                self._workspaces.popitem(last=False)

    def get(self, access_token: str) -> tuple[str, str | None] | None:
        """The workspace ``access_token`` belongs to, when this process issued it."""
        return self._workspaces.get(digest(access_token))


def trusted_userinfo(reg: Registration, token: object) -> Steps[UserInfo | None]:
    """Who a token's login identified, from what this library itself keeps for that very token (this process's
    login issued it, or the token store holds it under its workspace), whatever the token dict says; ``None``
    otherwise, and then Gist must be asked. Only the ``sub`` a token carries is looked at (to find nothing when it
    names another workspace); the claims answered are the library's own."""
    info = token.get("userinfo") if isinstance(token, Mapping) else None
    access_token = token.get("access_token") if isinstance(token, Mapping) else None
    if not isinstance(info, Mapping) or not isinstance(access_token, str) or not info.get("sub"):
        return None
    workspace = reg.issued.get(access_token)
    if workspace is None and reg.store is not None:
        record = yield Blocking(functools.partial(reg.store.find_by_token, access_token))
        if record is not None and record.workspace_id is not None:
            workspace = (record.workspace_id, record.workspace_name)
    if workspace is None or workspace[0] != str(info["sub"]):
        return None
    return userinfo_of(*workspace)
