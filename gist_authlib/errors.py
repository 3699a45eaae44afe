"""The package's exception types: one hierarchy rooted at :class:`GistAuthError`.

The tree, with the HTTP status a page reporting each branch carries (a leaf's ``error_code`` values say what
happened; classes exist only where an error carries data of its own)::

    GistAuthError                          the root; error (RFC 6749 name), error_code, status_code, title
    |-- ConfigurationError          503    the developer has something to fix          (also an OAuthError)
    |   |-- MissingCredentialsError        missing_credentials
    |   |-- UnknownScopeError              unknown_scope (also a ValueError)
    |   `-- InsecureTransportError         insecure_transport
    |   (configuration_error, session_not_configured)
    |-- LoginError                  4xx    the callback cannot complete a login: the user's side (also an OAuthError)
    |   |-- AuthorizationError             Gist answered with error=...
    |   |   `-- AccessDeniedError          access_denied
    |   |-- StateError                     state_missing, state_expired, callback_replayed, callback_repeated
    |   |   |-- UnknownStateError          state_unknown, login_cookie_missing, login_cookie_invalid,
    |   |   |                              login_dropped, state_other_browser
    |   |   `-- MixUpError                 issuer_mismatch
    |   `-- InstallError                   install_link_invalid (400), install_rate_limited (429), install_failed
    |   (code_missing, login_timeout)
    |-- TokenExchangeError          502    Gist's side of the login failed                 (also an OAuthError)
    |   |-- TokenEndpointError             token_endpoint_error (the endpoint refused; error is Gist's name)
    |   `-- InvalidTokenResponseError      invalid_token_response
    |   (token_endpoint_unreachable, workspace_unknown)
    |-- GistAPIError                502    the REST API refused a call
    |   |-- TokenRevokedError (401), InsufficientScopeError (403), NotFoundError (404),
    |   |-- RateLimitedError (429), GistConnectionError (no answer; gist_unreachable, deadline_exceeded)
    |   `-- UnexpectedAnswerError          unexpected_answer, answer_too_large
    |-- TokenStoreError             503    the token store could not do what was asked
    |   |                                  (token_store_timeout, token_store_full, token_store_read_only,
    |   |                                  token_store_corrupt, token_store_unreachable)
    |   |-- TokenDecryptionError           token_decryption_failed
    |   `-- StaleTokenError                stale_token
    `-- gist_authlib.canvas.CanvasError    the Canvas side (see :mod:`gist_authlib.canvas`)

The login branches are Authlib ``OAuthError`` s too, so an app's ``except OAuthError`` around
``authorize_access_token`` catches every failure of a Gist login. API and token-store errors are not: they
are not OAuth failures.

An error's ``message`` is for the end user who met it: it never carries developer advice, nor text that came
from the other side (Gist's ``error_description``); those are in ``hint``, which is logged and shown on an error
page only in debug mode. Where the site's own setup stopped a login (a configuration error, a client secret or a
redirect URI Gist refuses), the message says that the site could not complete the login, and ``retry`` is False:
an error page offers no "Log in again" that cannot help. Nothing an error carries ever contains a token, an
authorization code, a PKCE verifier or a client secret; text from the other side is shortened, and HTML pages
escape it before showing it.
"""

from __future__ import annotations

from authlib.integrations.base_client import OAuthError

__all__ = [
    "AccessDeniedError",
    "AuthorizationError",
    "ConfigurationError",
    "GistAPIError",
    "GistAuthError",
    "GistConnectionError",
    "InsecureTransportError",
    "InstallError",
    "InsufficientScopeError",
    "InvalidTokenResponseError",
    "LoginError",
    "MissingCredentialsError",
    "MixUpError",
    "NotFoundError",
    "RateLimitedError",
    "StaleTokenError",
    "StateError",
    "TokenDecryptionError",
    "TokenEndpointError",
    "TokenExchangeError",
    "TokenRevokedError",
    "TokenStoreError",
    "UnexpectedAnswerError",
    "UnknownScopeError",
    "UnknownStateError",
]

_MAX_REMOTE_TEXT = 200

#: The page of a login the site's own setup stopped: a title and a sentence for the end user (the cause is the
#: developer's, in ``hint``).
_SITE_TITLE = "This site could not complete the login"
_SITE_FAILED = (
    "This site could not complete the login because of a problem with its own setup, not with your account. "
    "Logging in again will not help until the site has fixed it."
)

