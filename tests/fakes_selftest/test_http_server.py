"""FakeHttpServer and FakePixverse really produce their replies and faults on the wire."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.fakes.http_server import (
    FIXED_LAST_MODIFIED,
    CutShort,
    FakeHttpServer,
    Hang,
    Oversize,
    Redirect,
    Request,
    Reset,
    Response,
    Slow,
    Stall,
    Status,
    WrongBody,
    default_etag,
)
from tests.fakes.pixverse import IMAGE_UPLOAD, MEDIA_UPLOAD, FakePixverse

BODY = bytes(range(256)) * 1024  # 256 KiB, every offset distinguishable modulo 256
PATH = "/files/a.bin"


@pytest.fixture
async def server() -> AsyncIterator[FakeHttpServer]:
    async with FakeHttpServer() as srv:
        srv.add_file(PATH, BODY)
        yield srv
        assert srv.errors == []


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as c:
        yield c


# -- files, ranges, validators -----------------------------------------------------------------------------------------


async def test_get_serves_the_file_with_validators(server: FakeHttpServer, client: httpx.AsyncClient) -> None:
    resp = await client.get(server.url(PATH))
    assert resp.status_code == 200
    assert resp.content == BODY
    assert resp.headers["content-length"] == str(len(BODY))
    assert resp.headers["etag"] == default_etag(BODY) == server.file_etag(PATH)
    assert resp.headers["last-modified"] == FIXED_LAST_MODIFIED
    assert resp.headers["accept-ranges"] == "bytes"
    assert (await client.get(server.url("/missing"))).status_code == 404


async def test_head_sends_headers_only(server: FakeHttpServer, client: httpx.AsyncClient) -> None:
    resp = await client.head(server.url(PATH))
    assert resp.status_code == 200
    assert resp.headers["content-length"] == str(len(BODY))
    assert resp.content == b""
    # The connection is still usable: the HEAD reply carried no body bytes.
    assert (await client.get(server.url(PATH))).content == BODY
    assert server.connections == 1


async def test_ranges(server: FakeHttpServer, client: httpx.AsyncClient) -> None:
    total = len(BODY)
    resp = await client.get(server.url(PATH), headers={"Range": "bytes=1000-"})
    assert resp.status_code == 206
    assert resp.headers["content-range"] == f"bytes 1000-{total - 1}/{total}"
    assert resp.content == BODY[1000:]

    resp = await client.get(server.url(PATH), headers={"Range": "bytes=10-19"})
    assert (resp.status_code, resp.content) == (206, BODY[10:20])
    assert resp.headers["content-range"] == f"bytes 10-19/{total}"

    resp = await client.get(server.url(PATH), headers={"Range": f"bytes={total}-"})
    assert resp.status_code == 416
    assert resp.headers["content-range"] == f"bytes */{total}"
    assert resp.content == b""


async def test_if_range(server: FakeHttpServer, client: httpx.AsyncClient) -> None:
    etag = default_etag(BODY)
    for validator in (etag, FIXED_LAST_MODIFIED):
        resp = await client.get(server.url(PATH), headers={"Range": "bytes=5-", "If-Range": validator})
        assert (resp.status_code, resp.content) == (206, BODY[5:])
    for stale in ('"0123456789abcdef"', "Thu, 02 Jan 2025 00:00:00 GMT", "W/" + etag):
        resp = await client.get(server.url(PATH), headers={"Range": "bytes=5-", "If-Range": stale})
        assert (resp.status_code, resp.content) == (200, BODY)


async def test_validators_can_be_custom_or_absent(server: FakeHttpServer, client: httpx.AsyncClient) -> None:
    server.add_file("/custom", b"abc", etag='"v1"', last_modified=None, content_type="text/plain")
    resp = await client.get(server.url("/custom"))
    assert resp.headers["etag"] == '"v1"'
    assert "last-modified" not in resp.headers
    assert resp.headers["content-type"] == "text/plain"
    server.add_file("/none", b"abc", etag=None)
    assert "etag" not in (await client.get(server.url("/none"))).headers


# -- faults on downloads -----------------------------------------------------------------------------------------------


async def test_cut_short_with_content_length_is_an_incomplete_body(
    server: FakeHttpServer, client: httpx.AsyncClient
) -> None:
    server.fail("GET", PATH, CutShort(1000))
    with pytest.raises(httpx.RemoteProtocolError):
        await client.get(server.url(PATH))
    assert server.responses[-1].bytes_sent == 1000
    # The queue is empty again: served normally.
    assert (await client.get(server.url(PATH))).content == BODY


async def test_cut_short_close_delimited_looks_like_a_complete_short_body(
    server: FakeHttpServer, client: httpx.AsyncClient
) -> None:
    server.fail("GET", PATH, CutShort(1000, close_delimited=True))
    resp = await client.get(server.url(PATH))
    assert resp.status_code == 200
    assert "content-length" not in resp.headers
    assert resp.content == BODY[:1000]


async def test_cut_short_composes_with_range(server: FakeHttpServer, client: httpx.AsyncClient) -> None:
    server.fail("GET", PATH, CutShort(10, close_delimited=True))
    resp = await client.get(server.url(PATH), headers={"Range": "bytes=100-"})
    assert (resp.status_code, resp.content) == (206, BODY[100:110])


async def test_reset_is_a_network_error(server: FakeHttpServer, client: httpx.AsyncClient) -> None:
    server.fail("GET", PATH, Reset(1000))
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        await client.get(server.url(PATH))


def _raw_get(port: int, path: str) -> tuple[bytes, BaseException | None]:
    """A blocking client that reads until EOF or an error; sees exactly what the kernel delivered."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        time.sleep(0.1)  # let the reset arrive before reading: the prefix must still be readable
        data = b""
        try:
            while chunk := sock.recv(1 << 20):
                data += chunk
        except OSError as exc:
            return data, exc
        return data, None


