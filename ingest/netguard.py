"""Private-network guard: a feed must not be able to make us fetch internal services.

A host is resolved once, every address it resolves to is checked, and the
connection is then made to one of those checked addresses (``ingest.transport``
does the connecting), so a DNS answer that changes between the check and the
connect (rebinding) cannot slip through. Loopback, private, link-local,
reserved, multicast and unspecified addresses are refused unless
``allow_private_networks`` is set (local tests and demos). This runs for every
connection, so for every redirect hop as well.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from ingest.errors import IngestPermanent, IngestTransient

# getaddrinfo cannot be given a timeout; the blocking path runs it here so that a
# slow resolver costs the caller its deadline, never more (the thread may linger)
_RESOLVER = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="resolve")


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


def check_url(url: str) -> None:
    """Refuse anything but an absolute http(s) URL with a valid port (no network)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed IPv6 bracket
        raise IngestPermanent("bad_url", f"not a parsable URL: {url[:200]}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise IngestPermanent("bad_url", f"not an absolute http(s) URL: {url[:200]}")
    try:
        parts.port  # noqa: B018 - raises on an invalid port
    except ValueError:
        raise IngestPermanent("bad_url", f"invalid port in {url[:200]}") from None


def _dns_error(host: str, exc: socket.gaierror) -> Exception:
    if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)):
        return IngestPermanent("dns", f"host not found: {host}")
    return IngestTransient("dns", f"DNS lookup failed for {host}: {exc}")


def _dns_timeout(host: str) -> IngestTransient:
    return IngestTransient("timeout", f"total timeout while resolving {host}")


def checked_addresses(host: str, infos: list[Any], allow_private: bool) -> list[str]:
    """The addresses of ``getaddrinfo`` answer ``infos``; all of them must pass the guard,
    because a resolver may hand the client any one of them."""
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not allow_private:
        for address in addresses:
            if is_blocked_address(address):
                raise IngestPermanent(
                    "private_address", f"refusing to fetch private address {address} ({host})"
                )
    if not addresses:
        raise IngestTransient("dns", f"DNS lookup for {host} returned no address")
    return addresses


def resolve(host: str, port: int, allow_private: bool, timeout: float | None) -> list[str]:
    """Resolve ``host`` within ``timeout`` seconds and return the checked addresses."""
    future = _RESOLVER.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        raise _dns_timeout(host) from None
    except socket.gaierror as exc:
        raise _dns_error(host, exc) from None
    return checked_addresses(host, infos, allow_private)


async def aresolve(host: str, port: int, allow_private: bool, timeout: float | None) -> list[str]:
    """``resolve`` for the event loop (resolution does not block other feeds)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout
        )
    except TimeoutError:
        raise _dns_timeout(host) from None
    except socket.gaierror as exc:
        raise _dns_error(host, exc) from None
    return checked_addresses(host, infos, allow_private)
