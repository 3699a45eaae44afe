"""GistProvider: Gist's endpoints, scope catalogue and client authentication method, as plain data."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Concatenate, Final, Generic, ParamSpec, TypeVar
from urllib.parse import urlsplit

from .errors import UnknownScopeError

__all__ = [
    "DEFAULT_SCOPES",
    "OFFICIAL_SCOPES",
    "GistProvider",
]

#: Confirmed by Gist's "working with OAuth" page.
GIST_AUTHORIZE_URL: Final = "https://app.getgist.com/oauth/authorize"
#: Likely (community clients); Gist's 2022 starter app used web-api.getgist.com. Overridable.
GIST_ACCESS_TOKEN_URL: Final = "https://api.getgist.com/oauth/token"
GIST_API_BASE_URL: Final = "https://api.getgist.com/"
#: Where a Gist-initiated install is acknowledged (inferred from Gist's starter app).
GIST_INSTALL_ACK_URL: Final = "https://app.getgist.com/install_success"
#: The header carrying a canvas request's signature (low confidence: one third-party source). Overridable.
GIST_CANVAS_SIGNATURE_HEADER: Final = "X-Gist-Signature"
#: The signature's scheme: the header reads ``sha256=<hex HMAC-SHA256 of the body>``. Overridable.
GIST_CANVAS_SIGNATURE_SCHEME: Final = "sha256"
#: The HMAC digests a canvas signature scheme may name; an empty scheme means a bare hex HMAC-SHA256.
CANVAS_SIGNATURE_DIGESTS: Final = ("sha1", "sha256", "sha384", "sha512")

#: Gist's official scopes and what each allows. Contact scopes are singular (``read_contact``).
OFFICIAL_SCOPES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "read_contact": "List and view a single contact",
        "write_contact": "Create or update a single contact",
        "read_bulk_contacts": "List and view all contacts",
        "write_bulk_contacts": "Create or update a batch of contacts",
        "read_conversations": "List and view conversations",
        "write_conversations": "Create or update conversations",
        "read_events": "List and view events",
        "read_tags": "List and view tags",
        "write_tags": "Create or update tags",
        "read_teams": "List and view teams",
        "read_teammates": "List and view teammates",
    }
)

DEFAULT_SCOPES: Final = ("read_teammates",)

_P = ParamSpec("_P")
_R = TypeVar("_R")


class _ClassOrInstanceMethod(Generic[_P, _R]):
    """Lets ``GistProvider.at(origin)`` work on the class (Gist's defaults) and on a customised instance."""

    def __init__(self, func: Callable[Concatenate[GistProvider, _P], _R]) -> None:
        self.func = func
        self.__doc__ = func.__doc__

    def __get__(self, instance: GistProvider | None, owner: type[GistProvider]) -> Callable[_P, _R]:
        target = instance if instance is not None else owner()
        return functools.partial(self.func, target)


@dataclass(frozen=True, slots=True)
class GistProvider:
    """Everything gist_authlib knows about Gist as an OAuth 2 provider, as immutable data.

    The defaults describe production Gist. Use :meth:`at` to point every endpoint at another origin
    (the local sandbox, a staging host, a test server) and :meth:`with_scopes` to accept scopes that
    Gist adds after this release.

    Attributes:
        authorize_url: the authorization endpoint the browser is sent to.
        access_token_url: the token endpoint the code is exchanged at.
        api_base_url: the REST API's base URL (always ends with ``/``).
        token_endpoint_auth_method: how the client authenticates at the token endpoint; Gist expects
            the credentials in the form body (``client_secret_post``).
        scopes: the scope catalogue, scope name to description.
        default_scopes: the scopes requested when the app names none.
        install_ack_url: where to send the browser after a Gist-initiated install.
        name: a display name for pages and messages.
        install_state_pattern: the shape of the ``state`` Gist sends on an install it started (the workspace
            id: Gist's ids are short, lowercase and alphanumeric, such as ``nrrjryb4``). With installs on, only
            an unknown state of this shape may cost a token request; any other is refused at once.
        issuer: the ``iss`` a callback may carry (RFC 9207); by default the authorization endpoint's
            origin. A callback naming another issuer is refused (a mix-up attack).
        canvas_signature_header: the header in which Gist signs the requests it sends to a canvas app's
            initialize and submit URLs.
        canvas_signature_scheme: the header's value is ``<scheme>=<hex HMAC of the raw body under the
            client secret>``, the HMAC's digest named by the scheme (one of ``sha1``, ``sha256``,
            ``sha384``, ``sha512``); an empty scheme means the value is the bare hex HMAC-SHA256 (as
            Intercom's ``X-Body-Signature``). Both come from a single third-party source, hence settings.
    """

    authorize_url: str = GIST_AUTHORIZE_URL
    access_token_url: str = GIST_ACCESS_TOKEN_URL
    api_base_url: str = GIST_API_BASE_URL
    token_endpoint_auth_method: str = "client_secret_post"
    scopes: Mapping[str, str] = field(default_factory=lambda: OFFICIAL_SCOPES)
    default_scopes: tuple[str, ...] = DEFAULT_SCOPES
    install_ack_url: str = GIST_INSTALL_ACK_URL
    name: str = "Gist"
    install_state_pattern: str = r"[a-z0-9]{4,24}"
    issuer: str | None = None
    canvas_signature_header: str = GIST_CANVAS_SIGNATURE_HEADER
    canvas_signature_scheme: str = GIST_CANVAS_SIGNATURE_SCHEME

    def __post_init__(self) -> None:
        # Freeze the catalogue so that a provider can be shared safely between registrations.
        if not isinstance(self.scopes, MappingProxyType):
            object.__setattr__(self, "scopes", MappingProxyType(dict(self.scopes)))
        for attr in ("authorize_url", "access_token_url", "api_base_url", "install_ack_url"):
            _check_absolute_url(attr, getattr(self, attr))
        if not self.api_base_url.endswith("/"):
            # urljoin("https://h/api", "teammates") would drop "api": keep the base a directory.
            object.__setattr__(self, "api_base_url", self.api_base_url + "/")
        object.__setattr__(self, "default_scopes", tuple(self.default_scopes))
        try:
            re.compile(self.install_state_pattern)
        except re.error as exc:
            raise ValueError(f"GistProvider.install_state_pattern is not a regular expression: {exc}.") from None
        self.validate_scopes(self.default_scopes)
        header = self.canvas_signature_header
        if not header or any(ch.isspace() or ch == ":" or not ch.isprintable() for ch in header):
            raise ValueError(f"GistProvider.canvas_signature_header must be a header name, not {header!r}.")
        if self.canvas_signature_scheme not in ("", *CANVAS_SIGNATURE_DIGESTS):
            raise ValueError(
                "GistProvider.canvas_signature_scheme must be one of "
                f"{', '.join(CANVAS_SIGNATURE_DIGESTS)} or '' (bare hex SHA-256), not {self.canvas_signature_scheme!r}."
            )

    def with_scopes(self, extra: Mapping[str, str] | Iterable[str]) -> GistProvider:
        """Return a new provider that also accepts ``extra`` scopes.

        Use it for a scope Gist has added after this release. ``extra`` is a list of names (or a
        space-separated string), or a mapping of name to description (the sandbox's consent page shows
        the description)::

            provider = GistProvider().with_scopes(["read_campaigns"])
            provider = GistProvider().with_scopes({"read_campaigns": "List and view campaigns"})

        Raises:
            ValueError: a name is empty or holds a space or a comma.
        """
        if isinstance(extra, str):
            pairs = [(name, "") for name in extra.split()]
        elif isinstance(extra, Mapping):
            pairs = [(str(name), str(description)) for name, description in extra.items()]
        else:
            pairs = [(str(name), "") for name in extra]
        merged = dict(self.scopes)
        for scope, description in pairs:
            if not scope or any(ch.isspace() or ch == "," for ch in scope):
                raise ValueError(
                    f"A scope name must be a non-empty word without spaces or commas, not {scope!r}; "
                    "pass several scopes as a list."
                )
            # A name given without a description keeps the one the catalogue already has.
            merged[scope] = description or merged.get(scope, "")
        return replace(self, scopes=MappingProxyType(merged))

    @_ClassOrInstanceMethod
    def at(self, origin: str, *, install_ack_url: str | None = None) -> GistProvider:
        """Return a provider whose every endpoint lives at ``origin`` (scheme, host and port).

        ``GistProvider.at("http://127.0.0.1:8765")`` gives ``/oauth/authorize``, ``/oauth/token`` and the
        API at ``/`` of that origin, which is how the sandbox is laid out. Called on an instance, the
        instance's scopes are kept.
        """
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"Expected an origin such as 'http://127.0.0.1:8765', not {origin!r}.")
        base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        return replace(
            self,
            authorize_url=f"{base}/oauth/authorize",
            access_token_url=f"{base}/oauth/token",
            api_base_url=f"{base}/",
            install_ack_url=install_ack_url or f"{base}/install_success",
        )

    def validate_scopes(self, scopes: str | Iterable[str] | None) -> tuple[str, ...]:
        """Normalise ``scopes`` (a list or a space-separated string) and check each against the catalogue.

        Returns the scopes in order without duplicates; ``None`` or empty gives :attr:`default_scopes`.

        Raises:
            UnknownScopeError: a scope is not in the catalogue; the error says what looks wrong (commas,
                case, singular or plural, spelling) and names the nearest known scope.
        """
        if scopes is None:
            return self.default_scopes
        items = scopes.split() if isinstance(scopes, str) else [str(s) for s in scopes]
        result: list[str] = []
        for scope in items:
            if scope not in self.scopes:
                suggestion, reasons = self.diagnose_scope(scope)
                raise UnknownScopeError(scope, suggestion, reasons)
            if scope not in result:
                result.append(scope)
        return tuple(result) if result else self.default_scopes

    def suggest_scope(self, scope: str) -> str | None:
        """The known scope nearest to ``scope`` (``read_contacts`` gives ``read_contact``), or ``None``."""
        return self.diagnose_scope(scope)[0]

    def diagnose_scope(self, scope: str) -> tuple[str | None, tuple[str, ...]]:
        """What looks wrong with ``scope``, a name not in the catalogue: ``(suggestion, reasons)``.

        The reasons are those of :class:`~gist_authlib.UnknownScopeError` (``"list"``, ``"case"``,
        ``"singular"``, ``"plural"``, ``"spelling"``, ``"prefix"``, ``"format"``); none means the name
        looks like a scope Gist has added since (the suggestion is then a known scope on the same thing,
        ``read_teammates`` for ``write_teammates``, if there is one).
        """
        if "," in scope:
            parts = [part for part in re.split(r"[\s,]+", scope) if part]
            fixed = [part if part in self.scopes else (self.diagnose_scope(part)[0] or part) for part in parts]
            return (" ".join(fixed) or None), ("list",)
        lower = scope.lower()
        case = ("case",) if lower != scope else ()
        if case and lower in self.scopes:
            return lower, case
        number = [(lower + "s", "plural")]
        if lower.endswith("s"):
            number.insert(0, (lower[:-1], "singular"))
        for candidate, reason in number:
            if candidate in self.scopes:
                return candidate, (*case, reason)
        squeezed = _squeeze(lower)
        for known in self.scopes:
            if _squeeze(known) == squeezed:
                return known, (*case, "spelling")
        import difflib  # only when a scope is unknown

        near = difflib.get_close_matches(lower, list(self.scopes), n=1, cutoff=_TYPO_RATIO)
        if near:
            return near[0], (*case, "spelling")
        if not _SCOPE_NAME.fullmatch(lower):
            return None, (*case, "format")
        verb, _, thing = lower.partition("_")
        if verb not in ("read", "write"):
            prefixed = next((f"{v}_{lower}" for v in ("read", "write") if f"{v}_{lower}" in self.scopes), None)
            return prefixed, (*case, "prefix")
        # A new-looking name: suggest only a scope on the same thing (write_teammates: read_teammates).
        return next((known for known in self.scopes if thing and known.partition("_")[2] == thing), None), case

    def authlib_kwargs(self) -> dict[str, str]:
        """The endpoint settings for Authlib's ``OAuth.register``, as a new dict on every call."""
        return {
            "authorize_url": self.authorize_url,
            "access_token_url": self.access_token_url,
            "api_base_url": self.api_base_url,
        }

    def __repr__(self) -> str:
        return (
            f"GistProvider(authorize_url={self.authorize_url!r}, access_token_url={self.access_token_url!r}, "
            f"api_base_url={self.api_base_url!r}, scopes={len(self.scopes)})"
        )


#: How alike a name and a known scope must be (difflib's ratio) to count as a misspelling of it rather than a
#: new scope: "read_teamates" (0.96) and "read_contcat" (0.92) are typos, "read_segments" (0.83 to
#: read_events) is a scope Gist may add.
_TYPO_RATIO: Final = 0.9
_SCOPE_NAME: Final = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")


def _squeeze(name: str) -> str:
    """The name without separators: "read-teammates" and "readteammates" both give "readteammates"."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _check_absolute_url(attr: str, value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"GistProvider.{attr} must be an absolute http(s) URL, not {value!r}.")
