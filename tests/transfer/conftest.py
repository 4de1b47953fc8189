"""Fixtures for the transfer engine: a real database, a real content store on disk, a fault-injecting
fake Pixverse on 127.0.0.1, and the TransferService wired as the app wires it."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import keyring
import pytest
from sqlalchemy import select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.services import build_transfers
from core.cache.store import ContentStore
from core.db.engine import make_async_engine, make_async_session_factory
from core.db.enums import MediaType, UploadMethod
from core.db.models import Asset, AssetProviderRef, ProviderAccount
from core.net.http import SafeHttp
from core.net.policy import UrlPolicy
from core.net.retry import RetryPolicy
from core.providers.accounts import KEYRING_SERVICE
from core.transfer.events import TransferEvent
from core.transfer.service import TransferService
from tests.factories import local_user_id
from tests.fakes.http_server import FakeHttpServer
from tests.fakes.pixverse import FakePixverse
from tests.memory_keyring import MemoryKeyring

PIXVERSE_KEY = "test-pixverse-key"
# Fast retries for tests; the production defaults are in RetryPolicy().
TEST_RETRY = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.05, max_retry_after_s=5.0)
TEST_TIMEOUT = httpx.Timeout(connect=2.0, read=1.0, write=2.0, pool=10.0)


def media_bytes(size: int, seed: int = 0) -> bytes:
    """Deterministic, incompressible-looking content of ``size`` bytes."""
    block = hashlib.sha256(f"pixsim-{seed}".encode()).digest() * 2048  # 64 KiB
    return (block * (size // len(block) + 1))[:size]


@pytest.fixture(autouse=True)
def _in_memory_keyring(memory_keyring: MemoryKeyring) -> None:
    """Every test here uses the in-memory keyring (tests/conftest.py), never the OS one."""


@pytest.fixture
async def server() -> AsyncIterator[FakeHttpServer]:
    async with FakeHttpServer() as srv:
        yield srv


@dataclass
class Env:
    server: FakeHttpServer
    pixverse: FakePixverse
    sessions: async_sessionmaker[AsyncSession]
    transfers: TransferService
    store: ContentStore
    pixverse_account_id: int
    events: list[TransferEvent] = field(default_factory=list)

    async def add_remote_asset(
        self, body: bytes, *, name: str = "clip.mp4", declare: bool = True, **fields: Any
    ) -> int:
        """An asset a provider made: its bytes served at a (fake) provider URL."""
        path = f"/cdn/{name}"
        self.server.add_file(path, body, content_type="video/mp4")
        values: dict[str, Any] = {
            "media_type": MediaType.VIDEO,
            "provider_id": "sora",
            "remote_url": self.server.url(path),
            "mime_type": "video/mp4",
            "upload_method": UploadMethod.GENERATED,
        }
        if declare:
            values.update(sha256=hashlib.sha256(body).hexdigest(), file_size_bytes=len(body))
        values.update(fields)
        async with self.sessions() as session, session.begin():
            asset = Asset(user_id=await local_user_id(session), **values)
            session.add(asset)
            await session.flush()
            return asset.id

    async def add_imported_asset(self, source: Path) -> tuple[int, Path]:
        """A file the user imported: copied into the store, no remote URL (library storage)."""
        sha, size, path = self.store.add_file(source, f"import-{source.name}")
        await self.transfers.index.record(sha, size)
        async with self.sessions() as session, session.begin():
            asset = Asset(
                user_id=await local_user_id(session),
                media_type=MediaType.VIDEO,
                provider_id="local",
                sha256=sha,
                file_size_bytes=size,
                upload_method=UploadMethod.LOCAL_IMPORT,
            )
            session.add(asset)
            await session.flush()
            return asset.id, path

    async def asset(self, asset_id: int) -> Asset:
        async with self.sessions() as session:
            asset = await session.get(Asset, asset_id)
            assert asset is not None
            return asset

    async def refs(self, asset_id: int) -> list[AssetProviderRef]:
        async with self.sessions() as session:
            return list(
                await session.scalars(select(AssetProviderRef).where(AssetProviderRef.asset_id == asset_id))
            )

    def objects(self) -> list[Path]:
        return sorted(p for p in self.store.objects.rglob("*") if p.is_file())

    def partials(self) -> list[Path]:
        return sorted(p for p in self.store.partials.glob("*") if p.is_file())


def make_transfers(
    sessions: async_sessionmaker[AsyncSession],
    url: URL,
    cache_dir: Path,
    trusted: list[str],
    *,
    retry: RetryPolicy = TEST_RETRY,
    cache_cap_bytes: int | None = None,
) -> TransferService:
    """The app's wiring, with the fake servers trusted and fast retries and timeouts."""
    http = SafeHttp(UrlPolicy.trusting(trusted), timeout=TEST_TIMEOUT)
    return build_transfers(sessions, url, cache_dir, http=http, retry=retry, cache_cap_bytes=cache_cap_bytes)


async def add_pixverse_account(sessions: async_sessionmaker[AsyncSession], base_url: str) -> int:
    keyring.set_password(KEYRING_SERVICE, "pixverse/main", PIXVERSE_KEY)
    async with sessions() as session, session.begin():
        account = ProviderAccount(
            user_id=await local_user_id(session),
            provider_id="pixverse",
            label="main",
            keyring_ref="pixverse/main",
            base_url=base_url,
        )
        session.add(account)
        await session.flush()
        return account.id


@pytest.fixture
async def env(db_url: URL, tmp_path: Path, server: FakeHttpServer) -> AsyncIterator[Env]:
    engine = make_async_engine(db_url)
    sessions = make_async_session_factory(engine)
    pixverse = FakePixverse(server, api_key=PIXVERSE_KEY)
    account_id = await add_pixverse_account(sessions, server.base_url)
    transfers = make_transfers(sessions, db_url, tmp_path / "cache", [server.base_url])
    environment = Env(server, pixverse, sessions, transfers, transfers.store, account_id)
    transfers.events.subscribe(environment.events.append)
    yield environment
    await transfers.aclose()
    await transfers.http.aclose()
    await engine.dispose()


def libpq_url(url: URL) -> str:
    return url.render_as_string(hide_password=False)


REPO = Path(__file__).resolve().parents[2]
PYTHON_ENV = {**os.environ, "PYTHONPATH": str(REPO)}
