"""InstallLimit: how Gist-initiated install callbacks are counted (by network, behind proxies) so that forged ones
are bounded while a genuine install still passes."""

from __future__ import annotations

from gist_authlib import InstallLimit

# --- buckets: one per network -----------------------------------------------------------------------------------


def test_ten_addresses_of_one_network_share_one_bucket() -> None:
    limit = InstallLimit(per_client=10, total=100, clock=lambda: 1000.0)
    allowed = sum(limit.allow(f"203.0.113.{host}") for host in range(1, 11) for _ in range(10))
    assert allowed == 10  # one /24: one bucket of 10, not ten
    assert limit.allow("198.51.100.7")  # and everybody else is untouched


def test_a_genuine_install_passes_after_ten_networks_spent_the_total() -> None:
    limit = InstallLimit(per_client=10, total=100, clock=lambda: 1000.0)
    forged = sum(limit.allow(f"203.0.{net}.9") for net in range(10) for _ in range(12))
    assert forged == 100  # the attack of the finding: ten networks, ten each, the whole total
    assert not limit.allow("203.0.0.9")  # the attackers get no more
    assert limit.allow("198.51.100.7")  # a genuine installer's first attempt still passes
    assert not limit.allow("198.51.100.7")  # past the total, only first attempts pass: the cost stays bounded


def test_ipv6_addresses_are_counted_by_their_48() -> None:
    limit = InstallLimit(per_client=2, total=100, clock=lambda: 1000.0)
    assert [limit.allow(f"2001:db8:1:2::{n:x}") for n in range(1, 5)] == [True, True, False, False]
    assert not limit.allow("2001:db8:1:3::1")  # another /64 of the same /48: the same site
    assert limit.allow("2001:db8:2::1")
    assert InstallLimit.network_of("::ffff:192.0.2.44") == "192.0.2.0/24"


def test_one_ipv6_56_cannot_lock_every_genuine_install_out() -> None:
    """Callers were bucketed by /64 for IPv6 (now /48), and past the total a bucket's first attempt still passes,
    "so that a few networks cannot lock every genuine install out". One /56 (what a home line or a small VPS gets)
    is 256 /64s: 10 of them spent the total, 100 more the first attempts past it, and then a genuine install from
    anywhere else was refused for the whole window."""
    limit = InstallLimit(per_client=10, total=100, window=60, clock=lambda: 1000.0)
    for network in range(10):
        for _ in range(10):
            limit.allow(f"2001:db8:0:{network:x}::1")
    for network in range(10, 110):
        limit.allow(f"2001:db8:0:{network:x}::1")
    assert limit.allow("203.0.113.9"), "a genuine first install is refused: one /56 spent the whole limit"


def test_first_attempts_past_the_total_are_bounded_too() -> None:
    limit = InstallLimit(per_client=10, total=5, clock=lambda: 1000.0)
    allowed = sum(limit.allow(f"2001:db8:{n:x}::1") for n in range(1000))  # a thousand networks (/48s)
    assert allowed == 10  # the total, then as many first attempts: twice the total a window, at most


# --- the client's address: behind a proxy -----------------------------------------------------------------------


def test_the_forwarded_address_counts_only_behind_a_trusted_proxy() -> None:
    limit = InstallLimit(trusted_proxies=["10.0.0.0/8"])
    assert limit.client_address("10.1.2.3", "198.51.100.7, 10.9.9.9") == "198.51.100.7"
    assert limit.client_address("203.0.113.5", "198.51.100.7") == "203.0.113.5"  # anyone can send the header
    assert InstallLimit().client_address("10.1.2.3", "198.51.100.7") == "10.1.2.3"  # no proxy named: ignored
    assert limit.client_address("10.1.2.3", "10.2.2.2") == "10.1.2.3"  # nothing outside the proxies


def test_forwarded_hops_with_ports_and_mapped_proxies_are_read_as_addresses() -> None:
    limit = InstallLimit(per_client=1, total=100, trusted_proxies=["10.0.0.0/8"], clock=lambda: 1000.0)
    assert limit.client_address("::ffff:10.0.0.1", "9.9.9.9:1234") == "9.9.9.9"  # a dual-stack proxy is trusted
    assert limit.client_address("10.0.0.1", "[2001:db8::1]:443, 10.0.0.2") == "2001:db8::1"
    assert limit.client_address("10.0.0.1", "5.5.5.5, ") == "5.5.5.5"  # an empty hop is no address
    # Each source port is not a bucket of its own.
    allowed = sum(limit.allow(limit.client_address("10.0.0.1", f"9.9.9.9:{port}")) for port in range(1000, 1100))
    assert allowed == 1


def test_clients_behind_a_proxy_on_a_unix_socket_are_counted_apart() -> None:
    """Behind nginx on a Unix socket (uvicorn --uds, gunicorn --bind unix:) the socket has no peer address: the
    request's client is None, no trusted_proxies entry can name it, so X-Forwarded-For is ignored and every caller
    shares one bucket: ten forged installs a minute from anyone refuse every genuine install."""
    limit = InstallLimit(per_client=2, total=100, window=60, clock=lambda: 1000.0, trusted_proxies="unix:")
    attacker, genuine = "198.51.100.7", "203.0.113.9"
    assert [limit.allow(limit.client_address(None, attacker)) for _ in range(3)] == [True, True, False]
    assert limit.allow(limit.client_address(None, genuine)), "the genuine install shares the attacker's bucket"