#: The OAuth errors Gist answers when the site's own setup is wrong (the client, its grant, its scopes, its
#: redirect URI), so that retrying cannot help; an ``invalid_request`` counts when it is about the redirect URI.
_SITE_ERRORS = frozenset(
    {
        "invalid_client",
        "unauthorized_client",
        "redirect_uri_mismatch",
        "invalid_scope",
        "unsupported_response_type",
        "unsupported_grant_type",
    }
)


def _site_side(error: str | None, description: str | None) -> bool:
    """Whether Gist's ``error`` (with its ``error_description``) blames the site's setup rather than the login."""
    if error == "invalid_request":
        text = (description or "").lower()
        return "redirect_uri" in text or "redirect uri" in text
    return error in _SITE_ERRORS


def _error_name(text: object) -> str:
    """An OAuth ``error`` name from outside, as RFC 6749 allows one (printable ASCII without ``"`` and ``\\``),
    shortened: any other character becomes ``?``, so a callback cannot write a line break into a log."""
    allowed = "".join(ch if 0x20 <= ord(ch) <= 0x7E and ch not in '"\\' else "?" for ch in str(text))
    return _short(allowed)


def _short(text: object) -> str:
    """Shorten text that came from outside so that a hostile server cannot flood a page or a log."""
    value = str(text)
    return value if len(value) <= _MAX_REMOTE_TEXT else value[: _MAX_REMOTE_TEXT - 1] + "…"


class GistAuthError(Exception):
    """Root of every error raised by gist_authlib.

    The login branches (:class:`ConfigurationError`, :class:`LoginError`, :class:`TokenExchangeError`) are
    Authlib ``OAuthError`` s too, so an app's existing ``except OAuthError`` around ``authorize_access_token``
    catches every failure of a Gist login, and reads the RFC 6749 name in ``error`` as it does for any other
    provider.

    Attributes:
        error: the OAuth 2 error name (RFC 6749 where one fits: ``invalid_grant``, ``invalid_client``,
            ``access_denied``, ``mismatching_state``, ...), as Authlib's own errors carry it.
        message: what the end user who met the error reads (an error page shows it): never developer advice, nor
            text from Gist.
        description: the message, as Authlib's ``OAuthError.description``.
        error_code: a short, stable machine-readable name of gist_authlib's own (``"state_unknown"``, ...).
        status_code: the HTTP status a web page reporting this error should carry.
        title: a one-line summary fit for a page heading.
        hint: the developer's explanation of the cause and its fix (with what Gist said, when it said anything),
            or ``None``: logged, and shown on error pages only in debug mode.
        retry: whether logging in again can help; False when the site's own setup stopped the login, and the
            error page then offers no "Log in again" link.
    """

    error: str | None = "server_error"
    error_code: str = "gist_auth_error"
    status_code: int = 400
    title: str = "Gist login failed"
    hint: str | None = None
    retry: bool = True

    def __init__(
        self,
        message: str,
        *,
        error_code: str | None = None,
        error: str | None = None,
        status_code: int | None = None,
        title: str | None = None,
        hint: str | None = None,
        retry: bool | None = None,
    ) -> None:
        # Not OAuthError.__init__: its message would be "error: description"; ours is the plain sentence.
        Exception.__init__(self, message)
        self.message = message
        self.description = message
        self.uri = None  # as Authlib's OAuthError has it
        if error_code is not None:
            self.error_code = error_code
        if error is not None:
            self.error = error
        if status_code is not None:
            self.status_code = status_code
        if title is not None:
            self.title = title
        if retry is not None:
            self.retry = retry
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class _SiteError(GistAuthError):
    """An error of the site's own side (its setup, its token store), raised to the developer's code more often than
    shown on a page: the text given is the developer's, so it is the exception's ``str()`` and its ``hint``, while
    ``message`` tells the end user that the site could not complete the login."""

    title = _SITE_TITLE
    retry = False
    #: What the end user reads.
    end_user_text: str = _SITE_FAILED

    def __init__(self, message: str, *, error_code: str | None = None) -> None:
        super().__init__(self.end_user_text, error_code=error_code, hint=message)

    def __str__(self) -> str:
        return self.hint or self.message


# --- configuration: the developer has something to fix -------------------------------------------


class ConfigurationError(_SiteError, OAuthError):  # type: ignore[misc]  # Authlib ships no type hints
    """gist_authlib is not set up correctly; ``str(error)`` (and ``hint``) says which setting to fix, ``message``
    only that the site could not complete the login.

    ``error_code`` is ``"configuration_error"``, or ``"session_not_configured"`` when the web framework has no
    session (:meth:`no_session`).
    """

    error_code = "configuration_error"
    # Not 500: the page is ours and deliberate, and says the login is unavailable rather than broken.
    status_code = 503

    @classmethod
    def no_session(cls, message: str) -> ConfigurationError:
        """The web framework has no session, so the login state cannot be kept (``message`` says how to add one)."""
        return cls(message, error_code="session_not_configured")


