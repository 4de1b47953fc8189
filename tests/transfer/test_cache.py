"""The content store and its index: stats, LRU eviction, leases, library storage, store integrity."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from core.cache.store import ContentStore
from core.db.models import Asset, CacheEntry
from core.errors import CacheError

from .conftest import Env, media_bytes


async def _cached(env: Env, n: int, size: int = 10_000) -> list[tuple[int, str]]:
    """n downloaded assets (remote URL still valid: plain cache), oldest access first."""
    out = []
    for i in range(n):
        body = media_bytes(size, seed=100 + i)
        asset_id = await env.add_remote_asset(body, name=f"c{i}.mp4")
        path = await env.transfers.ensure_local(asset_id)
        out.append((asset_id, path.name))
    for i, (_, sha) in enumerate(out):
        async with env.sessions() as session, session.begin():
            await session.execute(
                update(CacheEntry)
                .where(CacheEntry.sha256 == sha)
                .values(last_accessed_at=datetime.now(UTC) - timedelta(hours=100 - i))
            )
    return out


async def test_eviction_removes_least_recently_used_files_down_to_the_cap(env: Env) -> None:
    entries = await _cached(env, 5)
    stats = await env.transfers.stats()
    assert (stats.entries, stats.total_bytes, stats.library_bytes) == (5, 50_000, 0)

    report = await env.transfers.evict(cap_bytes=25_000)

    assert (report.evicted, report.freed_bytes, report.remaining_bytes) == (3, 30_000, 20_000)
    kept = {sha for _, sha in entries[3:]}
    assert {p.name for p in env.objects()} == kept
    assert (await env.transfers.stats()).entries == 2
    # An evicted asset is fetched again on demand.
    again = await env.transfers.ensure_local(entries[0][0])
    assert again.exists()


async def test_leased_files_and_files_in_use_are_never_evicted(env: Env) -> None:
    entries = await _cached(env, 3)
    oldest_asset, oldest_sha = entries[0]
    async with env.transfers.using_local(oldest_asset) as path:
        report = await env.transfers.evict(cap_bytes=0)
        assert path.exists(), "the file in use survived"
        assert report.evicted == 2 and report.remaining_bytes == 10_000
    # Released, the file keeps a grace minute (another process may still be using it); after it expires
    # the file is ordinary cache again. Another process's lease (in the database) protects it too.
    async with env.sessions() as session, session.begin():
        await session.execute(
            update(CacheEntry).where(CacheEntry.sha256 == oldest_sha).values(leased_until=datetime.now(UTC))
        )
    second_asset, second_sha = entries[1]
    await env.transfers.ensure_local(second_asset)
    assert await env.transfers.index.lease(second_sha)
    report = await env.transfers.evict(cap_bytes=0)
    assert env.store.has(second_sha)
    assert not env.store.has(oldest_sha)


async def test_library_storage_is_never_evicted(env: Env, tmp_path: Path) -> None:
    # An imported file (no remote URL) and a download whose URL has expired are the only copies.
    source = tmp_path / "imported.mp4"
    source.write_bytes(media_bytes(20_000, seed=5))
    _, path = await env.add_imported_asset(source)
    sha = path.name
    [(expired_asset, expired_sha)] = await _cached(env, 1)
    async with env.sessions() as session, session.begin():
        await session.execute(
            update(Asset)
            .where(Asset.id == expired_asset)
            .values(remote_url_expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    stats = await env.transfers.stats()
    assert stats.library_bytes == 30_000 and stats.evictable_bytes == 0

    report = await env.transfers.evict(cap_bytes=0)

    assert report.evicted == 0
    assert env.store.has(sha) and env.store.has(expired_sha)


async def test_downloads_trigger_background_eviction_over_the_cap(env: Env) -> None:
    env.transfers.cache_cap_bytes = 25_000
    ids = [await env.add_remote_asset(media_bytes(10_000, seed=200 + i), name=f"b{i}.mp4") for i in range(4)]
    for asset_id in ids:
        await env.transfers.ensure_local(asset_id)
        await asyncio.sleep(0.05)  # let each background pass run
    for _ in range(50):
        if (await env.transfers.stats()).total_bytes <= 25_000:
            break
        await asyncio.sleep(0.05)
    stats = await env.transfers.stats()
    assert stats.total_bytes <= 25_000
    assert len(env.objects()) == stats.entries


def test_store_paths_come_from_the_hash_only(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    sha = hashlib.sha256(b"x").hexdigest()
    assert store.object_path(sha) == tmp_path / "objects" / sha[:2] / sha[2:4] / sha
    for bad in ("../../etc/passwd", sha.upper(), sha[:-1], "a" * 64 + "/x"):
        with pytest.raises(CacheError):
            store.object_path(bad)
    with pytest.raises(CacheError):
        store.partial("../escape")


def test_identical_content_is_stored_once(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "store")
    store.ensure_dirs()
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"same bytes" * 1000)
    b.write_bytes(b"same bytes" * 1000)
    first = store.add_file(a, "one")
    second = store.add_file(b, "two")
    assert first == second
    assert list(store.iter_objects()) == [(first[0], 10_000)]
    assert list(store.partials.iterdir()) == []
