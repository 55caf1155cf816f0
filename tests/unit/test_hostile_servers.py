"""Misbehaving servers on 127.0.0.1 against the bounded GET, blocking and async.

Each case asserts the named outcome, a time bound (the total deadline plus
grace: a bound, not a benchmark) and, where a server tries to make us hold
data, a memory bound (the size cap plus 64 MB, measured with tracemalloc).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import threading
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from ingest import netguard
from ingest.errors import IngestPermanent, IngestTransient
from ingest.fetch import PageFetcher
from ingest.httpget import Limits, Page, aget, get, raise_for_status
from ingest.transport import new_async_client, new_client
from tests.support.config import local_settings
from tests.support.hostile import Behaviour, Conn, Elapsed, RawServer, respond, response_head

CAP = 2_000_000
LIMITS = Limits(connect_s=2, read_s=2, total_s=3, max_bytes=CAP, max_redirects=5,
                allow_private=True)
BOUND_S = LIMITS.total_s + 5
MEMORY_BOUND = CAP + 64_000_000


@pytest.fixture(params=["sync", "async"])
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def serve() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(behave: Behaviour, host: str = "127.0.0.1") -> RawServer:
        servers.append(RawServer(behave, host))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def fetch(driver: str, url: str, limits: Limits = LIMITS, **kwargs: Any) -> Page:
    if driver == "sync":
        with new_client() as client:
            return get(client, url, limits, **kwargs)

    async def go() -> Page:
        async with new_async_client() as client:
            return await aget(client, url, limits, **kwargs)

    return asyncio.run(go())


def outcome(driver: str, url: str, limits: Limits = LIMITS) -> tuple[str, float, int]:
    """(failure kind or "ok", seconds taken, peak bytes allocated meanwhile)."""
    tracemalloc.start()
    try:
        with Elapsed() as elapsed:
            try:
                fetch(driver, url, limits)
                kind = "ok"
            except (IngestPermanent, IngestTransient) as exc:
                kind = exc.kind
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return kind, elapsed.s, peak


def endless(conn: Conn, _path: str) -> None:
    conn.send(response_head(headers={"Content-Type": "text/html", "Connection": "close"}))
    conn.forever(b"<p>more</p>" * 6000)


def test_endless_body_stops_at_the_cap(driver: str, serve: Callable[..., RawServer]) -> None:
    kind, seconds, peak = outcome(driver, serve(endless).url("/"))
    assert kind == "too_large"
    assert seconds < BOUND_S and peak < MEMORY_BOUND


@pytest.mark.parametrize("where", ["status line", "headers", "body"])
def test_slow_drip_is_cut_off_by_the_total_deadline(
    driver: str, serve: Callable[..., RawServer], where: str
) -> None:
    # one byte every 0.5 s: each read is well within read_s, only the total deadline ends it
    def drip(conn: Conn, _path: str) -> None:
        if where == "status line":
            conn.drip(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 0.5)
        elif where == "headers":
            conn.send(b"HTTP/1.1 200 OK\r\n")
            conn.drip(b"X-Slow: " + b"a" * 100 + b"\r\n\r\n", 0.5)
        else:
            conn.send(response_head(headers={"Content-Length": "1000"}))
            conn.drip(b"a" * 1000, 0.5)

    kind, seconds, _ = outcome(driver, serve(drip).url("/"))
    assert kind == "timeout"
    assert LIMITS.total_s - 0.5 < seconds < BOUND_S


def redirects(target: Callable[[str], str]) -> Behaviour:
    def behave(conn: Conn, path: str) -> None:
        respond(conn, b"", "302 Found", {"Location": target(path)})

    return behave


def test_redirect_loop_is_named(driver: str, serve: Callable[..., RawServer]) -> None:
    server = serve(redirects(lambda path: "/b" if path == "/a" else "/a"))
    kind, seconds, _ = outcome(driver, server.url("/a"))
    assert kind == "redirect_loop" and seconds < BOUND_S
    assert server.paths == ["/a", "/b"]


def test_fifty_hop_chain_stops_at_max_redirects(driver: str, serve: Callable[..., RawServer]) -> None:
    server = serve(redirects(lambda path: f"/h{int(path[2:]) + 1}" if int(path[2:]) < 50 else "/"))
    kind, seconds, _ = outcome(driver, server.url("/h0"))
    assert kind == "too_many_redirects" and seconds < BOUND_S
    assert len(server.paths) == LIMITS.max_redirects + 1


@pytest.mark.parametrize("location", ["http://[::1", "file:///etc/passwd", "gopher://x/", ""])
def test_unusable_redirect_targets_are_named(driver: str, serve: Callable[..., RawServer],
                                             location: str) -> None:
    server = serve(redirects(lambda _path: location))
    kind, seconds, _ = outcome(driver, server.url("/"))
    assert kind == "bad_redirect" and seconds < BOUND_S
    assert server.paths == ["/"]


@pytest.mark.parametrize("url", ["http://[::1/", "http://a..b/", "http://xn--/", "ftp://example.org/"])
def test_unusable_urls_are_named(driver: str, url: str) -> None:
    assert outcome(driver, url)[0] == "bad_url"


@pytest.fixture
def only_127_0_0_1_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard's address policy with 127.0.0.1 standing in for the public internet and
    every other address (127.0.0.2 included) private, so a test can host both sides."""
    monkeypatch.setattr(netguard, "is_blocked_address", lambda address: address != "127.0.0.1")