class MissingCredentialsError(ConfigurationError):
    """The client id or client secret is missing.

    Attributes:
        setting: the name of the setting to fill in (``GIST_CLIENT_ID`` or a Django settings path).
    """

    error = "invalid_client"
    error_code = "missing_credentials"

    def __init__(self, setting: str, what: str) -> None:
        super().__init__(
            f"The Gist {what} is not set. Set {setting} (copy it from your app in Gist's Developer Hub, "
            f"https://app.getgist.com/developer), or pass it to gist_authlib.register()."
        )
        self.setting = setting


class UnknownScopeError(ConfigurationError, ValueError):
    """A requested scope is not in the provider's scope catalogue.

    The message says plainly what looks wrong: a comma-separated list (Gist's scopes are separated by
    spaces), the wrong case, singular for plural (``read_contacts`` for ``read_contact``) or a misspelling.
    Only a name that looks genuinely new is pointed at :meth:`GistProvider.with_scopes
    <gist_authlib.GistProvider.with_scopes>`.

    Attributes:
        scope: the scope that was asked for.
        suggestion: the nearest known scope (for a comma-separated list, the corrected space-separated
            string), or ``None``.
        reasons: what looks wrong, each one of ``"list"``, ``"case"``, ``"singular"``, ``"plural"``,
            ``"spelling"``, ``"prefix"`` and ``"format"``; empty when the name looks like a scope Gist
            added later.
    """

    error = "invalid_scope"
    error_code = "unknown_scope"

    _REASONS: tuple[tuple[str, str], ...] = (
        ("case", "Gist's scope names are lower case."),
        ("singular", "Gist names this scope in the singular."),
        ("plural", "Gist names this scope in the plural."),
        ("spelling", "It looks like a misspelling."),
        ("prefix", "Gist's scope names start with read_ or write_."),
        ("format", "Gist's scope names are lower-case words joined by underscores, such as read_teammates."),
    )

    def __init__(self, scope: str, suggestion: str | None, reasons: tuple[str, ...] = ()) -> None:
        name = _short(scope)
        if "list" in reasons:
            names = suggestion.split() if suggestion else []
            fix = f" Write {suggestion!r} or a list, {names!r}." if suggestion else ""
            message = (
                f"{name!r} is several scopes joined by commas; Gist's scopes are separated by spaces, or "
                f"given as a list.{fix}"
            )
        else:
            hint = f" Did you mean {suggestion}?" if suggestion else ""
            notes = "".join(f" {text}" for reason, text in self._REASONS if reason in reasons)
            extend = (
                f" If Gist has added {name} after this release, extend the provider: "
                f"GistProvider().with_scopes([{name!r}])."
                if not reasons
                else ""
            )
            message = f"Unknown Gist scope {name!r}.{hint}{notes}{extend}"
        super().__init__(message)
        self.scope = scope
        self.suggestion = suggestion
        self.reasons = tuple(reasons)


class InsecureTransportError(ConfigurationError):
    """An endpoint or redirect URI uses ``http://`` on a host that is not loopback."""

    error = "invalid_request"
    error_code = "insecure_transport"

    def __init__(self, what: str, url: str) -> None:
        from urllib.parse import urlsplit

        host = urlsplit(url).netloc
        super().__init__(
            f"The {what} uses plain http:// on {_short(host)!r}, which is not this machine: tokens and codes "
            "would cross the network unencrypted. Use https://, or pass allow_insecure_http=True to "
            "gist_authlib.register() for a development setup."
        )


# --- the login itself: the user's side (400) -----------------------------------------------------


class LoginError(GistAuthError, OAuthError):  # type: ignore[misc]  # Authlib ships no type hints
    """The callback that came back from Gist cannot complete a login (the user's side: a 4xx page).

    ``error_code`` is ``"login_error"``, ``"code_missing"`` (:meth:`missing_code`) or ``"login_timeout"``
    (``gist-authlib login`` waited in vain), unless a subclass says otherwise.
    """

    error = "invalid_request"
    error_code = "login_error"
    status_code = 400

    @classmethod
    def missing_code(cls, detail: str | None = None) -> LoginError:
        """The callback carries a valid state but no usable authorization code (``detail``, for the developer,
        says what is wrong with it)."""
        return cls(
            "Gist's answer carries no usable authorization code (it is missing or malformed), so the login could not "
            "be completed. Start the login again.",
            error_code="code_missing",
            hint=detail or "The callback carries a valid state but no code parameter.",
        )

    @classmethod
    def timed_out(cls, seconds: float) -> LoginError:
        """No callback reached ``gist-authlib login`` within its timeout; nothing was requested or stored."""
        return cls(
            f"No answer came back from Gist within {seconds:g} s, so the login was abandoned. "
            "Run gist-authlib login again (--timeout sets the wait).",
            error_code="login_timeout",
            error="temporarily_unavailable",
            title="The login timed out",
        )


