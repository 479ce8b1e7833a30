"""Where push delivery may connect: the SSRF address policy (research/delivery.md §10, R-PUSH-9).

A client picks a stream's ``endpoint_url``, so the hub must not POST to its own loopback,
the private network or a cloud metadata service. The deny table is explicit; IPv6 forms
that embed an IPv4 address are judged by the IPv4 address; every refusal names the rule
and the setting that lifts it.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.core.addresses import DENY_V4, DENY_V6, NEVER_LIFTED, AddressPolicy
from hub.errors import InvalidRequest

STRICT = AddressPolicy()
DEV = AddressPolicy(allow_private=True)

# One example per deny-table entry, and the rule it must be refused under.
BLOCKED = [
    ("0.1.2.3", "this-network"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "cgnat"),
    ("100.127.255.254", "cgnat"),
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("169.254.1.1", "link-local"),
    ("169.254.169.254", "cloud-metadata"),
    ("192.0.0.8", "ietf-protocol"),
    ("192.0.2.10", "documentation"),
    ("198.51.100.10", "documentation"),
    ("203.0.113.10", "documentation"),
    ("192.88.99.1", "6to4-relay"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.1", "benchmarking"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("::7f00:1", "ipv4-compatible"),
    ("64:ff9b:1::a", "nat64"),
    ("100::1", "discard"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("fc00::1", "unique-local"),
    ("fd12:3456::1", "unique-local"),
    ("fd00:ec2::254", "cloud-metadata"),
    ("fe80::1", "link-local"),
    ("febf::1", "link-local"),
    ("ff02::1", "multicast"),
    ("5f00::1", "srv6"),
    ("2001::1", "teredo"),
    # IPv6 spellings of IPv4 addresses are judged by the IPv4 address inside.
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:a9fe:a9fe", "cloud-metadata"),
    ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
    ("64:ff9b::7f00:1", "loopback"),
    ("2002:a00:1::", "private"),  # 6to4 of 10.0.0.1
    ("2002:a9fe:a9fe::1", "cloud-metadata"),
]

PUBLIC = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.0",  # just above CGNAT
    "172.32.0.1",  # just above 172.16/12
    "198.20.0.1",  # just above benchmarking
    "223.255.255.255",
    "2606:4700::1111",
    "2001:4860:4860::8888",
    "::ffff:93.184.216.34",  # v4-mapped public
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8 (DNS64 networks synthesise these)
    "2002:808:808::1",  # 6to4 of 8.8.8.8
]


@pytest.mark.parametrize(("address", "rule"), BLOCKED)
def test_every_deny_rule_blocks_its_range(address: str, rule: str) -> None:
    reason = STRICT.blocked_reason(address)
    assert reason is not None
    assert f" {rule} range (" in reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert STRICT.blocked_reason(address) is None


def test_every_table_entry_has_an_example() -> None:
    examples = [ipaddress.ip_address(a) for a, _ in BLOCKED]
    for network, rule in (*DENY_V4, *DENY_V6):
        assert any(a in network for a in examples), f"no example for {rule} {network}"


def test_the_refusal_names_the_rule_the_range_and_both_settings() -> None:
    assert STRICT.blocked_reason("10.1.2.3") == (
        "address 10.1.2.3 is in a private range (10.0.0.0/8); set allow_private_endpoints "
        "(--allow-private-endpoints) or add the range to push_allow_cidrs to allow it"
    )


def test_an_embedded_address_is_named_in_the_refusal() -> None:
    assert STRICT.blocked_reason("64:ff9b::a00:1") == (
        "address 64:ff9b::a00:1 (nat64 form of 10.0.0.1) is in a private range (10.0.0.0/8); "
        "set allow_private_endpoints (--allow-private-endpoints) or add the range to push_allow_cidrs "
        "to allow it"
    )


def test_a_rule_allow_private_cannot_lift_does_not_suggest_it() -> None:
    assert STRICT.blocked_reason("169.254.169.254") == (
        "address 169.254.169.254 is in a cloud-metadata range (169.254.169.254/32); "
        "add the range to push_allow_cidrs to allow it"
    )


# --- every blocked IPv4 range, in every IPv6 disguise --------------------------------------------


def _disguises(v4: ipaddress.IPv4Address) -> list[str]:
    n = int(v4)
    return [
        f"::ffff:{v4}",
        str(ipaddress.IPv6Address((0x0064FF9B << 96) | n)),  # NAT64 64:ff9b::/96
        str(ipaddress.IPv6Address((0x2002 << 112) | (n << 80) | 1)),  # 6to4 2002:AABB:CCDD::1
    ]


@settings(database=None, max_examples=300)
@given(entry=st.sampled_from(DENY_V4), data=st.data())
def test_v4_mapped_nat64_and_6to4_forms_of_every_blocked_ipv4_range_are_blocked(
    entry: tuple[ipaddress.IPv4Network, str], data: st.DataObject
) -> None:
    network, _ = entry
    v4 = ipaddress.IPv4Address(
        data.draw(st.integers(int(network.network_address), int(network.broadcast_address)))
    )
    direct = STRICT.blocked_reason(v4)
    assert direct is not None
    rule = direct.split(" range (")[0].rsplit(" ", 1)[1]
    for form in _disguises(v4):
        reason = STRICT.blocked_reason(form)
        assert reason is not None, form
        assert f" {rule} range (" in reason


# --- allow_private_endpoints and push_allow_cidrs ------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["10.1.2.3", "192.168.1.1", "127.0.0.1", "::1", "fd12::1", "fe80::1", "169.254.1.1", "::ffff:10.0.0.1"],
)
def test_allow_private_opens_private_loopback_and_link_local_ranges(address: str) -> None:
    assert STRICT.blocked_reason(address) is not None
    assert DEV.blocked_reason(address) is None


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",  # cloud credentials, even in development
        "fd00:ec2::254",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",
        "224.0.0.1",
        "ff02::1",
        "::",
        "0.0.0.0",
        "255.255.255.255",
        "240.0.0.1",
    ],
)
def test_allow_private_never_opens_metadata_multicast_or_unroutable_addresses(address: str) -> None:
    assert DEV.blocked_reason(address) is not None


def test_never_lifted_rules_are_the_documented_ones() -> None:
    assert {"cloud-metadata", "multicast", "unspecified", "this-network", "reserved"} == NEVER_LIFTED


def test_an_allowed_cidr_opens_exactly_that_range() -> None:
    policy = AddressPolicy.from_strings(False, ["127.0.0.1/32", " 10.20.0.0/16 "])
    assert policy.blocked_reason("127.0.0.1") is None
    assert policy.blocked_reason("::ffff:127.0.0.1") is None  # the same address, v4-mapped
    assert policy.blocked_reason("10.20.3.4") is None
    assert policy.blocked_reason("127.0.0.2") is not None
    assert policy.blocked_reason("10.21.0.1") is not None


def test_an_explicit_cidr_can_open_even_a_metadata_address() -> None:
    # Deliberate and visible in configuration, unlike the blanket development switch.
    policy = AddressPolicy.from_strings(True, ["169.254.169.254/32", "fd00:ec2::/64"])
    assert policy.blocked_reason("169.254.169.254") is None
    assert policy.blocked_reason("fd00:ec2::254") is None


def test_cidrs_may_come_as_one_comma_separated_string() -> None:
    policy = AddressPolicy.from_strings(False, "127.0.0.1/32, ::1/128,")
    assert policy.allow_cidrs == (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128"))


@pytest.mark.parametrize("cidr", ["10.0.0.0/33", "not-a-cidr", "10.0.0.1/8", ""])
def test_a_bad_cidr_is_named(cidr: str) -> None:
    with pytest.raises(ValueError, match=repr(cidr).replace(".", r"\.")):
        AddressPolicy.from_strings(False, ["127.0.0.1/32", cidr])


# --- parsing -------------------------------------------------------------------------------------


def test_a_scoped_ipv6_address_is_judged_without_its_scope() -> None:
    reason = STRICT.blocked_reason("fe80::1%eth0")
    assert reason is not None
    assert "link-local" in reason
    assert STRICT.blocked_reason(ipaddress.IPv6Address("fe80::1%2")) is not None
    assert DEV.blocked_reason("fe80::1%eth0") is None


def test_address_objects_are_accepted() -> None:
    assert STRICT.blocked_reason(ipaddress.IPv4Address("10.0.0.1")) is not None
    assert STRICT.blocked_reason(ipaddress.IPv6Address("2606:4700::1111")) is None


@pytest.mark.parametrize("value", ["example.com", "010.0.0.1", "1.2.3", "", "[::1]", "10.0.0.0/8"])
def test_something_that_is_not_an_ip_address_is_refused(value: str) -> None:
    reason = STRICT.blocked_reason(value)
    assert reason is not None
    assert "not an IP address" in reason
    assert DEV.blocked_reason(value) is not None


# --- check_url -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://receiver.example.com/ssf/events", ("https", "receiver.example.com", 443)),
        ("https://Receiver.Example.COM:8443/x?y=1", ("https", "receiver.example.com", 8443)),
        ("https://receiver.example.com./", ("https", "receiver.example.com.", 443)),
        ("https://93.184.216.34/events", ("https", "93.184.216.34", 443)),
        ("https://[2606:4700::1111]:444/", ("https", "2606:4700::1111", 444)),
        ("https://v1.example/", ("https", "v1.example", 443)),
    ],
)
def test_check_url_returns_scheme_host_and_port(url: str, expected: tuple[str, str, int]) -> None:
    assert STRICT.check_url(url) == expected


def test_plain_http_needs_the_development_switch() -> None:
    with pytest.raises(InvalidRequest, match=r"https.*allow_private_endpoints"):
        STRICT.check_url("http://receiver.example.com/")
    assert DEV.check_url("http://localhost:8080/ev") == ("http", "localhost", 8080)
    assert DEV.check_url("http://receiver.example.com/") == ("http", "receiver.example.com", 80)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://receiver.example.com/", "https"),
        ("receiver.example.com/events", "https"),
        (
            "https://user:pw@receiver.example.com/",
            "credentials in the URL are not allowed; use authorization_header",
        ),
        ("https://token@receiver.example.com/", "credentials"),
        ("https://receiver.example.com/#frag", "fragment"),
        ("https://receiver.example.com/#", "fragment"),
        ("https:///events", "no host"),
        ("https://:443/events", "no host"),
        ("https://receiver.example.com:99999/", "not a valid URL"),
        ("https://receiver.example.com:http/", "not a valid URL"),
        ("https://receiver.example.com:0/", "port 0"),
        ("https://[::1/", "not a valid URL"),
        ("https://receiver.example.com/a b", "spaces"),
        ("https://receiver.exa\tmple.com/", "control characters"),
        ("https://receiver.example.com/\n", "control characters"),
        ("https://%31%32%37.0.0.1/", "percent-encoded"),
        ("https://127.1/", "looks like an IPv4 address"),
        ("https://2130706433/", "looks like an IPv4 address"),
        ("https://0x7f000001/", "looks like an IPv4 address"),
        ("https://0X7F.0.0.1./", "looks like an IPv4 address"),
    ],
)
def test_check_url_refuses_bad_urls(url: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message) as caught:
        STRICT.check_url(url)
    assert caught.value.status_code == 400


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("https://10.0.0.1/", "private"),
        ("https://127.0.0.1:8443/", "loopback"),
        ("https://169.254.169.254/latest/meta-data/", "cloud-metadata"),
        ("https://[::1]/", "loopback"),
        ("https://[::ffff:127.0.0.1]/", "loopback"),
        ("https://[fd00:ec2::254]/", "cloud-metadata"),
        ("https://[fe80::1%25eth0]/", "link-local"),
    ],
)
def test_an_ip_literal_host_is_judged_at_once(url: str, rule: str) -> None:
    with pytest.raises(InvalidRequest, match=f"endpoint_url refused: address .* {rule} range"):
        STRICT.check_url(url)


def test_the_development_switch_lets_ip_literals_through_but_not_metadata() -> None:
    assert DEV.check_url("http://127.0.0.1:8080/") == ("http", "127.0.0.1", 8080)
    with pytest.raises(InvalidRequest, match="cloud-metadata"):
        DEV.check_url("http://169.254.169.254/")


def test_an_allowed_cidr_lets_its_literal_through() -> None:
    policy = AddressPolicy.from_strings(False, ["127.0.0.1/32"])
    assert policy.check_url("https://127.0.0.1:9443/ev") == ("https", "127.0.0.1", 9443)
