"""URL safety, retry timing and Retry-After parsing: the rules every request obeys."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from core.errors import NetworkError, ProviderUnavailable, RateLimited, UnsafeUrl
from core.net.http import with_retries
from core.net.policy import UrlPolicy
from core.net.retry import RetryPolicy, parse_retry_after


@pytest.mark.parametrize(
    "url",
    [
        "http://cdn.example.com/a.mp4",  # plain http to a remote host
        "https://127.0.0.1/a.mp4",  # loopback nobody configured
        "https://10.1.2.3/a.mp4",
        "https://172.16.0.1/a.mp4",
        "https://192.168.0.10/a.mp4",
        "https://169.254.169.254/latest",
        "https://100.64.0.1/a.mp4",  # carrier-grade NAT
        "https://[::1]/a.mp4",
        "https://[fe80::1]/a.mp4",
        "https://[fc00::1]/a.mp4",
        "https://[::ffff:10.0.0.1]/a.mp4",
        "https://0.0.0.0/a.mp4",
        "https://user:pw@cdn.example.com/a.mp4",
        "file:///etc/passwd",
    ],
)
async def test_unsafe_urls_are_refused_before_connecting(url: str) -> None:
    with pytest.raises(UnsafeUrl, match="Refusing"):
        await UrlPolicy().check(url)


async def test_public_https_and_configured_local_servers_are_allowed() -> None:
    await UrlPolicy().check("https://8.8.8.8/video.mp4")
    policy = UrlPolicy.trusting(["http://127.0.0.1:8188"])
    await policy.check("http://127.0.0.1:8188/view?filename=x.png")
    with pytest.raises(UnsafeUrl):
        await policy.check("http://127.0.0.1:9999/view")  # another port is another origin


async def test_refusals_never_echo_url_tokens() -> None:
    with pytest.raises(UnsafeUrl) as info:
        await UrlPolicy().check("http://cdn.example.com/a.mp4?token=abc123secret")
    assert "abc123secret" not in str(info.value)


def test_retry_after_in_seconds_and_as_an_http_date() -> None:
    now = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_backoff_grows_exponentially_with_full_jitter_under_a_cap() -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=8.0)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0)]:
        samples = [policy.backoff(attempt, rng) for _ in range(200)]
        assert all(0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.8, "jitter spreads over the whole range"


async def test_with_retries_sleeps_what_the_provider_asked_then_gives_up() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    calls = 0

    async def flaky(attempt: int) -> str:
        nonlocal calls
        calls += 1
        if attempt == 1:
            raise RateLimited("slow down", retry_after=3.0)
        if attempt == 2:
            raise ProviderUnavailable("overloaded")
        return "ok"

    assert await with_retries(flaky, RetryPolicy(base_delay_s=1.0), sleep=sleep) == "ok"
    assert slept[0] == 3.0 and 0 <= slept[1] <= 2.0

    async def always(attempt: int) -> str:
        raise NetworkError("connection reset")

    with pytest.raises(NetworkError, match="gave up after 3 attempts"):
        await with_retries(always, RetryPolicy(max_attempts=3), sleep=sleep)


async def test_network_errors_say_whether_the_request_may_have_arrived() -> None:
    """What decides whether a paid submission may be sent again (core.jobs.runner)."""
    import asyncio
    import socket

    from core.net.http import SafeHttp

    # Nobody listens on this port: the request never left.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/generate"

    # This server reads the whole request, then resets the connection without answering.
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)  # the JSON body {}
        writer.transport.abort()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    swallowed = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/generate"
    http = SafeHttp(UrlPolicy.trusting([closed, swallowed]))
    async with server:
        with pytest.raises(NetworkError) as refused:
            await http.request("POST", closed, json={})
        with pytest.raises(NetworkError) as lost:
            await http.request("POST", swallowed, json={})
    await http.aclose()
    assert refused.value.maybe_delivered is False and refused.value.retryable
    assert lost.value.maybe_delivered is True