class AuthorizationError(LoginError):
    """Gist redirected back with an ``error`` parameter.

    Attributes:
        error: the OAuth error code Gist sent (shortened).
        remote_description: the ``error_description`` Gist sent, if any (shortened; escape it before showing
            it). ``description`` is the whole message, as for every error.
    """

    error_code = "authorization_error"
    title = "Gist did not complete the login"

    def __init__(self, error: str, description: str | None = None) -> None:
        self.error = _error_name(error)
        self.remote_description = _short(description) if description else None
        said = f", error_description={self.remote_description!r}" if self.remote_description else ""
        hint = f"Gist redirected back with error={self.error!r}{said}."
        if _site_side(self.error, description):
            super().__init__(_SITE_FAILED, title=_SITE_TITLE, hint=hint, retry=False)
        else:
            super().__init__("Gist could not complete the login. Try logging in again in a moment.", hint=hint)


class AccessDeniedError(AuthorizationError):
    """The user declined to authorize the app on Gist's consent page."""

    error = "access_denied"
    error_code = "access_denied"
    title = "Access was not granted"

    def __init__(self, description: str | None = None) -> None:
        super().__init__("access_denied", description)
        self.message = self.description = (
            "You declined to give this app access to your Gist workspace. Nothing was stored."
        )
        self.args = (self.message,)


class StateError(LoginError):
    """The callback's ``state`` does not match a login this browser started (a possible CSRF attempt).

    ``error_code`` says which way: ``"state_missing"`` (:meth:`missing`), ``"state_expired"``
    (:meth:`expired`), ``"callback_replayed"`` (:meth:`replayed`: another browser, or a copy of the callback,
    brought back a callback that was already used), ``"callback_repeated"`` (:meth:`repeated`: this browser
    opened the callback of its own login again, by a refresh, the back button or a double click), or a
    subclass's.

    Attributes:
        next_path: the checked ``next`` path of the login this callback belonged to, when known (a page can
            offer to start it again, or, for a repeated callback, go there).
        completed: for ``callback_repeated``, whether this browser's login was completed (the routes then send
            the browser on to ``next_path`` instead of showing an error).
    """

    error = "mismatching_state"
    error_code = "state_error"
    title = "This login link is not valid"
    next_path: str | None = None
    completed: bool = False

    @classmethod
    def missing(cls, detail: str | None = None) -> StateError:
        """The callback carries no usable ``state`` (none, more than one, malformed: ``detail``, for the developer,
        says which)."""
        return cls(
            "This login link is incomplete, so it could not be matched to a login. Start the login again.",
            error_code="state_missing",
            hint=detail or "The callback carries no state parameter.",
        )

    @classmethod
    def expired(cls, next_path: str | None = None) -> StateError:
        """The login was started too long ago (the consent page stayed open)."""
        error = cls(
            "This login was started too long ago and has expired. Start it again.",
            error_code="state_expired",
            title="This login has expired",
            hint="The login's state outlived state_ttl (10 minutes by default) before the callback came back: "
            "the consent page stayed open. The page offers to start the login again, keeping its next path.",
        )
        error.next_path = next_path
        return error

    @classmethod
    def replayed(cls) -> StateError:
        """The callback was already used once, and not by this browser's own login (a copied callback URL)."""
        return cls(
            "This login link was already used. Start the login again.",
            error_code="callback_replayed",
            hint="The state of this callback was consumed before (server-side single use): a copy of a callback "
            "URL another request already used. No token request was made.",
        )

    @classmethod
    def repeated(cls, next_path: str | None, *, completed: bool) -> StateError:
        """This browser opened the callback of its own login a second time (a refresh, the back button, a
        double click): no second token request is made."""
        error = cls(
            "This login link was already used by this browser." + ("" if completed else " Start the login again."),
            error_code="callback_repeated",
            title="This login was already used",
            hint="The browser that started this login opened its callback again (a refresh, the back button or "
            "a double click on Approve). No second token request was made; the ready-made routes send the "
            "browser to the login's next page when the first callback completed it.",
        )
        error.next_path, error.completed = next_path, completed
        return error