async def test_reset_is_a_real_rst_after_the_exact_prefix(server: FakeHttpServer) -> None:
    port = int(server.base_url.rsplit(":", 1)[1])
    server.fail("GET", PATH, Reset(5000), CutShort(5000))
    data, error = await asyncio.to_thread(_raw_get, port, PATH)
    assert isinstance(error, ConnectionResetError)
    assert data.partition(b"\r\n\r\n")[2] == BODY[:5000]
    # CutShort, by contrast, ends with a clean FIN.
    data, error = await asyncio.to_thread(_raw_get, port, PATH)
    assert error is None
    assert data.partition(b"\r\n\r\n")[2] == BODY[:5000]


async def test_stall_trips_the_read_timeout_and_exit_does_not_wait(server: FakeHttpServer) -> None:
    server.fail("GET", PATH, Stall(1000, seconds=30))
    async with httpx.AsyncClient(timeout=httpx.Timeout(5, read=0.3)) as c:
        with pytest.raises(httpx.ReadTimeout):
            async with c.stream("GET", server.url(PATH)) as resp:
                assert resp.status_code == 200
                async for _ in resp.aiter_raw():
                    pass
    # A second stall still holding its connection must not delay close().
    server.fail("GET", PATH, Stall(0, seconds=30))
    reader, writer = await asyncio.open_connection("127.0.0.1", int(server.base_url.rsplit(":", 1)[1]))
    writer.write(f"GET {PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await reader.readuntil(b"\r\n\r\n")
    started = time.monotonic()
    await server.close()
    assert time.monotonic() - started < 1
    writer.close()


async def test_slow_body_completes_within_a_longer_read_timeout(server: FakeHttpServer) -> None:
    server.fail("GET", PATH, Slow(chunk_size=64 * 1024, interval_s=0.05))
    async with httpx.AsyncClient(timeout=httpx.Timeout(5, read=0.5)) as c:
        started = time.monotonic()
        resp = await c.get(server.url(PATH))
    assert resp.content == BODY
    assert time.monotonic() - started >= 0.15  # 4 chunks, 3 pauses


async def test_redirect(server: FakeHttpServer, client: httpx.AsyncClient) -> None:
    server.fail("GET", "/old", Redirect(PATH), Redirect(server.url(PATH), status=301))
    resp = await client.get(server.url("/old"))
    assert (resp.status_code, resp.headers["location"]) == (302, PATH)
    resp = await client.get(server.url("/old"), follow_redirects=True)
    assert resp.content == BODY
    assert resp.history[0].status_code == 301


async def test_status_faults_are_fifo(server: FakeHttpServer, client: httpx.AsyncClient) -> None:
    server.fail("GET", PATH, Status(503, {"Retry-After": "1"}), Status(401, body=b"no"))
    resp = await client.get(server.url(PATH))
    assert (resp.status_code, resp.headers["retry-after"]) == (503, "1")
    resp = await client.get(server.url(PATH))
    assert (resp.status_code, resp.content) == (401, b"no")
    assert (await client.get(server.url(PATH))).status_code == 200
    assert server.count("GET", PATH) == 3
    assert server.pending_faults("GET", PATH) == 0
    assert server.connections == 1  # status faults keep the connection alive


async def test_hang_trips_the_timeout(server: FakeHttpServer) -> None:
    server.fail("GET", PATH, Hang())
    async with httpx.AsyncClient(timeout=0.3) as c:
        with pytest.raises(httpx.ReadTimeout):
            await c.get(server.url(PATH))
    assert server.count("GET", PATH) == 1


async def test_wrong_body_and_oversize(server: FakeHttpServer, client: httpx.AsyncClient) -> None:
    server.fail("GET", PATH, WrongBody(b"evil" * 10), WrongBody(b"0123456789"))
    resp = await client.get(server.url(PATH))
    assert (resp.content, resp.headers["content-length"]) == (b"evil" * 10, "40")
    resp = await client.get(server.url(PATH), headers={"Range": "bytes=4-"})
    assert (resp.status_code, resp.content) == (206, b"456789")

    server.fail("GET", PATH, Oversize(b"EXTRA"), Oversize(b"EXTRA", close_delimited=False))
    resp = await client.get(server.url(PATH))
    assert "content-length" not in resp.headers
    assert resp.content == BODY + b"EXTRA"
    resp = await client.get(server.url(PATH))
    assert resp.headers["content-length"] == str(len(BODY) + 5)
    assert resp.content == BODY + b"EXTRA"


# -- requests and uploads ----------------------------------------------------------------------------------------------


async def _echo(request: Request) -> Response:
    parts = request.multipart()
    return Response.json(
        {name: [p.filename, p.content_type, p.data.decode()] for name, p in parts.items()}
        | {"query": request.query, "chunked": request.header("Transfer-Encoding")}
    )


async def test_multipart_upload_with_content_length(
    server: FakeHttpServer, client: httpx.AsyncClient
) -> None:
    server.add_route("POST", "/echo", _echo)
    resp = await client.post(
        server.url("/echo?x=1"),
        files={"file": ("a b.txt", b"hello\r\n--not-a-boundary", "text/plain")},
        data={"note": "hi"},
    )
    assert resp.json() == {
        "file": ["a b.txt", "text/plain", "hello\r\n--not-a-boundary"],
        "note": [None, None, "hi"],
        "query": {"x": "1"},
        "chunked": None,
    }
    assert server.requests[-1].path == "/echo"


async def test_multipart_upload_chunked(server: FakeHttpServer, client: httpx.AsyncClient) -> None:
    server.add_route("POST", "/echo", _echo)
    multipart = httpx.Request("POST", "http://x", files={"file": ("f.bin", b"data" * 5000, "video/mp4")})
    body = multipart.read()

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 777):
            yield body[i : i + 777]

    resp = await client.post(
        server.url("/echo"), content=pieces(), headers={"Content-Type": multipart.headers["Content-Type"]}
    )
    assert resp.json()["chunked"] == "chunked"
    assert resp.json()["file"] == ["f.bin", "video/mp4", "data" * 5000]


