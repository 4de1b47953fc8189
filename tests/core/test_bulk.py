"""The bulk GET reader on the wire: chunked bodies, malformed answers, cut-short chunks (127.0.0.1)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
import time
from collections.abc import Awaitable, Callable

import pytest

from core.errors import NetworkError
from core.net.bulk import open_get

Reply = Callable[[asyncio.StreamWriter], Awaitable[None]]


async def _serve(reply: Reply) -> tuple[asyncio.Server, str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reply(writer)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/file"


async def _body(url: str) -> bytes:
    response = await open_get(url, {}, connect_timeout=2, read_timeout=2)
    try:
        return b"".join([chunk async for chunk in response.iter_chunks()])
    finally:
        await response.aclose()


async def test_a_chunked_body_is_reassembled_with_extensions_and_trailers() -> None:
    async def reply(w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        w.write(b"5;name=x\r\nhello\r\n")
        w.write(b"6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n")
        await w.drain()

    server, url = await _serve(reply)
    async with server:
        assert await _body(url) == b"hello world"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n", "malformed chunked body"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort", "closed inside a chunk"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "closed 7 bytes before the end"),
        (b"SMTP ready\r\n\r\n", "not an HTTP/1.x answer"),
    ],
    ids=["bad-size", "cut-chunk", "cut-length", "not-http"],
)
async def test_broken_answers_raise_network_errors(raw: bytes, message: str) -> None:
    async def reply(w: asyncio.StreamWriter) -> None:
        w.write(raw)
        await w.drain()

    server, url = await _serve(reply)
    async with server:
        with pytest.raises(NetworkError, match=message):
            await _body(url)


async def test_a_silent_server_times_out_and_a_closed_port_fails_fast() -> None:
    async def reply(w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
        await w.drain()
        await asyncio.sleep(5)

    server, url = await _serve(reply)
    async with server:
        response = await open_get(url, {}, connect_timeout=2, read_timeout=0.3)
        with pytest.raises(NetworkError, match="stopped sending data"):
            [chunk async for chunk in response.iter_chunks()]
        await response.aclose()
    with pytest.raises(NetworkError, match="cannot connect"):
        await open_get(url, {}, connect_timeout=2, read_timeout=2)


async def test_request_headers_are_sent_and_response_headers_folded() -> None:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 206 Partial\r\nSet-Cookie: a\r\nSet-Cookie: b\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v?sig=1"
    async with server:
        response = await open_get(url, {"Range": "bytes=5-"}, connect_timeout=2, read_timeout=2)
        assert (response.status, response.reason) == (206, "Partial")
        assert response.headers["set-cookie"] == "a, b"
        assert await response.aread() == b"ok"
        await response.aclose()
    head = seen[0].decode()
    assert head.startswith("GET /v?sig=1 HTTP/1.1\r\n")
    assert "Range: bytes=5-\r\n" in head and "Connection: close\r\n" in head


async def test_https_downloads_verify_the_server_certificate() -> None:
    """The production path: TLS with certificate and host-name checks (a local CA made by trustme)."""
    from core.net.http import SafeHttp
    from core.net.policy import UrlPolicy

    server_ctx, trusting = _tls_pair()
    body = b"encrypted media " * 100_000

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/clip.mp4"
    async with server:
        http = SafeHttp(UrlPolicy.trusting([url]), tls=trusting)
        async with http.stream(url) as response:
            received = b"".join([chunk async for chunk in response.iter_chunks()])
        assert received == body
        # A client that does not trust this CA refuses the connection.
        stranger = SafeHttp(UrlPolicy.trusting([url]))
        with pytest.raises(NetworkError, match=r"TLS error|CERTIFICATE_VERIFY_FAILED"):
            async with stranger.stream(url):
                pass
        await http.aclose()
        await stranger.aclose()


def _tls_pair() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context) around a throwaway local CA."""
    import trustme

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx


async def test_a_large_body_pumps_over_tls_into_the_sink_intact() -> None:
    server_ctx, client_ctx = _tls_pair()
    body = os.urandom(9 * 1024 * 1024 + 123)  # more than two body buffers, not a multiple of either

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), 1 << 20):
            writer.write(body[i : i + (1 << 20)])
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/clip.mp4"
    digest, seen = hashlib.sha256(), list[int]()
    async with server:
        response = await open_get(url, {}, connect_timeout=2, read_timeout=5, tls=client_ctx)
        size = await response.pump(digest.update, seen.append)
        await response.aclose()
    assert size == len(body)
    assert digest.hexdigest() == hashlib.sha256(body).hexdigest()
    assert seen[-1] == len(body) and seen == sorted(seen)  # progress, on the loop, in order


async def test_bytes_that_arrived_before_a_stall_reach_the_sink_before_the_error() -> None:
    """What a resumed download relies on: nothing received is dropped when the server goes quiet."""

    async def reply(w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 150_000)
        await w.drain()
        await asyncio.sleep(5)

    server, url = await _serve(reply)
    received = bytearray()
    async with server:
        response = await open_get(url, {}, connect_timeout=2, read_timeout=0.3)
        with pytest.raises(NetworkError, match="stopped sending data"):
            await response.pump(received.extend)
        await response.aclose()
    assert bytes(received) == b"x" * 150_000


@pytest.mark.parametrize("secure", [False, True], ids=["http", "https"])
async def test_cancelling_a_pump_wakes_its_blocked_read_and_stops_the_sink_first(secure: bool) -> None:
    first = asyncio.Event()
    server_ctx, client_ctx = _tls_pair() if secure else (None, None)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"y" * 1000)
        await writer.drain()
        await asyncio.sleep(30)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    url = f"{'https' if secure else 'http'}://127.0.0.1:{server.sockets[0].getsockname()[1]}/file"
    calls: list[int] = []
    async with server:
        # A long read timeout: only the cancellation can end the blocked read in time.
        response = await open_get(url, {}, connect_timeout=2, read_timeout=60, tls=client_ctx)
        task = asyncio.create_task(response.pump(lambda view: calls.append(len(view)), lambda _: first.set()))
        await asyncio.wait_for(first.wait(), 5)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        stopped_after = time.monotonic() - started
        calls_when_cancelled = list(calls)
        await asyncio.sleep(0.2)
        await response.aclose()
    assert stopped_after < 5
    assert calls == calls_when_cancelled == [1000]  # the thread had stopped when pump returned


async def test_the_connection_goes_to_the_vetted_address_never_to_a_second_lookup() -> None:
    """The policy resolved and checked the host; connecting to exactly those addresses leaves no
    window for a DNS answer that changes in between (rebinding to a private address)."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://media.pixsim.invalid:{port}/clip.mp4"  # .invalid never resolves
    async with server:
        response = await open_get(url, {}, connect_timeout=2, read_timeout=2, addresses=["127.0.0.1"])
        assert await response.aread() == b"ok"
        await response.aclose()
        with pytest.raises(NetworkError, match="cannot connect"):
            await open_get(url, {}, connect_timeout=2, read_timeout=2)  # a lookup of the name fails
    assert f"Host: media.pixsim.invalid:{port}\r\n" in seen[0].decode()