GUARDED = Limits(**{**LIMITS.__dict__, "allow_private": False})


@pytest.mark.usefixtures("only_127_0_0_1_is_public")
def test_redirect_to_a_private_address_is_refused_before_connecting(
    driver: str, serve: Callable[..., RawServer]
) -> None:
    internal = serve(lambda conn, _path: respond(conn, b"secret"), host="127.0.0.2")
    public = serve(redirects(lambda _path: internal.url("/admin")))
    kind, seconds, _ = outcome(driver, public.url("/"), GUARDED)
    assert kind == "private_address" and seconds < BOUND_S
    assert public.paths == ["/"]
    assert internal.connections == 0


@pytest.mark.usefixtures("only_127_0_0_1_is_public")
def test_dns_rebinding_cannot_move_the_connection(
    driver: str, serve: Callable[..., RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    internal = serve(lambda conn, _path: respond(conn, b"secret"), host="127.0.0.2")
    public = serve(lambda conn, _path: respond(conn, b"public"))
    answers: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.test":
            return real_getaddrinfo(host, port, *args, **kwargs)
        # first answer public, every later one private: a rebinding DNS server
        address = "127.0.0.1" if not answers else "127.0.0.2"
        answers.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    page = fetch(driver, f"http://rebind.test:{public.port}/", GUARDED)
    assert page.body == b"public"
    assert answers == ["127.0.0.1"]  # resolved once; the connection went to that address
    assert internal.connections == 0
    assert b"Host: rebind.test:" in public.heads[0]  # the name stays the Host (and SNI)


def inflate_bomb(size: int, layers: int = 1) -> bytes:
    """``size`` zero bytes gzipped ``layers`` times (a few hundred KB for 256 MB)."""
    data = b""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1_000_000)
    data = b"".join(packer.compress(block) for _ in range(size // len(block))) + packer.flush()
    for _ in range(layers - 1):
        outer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        data = outer.compress(data) + outer.flush()
    return data


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return inflate_bomb(256_000_000)


@pytest.mark.parametrize("encoding", ["gzip", "gzip, gzip"])
def test_gzip_bombs_cost_about_the_cap(driver: str, serve: Callable[..., RawServer], bomb: bytes,
                                       encoding: str) -> None:
    body = bomb if encoding == "gzip" else zlib.compress(bomb, 9, wbits=31)
    server = serve(lambda conn, _path: respond(
        conn, body, headers={"Content-Type": "text/html", "Content-Encoding": encoding}))
    kind, seconds, peak = outcome(driver, server.url("/"))
    assert kind == ("too_large" if encoding == "gzip" else "bad_encoding")
    assert seconds < BOUND_S and peak < MEMORY_BOUND


def test_wrong_content_type_is_refused_before_its_body(serve: Callable[..., RawServer]) -> None:
    sent: list[int] = []

    def pdf_forever(conn: Conn, _path: str) -> None:
        conn.send(response_head(headers={"Content-Type": "application/pdf"}))
        while True:
            conn.send(b"%PDF" * 16384)
            sent.append(1)

    server = serve(pdf_forever)
    fetcher = PageFetcher(local_settings(respect_robots="false", max_page_bytes=50_000_000))
    try:
        with Elapsed() as elapsed, pytest.raises(IngestPermanent) as info:
            fetcher.fetch(server.url("/doc"))
    finally:
        fetcher.close()
    assert info.value.kind == "not_html" and elapsed.s < BOUND_S
    assert len(sent) * 65536 < 50_000_000  # refused on its headers, not after the cap


@pytest.mark.parametrize("shape", ["one 1 MB header line", "10,000 headers"])
def test_oversized_headers_are_refused(driver: str, serve: Callable[..., RawServer], shape: str) -> None:
    if shape.startswith("one"):
        headers = b"X-Big: " + b"a" * 1_000_000 + b"\r\n"
    else:
        headers = b"".join(b"X-H%05d: v\r\n" % i for i in range(10_000))
    server = serve(lambda conn, _path: conn.send(
        b"HTTP/1.1 200 OK\r\n" + headers + b"Content-Length: 2\r\n\r\nok"))
    kind, seconds, peak = outcome(driver, server.url("/"))
    assert kind == "protocol"
    assert seconds < BOUND_S and peak < MEMORY_BOUND


def test_under_the_size_limit_but_too_many_header_lines(driver: str,
                                                        serve: Callable[..., RawServer]) -> None:
    # 1,000 tiny headers fit h11's 100 KiB head limit; no real server sends that many
    headers = b"".join(b"X%d: v\r\n" % i for i in range(1000))
    server = serve(lambda conn, _path: conn.send(
        b"HTTP/1.1 200 OK\r\n" + headers + b"Content-Length: 2\r\n\r\nok"))
    assert outcome(driver, server.url("/"))[0] == "protocol"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_connection_closed_mid_response(driver: str, serve: Callable[..., RawServer],
                                        framing: str) -> None:
    def cut(conn: Conn, _path: str) -> None:
        if framing == "content-length":
            conn.send(response_head(headers={"Content-Length": "10000"}) + b"a" * 100)
        else:
            conn.send(response_head(headers={"Transfer-Encoding": "chunked"}) + b"64\r\n" + b"a" * 50)

    kind, seconds, _ = outcome(driver, serve(cut).url("/"))
    assert kind == "incomplete" and seconds < BOUND_S


@pytest.mark.parametrize("reply", [b"HTTP/1.1 OK\r\n\r\n", b"garbage\r\n\r\n", b"\x00\xff" * 50, b""])
def test_malformed_or_missing_status_line(driver: str, serve: Callable[..., RawServer],
                                          reply: bytes) -> None:
    kind, seconds, _ = outcome(driver, serve(lambda conn, _path: conn.send(reply)).url("/"))
    assert kind == "protocol" and seconds < BOUND_S


def robots_then_page(robots: Behaviour) -> Behaviour:
    def behave(conn: Conn, path: str) -> None:
        if path == "/robots.txt":
            robots(conn, path)
        else:
            respond(conn, b"<html><body><p>page</p></body></html>", headers={"Content-Type": "text/html"})

    return behave


def test_dripping_robots_txt_holds_no_worker_past_its_budget(serve: Callable[..., RawServer]) -> None:
    def drip(conn: Conn, _path: str) -> None:
        conn.send(b"HTTP/1.1 200 OK\r\n")
        conn.drip(b"X-Slow: " + b"a" * 1000, 0.5)

    slow = serve(robots_then_page(drip))
    other = serve(robots_then_page(lambda conn, _p: respond(conn, b"", "404 Not Found")))
    fetcher = PageFetcher(local_settings(total_timeout_s=20, read_timeout_s=2))
    outcomes: list[str] = []

    def fetch_slow() -> None:
        try:
            fetcher.fetch(slow.url("/a"))
            outcomes.append("ok")
        except IngestTransient as exc:
            outcomes.append(exc.kind)

    try:
        with Elapsed() as elapsed:
            workers = [threading.Thread(target=fetch_slow) for _ in range(3)]
            for worker in workers:
                worker.start()
            with Elapsed() as other_host:
                fetcher.fetch(other.url("/a"))  # a different host is not held up meanwhile
            for worker in workers:
                worker.join(timeout=60)
    finally:
        fetcher.close()
    assert other_host.s < 5  # not queued behind the 10 s robots.txt drip
    assert outcomes == ["robots_unreachable"] * 3
    assert elapsed.s < fetcher.robots.limits.total_s + 5
    assert slow.paths.count("/robots.txt") == 1 and "/a" not in slow.paths


@pytest.mark.parametrize(("robots_status", "expected"), [
    ("503 Service Unavailable", "robots_unreachable"), ("429 Too Many Requests", "robots_unreachable"),
    ("404 Not Found", "ok"), ("403 Forbidden", "ok"),
])
def test_robots_txt_status_follows_rfc_9309(serve: Callable[..., RawServer], robots_status: str,
                                            expected: str) -> None:
    server = serve(robots_then_page(lambda conn, _p: respond(conn, b"x", robots_status)))
    fetcher = PageFetcher(local_settings())
    try:
        fetcher.fetch(server.url("/a"))
        kind = "ok"
    except IngestTransient as exc:
        kind = exc.kind
    finally:
        fetcher.close()
    assert kind == expected
    assert ("/a" in server.paths) == (expected == "ok")


def test_unreachable_robots_txt_disallows_for_now() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed again: nothing listens there
    fetcher = PageFetcher(local_settings())
    try:
        with pytest.raises(IngestTransient) as info:
            fetcher.fetch(f"http://127.0.0.1:{port}/a")
    finally:
        fetcher.close()
    assert info.value.kind == "robots_unreachable"
    assert info.value.retry_after is not None and info.value.retry_after > 60


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext, list[str]]:
    """A server context with a self-signed certificate for rebind.test, a client context
    trusting only it, and the SNI names the server was asked for."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=rebind.test", "-addext", "subjectAltName=DNS:rebind.test",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    names: list[str] = []

    def remember(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        names.append(name or "")

    server.sni_callback = remember
    client = ssl.create_default_context(cafile=str(cert))
    return server, client, names


@pytest.mark.usefixtures("only_127_0_0_1_is_public")
def test_https_to_a_checked_address_keeps_sni_and_verification(
    driver: str, serve: Callable[..., RawServer], monkeypatch: pytest.MonkeyPatch,
    tls_pair: tuple[ssl.SSLContext, ssl.SSLContext, list[str]],
) -> None:
    server_tls, client_tls, names = tls_pair
    server = RawServer(lambda conn, _path: respond(conn, b"secure"), tls=server_tls)
    real_getaddrinfo = socket.getaddrinfo

    def fake_dns(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_dns)
    names.clear()
    try:
        if driver == "sync":
            with new_client(ssl_context=client_tls) as client:
                page = get(client, f"https://rebind.test:{server.port}/", GUARDED)
        else:
            async def go() -> Page:
                async with new_async_client(ssl_context=client_tls) as client:
                    return await aget(client, f"https://rebind.test:{server.port}/", GUARDED)

            page = asyncio.run(go())
    finally:
        server.close()
    # the certificate is for the name, so verification passed against the name, not 127.0.0.1
    assert page.body == b"secure"
    assert names == ["rebind.test"]


@pytest.mark.parametrize(("status", "kind"), [("503 Service Unavailable", "http_503"),
                                              ("304 Not Modified", "ok")])
def test_an_odd_encoding_on_a_bodiless_or_error_response_keeps_its_status(
    driver: str, serve: Callable[..., RawServer], status: str, kind: str
) -> None:
    server = serve(lambda conn, _path: respond(conn, b"\x00junk", status,
                                               {"Content-Encoding": "br, gzip"}))
    try:
        page = fetch(driver, server.url("/"))
        raise_for_status(page)
        got = "ok"
    except (IngestPermanent, IngestTransient) as exc:
        got = exc.kind
    assert got == kind


def test_the_guard_holds_outside_get_and_get_refuses_plain_clients(
    serve: Callable[..., RawServer],
) -> None:
    server = serve(lambda conn, _path: respond(conn, b"internal"))
    with new_client() as guarded, pytest.raises(IngestPermanent) as info:
        guarded.get(server.url("/"))  # no budget set: the guard is on, whatever the caller
    assert info.value.kind == "private_address"
    with httpx.Client() as plain, pytest.raises(TypeError):
        get(plain, server.url("/"), LIMITS)
    assert server.connections == 0
