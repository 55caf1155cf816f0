"""httpx clients whose every socket operation answers to one deadline and the network guard.

httpx's timeouts apply per operation: a server that sends one byte of its
headers every few seconds resets the read timeout forever. Here the network
backend under httpcore clamps every connect, read, write and TLS handshake to
what is left of the current fetch's ``Budget``, so one overall deadline covers
connect, status line, headers and body, for the blocking and the async client
alike. The same backend resolves each host once, passes every address through
``ingest.netguard`` and connects to a checked address (TLS still verifies and
sends SNI for the host name, which httpcore passes on separately), so DNS
rebinding cannot move a connection into a private network.

The budget travels in a ``ContextVar``: the blocking client does its I/O in
the calling thread and the async client in the calling task, so the backend
always sees the budget of the fetch that is reading, also on a pooled
connection.
"""

from __future__ import annotations

import contextvars
import ssl
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from ingest.netguard import aresolve, resolve

_current: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("fetch_budget", default=None)
# clients built here; ingest.httpget refuses others, which would bypass the guard
_guarded: weakref.WeakSet[httpx.Client | httpx.AsyncClient] = weakref.WeakSet()

SocketOptions = Iterable[
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
]


@dataclass(frozen=True)
class Budget:
    """The deadline (``time.monotonic``) and guard setting of one fetch, redirects included."""

    deadline: float
    allow_private: bool

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def clamp(self, timeout: float | None, expired: type[Exception]) -> float | None:
        """``timeout`` cut to what is left (None: no limit at all); ``expired`` is raised
        once nothing is left."""
        left = self.left()
        if left <= 0:
            raise expired("total deadline reached")
        if timeout is None:
            return None if left == float("inf") else left
        return min(timeout, left)

    @contextmanager
    def active(self) -> Iterator[Budget]:
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)


# used when a guarded client is called outside ingest.httpget: guard on, no deadline
_UNBOUNDED = Budget(float("inf"), allow_private=False)


def current_budget() -> Budget:
    return _current.get() or _UNBOUNDED


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, current_budget().clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, current_budget().clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        timeout = current_budget().clamp(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _AsyncDeadlineStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, current_budget().clamp(timeout, httpcore.ReadTimeout))

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, current_budget().clamp(timeout, httpcore.WriteTimeout))

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        timeout = current_budget().clamp(timeout, httpcore.ConnectTimeout)
        inner = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        return _AsyncDeadlineStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """Resolve once, check every address, connect to a checked one, within the budget."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: SocketOptions | None = None) -> httpcore.NetworkStream:
        budget = current_budget()
        addresses = resolve(host, port, budget.allow_private,
                            budget.clamp(timeout, httpcore.ConnectTimeout))
        failure: Exception | None = None
        for address in addresses:
            try:
                stream = self._inner.connect_tcp(
                    address, port, budget.clamp(timeout, httpcore.ConnectTimeout),
                    local_address, socket_options,
                )
            except httpcore.ConnectError as exc:  # the next address may answer
                failure = exc
                continue
            return _DeadlineStream(stream)
        assert failure is not None  # resolve never returns an empty list
        raise failure

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: SocketOptions | None = None) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not fetched")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class AsyncGuardedBackend(httpcore.AsyncNetworkBackend):
    """``GuardedBackend`` for the event loop."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: SocketOptions | None = None) -> httpcore.AsyncNetworkStream:
        budget = current_budget()
        addresses = await aresolve(host, port, budget.allow_private,
                                   budget.clamp(timeout, httpcore.ConnectTimeout))
        failure: Exception | None = None
        for address in addresses:
            try:
                stream = await self._inner.connect_tcp(
                    address, port, budget.clamp(timeout, httpcore.ConnectTimeout),
                    local_address, socket_options,
                )
            except httpcore.ConnectError as exc:
                failure = exc
                continue
            return _AsyncDeadlineStream(stream)
        assert failure is not None
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: SocketOptions | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _pool_args(max_connections: int, ssl_context: ssl.SSLContext | None) -> dict[str, Any]:
    return {
        "ssl_context": ssl_context or httpx.create_ssl_context(trust_env=False),
        "max_connections": max_connections,
        "max_keepalive_connections": min(max_connections, 100),
        "keepalive_expiry": 5.0,
    }


class _GuardedTransport(httpx.HTTPTransport):
    def __init__(self, max_connections: int, ssl_context: ssl.SSLContext | None) -> None:
        super().__init__(trust_env=False)
        # httpx offers no parameter for the network backend, so its pool is rebuilt with ours
        self._pool = httpcore.ConnectionPool(network_backend=GuardedBackend(),
                                             **_pool_args(max_connections, ssl_context))


class _AsyncGuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, max_connections: int, ssl_context: ssl.SSLContext | None) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(network_backend=AsyncGuardedBackend(),
                                                  **_pool_args(max_connections, ssl_context))


def new_client(max_connections: int = 20, ssl_context: ssl.SSLContext | None = None) -> httpx.Client:
    """A blocking client for ``ingest.httpget.get`` (no proxies from the environment);
    ``ssl_context`` replaces the certifi trust store (tests with their own CA)."""
    transport = _GuardedTransport(max_connections, ssl_context)
    client = httpx.Client(transport=transport, trust_env=False)
    _guarded.add(client)
    return client


def new_async_client(max_connections: int = 100,
                     ssl_context: ssl.SSLContext | None = None) -> httpx.AsyncClient:
    """An async client for ``ingest.httpget.aget``."""
    transport = _AsyncGuardedTransport(max_connections, ssl_context)
    client = httpx.AsyncClient(transport=transport, trust_env=False)
    _guarded.add(client)
    return client


def is_guarded(client: httpx.Client | httpx.AsyncClient) -> bool:
    return client in _guarded