#: Why a state was refused (``UnknownStateError.error_code``): the user's sentence, and the developer's.
_UNKNOWN_STATE: dict[str, tuple[str, str]] = {
    "state_unknown": (
        "This login link was not issued by this site, so it was refused.",
        "The callback's state does not carry this registration's signature: it was forged, or issued under "
        "another client secret, or by another app on the same redirect URI.",
    ),
    "login_cookie_missing": (
        "Your browser did not send back the login cookie of this site, so the login could not be matched to "
        "you. Try logging in again.",
        "The state was issued by this app, but the callback brought no login cookie back. The usual causes: the "
        "login started on another host name than the redirect URI's (configure GIST_REDIRECT_URI so that "
        "logins move to its host first), the browser blocks cookies, or a Secure cookie (https redirect URI) "
        "was sent back over plain http://.",
    ),
    "login_cookie_invalid": (
        "This login could not be checked, so it was refused. Try logging in again.",
        "The login cookie came back signed under another key: the login started on an instance with another "
        "client secret (every instance must share the same one), or the client secret changed while the login "
        "was pending.",
    ),
    "login_dropped": (
        "This login was replaced by newer logins started in this browser. Try logging in again.",
        "The browser started more logins than max_pending_logins (10 by default) after this one, or their "
        "size went past the login cookie's budget, so the oldest was dropped.",
    ),
    "state_other_browser": (
        "This login link was started in another browser, so it was refused. Start the login in this browser.",
        "The state was issued by this app to another browser (its login cookie names another browser): the "
        "callback URL was opened elsewhere, or somebody tried to make this browser finish their login (login "
        "CSRF).",
    ),
}


class UnknownStateError(StateError):
    """The state was never issued to this browser, or this browser's login cookie did not come back.

    ``error_code`` names the one cause: ``"state_unknown"`` (not issued by this app), ``"login_cookie_missing"``
    (issued by this app, but no login cookie came back), ``"login_cookie_invalid"`` (the cookie is signed under
    another key), ``"login_dropped"`` (newer logins in this browser pushed it out), ``"state_other_browser"``
    (issued to another browser).

    Attributes:
        install_hint: the callback looks like an install started from inside Gist, which this app does not
            accept (the hint says how to enable them).
    """

    error_code = "state_unknown"
    #: Every ``error_code`` this class carries (one per cause).
    error_codes: tuple[str, ...] = tuple(_UNKNOWN_STATE)

    def __init__(self, cause: str = "state_unknown", *, install_hint: bool = False) -> None:
        text, hint = _UNKNOWN_STATE[cause]
        if install_hint:
            # Gist-initiated installs arrive exactly like this (state = workspace id); say how to accept them.
            hint += (
                " If it came from installing the app inside Gist, this app does not accept installs: enable them "
                "by passing on_install=... to the Gist login routes."
            )
        super().__init__(text, error_code=cause, hint=hint)
        self.install_hint = install_hint


class MixUpError(StateError):
    """The callback names another authorization server (``iss``, RFC 9207): a mix-up attack, refused."""

    error_code = "issuer_mismatch"

    def __init__(self, issuer: str | None) -> None:
        named = f"iss={_short(issuer)!r}" if issuer else "more than one iss"
        super().__init__(
            "This login came back from another sign-in service than the one it was sent to, so it was refused. "
            "Start the login again.",
            hint=f"The callback carries {named}, not the issuer of the server this login was sent to (RFC 9207): "
            "a mix-up attack, or the provider's issuer does not match the server's.",
        )


class InstallError(LoginError):
    """A Gist-initiated install could not be completed; nothing was stored.

    ``error_code`` is ``"install_failed"`` (the callback and its token disagree), ``"install_link_invalid"``
    (:meth:`link_invalid`: Gist refused the code; a stale, used or forged link) or ``"install_rate_limited"``
    (:meth:`rate_limited`: too many attempts; 429, and no token request was sent).
    """

    error_code = "install_failed"
    title = "The installation could not be completed"

    @classmethod
    def link_invalid(cls) -> InstallError:
        """Gist refused the code of an install callback: the link is stale, was used, or was forged."""
        return cls(
            "This install link is invalid or has expired. Install the app again from inside Gist.",
            error_code="install_link_invalid",
            error="invalid_grant",
        )

    @classmethod
    def rate_limited(cls) -> InstallError:
        """Too many install attempts in a short time; no token request was sent."""
        return cls(
            "Too many installation attempts in a short time. Wait a minute and try again.",
            error_code="install_rate_limited",
            error="temporarily_unavailable",
            status_code=429,
        )


# --- the token exchange: Gist's side (502) --------------------------------------------------------


