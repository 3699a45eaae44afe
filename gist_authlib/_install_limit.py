"""The cost limit of callbacks that cost a token request (Gist-initiated installs) or a record (callbacks no browser
can finish), counted in the registration's :class:`~gist_authlib.tokens.LoginState`: process memory by default, or a
shared token store's database, which every instance using the database shares (docs/INSTANCES.md).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .tokens import InstallCounter

__all__ = ["InstallLimit"]

# The trusted_proxies entry that stands for a Unix socket (a request with no peer address).
_UNIX = "unix:"


class InstallLimit:
    """How many Gist-initiated install attempts may cost a token request, per network and in total.

    Every forged install callback with a plausible state costs one token request signed with the client
    secret; past these limits the callback answers 429 with no token request. Callers are counted by network
    (a /24 for IPv4, a /48 for IPv6: what one attacker usually holds), not by address. When the total is spent,
    a network that has made no attempt within the window still gets one, so a few networks cannot lock every
    genuine install out, up to ``total`` more first attempts a window; the cost stays bounded by twice
    ``total`` a window (:func:`gist_authlib.tokens.admit_install_attempt` is the rule).

    The attempts are counted by ``counter``: in process memory by default, so each app instance has a limit of
    its own; ``register`` counts them in its token store instead when that store is shared (SQLite, SQLAlchemy),
    which makes one limit for every instance using the database.

    Args:
        per_client: attempts per network within ``window`` seconds.
        total: attempts from all networks within ``window`` seconds, before only first attempts pass.
        window: the sliding window, in seconds.
        trusted_proxies: the networks of reverse proxies in front of the app (``["10.0.0.0/8"]``, or one string
            of them separated by commas or spaces, as an environment variable holds them). A request from one of
            them is counted by the right-most address of its ``X-Forwarded-For`` that is not itself a trusted
            proxy; from anywhere else, by the socket's address (the header is ignored, as anyone can send it).
            ``"unix:"`` trusts a request with no peer address: the app served on a Unix socket behind its proxy
            (``uvicorn --uds``, ``gunicorn --bind unix:``). Empty by default.
        max_networks: how many networks the default counter remembers at once (older ones are forgotten first).
        counter: where the attempts are counted (an :class:`~gist_authlib.tokens.InstallCounter`: a
            :class:`~gist_authlib.tokens.MemoryInstallCounter` by default, or a shared token store).
        name: what the attempts are counted under in ``counter`` (the registration's name), so that two
            registrations sharing one store have a limit each.
    """

    def __init__(
        self,
        per_client: int = 10,
        total: int = 100,
        window: float = 60.0,
        *,
        trusted_proxies: str | Iterable[str] = (),
        max_networks: int = 100_000,
        clock: Callable[[], float] = time.time,
        counter: InstallCounter | None = None,
        name: str = "",
    ) -> None:
        self.per_client, self.total, self.window = per_client, total, window
        proxies = trusted_proxies.replace(",", " ").split() if isinstance(trusted_proxies, str) else trusted_proxies
        proxies = [net.strip() for net in proxies if net.strip()]
        #: ``unix:`` among the trusted proxies: the app is served on a Unix socket behind its proxy, so a request
        #: with no peer address came through that proxy.
        self.trusts_unix_socket = _UNIX in proxies
        try:
            self.trusted_proxies = tuple(ipaddress.ip_network(net, strict=False) for net in proxies if net != _UNIX)
        except ValueError as exc:
            raise ConfigurationError(f"A trusted proxy is not a network or an address: {exc}.") from None
        self._counter_given = counter is not None
        if counter is None:
            from .tokens import MemoryInstallCounter  # here: import gist_authlib need not load the token stores

            counter = MemoryInstallCounter(max_networks=max_networks)
        self.counter: InstallCounter = counter
        self.name = name
        self._max_networks = max_networks
        self._clock = clock

    def counting_in(self, counter: InstallCounter, name: str) -> InstallLimit:
        """The same limit, counting in ``counter`` (a shared token store) under ``name``."""
        return InstallLimit(
            self.per_client,
            self.total,
            self.window,
            trusted_proxies=self.trusted_proxy_names(),
            max_networks=self._max_networks,
            clock=self._clock,
            counter=counter,
            name=name,
        )

    def trusted_proxy_names(self) -> list[str]:
        """The trusted proxies as they were given (networks, and ``unix:``)."""
        return [str(net) for net in self.trusted_proxies] + ([_UNIX] if self.trusts_unix_socket else [])

    def for_registration(self, name: str, state: InstallCounter) -> InstallLimit:
        """The limit registration ``name`` uses: this one when it was given its own counter, else the same limit
        counting in the registration's login state ``state`` (process memory, or a shared token store)."""
        return self if self._counter_given else self.counting_in(state, name)

    def client_address(self, peer: str | None, forwarded_for: str | None = None) -> str | None:
        """The address a request is counted by: ``peer``, or, when ``peer`` is a trusted proxy, the right-most
        untrusted address of ``forwarded_for``."""
        if not forwarded_for or not self._trusted(peer):
            return peer
        for hop in reversed([_host_only(part) for part in forwarded_for.split(",")]):
            if hop and not self._trusted(hop):
                return hop
        return peer

    def _trusted(self, address: str | None) -> bool:
        if not address:  # no peer address: a Unix socket, trusted only when "unix:" was named
            return self.trusts_unix_socket
        ip = _ip(address)
        return ip is not None and any(ip in net for net in self.trusted_proxies)

    @staticmethod
    def network_of(address: str | None) -> str:
        """The bucket an address is counted in: its /24 (IPv4) or /48 (IPv6: a site, as one home line or small
        server may hold the 256 /64s of a /56); the address itself otherwise."""
        ip = _ip(address)
        if ip is None:
            return address or "?"
        prefix = 24 if ip.version == 4 else 48
        return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))

    def allow(self, client: str | None) -> bool:
        """Count one attempt from ``client``'s network; False (and nothing counted) when a limit is reached.

        With a token store as the counter this is one short database transaction (blocking I/O).

        Raises:
            TokenStoreError: the store's database failed.
        """
        return self.counter.count_install_attempt(
            self.network_of(client),
            registration=self.name,
            now=self._clock(),
            window=self.window,
            per_client=self.per_client,
            total=self.total,
        )

    @property
    def shared(self) -> bool:
        """Whether the counts are shared by every process using the counter (a shared token store)."""
        return bool(getattr(self.counter, "shared", False))

    def __repr__(self) -> str:
        where = f", counter={self.counter!r}" if self.shared else ""
        return f"InstallLimit(per_client={self.per_client}, total={self.total}, window={self.window}{where})"


def _host_only(hop: str) -> str:
    """An ``X-Forwarded-For`` hop without its port (``9.9.9.9:1234``, ``[2001:db8::1]:443``)."""
    hop = hop.strip()
    if hop.startswith("["):
        return hop[1:].partition("]")[0]
    if hop.count(":") == 1:
        return hop.partition(":")[0]
    return hop


def _ip(address: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address, an IPv4-mapped IPv6 one as its IPv4 address; None when it is none."""
    try:
        ip = ipaddress.ip_address((address or "").strip().strip("[]").partition("%")[0])
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
