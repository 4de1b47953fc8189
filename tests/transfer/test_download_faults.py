"""Downloads under faults, against a local server that misbehaves on the wire (127.0.0.1 only)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from core.errors import AuthFailed, ContentMismatch, RateLimited, UnsafeUrl
from tests.fakes.http_server import (
    CutShort,
    Fault,
    Oversize,
    Redirect,
    Reset,
    Slow,
    Stall,
    Status,
    WrongBody,
)

from .conftest import Env, media_bytes

CDN = "/cdn/clip.mp4"
SIZE = 400_000


def _http_date(seconds_ahead: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_ahead), usegmt=True)


@pytest.mark.parametrize(
    ("make_faults", "min_wait_s"),
    [
        (lambda: [Status(500)], 0),
        (lambda: [Status(500), Status(502)], 0),
        (lambda: [Status(502, {"Retry-After": "1"})], 1.0),
        (lambda: [Status(503, {"Retry-After": "1"})], 1.0),
        (lambda: [Status(429, {"Retry-After": "1"})], 1.0),
        # An HTTP date two seconds ahead, made when the test runs (whole seconds: wait in (1, 2]).
        (lambda: [Status(429, {"Retry-After": _http_date(2)})], 0.9),
    ],
    ids=["500", "500-then-502", "502-retry-after", "503-retry-after", "429-seconds", "429-http-date"],
)
async def test_retryable_statuses_are_retried_honouring_retry_after(
    env: Env, make_faults: Callable[[], list[Fault]], min_wait_s: float
) -> None:
    body = media_bytes(SIZE)
    asset_id = await env.add_remote_asset(body)
    faults = make_faults()
    env.server.fail("GET", CDN, *faults)
    started = time.monotonic()
    path = await env.transfers.ensure_local(asset_id)
    assert time.monotonic() - started >= min_wait_s
    assert path.read_bytes() == body
    assert env.server.count("GET", CDN) == len(faults) + 1


async def test_a_long_retry_after_surfaces_at_once(env: Env) -> None:
    asset_id = await env.add_remote_asset(media_bytes(SIZE))
    env.server.fail("GET", CDN, Status(429, {"Retry-After": "3600"}))
    with pytest.raises(RateLimited, match="asks to wait 3600 s"):
        await env.transfers.ensure_local(asset_id)
    assert env.server.count("GET", CDN) == 1


async def test_401_is_permanent_and_not_retried(env: Env) -> None:
    asset_id = await env.add_remote_asset(media_bytes(SIZE))
    env.server.fail("GET", CDN, Status(401))
    with pytest.raises(AuthFailed, match="401"):
        await env.transfers.ensure_local(asset_id)
    assert env.server.count("GET", CDN) == 1
    assert env.objects() == []


@pytest.mark.parametrize(
    "fault",
    [CutShort(150_000), Reset(150_000), Stall(150_000, seconds=3.0)],
    ids=["content-length-cut-short", "connection-reset", "stall"],
)
async def test_interrupted_downloads_resume_with_range(env: Env, fault: Fault) -> None:
    body = media_bytes(SIZE)
    asset_id = await env.add_remote_asset(body)
    env.server.fail("GET", CDN, fault)
    path = await env.transfers.ensure_local(asset_id)
    assert path.read_bytes() == body
    second = [r for r in env.server.requests if r.path == CDN][1]
    served = next(s for s in env.server.responses if s.request is second)
    if isinstance(fault, CutShort | Stall):
        # The resumed request asked only for the rest, conditional on the same version of the file.
        assert second.header("range") == "bytes=150000-"
        assert second.header("if-range") == env.server.file_etag(CDN)
        assert served.status == 206 and served.bytes_sent == SIZE - 150_000
    else:
        # A reset may lose bytes still in the client's buffers: resume from whatever was kept.
        assert served.status in (200, 206)


async def test_a_close_delimited_body_cut_short_is_caught_by_the_declared_size(env: Env) -> None:
    body = media_bytes(SIZE)
    asset_id = await env.add_remote_asset(body)  # the asset declares its size and sha256
    env.server.fail("GET", CDN, CutShort(100_000, close_delimited=True))
    path = await env.transfers.ensure_local(asset_id)
    assert path.read_bytes() == body
    assert env.server.count("GET", CDN) == 2


async def test_a_slow_but_steady_body_does_not_time_out(env: Env) -> None:
    # 12 chunks 0.25 s apart: 3 s in all, far beyond the 1 s read timeout, but never silent for 1 s.
    body = media_bytes(12 * 32 * 1024)
    asset_id = await env.add_remote_asset(body)
    env.server.fail("GET", CDN, Slow(chunk_size=32 * 1024, interval_s=0.25))
    started = time.monotonic()
    path = await env.transfers.ensure_local(asset_id)
    assert time.monotonic() - started >= 2.5
    assert path.read_bytes() == body
    assert env.server.count("GET", CDN) == 1


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7/internal.mp4",
        "https://192.168.1.20/x.mp4",
        "https://[fd00::1]/x.mp4",
        "https://[::ffff:127.0.0.1]/x.mp4",
        "ftp://files.example.com/x.mp4",
    ],
)
async def test_redirects_to_private_or_link_local_addresses_are_refused(env: Env, target: str) -> None:
    asset_id = await env.add_remote_asset(media_bytes(1000))
    env.server.fail("GET", CDN, Redirect(target))
    with pytest.raises(UnsafeUrl, match="Refusing"):
        await env.transfers.ensure_local(asset_id)
    assert env.objects() == [] and env.partials() == []


async def test_a_body_with_the_wrong_hash_is_refused_and_nothing_is_stored(env: Env) -> None:
    body = media_bytes(SIZE)
    asset_id = await env.add_remote_asset(body)
    forged = media_bytes(SIZE, seed=99)
    env.server.fail("GET", CDN, WrongBody(forged))
    with pytest.raises(ContentMismatch, match="does not match this asset"):
        await env.transfers.ensure_local(asset_id)
    assert env.objects() == [] and env.partials() == []
    assert not env.store.object_path(hashlib.sha256(forged).hexdigest()).exists()


async def test_a_body_larger_than_declared_is_refused(env: Env) -> None:
    asset_id = await env.add_remote_asset(media_bytes(SIZE))
    env.server.fail("GET", CDN, Oversize(b"x" * 50_000))
    with pytest.raises(ContentMismatch, match="more than the 400000 bytes"):
        await env.transfers.ensure_local(asset_id)
    assert env.objects() == [] and env.partials() == []


async def test_a_content_length_disagreeing_with_the_asset_is_refused(env: Env) -> None:
    asset_id = await env.add_remote_asset(media_bytes(SIZE))
    env.server.fail("GET", CDN, Oversize(b"x" * 10, close_delimited=False))
    with pytest.raises(ContentMismatch, match="400010 bytes, but this asset is 400000"):
        await env.transfers.ensure_local(asset_id)


async def test_errors_never_show_url_tokens(env: Env) -> None:
    body = media_bytes(1000)
    asset_id = await env.add_remote_asset(body)
    async with env.sessions() as session, session.begin():
        from sqlalchemy import update

        from core.db.models import Asset

        await session.execute(
            update(Asset)
            .where(Asset.id == asset_id)
            .values(remote_url=env.server.url(CDN) + "?X-Signature=s3cr3t")
        )
    env.server.fail("GET", CDN, Status(401))
    with pytest.raises(AuthFailed) as info:
        await env.transfers.ensure_local(asset_id)
    assert "s3cr3t" not in str(info.value)
    assert "failed" not in [e.message or "" for e in env.events if "s3cr3t" in (e.message or "")]


async def test_a_large_file_cut_short_resumes_across_writeback_steps(env: Env) -> None:
    """70 MiB: writeback is started every 32 MiB while streaming; a cut at 40 MiB resumes after it."""
    body = media_bytes(70 << 20)
    asset_id = await env.add_remote_asset(body)
    env.server.fail("GET", CDN, CutShort(40 << 20))
    path = await env.transfers.ensure_local(asset_id)
    assert path.stat().st_size == len(body)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(body).hexdigest()
    assert [r.header("range") for r in env.server.requests if r.path == CDN] == [None, f"bytes={40 << 20}-"]
