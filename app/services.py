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
from core.library import LibraryService
from core.net.http import SafeHttp
from core.net.limiter import Limiters
from core.net.retry import RetryPolicy
from core.providers.accounts import AccountResolver
from core.providers.registry import ProviderRegistry
from core.transfer.service import TransferService


def builtin_providers() -> ProviderRegistry:
    """Every provider installed: built-in ones and third-party plugins, through entry points."""
    return ProviderRegistry.from_entry_points()


@dataclass
class Services:
    engine: AsyncEngine
    http: SafeHttp
    library: LibraryService
    transfers: TransferService

    async def aclose(self) -> None:
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


def build_services(settings: Settings, url: URL, registry: ProviderRegistry | None = None) -> Services:
    """Must be called on the loop that will run the services (the core loop, or the CLI's loop)."""
    engine = make_async_engine(url)
    sessions = make_async_session_factory(engine)
    http = SafeHttp()
    transfers = build_transfers(
        sessions,
        url,
        settings.effective_cache_dir,
        http=http,
        registry=registry,
        concurrency=settings.provider_concurrency,
        cache_cap_bytes=settings.cache_max_bytes,
    )
    return Services(engine=engine, http=http, library=LibraryService(sessions), transfers=transfers)