class TokenExchangeError(GistAuthError, OAuthError):  # type: ignore[misc]  # Authlib ships no type hints
    """Exchanging the authorization code for an access token failed on Gist's side (a 502 page).

    ``error_code`` is ``"token_exchange_failed"``, ``"token_endpoint_unreachable"`` (:meth:`unreachable`),
    ``"workspace_unknown"`` (an install whose workspace Gist would not name), or a subclass's.
    """

    error_code = "token_exchange_failed"
    status_code = 502
    title = "Gist did not complete the login"

    @classmethod
    def unreachable(cls, reason: str) -> TokenExchangeError:
        """The token endpoint could not be reached, or did not answer in time."""
        return cls(
            "Gist could not be reached to complete the login. Try again in a moment.",
            error_code="token_endpoint_unreachable",
            error="temporarily_unavailable",
            hint=f"Gist's token endpoint could not be reached ({_short(reason)}).",
        )


#: What a token endpoint's status means when its answer names no error (RFC 6749 section 5.2).
_TOKEN_STATUS_ERRORS = {400: "invalid_grant", 401: "invalid_client", 403: "unauthorized_client"}

#: The usual fix of a token endpoint's refusal, for the developer.
_TOKEN_FIXES = {
    "invalid_client": "the client id or secret is wrong (a sandbox restarted with --new-secret, or a secret "
    "rotated in Gist's Developer Hub): update GIST_CLIENT_SECRET",
    "unauthorized_client": "the app may not use this grant: check that OAuth is enabled for it in Gist's Developer Hub",
    "redirect_uri_mismatch": "the redirect URI is not one registered for the app in Gist's Developer Hub: "
    "register it there, or set GIST_REDIRECT_URI to one that is",
    "invalid_scope": "a requested scope is not ticked for the app in Gist's Developer Hub",
    "invalid_grant": "the code expired, was used already, or was issued for another redirect URI",
}
_TOKEN_FIXES["redirect_uri"] = _TOKEN_FIXES["redirect_uri_mismatch"]


class TokenEndpointError(TokenExchangeError):
    """The token endpoint refused the request.

    Attributes:
        http_status: the HTTP status of the answer.
        error: the OAuth ``error`` code in the answer (shortened), else the RFC 6749 name its status implies.
        remote_error: the ``error`` code in the answer, or ``None`` when Gist named none.
    """

    error_code = "token_endpoint_error"

    def __init__(self, http_status: int, error: str | None = None, description: str | None = None) -> None:
        self.http_status = http_status
        #: The error name Gist sent, if any (shortened); ``error`` falls back to the RFC 6749 name of the status.
        self.remote_error = _error_name(error) if error else None
        self.error = self.remote_error or _TOKEN_STATUS_ERRORS.get(http_status, "server_error")
        # What Gist answered, for the log line (the page shows it only in debug mode): the developer's cause.
        answered = f"error={self.remote_error!r}" if self.remote_error else "no error name"
        if description:
            answered += f", error_description={_short(description)!r}"
        hint = f"Gist's token endpoint answered HTTP {http_status} ({answered})."
        site = _site_side(self.error, description)
        fix = _TOKEN_FIXES.get("redirect_uri" if site and self.error == "invalid_request" else self.error)
        if fix:
            hint += f" Usually {fix}."
        if site:
            super().__init__(_SITE_FAILED, title=_SITE_TITLE, hint=hint, retry=False)
        else:
            super().__init__("Gist did not complete the login. Start the login again.", hint=hint)


class InvalidTokenResponseError(TokenExchangeError):
    """The token endpoint answered 2xx, but not with a usable access token. Nothing was stored."""

    error = "invalid_token_response"
    error_code = "invalid_token_response"

    def __init__(self, reason: str) -> None:
        super().__init__(
            "Gist sent an answer this site could not use, so the login was not completed. Try again in a moment.",
            hint=f"Gist's token endpoint answered 2xx with an unusable answer: {_short(reason)}. Nothing was stored.",
        )
        self.reason = reason


# --- the REST API --------------------------------------------------------------------------------


class GistAPIError(GistAuthError):
    """Gist's REST API answered with an error status.

    Attributes:
        status: the HTTP status Gist answered with.
        body: Gist's error body, parsed from JSON when possible (its shape is undocumented).
        method: the request's method.
        path: the request's path (without query string: queries may carry personal data).
    """

    error_code = "gist_api_error"
    status_code = 502
    title = "The Gist API refused the request"

    def __init__(self, status: int, body: object, *, method: str = "", path: str = "", message: str | None = None):
        self.status = status
        self.body = body
        self.method = method
        self.path = path
        where = f" to {method} {path}" if method else ""
        detail = _error_detail(body)
        text = f"Gist answered HTTP {status}{where}{': ' + detail if detail else ''}"
        super().__init__(message or (text if text.endswith((".", "!", "?")) else text + "."))


