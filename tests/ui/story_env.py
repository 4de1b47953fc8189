"""Real services for the story editor and playthrough tests: an embedded PostgreSQL, a content store,
real H.264 files imported through the importer, and the job runner (the offline Sandbox) running."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from app.services import Services, build_services
from app.settings import Settings
from core.runtime import CoreLoop
from core.story.model import VideoStory
from tests.fakes.media import tiny_mp4, tiny_png
from tests.jobs.conftest import FAST
from tests.memory_keyring import MemoryKeyring
from ui.bridge import CoreBridge
from ui.context import WindowServices


@dataclass
class StoryApp:
    core: CoreLoop
    services: Services
    window_services: WindowServices
    bridge: CoreBridge
    folder: Path

    def video(self, seed: int, seconds: float = 2.0, fps: int = 12, name: str | None = None) -> int:
        path = self.folder / f"{name or f'video {seed}'}.mp4"
        path.write_bytes(tiny_mp4(seed, seconds=seconds, fps=fps))
        return self._import(path)

    def image(self, seed: int) -> int:
        path = self.folder / f"image {seed}.png"
        path.write_bytes(tiny_png(seed))
        return self._import(path)

    def _import(self, path: Path) -> int:
        report = self.core.run(self.services.importer.import_paths([path]), timeout=60)
        assert not report.failed, report.failed
        ((_, asset_id),) = report.imported
        return asset_id

    def story(self, video_id: int) -> VideoStory:
        """What the database holds now."""
        return self.core.run(self.services.story.story(video_id), timeout=30)


@pytest.fixture
def story_app(
    core: CoreLoop, db_url: URL, tmp_path: Path, memory_keyring: MemoryKeyring
) -> Iterator[StoryApp]:
    settings = Settings(data_dir=tmp_path / "data", config_dir=tmp_path / "config")
    services = core.run(_build(settings, db_url), timeout=30)
    stop = asyncio.Event()
    runner = core.submit(services.runner.run(stop))
    folder = tmp_path / "files"
    folder.mkdir()
    window_services = WindowServices(
        sessions=services.sessions,
        registry=services.registry,
        transfers=services.transfers,
        jobs=services.jobs,
        runner=services.runner,
        accounts=services.accounts,
        importer=services.importer,
        thumbnails=services.thumbnails,
        story=services.story,
    )
    yield StoryApp(core, services, window_services, CoreBridge(core), folder)

    async def stop_all() -> None:
        stop.set()
        await asyncio.wrap_future(runner)
        await services.aclose()

    core.run(stop_all(), timeout=30)


async def _build(settings: Settings, db_url: URL) -> Services:
    return build_services(settings, db_url, job_policy=FAST)
