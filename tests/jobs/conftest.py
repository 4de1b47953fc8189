"""Jobs end to end: a real database, content store and job runner, with the built-in adapters (found
through entry points) talking to fake providers on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import URL

from app.services import Services, build_services
from app.settings import Settings
from core.db.enums import JobStatus
from core.db.models import Asset, AssetLineage, AssetProviderRef
from core.jobs.runner import JobPolicy
from core.jobs.service import JobSummary
from core.net.http import SafeHttp
from core.net.policy import UrlPolicy
from tests.fakes.http_server import FakeHttpServer
from tests.memory_keyring import MemoryKeyring
from tests.transfer.conftest import TEST_RETRY, TEST_TIMEOUT

FAST = JobPolicy(
    idle_poll_s=0.05,
    first_poll_s=0.02,
    max_poll_interval_s=0.1,
    retry_base_s=0.02,
    retry_max_s=0.1,
    max_submit_attempts=5,
    max_poll_failures=5,
)


@pytest.fixture(autouse=True)
def _in_memory_keyring(memory_keyring: MemoryKeyring) -> None:
    """Every test here uses the in-memory keyring (tests/conftest.py), never the OS one."""


@pytest.fixture
async def server() -> AsyncIterator[FakeHttpServer]:
    async with FakeHttpServer() as srv:
        yield srv


async def run_until_done(services: Services, job_id: int, limit_s: float = 30.0) -> JobSummary:
    """Run the job runner until the job reaches a final state (a runner crash fails the test)."""
    stop = asyncio.Event()
    runner = asyncio.ensure_future(services.runner.run(stop))
    try:
        async with asyncio.timeout(limit_s):
            while True:
                job = await services.jobs.get(job_id)
                if job.status.is_terminal:
                    return job
                if runner.done():
                    runner.result()
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await runner


@dataclass
class JobsEnv:
    services: Services
    server: FakeHttpServer
    settings: Settings

    async def run_until_done(self, job_id: int, limit_s: float = 30.0) -> JobSummary:
        return await run_until_done(self.services, job_id, limit_s)

    async def generate(self, provider: str, op: str, params: dict[str, Any], **kw: Any) -> JobSummary:
        job = await self.services.jobs.create(provider, op, params, **kw)
        done = await self.run_until_done(job.id)
        assert done.status is JobStatus.SUCCEEDED, done.error_message
        return done

    async def asset(self, asset_id: int) -> Asset:
        async with self.services.sessions() as session:
            asset = await session.get(Asset, asset_id)
            assert asset is not None
            return asset

    async def lineage(self, child_id: int) -> list[AssetLineage]:
        async with self.services.sessions() as session:
            return list(
                await session.scalars(
                    select(AssetLineage)
                    .where(AssetLineage.child_asset_id == child_id)
                    .order_by(AssetLineage.sequence_order, AssetLineage.id)
                )
            )

    async def refs(self, asset_id: int) -> list[AssetProviderRef]:
        async with self.services.sessions() as session:
            return list(
                await session.scalars(select(AssetProviderRef).where(AssetProviderRef.asset_id == asset_id))
            )

    async def count_assets(self) -> int:
        return await self.services.library.count_assets()


@pytest.fixture
async def jobs_env(db_url: URL, tmp_path: Path, server: FakeHttpServer) -> AsyncIterator[JobsEnv]:
    settings = Settings(data_dir=tmp_path / "data", config_dir=tmp_path / "config")
    http = SafeHttp(UrlPolicy.trusting([server.base_url]), timeout=TEST_TIMEOUT)
    services = build_services(settings, db_url, http=http, job_policy=FAST, retry=TEST_RETRY)
    yield JobsEnv(services, server, settings)
    await services.aclose()


@pytest.fixture
async def comfy_env(db_url: URL, tmp_path: Path, server: FakeHttpServer) -> AsyncIterator[JobsEnv]:
    """Services with the default URL policy (https only, no private addresses): nothing trusts the
    fake by hand, so only the ComfyUI address a test configures opens the way to it."""
    settings = Settings(data_dir=tmp_path / "data", config_dir=tmp_path / "config")
    services = build_services(
        settings, db_url, http=SafeHttp(timeout=TEST_TIMEOUT), job_policy=FAST, retry=TEST_RETRY
    )
    yield JobsEnv(services, server, settings)
    await services.aclose()  # closes ComfyUI's progress sockets too (ProviderRegistry.aclose)