class TokenRevokedError(GistAPIError):
    """401: the token is no longer valid (the app was uninstalled, or the token revoked). Log in again."""

    error_code = "token_revoked"


class InsufficientScopeError(GistAPIError):
    """403: the token lacks a scope this request needs.

    Attributes:
        scope: the missing scope, when Gist names it or the endpoint's scope is known; else ``None``.
    """

    error_code = "insufficient_scope"

    def __init__(self, status: int, body: object, *, scope: str | None, method: str = "", path: str = "") -> None:
        self.scope = scope
        hint = (
            f"the token lacks the {scope} scope: request it in register(scopes=...), tick it for the app "
            "in Gist's Developer Hub, then log in again"
            if scope
            else "the token lacks a scope this request needs"
        )
        super().__init__(status, body, method=method, path=path, message=f"Gist refused {method} {path}: {hint}.")


class NotFoundError(GistAPIError):
    """404: no such resource."""

    error_code = "not_found"


class RateLimitedError(GistAPIError):
    """Gist kept answering 429 (or 503) until the retries or the deadline ran out.

    Attributes:
        retry_after: the pause Gist last asked for, in seconds, if it said.
    """

    error_code = "rate_limited"

    def __init__(
        self, status: int, body: object, *, retry_after: float | None, method: str = "", path: str = ""
    ) -> None:
        self.retry_after = retry_after
        wait = f" Gist asked to wait {retry_after:g} s." if retry_after is not None else ""
        super().__init__(
            status, body, method=method, path=path, message=f"Gist is rate limiting {method} {path}.{wait}"
        )


class GistConnectionError(GistAPIError):
    """Gist could not be reached, or did not answer within the timeout (after any retries).

    ``status`` is 0: no whole HTTP answer was received. ``error_code`` is ``"gist_unreachable"``, or
    ``"deadline_exceeded"`` (:meth:`deadline_exceeded`) when the call ran out of its ``RetryPolicy.deadline``.
    """

    error_code = "gist_unreachable"
    #: Every ``error_code`` this class carries.
    error_codes: tuple[str, ...] = ("gist_unreachable", "deadline_exceeded")

    def __init__(self, reason: str, *, method: str = "", path: str = "", message: str | None = None) -> None:
        super().__init__(
            0,
            None,
            method=method,
            path=path,
            message=message or f"Gist could not be reached for {method} {path}: {_short(reason)}.",
        )
        self.reason = reason

    @classmethod
    def deadline_exceeded(cls, seconds: float, *, method: str = "", path: str = "") -> GistConnectionError:
        """The whole call (every attempt, pause and body read) took longer than its deadline of ``seconds``."""
        error = cls(
            f"no whole answer within the deadline of {seconds:g} s",
            method=method,
            path=path,
            message=f"Gist did not answer {method} {path} within the call's deadline of {seconds:g} s (retries "
            "and slow answers included). Try again; a background job may allow more with RetryPolicy(deadline=...).",
        )
        error.error_code = "deadline_exceeded"
        return error


class UnexpectedAnswerError(GistAPIError):
    """Gist answered with a success status, but not with what the call expects: not JSON, JSON of another
    shape (a missing wrapping key, an item that is not an object, a field of the wrong type), or an answer
    larger than the client's ``max_answer_bytes``. Nothing of the answer is kept.

    The message names the call and what was wrong, by JSON type only: never what Gist sent. ``error_code`` is
    ``"unexpected_answer"``, or ``"answer_too_large"`` (:meth:`too_large`).

    Attributes:
        problem: what was wrong, in words (no content of the answer).
        limit: for ``answer_too_large``, the cap in bytes; else ``None``.
    """

    error_code = "unexpected_answer"
    #: Every ``error_code`` this class carries.
    error_codes: tuple[str, ...] = ("unexpected_answer", "answer_too_large")

    def __init__(self, status: int, problem: str, *, method: str = "", path: str = "") -> None:
        where = f"{method} {path}" if method else "a call"
        super().__init__(
            status,
            None,
            method=method,
            path=path,
            message=f"Gist answered {where} with HTTP {status}, but {problem}.",
        )
        self.problem = problem
        self.limit: int | None = None

    @classmethod
    def too_large(cls, status: int, limit: int, *, method: str = "", path: str = "") -> UnexpectedAnswerError:
        """The answer's body is larger than ``limit`` bytes; reading stopped there and what was read is dropped."""
        error = cls(
            status, f"its body is larger than the client's max_answer_bytes ({limit})", method=method, path=path
        )
        error.error_code = "answer_too_large"
        error.limit = limit
        return error


