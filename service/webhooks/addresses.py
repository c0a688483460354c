"""Which URLs a webhook may be sent to: public http(s) addresses only, so that a webhook cannot be used to reach
this service's own network (SSRF).

Whoever registers a webhook chooses its URL, and the service then makes requests to it from inside its network:
without a check, `http://169.254.169.254/` would read the cloud metadata service (credentials included), and
`http://10.0.0.5:5432/` would probe the database. The check is on addresses, not names: a name is whatever its
DNS says, so it is resolved, and every address it resolves to must be allowed. The caller then connects to
exactly those addresses and never resolves the name again; a second lookup could answer differently (DNS
rebinding: public for the check, private for the connection).

Loopback and private addresses are refused unless the operator allows them (ALLOW_PRIVATE_SETTING: receivers on
the same network, tests). Link-local, multicast, reserved and every other non-public address are refused
whatever that says: nothing legitimate receives a webhook there, and link-local is where metadata services live.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Callable
from urllib.parse import SplitResult, urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# host and port in, the IP addresses (as strings) out; none when the name does not resolve.
Resolver = Callable[[str, int], list[str]]

ALLOW_PRIVATE_SETTING = "CLIPSWEEP_WEBHOOK_ALLOW_PRIVATE"
MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"http": 80, "https": 443}


class UnsafeUrl(ValueError):
    """A URL webhooks may not be sent to; the message says what is wrong with it and how to fix it."""


def _networks(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


# (what these addresses are, where they are, whether ALLOW_PRIVATE_SETTING lifts the refusal), first match wins.
# Spelled out rather than left to ipaddress's is_private/is_global, whose lists changed between Python releases.
_CATEGORIES = (
    ("a link-local address (where cloud metadata services such as 169.254.169.254 live)",
     _networks("169.254.0.0/16", "fe80::/10"), False),
    ("the unspecified address", _networks("0.0.0.0/32", "::/128"), False),
    ("a multicast address", _networks("224.0.0.0/4", "ff00::/8"), False),
    ("a reserved address", _networks("0.0.0.0/8", "240.0.0.0/4", "192.0.0.0/24", "fec0::/10"), False),
    ("an address reserved for documentation and benchmarks",
     _networks("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "198.18.0.0/15", "2001:db8::/32"), False),
    ("a loopback address", _networks("127.0.0.0/8", "::1/128"), True),
    ("a private address",
     _networks("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"), True),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def system_resolve(host: str, port: int) -> list[str]:
    """The distinct addresses the system resolver gives for `host`, in its order; none when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):  # UnicodeError: a label IDNA cannot encode
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_syntax(url: str) -> SplitResult:
    """`url` split, if it is an http or https URL with a host, no user name or password, a valid port and at
    most MAX_URL_LENGTH characters, all printable ASCII; else UnsafeUrl. Resolves nothing."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"webhook URLs are at most {MAX_URL_LENGTH} characters, this one has {len(url)}")
    if not url.isascii() or any(c <= " " or c == "\x7f" for c in url):
        raise UnsafeUrl("webhook URLs are printable ASCII without spaces: percent-encode the path and query, "
                        "and write an international host name in its xn-- form")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:  # a bad port or an unclosed [IPv6 literal
        raise UnsafeUrl(f"webhook URL is malformed ({error}): write it as https://host[:port]/path") from None
    if parts.scheme not in DEFAULT_PORTS:
        got = repr(parts.scheme) if parts.scheme else "no scheme"
        raise UnsafeUrl(f"webhook URLs must use http or https, got {got}")
    if "@" in parts.netloc:  # the user name and password themselves stay out of the message
        raise UnsafeUrl("webhook URLs may not hold a user name or password (user:pass@host): the receiver "
                        "authenticates webhooks by their signature")
    if not parts.hostname:
        raise UnsafeUrl("webhook URL has no host: write it as https://host[:port]/path")
    if port == 0:
        raise UnsafeUrl("webhook URL port must be from 1 to 65535, got 0")
    return parts


def resolve_checked(url: str, *, allow_private: bool,
                    resolve: Resolver = system_resolve) -> tuple[SplitResult, list[Address]]:
    """`url` split, and the addresses to connect to for it, once its syntax is checked and every address its
    host resolves to is allowed (loopback and private ones only with `allow_private`); else UnsafeUrl.

    An IP literal is its own address. IPv4-mapped IPv6 addresses come back as the IPv4 address they carry.
    Connect to these addresses and no others: resolving the name again could give a different answer.
    """
    parts = check_syntax(url)
    host = parts.hostname or ""
    literal = _is_literal(host)
    names = [host] if literal else resolve(host, parts.port or DEFAULT_PORTS[parts.scheme])
    if not names:
        raise UnsafeUrl(f"{host} does not resolve: check the host name in the webhook URL")
    addresses = [_checked(host, name, literal, allow_private) for name in names]
    return parts, list(dict.fromkeys(addresses))


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _checked(host: str, name: str, literal: bool, allow_private: bool) -> Address:
    """The address to connect to for `name`, one of the addresses `host` resolves to, if it may receive
    webhooks; else UnsafeUrl."""
    try:
        resolved = ipaddress.ip_address(name)
    except ValueError:
        raise UnsafeUrl(f"{host} resolves to {name!r}, which is not an IP address") from None
    for judged in _judged(resolved):
        category, liftable = _category(judged)
        if category is None or (liftable and allow_private):
            continue
        carries = f", which carries {judged}," if judged != resolved else ""
        what = f"{host}{carries} is {category}" if literal else f"{host} resolves to {name}{carries or ','} {category}"
        if liftable:
            raise UnsafeUrl(f"{what}: webhooks go to public addresses unless {ALLOW_PRIVATE_SETTING}=true")
        raise UnsafeUrl(f"{what}: webhooks never go there, whatever {ALLOW_PRIVATE_SETTING} says")
    # A mapped address reaches the IPv4 address it carries: connect to that one, over IPv4.
    if isinstance(resolved, ipaddress.IPv6Address) and resolved.ipv4_mapped:
        return resolved.ipv4_mapped
    return resolved


def _judged(address: Address) -> list[Address]:
    """The addresses a packet to `address` ends up at, as far as the address tells: an IPv4-mapped address is
    the IPv4 address it carries, NAT64 translates to the IPv4 address it carries (its prefix says nothing), and a
    6to4 address is tunnelled to its IPv4 gateway."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return [address.ipv4_mapped]
        if address in _NAT64:
            return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
        if address.sixtofour is not None:
            return [address, address.sixtofour]
    return [address]


def _category(address: Address) -> tuple[str | None, bool]:
    """What kind of non-public address `address` is and whether allow_private lifts that; (None, True) if public."""
    scopeless = ipaddress.ip_address(str(address).split("%")[0])  # a zone id (fe80::1%eth0) says nothing here
    for category, networks, liftable in _CATEGORIES:
        if any(scopeless in network for network in networks):
            return category, liftable
    if scopeless.is_global and not (scopeless.is_multicast or scopeless.is_reserved):
        return None, True
    return "not a public address", False
