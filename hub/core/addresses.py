"""Which addresses push delivery may reach: the SSRF policy (research/delivery.md §10).

A stream's ``endpoint_url`` is chosen by a client, so without a policy the hub could be
made to POST to its own admin port, a database on the private network or the cloud
metadata service. The deny table is explicit rather than ``ipaddress.is_global`` and
friends: those predicates miss ranges (CGNAT, NAT64, 6to4) and their tables have changed
between CPython patch releases. IPv6 forms that embed an IPv4 address (v4-mapped, NAT64,
6to4) are unwrapped and judged by the embedded address, so ``::ffff:127.0.0.1`` is as
blocked as ``127.0.0.1``.

This module only judges addresses and URLs; resolving names and pinning the checked
address for the connection is the egress layer's job (``hub.delivery.push.egress``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from hub.errors import InvalidRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

PRIVATE_SETTING = "allow_private_endpoints (--allow-private-endpoints)"
CIDR_SETTING = "push_allow_cidrs"


def _table(*rows: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(cidr), rule) for cidr, rule in rows)


# First match wins, so the narrow metadata entries come before the ranges that hold them.
DENY_V4 = _table(
    ("169.254.169.254/32", "cloud-metadata"),  # AWS, GCP, Azure, OpenStack instance metadata
    ("0.0.0.0/8", "this-network"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "cgnat"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "ietf-protocol"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4-relay"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),  # includes the broadcast address 255.255.255.255
)
DENY_V6 = _table(
    ("fd00:ec2::254/128", "cloud-metadata"),  # AWS instance metadata over IPv6
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "ipv4-compatible"),  # deprecated (RFC 4291 §2.5.5.1); never a real destination
    ("64:ff9b:1::/48", "nat64"),  # local-use NAT64 (RFC 8215): translates to anything
    ("100::/64", "discard"),
    ("2001::/32", "teredo"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "srv6"),
    ("fc00::/7", "unique-local"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
)
# allow_private_endpoints is for development and on-premises receivers; it never opens
# these. Metadata services hand out cloud credentials, so they stay blocked even then.
NEVER_LIFTED = frozenset({"cloud-metadata", "multicast", "unspecified", "this-network", "reserved"})


def _mapped(a: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    return a.ipv4_mapped


def _nat64(a: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    return ipaddress.IPv4Address(int(a) & 0xFFFFFFFF)


def _six_to_four(a: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    return a.sixtofour


# IPv6 prefixes whose addresses stand for an IPv4 address; judged by the IPv4 address.
Extractor = Callable[[ipaddress.IPv6Address], ipaddress.IPv4Address | None]
EMBEDDING: tuple[tuple[ipaddress.IPv6Network, str, Extractor], ...] = (
    (ipaddress.IPv6Network("::ffff:0:0/96"), "ipv4-mapped", _mapped),
    (ipaddress.IPv6Network("64:ff9b::/96"), "nat64", _nat64),
    (ipaddress.IPv6Network("2002::/16"), "6to4", _six_to_four),
)


def parse_address(value: str | IPAddress) -> IPAddress | None:
    """An address without any IPv6 scope (``fe80::1%eth0`` -> ``fe80::1``), or None."""
    text = str(value).strip()
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    for network, form, extract in EMBEDDING:
        if address in network:
            v4 = extract(address)
            if v4 is not None:
                return form, v4
    return None


def deny_rule(address: IPAddress) -> tuple[str, IPNetwork] | None:
    """The deny-table entry ``address`` falls in (its own table only; no unwrapping)."""
    table = DENY_V4 if address.version == 4 else DENY_V6
    for network, rule in table:
        if address in network:
            return rule, network
    return None


def _article(rule: str) -> str:
    return "an" if rule[0] in "aeio" or rule == "unspecified" else "a"


@dataclass(frozen=True)
class AddressPolicy:
    allow_private: bool = False
    allow_cidrs: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def from_strings(cls, allow_private: bool, cidrs: Iterable[str]) -> AddressPolicy:
        if isinstance(cidrs, str):  # one setting value such as "10.20.0.0/16, 192.168.5.0/24"
            cidrs = [part for part in cidrs.split(",") if part.strip()]
        networks: list[IPNetwork] = []
        for raw in cidrs:
            text = raw.strip()
            try:
                # strict: "10.0.0.1/8" is almost certainly a typo for 10.0.0.0/8 or 10.0.0.1/32.
                networks.append(ipaddress.ip_network(text, strict=True))
            except ValueError as exc:
                raise ValueError(f"{text!r} is not a CIDR range such as 10.20.0.0/16 ({exc})") from None
        return cls(allow_private, tuple(networks))

    def _allowed_explicitly(self, *addresses: IPAddress) -> bool:
        return any(a in net for a in addresses for net in self.allow_cidrs if a.version == net.version)

    def blocked_reason(self, address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
        """None if push may connect to ``address``; otherwise why not and which setting lifts it."""
        parsed = parse_address(address)
        if parsed is None:
            return f"{str(address)[:100]!r} is not an IP address"
        subject, via = parsed, ""
        if isinstance(parsed, ipaddress.IPv6Address):
            found = embedded_ipv4(parsed)
            if found is not None:
                form, subject = found
                via = f" ({form} form of {subject})"
        if self._allowed_explicitly(parsed, subject):
            return None
        hit = deny_rule(subject)
        if hit is None:
            return None
        rule, network = hit
        if self.allow_private and rule not in NEVER_LIFTED:
            return None
        lift = f"add the range to {CIDR_SETTING} to allow it"
        if rule not in NEVER_LIFTED:
            lift = f"set {PRIVATE_SETTING} or {lift}"
        return f"address {parsed}{via} is in {_article(rule)} {rule} range ({network}); {lift}"

    def check_url(self, url: str) -> tuple[str, str, int]:
        """Check an ``endpoint_url`` without any network access; return (scheme, host, port).

        An IP-literal host is judged here; a name is judged after resolution, on every
        address it resolves to, by the egress layer.
        """
        if any(ch.isspace() or not ch.isprintable() for ch in url):
            # urlsplit silently drops tabs and newlines; refuse rather than guess what was meant.
            raise InvalidRequest("endpoint_url must not contain spaces or control characters")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise InvalidRequest(f"endpoint_url is not a valid URL: {exc}") from None
        scheme = parts.scheme
        if scheme != "https" and not (scheme == "http" and self.allow_private):
            raise InvalidRequest(
                f"endpoint_url must use https (got {scheme or 'no scheme'!r}); "
                f"plain http is accepted only with {PRIVATE_SETTING}"
            )
        if "@" in parts.netloc:
            raise InvalidRequest("credentials in the URL are not allowed; use authorization_header")
        if "#" in url:
            raise InvalidRequest("endpoint_url must not have a fragment")
        host = parts.hostname
        if not host:
            raise InvalidRequest("endpoint_url has no host")
        if port == 0:
            raise InvalidRequest("endpoint_url has port 0")
        literal = parse_address(host)
        if literal is not None:
            reason = self.blocked_reason(literal)
            if reason:
                raise InvalidRequest(f"endpoint_url refused: {reason}")
        elif "%" in host:
            raise InvalidRequest("endpoint_url host must not be percent-encoded")
        elif _ends_in_a_number(host):
            # "127.1", "2130706433" or "0x7f000001" are IPv4 addresses to a resolver and
            # to browsers (WHATWG URL): insist on the form that is checked, and is readable.
            raise InvalidRequest(
                f"endpoint_url host {host!r} looks like an IPv4 address; write it as a.b.c.d"
            )
        return scheme, host, port if port is not None else (443 if scheme == "https" else 80)


def _ends_in_a_number(host: str) -> bool:
    labels = host.split(".")
    if labels[-1] == "" and len(labels) > 1:
        labels.pop()
    last = labels[-1]
    if last.isascii() and last.isdigit():
        return True
    return last[:2] == "0x" and all(c in "0123456789abcdef" for c in last[2:])
