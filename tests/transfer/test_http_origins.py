"""Credentials stay with their origin: a redirect to another server never carries the API key."""

from __future__ import annotations

from core.net.http import SafeHttp
from core.net.policy import UrlPolicy
from tests.fakes.http_server import FakeHttpServer, Redirect


async def test_auth_headers_do_not_follow_a_redirect_to_another_origin(server: FakeHttpServer) -> None:
    async with FakeHttpServer() as cdn:
        cdn.add_file("/file.bin", b"payload")
        server.add_file("/api/file", b"unused")
        server.fail("GET", "/api/file", Redirect(cdn.url("/file.bin")))
        http = SafeHttp(UrlPolicy.trusting([server.base_url, cdn.base_url]))
        try:
            async with http.stream(server.url("/api/file"), auth_headers={"API-KEY": "k-123"}) as response:
                body = await response.aread()
        finally:
            await http.aclose()
    assert body == b"payload"
    assert server.requests[0].header("api-key") == "k-123"
    assert cdn.requests[0].header("api-key") is None


async def test_same_origin_redirects_keep_the_credentials(server: FakeHttpServer) -> None:
    server.add_file("/v2/file", b"moved here")
    server.add_file("/v1/file", b"old")
    server.fail("GET", "/v1/file", Redirect("/v2/file", status=301))
    http = SafeHttp(UrlPolicy.trusting([server.base_url]))
    try:
        async with http.stream(server.url("/v1/file"), auth_headers={"API-KEY": "k-123"}) as response:
            assert await response.aread() == b"moved here"
    finally:
        await http.aclose()
    assert [r.header("api-key") for r in server.requests] == ["k-123", "k-123"]