async def test_upload_reset_reads_a_prefix_then_resets(
    server: FakeHttpServer, client: httpx.AsyncClient
) -> None:
    server.add_route("POST", "/up", _echo)
    server.fail("POST", "/up", Reset(100))
    with pytest.raises((httpx.WriteError, httpx.ReadError, httpx.RemoteProtocolError)):
        await client.post(server.url("/up"), content=b"z" * 2_000_000)
    request = server.requests[-1]
    assert (request.body, request.body_complete) == (b"z" * 100, False)
    assert server.responses[-1].status == 0


async def test_upload_stall_reads_the_body_then_waits(server: FakeHttpServer) -> None:
    server.add_route("POST", "/up", _echo)
    server.fail("POST", "/up", Stall(0, seconds=30), Stall(0, seconds=0.1))
    files = {"f": ("f", b"x", "text/plain")}
    async with httpx.AsyncClient(timeout=httpx.Timeout(5, read=0.3)) as c:
        with pytest.raises(httpx.ReadTimeout):
            await c.post(server.url("/up"), files=files)
        assert server.requests[-1].multipart()["f"].data == b"x"
        assert (await c.post(server.url("/up"), files=files)).status_code == 200


async def test_handler_errors_become_500_and_are_kept() -> None:
    async def boom(request: Request) -> Response:
        raise RuntimeError("bug in a fake")

    async with FakeHttpServer() as srv, httpx.AsyncClient() as c:
        srv.add_route("GET", "/boom", boom)
        assert (await c.get(srv.url("/boom"))).status_code == 500
        assert (await c.post(srv.url("/boom"))).status_code == 405
    assert [str(e) for e in srv.errors] == ["bug in a fake"]


