"""The content store's database index: access times, leases, library storage, stats and LRU eviction.

A stored file is *library storage* (never evicted) while some asset has no other durable copy: the user
imported it (no remote URL) or the provider URL has expired. Everything else is cache.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, Executable, Exists, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.cache.store import ContentStore
from core.db.models import Asset, CacheEntry

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(minutes=15)


def _only_durable_copy() -> Exists:
    """SQL: some asset with this content has no other durable copy."""
    now = func.now()
    return (
        select(Asset.id)
        .where(
            Asset.sha256 == CacheEntry.sha256,
            or_(Asset.remote_url.is_(None), Asset.remote_url_expires_at <= now),
        )
        .exists()
    )


@dataclass(frozen=True)
class CacheStats:
    entries: int
    total_bytes: int
    library_bytes: int
    leased_entries: int
    cap_bytes: int

    @property
    def evictable_bytes(self) -> int:
        return self.total_bytes - self.library_bytes


@dataclass(frozen=True)
class EvictionReport:
    evicted: int
    freed_bytes: int
    remaining_bytes: int


class CacheIndex:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], store: ContentStore) -> None:
        self._sessions = sessions
        self._store = store

    async def record(self, sha256: str, size: int) -> None:
        """A file was committed to the store (or touched again): insert or refresh its entry."""
        stmt = insert(CacheEntry).values(sha256=sha256, size_bytes=size)
        stmt = stmt.on_conflict_do_update(
            index_elements=[CacheEntry.sha256],
            set_={"size_bytes": size, "last_accessed_at": func.now()},
        )
        async with self._sessions() as session, session.begin():
            await session.execute(stmt)

    async def touch(self, sha256: str) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(CacheEntry).where(CacheEntry.sha256 == sha256).values(last_accessed_at=func.now())
            )

    async def lease(self, sha256: str, duration: timedelta = DEFAULT_LEASE) -> bool:
        """Protect a file from eviction until ``now + duration``. False if the file is not indexed."""
        stmt = (
            update(CacheEntry)
            .where(CacheEntry.sha256 == sha256)
            .values(
                last_accessed_at=func.now(),
                leased_until=func.greatest(
                    func.coalesce(CacheEntry.leased_until, func.now()), func.now() + duration
                ),
            )
            .returning(CacheEntry.sha256)
        )
        async with self._sessions() as session, session.begin():
            return (await session.execute(stmt)).first() is not None

    async def release(self, sha256: str) -> None:
        """End this holder's lease early. Other holders renew theirs, so clearing is safe only when
        the lease is ours alone; we therefore just shorten it to a grace minute."""
        grace = func.now() + timedelta(minutes=1)
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(CacheEntry)
                .where(CacheEntry.sha256 == sha256, CacheEntry.leased_until > grace)
                .values(leased_until=grace)
            )

    async def forget(self, sha256: str) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(delete(CacheEntry).where(CacheEntry.sha256 == sha256))

    async def stats(self, cap_bytes: int) -> CacheStats:
        only_copy = _only_durable_copy()
        stmt = select(
            func.count(),
            func.coalesce(func.sum(CacheEntry.size_bytes), 0),
            func.coalesce(func.sum(CacheEntry.size_bytes).filter(only_copy), 0),
            func.count().filter(CacheEntry.leased_until > func.now()),
        ).select_from(CacheEntry)
        async with self._sessions() as session:
            entries, total, library, leased = (await session.execute(stmt)).one()
        return CacheStats(int(entries), int(total), int(library), int(leased), cap_bytes)

    async def evict(self, cap_bytes: int, *, in_use: set[str] | None = None) -> EvictionReport:
        """Delete least-recently-used cache files until the total is at most ``cap_bytes``.

        One statement picks the victims (running sum in LRU order, leased files, files this process
        uses and library storage excluded) and deletes their rows, re-checking the lease as it deletes;
        only the files whose rows it returned are then unlinked, on worker threads. A file someone
        leases concurrently is therefore never removed.
        """
        async with self._sessions() as session, session.begin():
            total = int(await session.scalar(select(func.coalesce(func.sum(CacheEntry.size_bytes), 0))) or 0)
            if total <= cap_bytes:
                return EvictionReport(0, 0, total)
            deleted = (await session.execute(_eviction(total - cap_bytes, in_use or set()))).all()
        freed = sum(int(size) for _, size in deleted)
        await asyncio.to_thread(self._unlink_all, [sha for sha, _ in deleted])
        log.info("evicted %d cached files, %d bytes", len(deleted), freed)
        return EvictionReport(len(deleted), freed, total - freed)

    def _unlink_all(self, shas: list[str]) -> None:
        # Unlinking is the slow part on real disks (journal, discard); it parallelizes well.
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(self._store.remove, shas, chunksize=64))


def _not_leased() -> ColumnElement[bool]:
    return or_(CacheEntry.leased_until.is_(None), CacheEntry.leased_until <= func.now())


def _eviction(excess: int, in_use: set[str]) -> Executable:
    """Victims in LRU order while the bytes before them are still under ``excess``, deleted in the same
    statement with the lease re-checked (a concurrent lease blocks on the row, then excludes it)."""
    before = (
        func.sum(CacheEntry.size_bytes).over(order_by=(CacheEntry.last_accessed_at, CacheEntry.sha256))
        - CacheEntry.size_bytes
    )
    candidates = (
        select(CacheEntry.sha256, before.label("before"))
        .where(_not_leased(), CacheEntry.sha256.not_in(in_use), ~_only_durable_copy())
        .cte("candidates")
    )
    return (
        delete(CacheEntry)
        .where(CacheEntry.sha256 == candidates.c.sha256, candidates.c.before < excess, _not_leased())
        .returning(CacheEntry.sha256, CacheEntry.size_bytes)
    )
