"""Wiring: build the core services for one database and one set of settings (GUI, CLI, worker)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.settings import Settings
from core.cache.index import CacheIndex
from core.cache.store import ContentStore
from core.db.engine import make_async_engine, make_async_session_factory
from core.db.locks import AdvisoryLocks
from core.db.quick import QuickStatements
from core.embeddings.indexer import Indexer
from core.embeddings.store import EmbeddingStore
from core.embeddings.visual import VisualSignatureEmbedder
from core.importer import ImportService
from core.jobs.runner import JobPolicy, JobRunner
from core.jobs.service import JobService
from core.library import LibraryService
from core.net.http import SafeHttp
from core.net.limiter import Limiters
from core.net.retry import RetryPolicy
from core.providers.accounts import AccountResolver, AccountService
from core.providers.registry import ProviderRegistry
from core.segments import SegmentService
from core.story.service import StoryService
from core.thumbnails import ThumbnailService, ThumbnailStore
from core.transfer.service import TransferService


def builtin_providers() -> ProviderRegistry:
    """Every provider installed: built-in ones and third-party plugins, through entry points."""
    return ProviderRegistry.from_entry_points()


@dataclass
class Services:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    http: SafeHttp
    registry: ProviderRegistry
    library: LibraryService
    transfers: TransferService
    accounts: AccountService
    jobs: JobService
    runner: JobRunner
    importer: ImportService
    thumbnails: ThumbnailService
    story: StoryService
    segments: SegmentService
    embeddings: EmbeddingStore
    # Starts with the visual signature only; the app loads the installed models (CLIP: ~600 MB) off
    # the loop and hands them over with ``indexer.set_embedders``. Nothing runs until ``start()``.
    indexer: Indexer

    async def aclose(self) -> None:
        await self.indexer.stop()
        await self.segments.aclose()
        await self.thumbnails.aclose()
        await self.registry.aclose()
        await self.transfers.aclose()
        await self.http.aclose()
        await self.engine.dispose()


def build_transfers(
    sessions: async_sessionmaker[AsyncSession],
    url: URL,
    cache_dir: Path,
    *,
    http: SafeHttp,
    registry: ProviderRegistry | None = None,
    concurrency: int = 4,
    cache_cap_bytes: int | None = None,
    retry: RetryPolicy | None = None,
) -> TransferService:
    store = ContentStore(cache_dir)
    return TransferService(
        sessions=sessions,
        store=store,
        index=CacheIndex(sessions, store),
        http=http,
        registry=registry or builtin_providers(),
        accounts=AccountResolver(sessions),
        locks=AdvisoryLocks(url),
        quick=QuickStatements(url),
        limiters=Limiters(concurrency),
        retry=retry,
        cache_cap_bytes=cache_cap_bytes,
    )


def build_services(
    settings: Settings,
    url: URL,
    registry: ProviderRegistry | None = None,
    *,
    http: SafeHttp | None = None,
    job_policy: JobPolicy | None = None,
    retry: RetryPolicy | None = None,
) -> Services:
    """Must be called on the loop that will run the services (the core loop, or the CLI's loop)."""
    engine = make_async_engine(url)
    sessions = make_async_session_factory(engine)
    http = http or SafeHttp()
    registry = registry or builtin_providers()
    transfers = build_transfers(
        sessions,
        url,
        settings.effective_cache_dir,
        http=http,
        registry=registry,
        concurrency=settings.provider_concurrency,
        cache_cap_bytes=settings.cache_max_bytes,
        retry=retry,
    )
    resolver = AccountResolver(sessions)
    jobs = JobService(sessions, registry, resolver)
    runner = JobRunner(
        sessions=sessions,
        registry=registry,
        transfers=transfers,
        accounts=resolver,
        jobs=jobs,
        workdir=settings.data_dir / "jobs",
        concurrency=settings.provider_concurrency,
        policy=job_policy,
    )
    importer = ImportService(sessions, transfers.store, transfers.index)
    segments = SegmentService(sessions, transfers.ensure_local, transfers.store, transfers.index)
    embeddings = EmbeddingStore(sessions)
    indexer = Indexer(
        sessions, embeddings, [VisualSignatureEmbedder()], transfers.ensure_local, segments=segments
    )
    return Services(
        engine=engine,
        sessions=sessions,
        http=http,
        registry=registry,
        library=LibraryService(sessions),
        transfers=transfers,
        accounts=AccountService(sessions, registry, http),
        jobs=jobs,
        runner=runner,
        importer=importer,
        thumbnails=ThumbnailService(ThumbnailStore(settings.data_dir / "thumbnails")),
        story=StoryService(sessions, jobs, importer, transfers, registry),
        segments=segments,
        embeddings=embeddings,
        indexer=indexer,
    )