async def test_throughput_64_mib(client: httpx.AsyncClient) -> None:
    async with FakeHttpServer() as srv:
        srv.add_file("/big", b"\x5a" * (64 << 20), etag='"big"')
        started = time.perf_counter()
        received = 0
        async with client.stream("GET", srv.url("/big")) as resp:
            async for chunk in resp.aiter_raw():
                received += len(chunk)
        elapsed = time.perf_counter() - started
    assert received == 64 << 20
    print(f"\n64 MiB through httpx aiter_raw: {elapsed:.2f} s ({64 / elapsed:.0f} MiB/s)")  # noqa: T201


# -- Pixverse ----------------------------------------------------------------------------------------------------------


def _headers(key: str = "test-pixverse-key") -> dict[str, str]:
    return {"API-KEY": key, "Ai-trace-id": str(uuid.uuid4())}


async def test_pixverse_image_and_media_uploads(server: FakeHttpServer, client: httpx.AsyncClient) -> None:
    pix = FakePixverse(server)
    resp = await client.post(
        server.url(IMAGE_UPLOAD), headers=_headers(), files={"image": ("a.png", b"\x89PNG-data", "image/png")}
    )
    assert resp.status_code == 200
    envelope = resp.json()
    assert (envelope["ErrCode"], envelope["ErrMsg"]) == (0, "success")
    assert envelope["Resp"] == {"img_id": 1000, "img_url": server.url("/media/image/1000")}

    resp = await client.post(
        server.url(MEDIA_UPLOAD), headers=_headers(), files={"file": ("v.mp4", b"mp4-data", "video/mp4")}
    )
    assert resp.json()["Resp"] == {
        "media_id": 1001,
        "media_type": "video",
        "url": server.url("/media/file/1001"),
    }
    resp = await client.post(
        server.url(MEDIA_UPLOAD), headers=_headers(), files={"file": ("a.mp3", b"mp3", "audio/mpeg")}
    )
    assert resp.json()["Resp"]["media_type"] == "audio"

    assert [(u.kind, u.id, u.filename, u.content_type) for u in pix.uploads] == [
        ("image", 1000, "a.png", "image/png"),
        ("media", 1001, "v.mp4", "video/mp4"),
        ("media", 1002, "a.mp3", "audio/mpeg"),
    ]
    downloaded = await client.get(pix.uploads[1].url)
    assert (downloaded.content, downloaded.headers["content-type"]) == (b"mp4-data", "video/mp4")

    pix.forget(1001)
    assert pix.known_ids == {1000, 1002}
    assert (await client.get(pix.uploads[1].url)).status_code == 404


