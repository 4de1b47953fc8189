"""``get_asset_for_provider`` and ``ensure_local``: the cross-provider transfer engine.

Hit: one statement returns the cached reference and stamps the access times; no network.
Miss: single-flight (one task per key in this process, a PostgreSQL advisory lock across processes),
then a verified local copy (store, remote URL, or a provider reference that still resolves), an upload
through the adapter, and the new reference recorded with its expiry. Database work happens in short
transactions before and after the network I/O, never around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from sqlalchemy import delete, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.cache.index import CacheIndex, CacheStats, EvictionReport
from core.cache.store import ContentStore
from core.db.enums import MediaType, ProviderRefKind, SyncStatus
from core.db.locks import AdvisoryLocks
from core.db.models import Asset, AssetProviderRef
from core.db.quick import QuickStatements
from core.errors import (
    CacheError,
    ContentMismatch,
    PixSimError,
    StaleReference,
    TransferCancelled,
    TransferError,
    UnsafeUrl,
)
from core.net.http import SafeHttp, with_retries
from core.net.limiter import Limiters
from core.net.retry import RetryPolicy
from core.providers.accounts import AccountResolver
from core.providers.base import (
    EXPIRY_MARGIN,
    Credentials,
    Provider,
    ProviderReference,
    SupportsUpload,
    Uploaded,
    UploadRequest,
)
from core.providers.registry import ProviderRegistry
from core.redact import redact_text
from core.transfer.download import DownloadSource, download
from core.transfer.events import ByteProgress, EventHub, Phase, TransferEvent

log = logging.getLogger(__name__)
T = TypeVar("T")

# One round trip for a hit: the valid reference, with both access stamps updated. The account is
# chosen as AccountResolver chooses it: the one asked for, or the only enabled one. When that is
# ambiguous, or missing for a provider that needs one, the id is -1 (matches nothing): no hit, and the
# slow path explains. With "exact", the account id given is used as is (already resolved).
_HIT_SQL = """
WITH acct AS (
    SELECT CASE
        WHEN %(exact)s THEN %(account_id)s::bigint
        WHEN count(*) = 1 THEN min(id)
        WHEN count(*) = 0 AND NOT %(required)s
             AND %(label)s::text IS NULL AND %(account_id)s::bigint IS NULL THEN NULL
        ELSE -1
    END AS id
    FROM provider_accounts
    WHERE provider_id = %(provider_id)s AND enabled
      AND (%(label)s::text IS NULL OR label = %(label)s::text)
      AND (%(account_id)s::bigint IS NULL OR id = %(account_id)s::bigint)
), ref AS (
    UPDATE asset_provider_refs r SET last_used_at = now()
    FROM acct
    WHERE r.asset_id = %(asset_id)s AND r.provider_id = %(provider_id)s
      AND r.account_id IS NOT DISTINCT FROM acct.id
      AND (r.expires_at IS NULL OR r.expires_at > now() + %(margin)s)
    RETURNING r.asset_id, r.provider_id, r.account_id, r.ref_kind, r.provider_ref, r.url, r.expires_at,
              r.is_origin, r.details
), touched AS (
    UPDATE assets SET last_accessed_at = now()
    WHERE id = %(asset_id)s AND EXISTS (SELECT 1 FROM ref)
)
SELECT * FROM ref
"""


@dataclass(frozen=True)
class _AssetFacts:
    id: int
    media_type: MediaType
    provider_id: str
    provider_asset_id: str | None
    remote_url: str | None
    remote_url_expires_at: datetime | None
    sha256: str | None
    file_size_bytes: int | None
    mime_type: str | None
    refs: list[ProviderReference] = field(default_factory=list)


def _ref_from_row(row: Any) -> ProviderReference:
    return ProviderReference(
        asset_id=row.asset_id,
        provider_id=row.provider_id,
        account_id=row.account_id,
        kind=ProviderRefKind(row.ref_kind),
        ref=row.provider_ref,
        url=row.url,
        expires_at=row.expires_at,
        is_origin=row.is_origin,
        details=dict(row.details or {}),
    )


class TransferService:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        store: ContentStore,
        index: CacheIndex,
        http: SafeHttp,
        registry: ProviderRegistry,
        accounts: AccountResolver,
        locks: AdvisoryLocks,
        quick: QuickStatements,
        limiters: Limiters | None = None,
        retry: RetryPolicy | None = None,
        cache_cap_bytes: int | None = None,
        max_active_transfers: int = 16,
    ) -> None:
        self._sessions = sessions
        self.store = store
        self.index = index
        self.http = http
        self._registry = registry
        self._accounts = accounts
        self._locks = locks
        self._quick = quick
        self._limiters = limiters or Limiters()
        self._retry = retry or RetryPolicy()
        self.cache_cap_bytes = cache_cap_bytes
        self.events = EventHub()
        # Bound the work in progress (each holds a lock connection); the rest wait as "queued".
        # Two separate pools so a push holding a slot can always get a download slot: downloads never
        # wait for pushes, so there is no cycle. Per-provider limits apply inside.
        self._active_pushes = asyncio.Semaphore(max_active_transfers)
        self._active_downloads = asyncio.Semaphore(max_active_transfers)
        self._pushes: dict[tuple[int, str, int | None], _Flight[ProviderReference]] = {}
        self._downloads: dict[int, _Flight[Path]] = {}
        self._transfers: dict[str, asyncio.Task[Any]] = {}
        self._in_use: dict[str, int] = {}  # sha256 -> holders in this process
        self._evicting: asyncio.Task[EvictionReport] | None = None
        store.ensure_dirs()

    # -- public API ------------------------------------------------------------------------------

    async def get_asset_for_provider(
        self, asset_id: int, target_provider: str, account: str | int | None = None
    ) -> ProviderReference:
        """The target provider's reference for the asset, uploading it first if the provider lacks it."""
        adapter = self._registry.get(target_provider)
        hit = await self._hit(
            asset_id, target_provider, account, required=adapter.requires_account, exact=False
        )
        if hit is not None:
            return hit
        account_id, _ = await self._accounts.resolve(
            target_provider, account, required=adapter.requires_account
        )
        key = (asset_id, target_provider, account_id)
        flight = self._pushes.get(key)
        if flight is None:
            flight = _Flight(asyncio.ensure_future(self._push(asset_id, adapter, account, account_id)))
            self._pushes[key] = flight
            flight.task.add_done_callback(lambda _: self._pushes.pop(key, None))
        return await flight.join()

    async def ensure_local(self, asset_id: int) -> Path:
        """A verified local file with the asset's bytes (downloading it once if needed)."""
        return await self._local_copy(asset_id, transfer_id=None, provider_id=None)

    @asynccontextmanager
    async def using_local(self, asset_id: int) -> AsyncIterator[Path]:
        """``ensure_local`` plus a lease: the file is not evicted while the block runs (players, exports)."""
        path = await self.ensure_local(asset_id)
        async with self._holding(path.name):
            yield path

    @asynccontextmanager
    async def _holding(self, sha256: str) -> AsyncIterator[None]:
        """Lease a stored file: counted in this process, and in the database for other processes."""
        self._in_use[sha256] = self._in_use.get(sha256, 0) + 1
        try:
            await self.index.lease(sha256)
            yield
        finally:
            remaining = self._in_use[sha256] - 1
            if remaining:
                self._in_use[sha256] = remaining
            else:
                del self._in_use[sha256]
                await self.index.release(sha256)

    async def invalidate(self, asset_id: int, provider_id: str, account_id: int | None) -> None:
        """Drop a reference the provider no longer honours (it said the id or URL is unknown)."""
        await self._delete_ref(asset_id, provider_id, account_id, only_expired=False)

    async def use_on_provider(
        self,
        asset_id: int,
        provider_id: str,
        use: Callable[[ProviderReference], Awaitable[T]],
        account: str | int | None = None,
    ) -> T:
        """Run ``use(ref)``; if the provider rejects the reference as stale, re-upload once and retry."""
        ref = await self.get_asset_for_provider(asset_id, provider_id, account)
        try:
            return await use(ref)
        except StaleReference:
            log.info(
                "provider %s rejected its reference for asset %s; uploading again", provider_id, asset_id
            )
            await self.invalidate(asset_id, provider_id, ref.account_id)
            ref = await self.get_asset_for_provider(asset_id, provider_id, account)
            return await use(ref)

    async def existing_reference(
        self, asset_id: int, provider_id: str, account_id: int | None
    ) -> ProviderReference | None:
        """The provider's reference without uploading anything: a cached one, or the provider's own id
        for media it made itself. None when only an upload (or sending the file) would do."""
        hit = await self._lookup(asset_id, provider_id, account_id)
        if hit is not None:
            return hit
        facts = await self._facts(asset_id)
        if facts.provider_id != provider_id or not facts.provider_asset_id:
            return None
        origin = self._registry.get(provider_id).origin_reference(facts.provider_asset_id, facts.media_type)
        if origin is None:
            return None
        return await self._record(asset_id, provider_id, account_id, origin, is_origin=True)

    async def store_file(self, source: Path, key: str) -> StoredFile:
        """Copy a local file into the store (hashed, fsynced, atomically renamed) and index it."""
        sha256, size, path = await asyncio.to_thread(self.store.add_file, source, key)
        await self.index.record(sha256, size)
        return StoredFile(sha256, size, path)

    async def fetch_to_store(
        self, source: DownloadSource, key: str, *, http: SafeHttp | None = None, job_id: int | None = None
    ) -> StoredFile:
        """Download ``source`` into the store (resumable, verified, never visible half-written)."""
        transfer_id = uuid.uuid4().hex
        partial = self.store.partial(key)
        hub = self.events
        progress = ByteProgress(hub, transfer_id, None, source.provider_id, Phase.DOWNLOADING, job_id=job_id)
        limiter = self._limiters.for_provider(source.provider_id or "download")
        try:
            async with self._active_downloads, limiter.slot():
                result = await download(
                    http or self.http,
                    source,
                    partial,
                    retry=self._retry,
                    progress=progress,
                    on_retry=self._retry_note(transfer_id, 0, source.provider_id),
                )
            path = self.store.commit(partial, result.sha256)
        except asyncio.CancelledError:
            partial.discard()
            raise
        await self.index.record(result.sha256, result.size)
        hub.emit(
            TransferEvent(
                transfer_id, None, source.provider_id, Phase.DONE, result.size, result.size, job_id=job_id
            )
        )
        self._schedule_eviction()
        return StoredFile(result.sha256, result.size, path)

    def cancel(self, transfer_id: str) -> bool:
        task = self._transfers.get(transfer_id)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    async def aclose(self) -> None:
        """Close this service's own connections (the HTTP client belongs to whoever passed it in)."""
        await self._quick.aclose()

    async def stats(self) -> CacheStats:
        return await self.index.stats(self.cache_cap_bytes or 0)

    async def evict(self, cap_bytes: int | None = None) -> EvictionReport:
        cap = self.cache_cap_bytes if cap_bytes is None else cap_bytes
        if cap is None:
            raise CacheError("No cache size cap is set.")
        return await self.index.evict(cap, in_use=set(self._in_use))

    # -- hit path --------------------------------------------------------------------------------

    async def _hit(
        self, asset_id: int, provider_id: str, account: str | int | None, *, required: bool, exact: bool
    ) -> ProviderReference | None:
        row = await self._quick.fetchone(
            _HIT_SQL,
            {
                "asset_id": asset_id,
                "provider_id": provider_id,
                "account_id": account if isinstance(account, int) else None,
                "label": account if isinstance(account, str) else None,
                "required": required,
                "exact": exact,
                "margin": EXPIRY_MARGIN,
            },
        )
        return _ref_from_row(row) if row is not None else None

    async def _lookup(
        self, asset_id: int, provider_id: str, account_id: int | None
    ) -> ProviderReference | None:
        """The hit query for an account already resolved (inside a push, after taking the lock)."""
        return await self._hit(asset_id, provider_id, account_id, required=False, exact=True)

    # -- miss path -------------------------------------------------------------------------------

    async def _push(
        self, asset_id: int, adapter: Provider, account: str | int | None, account_id: int | None
    ) -> ProviderReference:
        provider_id = adapter.provider_id
        transfer_id = uuid.uuid4().hex
        self._transfers[transfer_id] = asyncio.current_task()  # type: ignore[assignment]
        self._emit(transfer_id, asset_id, provider_id, Phase.QUEUED)
        try:
            async with self._active_pushes, self._locks.hold("push", asset_id, provider_id, account_id):
                # Another process may have finished the same push while we waited for the lock.
                hit = await self._lookup(asset_id, provider_id, account_id)
                if hit is not None:
                    self._emit(transfer_id, asset_id, provider_id, Phase.DONE)
                    return hit
                await self._delete_ref(asset_id, provider_id, account_id, only_expired=True)
                facts = await self._facts(asset_id)
                origin = (
                    adapter.origin_reference(facts.provider_asset_id, facts.media_type)
                    if facts.provider_id == provider_id and facts.provider_asset_id
                    else None
                )
                if origin is not None:
                    ref = await self._record(asset_id, provider_id, account_id, origin, is_origin=True)
                    self._emit(transfer_id, asset_id, provider_id, Phase.DONE)
                    return ref
                _, credentials = await self._accounts.resolve(
                    provider_id, account, required=adapter.requires_account
                )
                uploader = self._registry.uploader(provider_id)
                path = await self._local_copy(asset_id, transfer_id, provider_id)
                async with self._holding(path.name):
                    uploaded = await self._upload(uploader, facts, path, credentials, transfer_id)
                ref = await self._record(asset_id, provider_id, account_id, uploaded, is_origin=False)
            self._emit(transfer_id, asset_id, provider_id, Phase.DONE, message=f"{ref.kind.value} {ref.ref}")
            return ref
        except asyncio.CancelledError:
            self._emit(transfer_id, asset_id, provider_id, Phase.CANCELLED)
            raise
        except PixSimError as exc:
            self._emit(transfer_id, asset_id, provider_id, Phase.FAILED, message=str(exc))
            raise
        finally:
            self._transfers.pop(transfer_id, None)

    async def _upload(
        self,
        adapter: SupportsUpload,
        facts: _AssetFacts,
        path: Path,
        credentials: Credentials,
        transfer_id: str,
    ) -> Uploaded:
        size = path.stat().st_size
        progress = ByteProgress(self.events, transfer_id, facts.id, adapter.provider_id, Phase.UPLOADING)
        request = UploadRequest(
            path=path,
            size=size,
            sha256=path.name,
            media_type=facts.media_type,
            mime_type=facts.mime_type,
            credentials=credentials,
            progress=progress,
        )
        http = self.http_for(adapter, credentials)
        limiter = self._limiters.for_provider(adapter.provider_id)

        async def attempt(_: int) -> Uploaded:
            progress(0, size, force=True)
            async with limiter.slot():
                return await adapter.upload(http, request)

        uploaded = await with_retries(
            attempt, self._retry, on_retry=self._retry_note(transfer_id, facts.id, adapter.provider_id)
        )
        progress(size, size, force=True)
        return uploaded

    def http_for(self, adapter: Provider, credentials: Credentials) -> SafeHttp:
        """The shared client, also allowing the loopback servers the user configured for this provider."""
        trusted = adapter.trusted_origins(credentials)
        return self.http.trusting(*trusted) if trusted else self.http

    async def _record(
        self, asset_id: int, provider_id: str, account_id: int | None, uploaded: Uploaded, *, is_origin: bool
    ) -> ProviderReference:
        values = {
            "asset_id": asset_id,
            "provider_id": provider_id,
            "account_id": account_id,
            "ref_kind": uploaded.kind,
            "provider_ref": uploaded.ref,
            "url": uploaded.url,
            "expires_at": uploaded.expires_at,
            "is_origin": is_origin,
            "details": uploaded.details,
        }
        stmt = insert(AssetProviderRef).values(
            **values, uploaded_at=datetime.now(UTC), last_used_at=datetime.now(UTC)
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["asset_id", "provider_id", "account_id"],
            set_={
                k: stmt.excluded[k]
                for k in (
                    "ref_kind",
                    "provider_ref",
                    "url",
                    "expires_at",
                    "is_origin",
                    "details",
                    "uploaded_at",
                    "last_used_at",
                )
            },
        )
        async with self._sessions() as session, session.begin():
            await session.execute(stmt)
            await session.execute(
                update(Asset).where(Asset.id == asset_id).values(last_accessed_at=datetime.now(UTC))
            )
        return ProviderReference(
            asset_id=asset_id,
            provider_id=provider_id,
            account_id=account_id,
            kind=uploaded.kind,
            ref=uploaded.ref,
            url=uploaded.url,
            expires_at=uploaded.expires_at,
            is_origin=is_origin,
            details=dict(uploaded.details),
        )

    async def _delete_ref(
        self, asset_id: int, provider_id: str, account_id: int | None, *, only_expired: bool
    ) -> None:
        stmt = delete(AssetProviderRef).where(
            AssetProviderRef.asset_id == asset_id,
            AssetProviderRef.provider_id == provider_id,
            AssetProviderRef.account_id.is_not_distinct_from(account_id),
        )
        if only_expired:
            stmt = stmt.where(
                AssetProviderRef.expires_at <= text("now() + :margin").bindparams(margin=EXPIRY_MARGIN)
            )
        async with self._sessions() as session, session.begin():
            await session.execute(stmt)

    # -- local copies ----------------------------------------------------------------------------

    async def _local_copy(self, asset_id: int, transfer_id: str | None, provider_id: str | None) -> Path:
        facts = await self._facts(asset_id)
        if facts.sha256 and self.store.has(facts.sha256, facts.file_size_bytes):
            await self.index.record(facts.sha256, facts.file_size_bytes or self._size(facts.sha256))
            return self.store.object_path(facts.sha256)
        return await self._download_flight(asset_id, transfer_id, provider_id).join()

    def _download_flight(
        self, asset_id: int, transfer_id: str | None, provider_id: str | None
    ) -> _Flight[Path]:
        flight = self._downloads.get(asset_id)
        if flight is None:
            flight = _Flight(asyncio.ensure_future(self._download(asset_id, transfer_id, provider_id)))
            self._downloads[asset_id] = flight
            flight.task.add_done_callback(lambda _: self._downloads.pop(asset_id, None))
        return flight

    async def _download(self, asset_id: int, transfer_id: str | None, provider_id: str | None) -> Path:
        own_transfer = transfer_id is None
        transfer_id = transfer_id or uuid.uuid4().hex
        if own_transfer:
            self._transfers[transfer_id] = asyncio.current_task()  # type: ignore[assignment]
            self._emit(transfer_id, asset_id, provider_id, Phase.QUEUED)
        partial = self.store.partial(f"asset-{asset_id}")
        try:
            async with self._active_downloads, self._locks.hold("download", asset_id):
                facts = await self._facts(asset_id)
                if facts.sha256 and self.store.has(facts.sha256, facts.file_size_bytes):
                    if own_transfer:
                        self._emit(transfer_id, asset_id, provider_id, Phase.DONE)
                    return self.store.object_path(facts.sha256)
                sources = await self._sources(facts)
                if not sources:
                    raise CacheError(
                        f"Asset {asset_id} has no local copy and no provider still offers it "
                        "(its URLs have expired). If you have the file, import it again."
                    )
                # The database never records "downloading": a crash would strand that state. Transfers
                # in flight are the events' business; the database only learns of verified files.
                result = await self._download_from(sources, partial, facts, transfer_id, provider_id)
                self._emit(transfer_id, asset_id, provider_id, Phase.VERIFYING, result.size, result.size)
                path = self.store.commit(partial, result.sha256)
                await self.index.record(result.sha256, result.size)
                async with self._sessions() as session, session.begin():
                    await session.execute(
                        update(Asset)
                        .where(Asset.id == asset_id)
                        .values(
                            sha256=result.sha256,
                            file_size_bytes=result.size,
                            sync_status=SyncStatus.DOWNLOADED,
                            last_accessed_at=datetime.now(UTC),
                        )
                    )
            if own_transfer:
                self._emit(transfer_id, asset_id, provider_id, Phase.DONE, result.size, result.size)
            self._schedule_eviction()
            return path
        except asyncio.CancelledError:
            partial.discard()  # a cancelled transfer leaves nothing behind
            if own_transfer:
                self._emit(transfer_id, asset_id, provider_id, Phase.CANCELLED)
            raise
        except PixSimError as exc:
            if own_transfer:
                self._emit(transfer_id, asset_id, provider_id, Phase.FAILED, message=str(exc))
            raise
        finally:
            if own_transfer:
                self._transfers.pop(transfer_id, None)

    async def _download_from(
        self,
        sources: list[tuple[DownloadSource, SafeHttp]],
        partial: Any,
        facts: _AssetFacts,
        transfer_id: str,
        provider_id: str | None,
    ) -> Any:
        progress = ByteProgress(self.events, transfer_id, facts.id, provider_id, Phase.DOWNLOADING)
        last_error: TransferError | None = None
        for source, http in sources:
            limiter = self._limiters.for_provider(source.provider_id or facts.provider_id)
            try:
                async with limiter.slot():
                    result = await download(
                        http,
                        source,
                        partial,
                        retry=self._retry,
                        progress=progress,
                        on_retry=self._retry_note(transfer_id, facts.id, provider_id),
                    )
                progress(result.size, result.size, force=True)  # the throttle may have eaten the last one
                return result
            except (StaleReference, UnsafeUrl, ContentMismatch) as exc:
                # This copy is gone or wrong; another provider may still hold a good one.
                log.warning("asset %s: source %s failed: %s", facts.id, redact_text(source.url), exc)
                partial.discard()
                last_error = exc
        assert last_error is not None
        raise last_error

    async def _sources(self, facts: _AssetFacts) -> list[tuple[DownloadSource, SafeHttp]]:
        """Where the bytes can still be fetched, each with the client allowed to fetch it (a configured
        loopback ComfyUI) and the account's credentials where the provider needs them (Sora)."""
        now = datetime.now(UTC)
        sources: list[tuple[DownloadSource, SafeHttp]] = []
        expected = {"expected_size": facts.file_size_bytes, "expected_sha256": facts.sha256}
        if facts.remote_url and (facts.remote_url_expires_at is None or facts.remote_url_expires_at > now):
            http = await self._http_for_provider(facts.provider_id, None)
            sources.append(
                (DownloadSource(url=facts.remote_url, provider_id=facts.provider_id, **expected), http)  # type: ignore[arg-type]
            )
        for ref in facts.refs:
            if ref.is_expired(now):
                continue
            try:
                adapter = self._registry.get(ref.provider_id)
            except PixSimError:
                continue
            try:
                _, credentials = await self._accounts.resolve(ref.provider_id, ref.account_id, required=False)
            except PixSimError:
                credentials = _NO_CREDENTIALS  # the account is gone or ambiguous: try without it
            source = adapter.download_source(ref, credentials)
            if source is not None and all(s.url != source.url for s, _ in sources):
                sources.append(
                    (
                        DownloadSource(
                            url=source.url,
                            provider_id=source.provider_id,
                            auth_headers=source.auth_headers,
                            **expected,  # type: ignore[arg-type]
                        ),
                        self.http_for(adapter, credentials),
                    )
                )
        return sources

    async def _http_for_provider(self, provider_id: str, account_id: int | None) -> SafeHttp:
        try:
            adapter = self._registry.get(provider_id)
        except PixSimError:
            return self.http
        try:
            _, credentials = await self._accounts.resolve(provider_id, account_id, required=False)
        except PixSimError:
            credentials = _NO_CREDENTIALS
        return self.http_for(adapter, credentials)

    async def _facts(self, asset_id: int) -> _AssetFacts:
        async with self._sessions() as session:
            asset = await session.get(Asset, asset_id)
            if asset is None:
                raise CacheError(f"There is no asset {asset_id} in the library.")
            refs = (
                await session.execute(
                    select(
                        AssetProviderRef.asset_id,
                        AssetProviderRef.provider_id,
                        AssetProviderRef.account_id,
                        AssetProviderRef.ref_kind,
                        AssetProviderRef.provider_ref,
                        AssetProviderRef.url,
                        AssetProviderRef.expires_at,
                        AssetProviderRef.is_origin,
                        AssetProviderRef.details,
                    ).where(AssetProviderRef.asset_id == asset_id)
                )
            ).all()
            return _AssetFacts(
                id=asset.id,
                media_type=asset.media_type,
                provider_id=asset.provider_id,
                provider_asset_id=asset.provider_asset_id,
                remote_url=asset.remote_url,
                remote_url_expires_at=asset.remote_url_expires_at,
                sha256=asset.sha256,
                file_size_bytes=asset.file_size_bytes,
                mime_type=asset.mime_type,
                refs=[_ref_from_row(r) for r in refs],
            )

    def _size(self, sha256: str) -> int:
        return self.store.object_path(sha256).stat().st_size

    # -- housekeeping ----------------------------------------------------------------------------

    def _schedule_eviction(self) -> None:
        """Evict in the background after the store grew; one pass at a time."""
        if self.cache_cap_bytes is None or (self._evicting is not None and not self._evicting.done()):
            return
        self._evicting = asyncio.ensure_future(self.evict())
        self._evicting.add_done_callback(_log_failure)

    def _emit(
        self,
        transfer_id: str,
        asset_id: int,
        provider_id: str | None,
        phase: Phase,
        done: int = 0,
        total: int | None = None,
        *,
        message: str | None = None,
    ) -> None:
        self.events.emit(TransferEvent(transfer_id, asset_id, provider_id, phase, done, total, message))

    def _retry_note(
        self, transfer_id: str, asset_id: int | None, provider_id: str | None
    ) -> Callable[[int, float, Exception], None]:
        def note(attempt: int, delay: float, error: Exception) -> None:
            log.info(
                "transfer %s attempt %d failed (%s); retrying in %.1f s", transfer_id, attempt, error, delay
            )

        return note


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size: int
    path: Path


class _Flight(Generic[T]):
    """One in-flight operation shared by every caller that asked for the same thing (single-flight).

    A caller that is cancelled stops waiting; the operation itself is cancelled only when its last
    caller gives up (and then its clean-up runs before the cancellation propagates).
    """

    def __init__(self, task: asyncio.Task[T]) -> None:
        self.task = task
        self.waiters = 0

    async def join(self) -> T:
        self.waiters += 1
        try:
            return await asyncio.shield(self.task)
        except asyncio.CancelledError:
            if self.task.cancelled():
                raise TransferCancelled("The transfer was cancelled.") from None
            if self.waiters == 1 and not self.task.done():
                self.task.cancel()
                with contextlib.suppress(BaseException):
                    await self.task
            raise
        finally:
            self.waiters -= 1


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background cache eviction failed: %s", task.exception())


_NO_CREDENTIALS = Credentials()
