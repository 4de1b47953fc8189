"""Which URLs PixSim may contact: https to public addresses, plus loopback origins the user configured.

Every URL (and every redirect target) is checked *before* any connection is made, by resolving its
host and refusing private, link-local, loopback and otherwise special addresses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from core.errors import UnsafeUrl
from core.redact import redact_text

Origin = tuple[str, str, int]  # (scheme, host, port)


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def origin_of(url: str) -> Origin:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally routable unicast: not private, loopback, link-local, shared, reserved or multicast."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class UrlPolicy:
    """``trusted_origins``: local servers the user configured (a ComfyUI on 127.0.0.1:8188, say).

    They may use plain http and resolve to loopback; nothing else may.
    """

    trusted_origins: frozenset[Origin] = field(default_factory=frozenset)

    @classmethod
    def trusting(cls, urls: Iterable[str]) -> UrlPolicy:
        return cls(frozenset(origin_of(u) for u in urls))

    def with_trusted(self, *urls: str) -> UrlPolicy:
        return UrlPolicy(self.trusted_origins | {origin_of(u) for u in urls})

    async def check(self, url: str) -> list[Address]:
        """Raise ``UnsafeUrl`` unless ``url`` may be contacted. Resolves the host (no connection) and
        returns the vetted addresses: connecting to exactly these (not to a second lookup's answer)
        leaves no window for DNS rebinding."""
        parts = urlsplit(url)
        scheme, host, port = origin_of(url)
        shown = redact_text(url)
        if not host:
            raise UnsafeUrl(f"Refusing {shown}: the URL has no host.")
        if parts.username or parts.password:
            raise UnsafeUrl(f"Refusing {shown}: credentials in URLs are not accepted.")
        trusted = (scheme, host, port) in self.trusted_origins
        if trusted:
            if scheme not in ("http", "https"):
                raise UnsafeUrl(f"Refusing {shown}: only http and https are supported.")
            addresses = await _resolve(host, port)
            if not all(a.is_loopback or _is_public(a) for a in addresses):
                raise UnsafeUrl(f"Refusing {shown}: a configured local server must be on this machine.")
            return addresses
        if scheme != "https":
            raise UnsafeUrl(
                f"Refusing {shown}: only https URLs are allowed (plain http only for local servers you "
                "configured, such as ComfyUI)."
            )
        addresses = await _resolve(host, port)
        bad = [str(a) for a in addresses if not _is_public(a)]
        if bad:
            raise UnsafeUrl(
                f"Refusing {shown}: {host} resolves to a private, loopback or link-local address "
                f"({', '.join(sorted(set(bad)))}), which a remote provider must never send us to."
            )
        return addresses


async def _resolve(host: str, port: int) -> list[Address]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UnsafeUrl(f"Cannot resolve {host}: {exc}") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