async def test_pixverse_rejections(server: FakeHttpServer, client: httpx.AsyncClient) -> None:
    pix = FakePixverse(server)
    pix.max_image_bytes = 10
    png = {"image": ("a.png", b"png", "image/png")}

    async def post(
        path: str, headers: dict[str, str], files: dict[str, tuple[str, bytes, str]]
    ) -> httpx.Response:
        return await client.post(server.url(path), headers=headers, files=files)

    resp = await post(IMAGE_UPLOAD, _headers("wrong"), png)
    assert (resp.status_code, resp.json()["ErrCode"]) == (401, 10005)
    resp = await post(IMAGE_UPLOAD, {"API-KEY": "test-pixverse-key"}, png)
    assert (resp.status_code, resp.json()["ErrCode"]) == (200, 400011)
    resp = await post(IMAGE_UPLOAD, {"API-KEY": "test-pixverse-key", "Ai-trace-id": "not-a-uuid"}, png)
    assert resp.json()["ErrCode"] == 400011

    reused = _headers()
    assert (await post(IMAGE_UPLOAD, reused, png)).json()["ErrCode"] == 0
    assert (await post(IMAGE_UPLOAD, reused, png)).json()["ErrMsg"] == "duplicate Ai-trace-id"

    cases = [
        (IMAGE_UPLOAD, {"image": ("a.gif", b"gif", "image/gif")}, 400017),
        (IMAGE_UPLOAD, {"image": ("a.png", b"", "image/png")}, 500030),
        (IMAGE_UPLOAD, {"image": ("a.png", b"x" * 11, "image/png")}, 500031),
        (IMAGE_UPLOAD, {"file": ("a.png", b"png", "image/png")}, 400011),
        (MEDIA_UPLOAD, {"file": ("a.png", b"png", "image/png")}, 400017),
    ]
    for path, files, code in cases:
        assert (await post(path, _headers(), files)).json()["ErrCode"] == code, (path, files)

    pix.fail_envelope(IMAGE_UPLOAD, 500054, "quota")
    resp = await post(IMAGE_UPLOAD, _headers(), png)
    assert (resp.status_code, resp.json()["ErrCode"], resp.json()["ErrMsg"]) == (200, 500054, "quota")
    assert (await post(IMAGE_UPLOAD, _headers(), png)).json()["ErrCode"] == 0
    assert len(pix.uploads) == 2


async def test_pixverse_wire_faults_and_fresh_trace_ids_on_retry(
    server: FakeHttpServer, client: httpx.AsyncClient
) -> None:
    pix = FakePixverse(server)
    server.fail("POST", IMAGE_UPLOAD, Status(503, {"Retry-After": "1"}))
    png = {"image": ("a.png", b"png", "image/png")}
    headers = _headers()
    assert (await client.post(server.url(IMAGE_UPLOAD), headers=headers, files=png)).status_code == 503
    # Retrying with the trace id of the request the 503 answered is a contract violation.
    resp = await client.post(server.url(IMAGE_UPLOAD), headers=headers, files=png)
    assert resp.json()["ErrCode"] == 400017
    resp = await client.post(server.url(IMAGE_UPLOAD), headers=_headers(), files=png)
    assert resp.json()["Resp"]["img_id"] == 1000
    assert len(pix.trace_ids) == 2
