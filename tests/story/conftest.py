"""The story core against real parts: an embedded PostgreSQL database, a content store, real H.264
files (imported through the importer) and, for "continue from here", the Sandbox through the runner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from app.services import Services, build_services
from app.settings import Settings
from core.jobs.service import JobSummary
from core.story.service import StoryService
from tests.fakes.media import tiny_mp4, tiny_png
from tests.jobs.conftest import FAST, run_until_done
from tests.memory_keyring import MemoryKeyring


@dataclass
class StoryEnv:
    services: Services
    folder: Path

    @property
    def story(self) -> StoryService:
        return self.services.story

    async def video(
        self, seed: int, seconds: float = 2.0, fps: int = 12, name: str | None = None, *, audio: bool = False
    ) -> int:
        """A real MP4 imported into the library (titled ``name`` or 'video <seed>'); with ``audio``, a
        sound track that is silent for the first half and a tone after (see ``tiny_mp4``)."""
        path = self.folder / f"{name or f'video {seed}'}.mp4"
        path.write_bytes(tiny_mp4(seed, seconds=seconds, fps=fps, audio=audio))
        return await self._import(path)

    async def image(self, seed: int) -> int:
        path = self.folder / f"image {seed}.png"
        path.write_bytes(tiny_png(seed))
        return await self._import(path)

    async def _import(self, path: Path) -> int:
        report = await self.services.importer.import_paths([path])
        assert not report.failed, report.failed
        ((_, asset_id),) = report.imported or report.duplicates
        return asset_id

    async def run_jobs_until_done(self, job_id: int, limit_s: float = 60.0) -> JobSummary:
        return await run_until_done(self.services, job_id, limit_s)


async def make_env(db_url: URL, root: Path) -> AsyncIterator[StoryEnv]:
    settings = Settings(data_dir=root / "data", config_dir=root / "config")
    services = build_services(settings, db_url, job_policy=FAST)
    folder = root / "files"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield StoryEnv(services, folder)
    finally:
        await services.aclose()


@pytest.fixture
async def env(db_url: URL, tmp_path: Path, memory_keyring: MemoryKeyring) -> AsyncIterator[StoryEnv]:
    async for built in make_env(db_url, tmp_path / "a"):
        yield built
