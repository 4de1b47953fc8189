"""The bulk GET reader on the wire: chunked bodies, malformed answers, cut-short chunks (127.0.0.1)."""

from __future__ import annotations

import asyncio
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
    import ssl

    import trustme

    from core.net.http import SafeHttp
    from core.net.policy import UrlPolicy

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    body = b"encrypted media " * 100_000

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/clip.mp4"
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
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
