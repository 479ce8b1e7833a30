"""Where the hub may send: resolve a push endpoint once, check every address, pin one.

Checking a host name and letting the HTTP client resolve it again leaves a DNS-rebinding
window (research/delivery.md §10); so the URL the sender uses carries the checked IP,
with the original name in ``Host`` and in httpx's ``sni_hostname`` extension for TLS.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from hub.core.addresses import AddressPolicy
from hub.errors import InvalidRequest

Resolver = Callable[[str, int], Awaitable[list[str]]]
LITERAL_PIN_CACHE = 1024  # endpoints with an IP-literal host whose checks are remembered


class BlockedEndpoint(InvalidRequest):
    """The endpoint resolves to an address the policy refuses (the description says which rule)."""


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class PinnedEndpoint:
    url: str  # the URL to connect to, host replaced by the checked address
    host: str  # the original host name, for Host and TLS SNI
    address: str
    host_header: str


class EndpointGuard:
    def __init__(self, policy: AddressPolicy, resolver: Resolver = system_resolver) -> None:
        self.policy = policy
        self.resolver = resolver
        self._literal_pins: dict[str, PinnedEndpoint] = {}

    async def pin(self, url: str) -> PinnedEndpoint:
        """Resolve ``url``'s host, refuse it if ANY address is blocked, and pin the first."""
        cached = self._literal_pins.get(url)
        if cached is not None:
            return cached
        scheme, host, port = self.policy.check_url(url)
        literal_host = True
        try:
            ipaddress.ip_address(host)
            addresses = [host]
        except ValueError:
            literal_host = False
            try:
                addresses = await self.resolver(host, port)
            except (OSError, UnicodeError) as exc:
                raise BlockedEndpoint(f"cannot resolve {host}: {exc}") from None
        if not addresses:
            raise BlockedEndpoint(f"{host} has no addresses")
        for address in addresses:
            # All of them: a name that resolves to one public and one private address is refused.
            reason = self.policy.blocked_reason(address)
            if reason:
                raise BlockedEndpoint(f"endpoint {host} refused: {reason}")
        address = addresses[0]
        parts = urlsplit(url)
        literal = f"[{address}]" if ":" in address else address
        netloc = f"{literal}:{parts.port}" if parts.port else literal
        default_port = 443 if scheme == "https" else 80
        host_header = host if port == default_port else f"{host}:{port}"
        if ":" in host and not host.startswith("["):
            host_header = f"[{host}]" if port == default_port else f"[{host}]:{port}"
        pinned = PinnedEndpoint(
            url=urlunsplit((scheme, netloc, parts.path or "/", parts.query, "")),
            host=host,
            address=address,
            host_header=host_header,
        )
        if literal_host:
            # No DNS behind an IP literal: the same URL pins the same way every time (the policy
            # does not change while the hub runs), so the checks need not be redone per attempt.
            if len(self._literal_pins) >= LITERAL_PIN_CACHE:
                self._literal_pins.pop(next(iter(self._literal_pins)))
            self._literal_pins[url] = pinned
        return pinned
