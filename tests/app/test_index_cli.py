"""``pixsim index`` on the real embedded PostgreSQL: real files imported, scenes found, vectors stored,
Ctrl-C keeping what was stored, near-duplicates grouped."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import URL

from app import index_cli
from app.index_cli import IndexLine, run_index_command
from app.settings import Settings
from core.cache.index import CacheIndex
from core.cache.store import ContentStore
from core.db.engine import make_async_engine, make_async_session_factory
from core.db.models import Asset, Embedding
from core.embeddings.indexer import IndexEvent, IndexPhase
from core.importer import ImportService
from tests.fakes.media import tiny_png
from tests.media.scene_videos import Shot, solid, write_video

SIZE = (160, 90)


def args(*, duplicates: bool = False) -> argparse.Namespace:
    return argparse.Namespace(duplicates=duplicates, json=True)


@pytest.fixture
def settings(db_url: URL, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        config_dir=tmp_path / "config",
        database_url=db_url.render_as_string(hide_password=False),
    )


def import_files(db_url: URL, settings: Settings, paths: list[Path]) -> list[int]:
    async def run() -> list[int]:
        engine = make_async_engine(db_url)
        try:
            sessions = make_async_session_factory(engine)
            store = ContentStore(settings.effective_cache_dir)
            report = await ImportService(sessions, store, CacheIndex(sessions, store)).import_paths(paths)
            return [asset_id for _, asset_id in report.imported]
        finally:
            await engine.dispose()

    return asyncio.run(run())


def counts(db_url: URL) -> tuple[int, int, int]:
    """(asset vectors, segment vectors, assets in a duplicate group)."""

    async def run() -> tuple[int, int, int]:
        engine = make_async_engine(db_url)
        try:
            async with make_async_session_factory(engine)() as session:
                assets = await session.scalar(select(func.count()).where(Embedding.asset_id.is_not(None)))
                scenes = await session.scalar(select(func.count()).where(Embedding.segment_id.is_not(None)))
                grouped = await session.scalar(
                    select(func.count()).where(Asset.duplicate_group_id.is_not(None))
                )
                return int(assets or 0), int(scenes or 0), int(grouped or 0)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_one_pass_finds_scenes_embeds_everything_and_groups_duplicates(
    db_url: URL, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    red, blue = (220, 30, 30), (30, 40, 220)
    write_video(
        tmp_path / "two shots.mp4", [Shot(1.5, solid(SIZE, red)), Shot(1.5, solid(SIZE, blue))], size=SIZE
    )
    (tmp_path / "sky.png").write_bytes(tiny_png(5, size=(64, 48)))
    (tmp_path / "sky large.png").write_bytes(tiny_png(5, size=(128, 96)))  # the same picture, resized
    (tmp_path / "moss.png").write_bytes(tiny_png(9))
    import_files(db_url, settings, sorted(tmp_path.glob("*.*")))

    assert run_index_command(args(duplicates=True), settings) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["models"] == ["pixsim/visual-signature@1"], "CLIP is not installed"
    assert report["analysed"] == 1 and not report["cancelled"]
    assert report["embedded"] == 4 + 2, "three pictures and the video, and its two scenes"
    assert report["duplicate_groups"] == 1
    assert "indexing" in err and "visual-signature@1" in err
    assert counts(db_url) == (4, 2, 2)

    assert run_index_command(args(), settings) == 0
    assert json.loads(capsys.readouterr().out)["embedded"] == 0, "nothing left to do"


class CtrlC(IndexLine):
    """The progress line, pressing Ctrl-C (a real SIGINT) as soon as embedding starts."""

    sent = False

    def __call__(self, event: IndexEvent) -> None:
        super().__call__(event)
        if event.phase is IndexPhase.EMBEDDING and not CtrlC.sent:
            CtrlC.sent = True
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_stops_between_batches_and_keeps_what_was_stored(
    db_url: URL,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    paths = []
    for seed in range(40):
        path = tmp_path / f"picture {seed}.png"
        path.write_bytes(tiny_png(100 + seed))
        paths.append(path)
    import_files(db_url, settings, paths)
    monkeypatch.setattr(index_cli, "IndexLine", CtrlC)

    assert run_index_command(argparse.Namespace(duplicates=False, json=False), settings) == 130
    out, _ = capsys.readouterr()
    assert out.startswith("Stopped") and "run `pixsim index` again" in out
    stored, _, _ = counts(db_url)
    assert 0 < stored < 40, "stopped between batches, the first ones kept"

    monkeypatch.setattr(index_cli, "IndexLine", IndexLine)
    assert run_index_command(args(), settings) == 0
    assert json.loads(capsys.readouterr().out)["embedded"] == 40 - stored
    assert counts(db_url)[0] == 40


def test_the_progress_line_names_the_phase_and_model() -> None:
    line = IndexLine.render(IndexEvent(IndexPhase.EMBEDDING, 12, 48, "", "pixsim/visual-signature@1"))
    assert line.startswith("indexing   visual-signature@1  [#######") and line.endswith("25.0%  12 / 48")
    assert IndexLine.render(IndexEvent(IndexPhase.ANALYSING, 1, 4, "")).startswith("scenes")
    assert "boom" in IndexLine.render(IndexEvent(IndexPhase.FAILED, 0, 0, "Indexing failed", message="boom"))
