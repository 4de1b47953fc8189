"""Uploads under faults against the fake Pixverse API (127.0.0.1): retried, or surfaced at once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from core.errors import AuthFailed, InsufficientBalance, InvalidParameter, Moderated, RateLimited
from tests.fakes.http_server import CutShort, FakeHttpServer, Fault, Redirect, Reset, Slow, Stall, Status

from .conftest import PIXVERSE_KEY, Env, media_bytes

MEDIA = "/openapi/v2/media/upload"


def _http_date(seconds_ahead: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_ahead), usegmt=True)


@pytest.mark.parametrize(
    "make_faults",
    [
        lambda: [Status(500)],
        lambda: [Status(502, {"Retry-After": "1"})],
        lambda: [Status(503, {"Retry-After": "1"})],
        lambda: [Status(429, {"Retry-After": "1"})],
        lambda: [Status(429, {"Retry-After": _http_date(2)})],
        lambda: [Reset(100_000)],
        lambda: [Stall(0, seconds=3.0)],
    ],
    ids=["500", "502-retry-after", "503-retry-after", "429-seconds", "429-http-date", "reset", "stall"],
)
async def test_retryable_upload_failures_are_retried(
    env: Env, make_faults: Callable[[], list[Fault]]
) -> None:
    body = media_bytes(300_000)
    asset_id = await env.add_remote_asset(body)
    env.server.fail("POST", MEDIA, *make_faults())
    ref = await env.transfers.get_asset_for_provider(asset_id, "pixverse")
    assert [u.id for u in env.pixverse.uploads] == [int(ref.ref)]
    assert env.pixverse.uploads[0].data == body
    assert env.server.count("POST", MEDIA) == 2
    # Every attempt carried the key and a new trace id, as the Pixverse contract requires.
    attempts = [r for r in env.server.requests if r.path == MEDIA]
    assert {r.header("api-key") for r in attempts} == {PIXVERSE_KEY}
    assert len({r.header("ai-trace-id") for r in attempts}) == 2


@pytest.mark.parametrize(
    ("err_code", "error"),
    [
        (500090, InsufficientBalance),
        (500043, InsufficientBalance),
        (500054, Moderated),
        (500063, Moderated),
        (400017, InvalidParameter),
        (500020, AuthFailed),
    ],
)
async def test_permanent_provider_errors_surface_at_once(
    env: Env, err_code: int, error: type[Exception]
) -> None:
    asset_id = await env.add_remote_asset(media_bytes(10_000))
    env.pixverse.fail_envelope(MEDIA, err_code, "refused")
    with pytest.raises(error, match=f"ErrCode {err_code}"):
        await env.transfers.get_asset_for_provider(asset_id, "pixverse")
    assert env.server.count("POST", MEDIA) == 1
    assert await env.refs(asset_id) == []


@pytest.mark.parametrize("err_code", [500044, 500069, 500100, 500041])
async def test_retryable_pixverse_error_codes_are_retried(env: Env, err_code: int) -> None:
    asset_id = await env.add_remote_asset(media_bytes(10_000))
    env.pixverse.fail_envelope(MEDIA, err_code, "busy")
    ref = await env.transfers.get_asset_for_provider(asset_id, "pixverse")
    assert env.server.count("POST", MEDIA) == 2
    assert int(ref.ref) in env.pixverse.known_ids


async def test_401_names_the_account_problem_and_is_not_retried(env: Env) -> None:
    asset_id = await env.add_remote_asset(media_bytes(10_000))
    env.server.fail("POST", MEDIA, Status(401))
    with pytest.raises(AuthFailed, match="Check the API key"):
        await env.transfers.get_asset_for_provider(asset_id, "pixverse")
    assert env.server.count("POST", MEDIA) == 1


async def test_a_wrong_key_in_the_keyring_is_an_auth_failure(env: Env) -> None:
    import keyring

    from core.providers.accounts import KEYRING_SERVICE

    keyring.set_password(KEYRING_SERVICE, "pixverse/main", "not-the-key")
    asset_id = await env.add_remote_asset(media_bytes(10_000))
    with pytest.raises(AuthFailed) as info:
        await env.transfers.get_asset_for_provider(asset_id, "pixverse")
    assert "not-the-key" not in str(info.value)


async def test_a_long_rate_limit_surfaces_with_advice(env: Env) -> None:
    asset_id = await env.add_remote_asset(media_bytes(10_000))
    env.server.fail("POST", MEDIA, Status(429, {"Retry-After": "600"}))
    with pytest.raises(RateLimited, match="try again later"):
        await env.transfers.get_asset_for_provider(asset_id, "pixverse")


async def test_3d_models_are_refused_by_pixverse_before_any_upload(env: Env) -> None:
    from core.db.enums import MediaType

    asset_id = await env.add_remote_asset(
        media_bytes(1000), media_type=MediaType.MODEL_3D, mime_type="model/gltf-binary"
    )
    with pytest.raises(InvalidParameter, match="not 3D models"):
        await env.transfers.get_asset_for_provider(asset_id, "pixverse")
    assert env.server.count("POST", MEDIA) == 0


async def test_an_answer_cut_short_is_retried(env: Env) -> None:
    asset_id = await env.add_remote_asset(media_bytes(10_000))
    env.server.fail("POST", MEDIA, CutShort(20, close_delimited=True))
    ref = await env.transfers.get_asset_for_provider(asset_id, "pixverse")
    assert env.server.count("POST", MEDIA) == 2
    assert int(ref.ref) in env.pixverse.known_ids


async def test_a_slow_but_steady_answer_does_not_time_out(env: Env) -> None:
    asset_id = await env.add_remote_asset(media_bytes(10_000))
    env.server.fail("POST", MEDIA, Slow(chunk_size=8, interval_s=0.2))  # ~3 s for the JSON envelope
    ref = await env.transfers.get_asset_for_provider(asset_id, "pixverse")
    assert env.server.count("POST", MEDIA) == 1
    assert int(ref.ref) in env.pixverse.known_ids


async def test_an_upload_is_never_redirected(env: Env) -> None:
    async with FakeHttpServer() as elsewhere:
        asset_id = await env.add_remote_asset(media_bytes(10_000))
        env.server.fail("POST", MEDIA, Redirect(elsewhere.url("/steal"), status=307))
        with pytest.raises(InvalidParameter, match="307"):
            await env.transfers.get_asset_for_provider(asset_id, "pixverse")
        assert elsewhere.requests == [], "neither the file nor the API key went anywhere else"
