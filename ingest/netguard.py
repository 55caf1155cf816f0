"""Private-network guard: a feed must not be able to make us fetch internal services.

Every URL (and every redirect hop) is resolved before it is fetched, and a
host that resolves to a loopback, private, link-local, reserved, multicast or
unspecified address is refused, unless ``allow_private_networks`` is set (local
tests and demos). Resolution happens again inside the HTTP client, so a DNS
answer that changes between the two look-ups (rebinding) is not covered here;
a network-level egress policy is the complete answer to that.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from ingest.errors import IngestPermanent, IngestTransient


def is_blocked_address(address: str) -> bool:
    """True for addresses a public news fetcher has no business reaching."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or not ip.is_global
    )


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise IngestPermanent("bad_url", f"not an absolute http(s) URL: {url[:200]}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise IngestPermanent("bad_url", f"invalid port in {url[:200]}") from None
    return parts.hostname, port


def _check(url: str, host: str, infos: list[Any]) -> None:
    for info in infos:
        address = str(info[4][0])
        if is_blocked_address(address):
            raise IngestPermanent(
                "private_address", f"refusing to fetch private address {address} ({host}) for {url}"
            )


def _dns_error(url: str, host: str, exc: socket.gaierror) -> Exception:
    if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)):
        return IngestPermanent("dns", f"host not found: {host} ({url})")
    return IngestTransient("dns", f"DNS lookup failed for {host}: {exc}")


def guard_url(url: str, allow_private: bool) -> None:
    """Raise ``PermanentError`` if ``url`` points into a private network."""
    host, port = _host_port(url)
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise _dns_error(url, host, exc) from None
    _check(url, host, infos)


async def guard_url_async(url: str, allow_private: bool) -> None:
    """``guard_url`` for the event loop (resolution does not block other feeds)."""
    host, port = _host_port(url)
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise _dns_error(url, host, exc) from None
    _check(url, host, infos)
