"""Which URLs webhooks may go to, with a resolver that is a dict (names under .test never reach DNS), and one
lookup through the system resolver."""

from __future__ import annotations

import ipaddress
import re

import pytest

from service.webhooks.addresses import MAX_URL_LENGTH, UnsafeUrl, check_syntax, resolve_checked, system_resolve

DNS = {
    "public.test": ["93.184.216.34"],
    "public6.test": ["2606:2800:220:1:248:1893:25c8:1946", "93.184.216.34"],
    "metadata.test": ["169.254.169.254"],
    "intranet.test": ["10.0.0.1"],
    "mixed.test": ["93.184.216.34", "10.0.0.1"],
    "mixed-metadata.test": ["93.184.216.34", "169.254.169.254"],
    "loop.test": ["127.0.0.1", "::1"],
    "mapped-private.test": ["::ffff:192.168.1.1"],
    "mapped-public.test": ["::ffff:93.184.216.34"],
    "mapped-metadata.test": ["::ffff:169.254.169.254"],
    "ula.test": ["fd12:3456::1"],
    "linklocal6.test": ["fe80::1"],
    "cgnat.test": ["100.64.0.1"],
    "garbage.test": ["not-an-address"],
}
looked_up: list[str] = []


def resolve(host: str, port: int) -> list[str]:
    looked_up.append(host)
    return DNS.get(host, [])


def addresses(url: str, allow_private: bool = False) -> list[str]:
    return [str(address) for address in resolve_checked(url, allow_private=allow_private, resolve=resolve)[1]]


def refusal(url: str, allow_private: bool = False) -> str:
    with pytest.raises(UnsafeUrl) as raised:
        resolve_checked(url, allow_private=allow_private, resolve=resolve)
    return str(raised.value)


@pytest.mark.parametrize(("url", "expected"), [
    ("https://public.test/hooks?x=1", ["93.184.216.34"]),
    ("http://public6.test:8080/", ["2606:2800:220:1:248:1893:25c8:1946", "93.184.216.34"]),
    ("https://93.184.216.34/", ["93.184.216.34"]),
    ("https://[2606:2800:220:1:248:1893:25c8:1946]:8443/", ["2606:2800:220:1:248:1893:25c8:1946"]),
    ("https://mapped-public.test/", ["93.184.216.34"]),  # unwrapped: connect over IPv4
    ("https://[::ffff:93.184.216.34]/", ["93.184.216.34"]),
    ("HTTPS://PUBLIC.TEST/", ["93.184.216.34"]),
])
def test_public_addresses_are_allowed(url: str, expected: list[str]) -> None:
    assert addresses(url) == expected


def test_the_split_url_comes_back_with_the_addresses() -> None:
    parts, found = resolve_checked("https://public.test:8443/a?b=1", allow_private=False, resolve=resolve)
    assert (parts.scheme, parts.hostname, parts.port, parts.path, parts.query) == ("https", "public.test", 8443,
                                                                                   "/a", "b=1")
    assert found == [ipaddress.ip_address("93.184.216.34")]


@pytest.mark.parametrize("url", [
    "http://metadata.test/latest/meta-data/", "http://169.254.169.254/", "http://[fe80::1]/",
    "http://linklocal6.test/", "http://mapped-metadata.test/", "http://[::ffff:169.254.169.254]/",
    "http://mixed-metadata.test/",
])
@pytest.mark.parametrize("allow_private", [False, True])
def test_link_local_is_refused_even_where_private_is_allowed(url: str, allow_private: bool) -> None:
    message = refusal(url, allow_private)
    assert "link-local" in message and "webhooks never go there" in message


@pytest.mark.parametrize(("url", "kind"), [
    ("http://0.0.0.0/", "unspecified"), ("http://[::]/", "unspecified"), ("http://0.1.2.3/", "reserved"),
    ("http://224.0.0.1/", "multicast"), ("http://[ff02::1]/", "multicast"), ("http://240.0.0.1/", "reserved"),
    ("http://255.255.255.255/", "reserved"), ("http://192.0.2.1/", "documentation"),
    ("http://198.18.0.1/", "benchmarks"), ("http://[2001:db8::1]/", "documentation"),
    ("http://[::a00:1]/", "not a public address"),  # IPv4-compatible, deprecated
])
@pytest.mark.parametrize("allow_private", [False, True])
def test_other_non_public_addresses_are_always_refused(url: str, kind: str, allow_private: bool) -> None:
    message = refusal(url, allow_private)
    assert kind in message and "CLIPSWEEP_WEBHOOK_ALLOW_PRIVATE says" in message


