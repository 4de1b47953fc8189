"""get_asset_for_provider and ensure_local: hits, misses, stale and origin references, events, cancel."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from core.db.enums import MediaType, ProviderRefKind, SyncStatus
from core.db.models import AssetProviderRef, ProviderAccount
from core.errors import CacheError, ConfigError, StaleReference, TransferCancelled
from core.providers.base import ProviderReference
from core.transfer.events import Phase
from tests.factories import local_user_id
from tests.fakes.http_server import Slow

from .conftest import Env, media_bytes

MEDIA = "/openapi/v2/media/upload"
IMAGE = "/openapi/v2/image/upload"


async def test_a_miss_downloads_once_uploads_and_records_the_reference(env: Env) -> None:
    body = media_bytes(300_000)
    asset_id = await env.add_remote_asset(body, declare=False)

    ref = await env.transfers.get_asset_for_provider(asset_id, "pixverse")

    assert ref.kind == ProviderRefKind.MEDIA_ID
    assert [item.id for item in env.pixverse.uploads] == [int(ref.ref)]
    assert env.pixverse.uploads[0].data == body, "the provider received exactly the asset's bytes"
    assert env.server.count("GET", "/cdn/clip.mp4") == 1
    # The verified file is stored under its content hash, and the asset learned its hash and size.
    sha = hashlib.sha256(body).hexdigest()
    assert env.objects() == [env.store.object_path(sha)]
    assert env.partials() == []
    asset = await env.asset(asset_id)
    assert (asset.sha256, asset.file_size_bytes, asset.sync_status) == (sha, len(body), SyncStatus.DOWNLOADED)
    [row] = await env.refs(asset_id)
    assert (row.provider_id, row.account_id, row.provider_ref) == (
        "pixverse",
        env.pixverse_account_id,
        ref.ref,
    )
    phases = [e.phase for e in env.events]
    assert phases[0] == Phase.QUEUED and phases[-1] == Phase.DONE
    assert {Phase.DOWNLOADING, Phase.VERIFYING, Phase.UPLOADING} <= set(phases)
    assert phases.index(Phase.DOWNLOADING) < phases.index(Phase.UPLOADING)
    last_download = [e for e in env.events if e.phase == Phase.DOWNLOADING][-1]
    assert (last_download.bytes_done, last_download.bytes_total) == (len(body), len(body))


async def test_a_hit_uses_no_network_and_stamps_the_access_time(env: Env) -> None:
    asset_id = await env.add_remote_asset(media_bytes(10_000))
    first = await env.transfers.get_asset_for_provider(asset_id, "pixverse")
    before = (await env.asset(asset_id)).last_accessed_at
    requests_before = len(env.server.requests)
    await asyncio.sleep(0.01)

    again = await env.transfers.get_asset_for_provider(asset_id, "pixverse", "main")

    assert again == first
    assert len(env.server.requests) == requests_before, "a hit makes no request at all"
    after = (await env.asset(asset_id)).last_accessed_at
    assert before is not None and after is not None and after > before


async def test_an_expired_reference_is_dropped_and_uploaded_again_once(env: Env) -> None:
    asset_id = await env.add_remote_asset(media_bytes(10_000))
    first = await env.transfers.get_asset_for_provider(asset_id, "pixverse")
    async with env.sessions() as session, session.begin():
        await session.execute(
            update(AssetProviderRef)
            .where(AssetProviderRef.asset_id == asset_id)
            .values(expires_at=datetime.now(UTC) + timedelta(seconds=30))  # inside the safety margin
        )

    renewed = await env.transfers.get_asset_for_provider(asset_id, "pixverse")

    assert renewed.ref != first.ref
    assert len(env.pixverse.uploads) == 2
    assert env.server.count("GET", "/cdn/clip.mp4") == 1, "the local copy was reused"
    assert [r.provider_ref for r in await env.refs(asset_id)] == [renewed.ref]


async def test_a_reference_the_provider_rejects_is_replaced_once(env: Env) -> None:
    asset_id = await env.add_remote_asset(media_bytes(10_000))
    seen: list[str] = []

    async def use(ref: ProviderReference) -> str:
        seen.append(ref.ref)
        if len(seen) == 1:
            raise StaleReference("Pixverse no longer knows this media id", provider_id="pixverse")
        return f"used {ref.ref}"

    result = await env.transfers.use_on_provider(asset_id, "pixverse", use)

    assert len(seen) == 2 and seen[0] != seen[1]
    assert result == f"used {seen[1]}"
    assert len(env.pixverse.uploads) == 2


async def test_rejected_twice_surfaces_instead_of_looping(env: Env) -> None:
    asset_id = await env.add_remote_asset(media_bytes(1000))

    async def use(ref: ProviderReference) -> None:
        raise StaleReference("unknown media id", provider_id="pixverse")

    with pytest.raises(StaleReference):
        await env.transfers.use_on_provider(asset_id, "pixverse", use)
    assert len(env.pixverse.uploads) == 2


async def test_an_asset_the_provider_made_needs_no_upload(env: Env) -> None:
    asset_id = await env.add_remote_asset(
        media_bytes(1000), provider_id="pixverse", provider_asset_id="372541"
    )
    ref = await env.transfers.get_asset_for_provider(asset_id, "pixverse")
    assert (ref.kind, ref.ref, ref.is_origin) == (ProviderRefKind.VIDEO_ID, "372541", True)
    assert env.server.requests == []


async def test_images_go_to_the_image_endpoint(env: Env) -> None:
    png = b"\x89PNG\r\n\x1a\n" + media_bytes(5000)
    asset_id = await env.add_remote_asset(
        png, name="still.png", media_type=MediaType.IMAGE, mime_type="image/png"
    )
    ref = await env.transfers.get_asset_for_provider(asset_id, "pixverse")
    assert ref.kind == ProviderRefKind.IMAGE_ID
    assert env.server.count("POST", IMAGE) == 1 and env.server.count("POST", MEDIA) == 0
    assert env.pixverse.uploads[0].filename == f"{hashlib.sha256(png).hexdigest()[:16]}.png"


async def test_ensure_local_serves_library_storage_without_network(env: Env) -> None:
    body = media_bytes(2048, seed=7)
    asset_id, path = await env.add_imported_asset(_write(env, body))
    sha = path.name
    assert await env.transfers.ensure_local(asset_id) == path
    assert path.read_bytes() == body
    sandbox = await env.transfers.get_asset_for_provider(asset_id, "sandbox")
    assert sandbox.ref == f"sha256:{sha}"
    assert env.server.requests == []


async def test_an_asset_with_no_copy_left_says_so(env: Env) -> None:
    asset_id = await env.add_remote_asset(
        media_bytes(100), remote_url_expires_at=datetime.now(UTC) - timedelta(hours=1)
    )
    with pytest.raises(CacheError, match="no provider still offers it"):
        await env.transfers.ensure_local(asset_id)


async def test_another_providers_reference_is_a_fallback_source(env: Env) -> None:
    body = media_bytes(4000, seed=3)
    asset_id = await env.add_remote_asset(body)
    env.server.remove_file("/cdn/clip.mp4")  # the original URL is gone (404)
    env.server.add_file("/media/file/77", body)
    async with env.sessions() as session, session.begin():
        session.add(
            AssetProviderRef(
                asset_id=asset_id,
                provider_id="pixverse",
                account_id=env.pixverse_account_id,
                ref_kind=ProviderRefKind.MEDIA_ID,
                provider_ref="77",
                url=env.server.url("/media/file/77"),
            )
        )
    path = await env.transfers.ensure_local(asset_id)
    assert path.read_bytes() == body


async def test_cancelling_a_transfer_leaves_nothing_behind(env: Env) -> None:
    body = media_bytes(2_000_000)
    asset_id = await env.add_remote_asset(body)
    env.server.fail("GET", "/cdn/clip.mp4", Slow(chunk_size=64 * 1024, interval_s=0.05))
    task = asyncio.ensure_future(env.transfers.get_asset_for_provider(asset_id, "pixverse"))
    started = asyncio.Event()
    env.transfers.events.subscribe(
        lambda e: started.set() if e.phase == Phase.DOWNLOADING and e.bytes_done > 100_000 else None
    )
    await asyncio.wait_for(started.wait(), 10)
    transfer_id = env.events[-1].transfer_id
    assert env.transfers.cancel(transfer_id)
    with pytest.raises((TransferCancelled, asyncio.CancelledError)):
        await task
    assert env.events[-1].phase == Phase.CANCELLED
    assert env.partials() == [] and env.objects() == []
    assert env.pixverse.uploads == []
    assert (await env.asset(asset_id)).sync_status == SyncStatus.REMOTE


def _write(env: Env, body: bytes) -> Path:
    path = env.store.root.parent / "import-source.bin"
    path.write_bytes(body)
    return path


async def test_with_several_accounts_the_caller_must_choose(env: Env) -> None:
    asset_id = await env.add_remote_asset(media_bytes(1000))
    main = await env.transfers.get_asset_for_provider(asset_id, "pixverse")
    async with env.sessions() as session, session.begin():
        session.add(
            ProviderAccount(
                user_id=await local_user_id(session), provider_id="pixverse", label="studio", keyring_ref="x"
            )
        )
    with pytest.raises(ConfigError, match=r"several accounts \(main, studio\)"):
        await env.transfers.get_asset_for_provider(asset_id, "pixverse")
    assert await env.transfers.get_asset_for_provider(asset_id, "pixverse", "main") == main
    assert await env.transfers.get_asset_for_provider(asset_id, "pixverse", env.pixverse_account_id) == main