def _error_detail(body: object) -> str:
    """A short human detail out of an error body of unknown shape."""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return _short(errors[0].get("message") or errors[0].get("code") or "")
        for key in ("message", "error_description", "error"):
            if isinstance(body.get(key), str):
                return _short(body[key])
    return ""


# --- token storage -------------------------------------------------------------------------------


#: Why a token database cannot be used just now: (what it is, how to fix it).
_STORE_FAULTS = {
    "token_store_timeout": (
        "did not answer in time",
        "Another process held its write lock past the busy timeout (SQLite), or a statement or the server took "
        "longer than its timeout (a stalled or frozen database server). Look for a long transaction or a stuck "
        "server; the timeouts are settings of the store (docs/RELIABILITY.md).",
    ),
    "token_store_full": ("is full", "Free space on the database's disk (or raise its size limit)."),
    "token_store_read_only": (
        "is read-only",
        "Mount its volume read-write and give the app's user write permission on the file and its folder.",
    ),
    "token_store_corrupt": (
        "is corrupted",
        "Restore the database file from a backup (or delete it: users log in again).",
    ),
    "token_store_unreachable": (
        "cannot be reached",
        "Check that the database server runs and that its host, port and credentials are right.",
    ),
}


class TokenStoreError(_SiteError):
    """The token store could not do what was asked; nothing was half-written. ``str(error)`` (and ``hint``) says
    what failed; ``message`` only that the site could not keep the connection to Gist.

    ``error_code`` is ``"token_store_error"``, or when the database cannot be used just now (:meth:`unavailable`)
    what is wrong with it: ``token_store_timeout``, ``token_store_full``, ``token_store_read_only``,
    ``token_store_corrupt`` or ``token_store_unreachable``. The store recovers from those by itself once the fault
    is gone, with no restart.
    """

    error_code = "token_store_error"
    #: The causes :meth:`unavailable` takes, each its own ``error_code``.
    error_codes: tuple[str, ...] = tuple(_STORE_FAULTS)
    status_code = 503
    # A store can fail for a moment (its database restarting): a new login may succeed.
    retry = True
    end_user_text = "This site could not save or read your connection to Gist. Try again later."

    @classmethod
    def unavailable(cls, cause: str, where: str = "The token database") -> TokenStoreError:
        """The database cannot be used just now: ``cause`` is one of :attr:`error_codes`."""
        what, hint = _STORE_FAULTS[cause]
        return cls(f"{where} {what}; nothing was written. {hint}", error_code=cause)


class TokenDecryptionError(TokenStoreError):
    """A stored token cannot be decrypted with the keys given: the message names the key it needs.

    Attributes:
        key_id: the fingerprint of the key the token was encrypted with.
        known_key_ids: the fingerprints of the keys the store was given.
    """

    error_code = "token_decryption_failed"

    def __init__(
        self, subject: str, key_id: str, known_key_ids: list[str], *, tampered: bool = False, unbound: bool = False
    ) -> None:
        self.key_id = key_id
        self.known_key_ids = known_key_ids
        if unbound:
            text = (
                f"The stored token of {_short(subject)!r} is in an older or unencrypted form that this store no "
                "longer reads on its own (a plaintext or unbound row could have been planted or copied). If the "
                "row is yours, call store.migrate() once to re-encrypt it; otherwise delete it."
            )
        elif tampered:
            text = (
                f"The stored token of {_short(subject)!r} names key {key_id}, which was given, but its ciphertext "
                "does not decrypt to this subject's token: the row is corrupt, was altered or was copied from "
                "another row. Delete it and ask the user to log in again."
            )
        else:
            text = (
                f"The stored token of {_short(subject)!r} was encrypted with key {key_id}, which is not among the "
                f"keys given ({', '.join(known_key_ids) or 'none'}). Add that key to the store's keys; keep old "
                "keys after the first one until store.rotate_keys() has re-encrypted every token."
            )
        super().__init__(text)


class StaleTokenError(TokenStoreError):
    """A compare-and-set lost: the stored token changed since it was read (another process wrote a newer one)."""

    error_code = "stale_token"

    def __init__(self, subject: str, expected: int, found: int | None) -> None:
        self.expected_version = expected
        self.found_version = found
        where = "it is gone" if found is None else f"it is at version {found}"
        super().__init__(
            f"The stored token of {_short(subject)!r} was not replaced: expected version {expected}, but {where}."
        )