@pytest.mark.parametrize(("url", "kind", "allowed"), [
    ("http://intranet.test/", "a private address", ["10.0.0.1"]),
    ("http://10.1.2.3/", "a private address", ["10.1.2.3"]),
    ("http://172.16.5.4/", "a private address", ["172.16.5.4"]),
    ("http://192.168.1.1/", "a private address", ["192.168.1.1"]),
    ("http://cgnat.test/", "a private address", ["100.64.0.1"]),
    ("http://ula.test/", "a private address", ["fd12:3456::1"]),
    ("http://mapped-private.test/", "a private address", ["192.168.1.1"]),
    ("http://[::ffff:10.0.0.1]/", "a private address", ["10.0.0.1"]),
    ("http://[2002:a00:1::]/", "a private address", ["2002:a00:1::"]),  # 6to4 through a private gateway
    ("http://[64:ff9b::a00:1]/", "a private address", ["64:ff9b::a00:1"]),  # NAT64 to a private address
    ("http://loop.test:8000/", "a loopback address", ["127.0.0.1", "::1"]),
    ("http://127.0.0.1:8000/", "a loopback address", ["127.0.0.1"]),
    ("http://127.8.9.10/", "a loopback address", ["127.8.9.10"]),
    ("http://[::1]:8000/", "a loopback address", ["::1"]),
])
def test_loopback_and_private_are_refused_unless_allowed(url: str, kind: str, allowed: list[str]) -> None:
    message = refusal(url)
    assert kind in message and "unless CLIPSWEEP_WEBHOOK_ALLOW_PRIVATE=true" in message
    assert addresses(url, allow_private=True) == allowed


def test_the_message_names_the_host_and_the_address() -> None:
    assert refusal("https://intranet.test/") == (
        "intranet.test resolves to 10.0.0.1, a private address: webhooks go to public addresses unless "
        "CLIPSWEEP_WEBHOOK_ALLOW_PRIVATE=true")
    assert refusal("https://10.0.0.1/").startswith("10.0.0.1 is a private address")
    assert refusal("https://[::ffff:10.0.0.1]/").startswith("::ffff:10.0.0.1, which carries 10.0.0.1, is a private")


def test_one_private_address_among_public_ones_refuses_the_name() -> None:
    assert "mixed.test resolves to 10.0.0.1, a private address" in refusal("https://mixed.test/")
    assert addresses("https://mixed.test/", allow_private=True) == ["93.184.216.34", "10.0.0.1"]


def test_nat64_of_a_public_address_is_allowed() -> None:
    assert addresses("http://[64:ff9b::5db8:d822]/") == ["64:ff9b::5db8:d822"]


def test_a_name_that_does_not_resolve_is_refused() -> None:
    assert refusal("https://nowhere.test/") == "nowhere.test does not resolve: check the host name in the webhook URL"


def test_a_resolver_answer_that_is_not_an_address_is_refused() -> None:
    assert "not an IP address" in refusal("https://garbage.test/")


def test_a_literal_is_not_looked_up() -> None:
    looked_up.clear()
    addresses("https://93.184.216.34/")
    addresses("https://[::1]/", allow_private=True)
    assert looked_up == []


@pytest.mark.parametrize(("url", "says"), [
    ("ftp://public.test/", "must use http or https, got 'ftp'"),
    ("file:///etc/passwd", "must use http or https, got 'file'"),
    ("gopher://public.test:70/", "must use http or https"),
    ("//public.test/x", "must use http or https, got no scheme"),
    ("public.test/x", "must use http or https, got no scheme"),
    ("http:///path", "has no host"),
    ("http://:80/", "has no host"),
    ("http://user:hunter2@public.test/", "may not hold a user name or password"),
    ("http://@public.test/", "may not hold a user name or password"),
    ("http://public.test:0/", "port must be from 1 to 65535"),
    ("http://public.test:65536/", "malformed"),
    ("http://public.test:http/", "malformed"),
    ("http://[::1/", "malformed"),
    ("http://public.test/a b", "printable ASCII"),
    ("http://public.test/\r\nX-Injected: 1", "printable ASCII"),
    ("http://bücher.test/", "xn-- form"),
    ("https://public.test/" + "a" * MAX_URL_LENGTH, f"at most {MAX_URL_LENGTH} characters"),
])
def test_bad_syntax_is_refused_before_any_lookup(url: str, says: str) -> None:
    looked_up.clear()
    with pytest.raises(UnsafeUrl, match=re.escape(says)):
        check_syntax(url)
    assert says in refusal(url, allow_private=True)
    assert looked_up == []


def test_the_password_stays_out_of_the_message() -> None:
    assert "hunter2" not in refusal("https://user:hunter2@public.test/")


def test_a_url_of_the_longest_length_passes() -> None:
    url = "https://public.test/"
    check_syntax(url + "a" * (MAX_URL_LENGTH - len(url)))


def test_unsafe_url_is_a_value_error() -> None:
    assert issubclass(UnsafeUrl, ValueError)


def test_localhost_through_the_system_resolver_is_loopback_and_refused() -> None:
    found = system_resolve("localhost", 80)
    assert found and all(ipaddress.ip_address(address).is_loopback for address in found)
    with pytest.raises(UnsafeUrl, match="localhost resolves to .*, a loopback address"):
        resolve_checked("http://localhost:8000/", allow_private=False)
    _, allowed = resolve_checked("http://localhost:8000/", allow_private=True)
    assert allowed and all(address.is_loopback for address in allowed)


def test_the_system_resolver_gives_nothing_for_a_name_that_cannot_exist() -> None:
    # .invalid never resolves (RFC 6761), and a name too long for DNS fails before any query.
    assert system_resolve("x" * 300 + ".invalid", 80) == []
