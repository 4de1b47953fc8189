"""Scene segments of videos on the real embedded PostgreSQL: real videos imported into a real content store,
found again through the app's transfer wiring (``ensure_local``), analysed with PyAV."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image, ImageStat
from sqlalchemy import func, select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.segments_cli import run_segments_command
from app.services import build_transfers
from app.settings import Settings
from core.cache.index import CacheIndex
from core.cache.store import ContentStore
from core.db.engine import make_async_engine, make_async_session_factory
from core.db.enums import MediaType, SegmentType
from core.db.models import AssetTemporalSegment, CacheEntry, Embedding, EmbeddingModel
from core.errors import CacheError, MediaError
from core.importer import ImportService
from core.media.scenes import SAMPLE_FPS, AnalysisCancelled
from core.net.http import SafeHttp
from core.segments import SegmentError, SegmentInfo, SegmentService
from core.transfer.service import TransferService
from tests.factories import add_asset
from tests.fakes.media import tiny_png
from tests.media.scene_videos import Shot, moving, solid, write_video

SIZE = (320, 180)
FPS = 24
RED, BLUE, GREEN = (200, 30, 30), (30, 30, 200), (30, 200, 30)


@dataclass
class Library:
    sessions: async_sessionmaker[AsyncSession]
    transfers: TransferService
    importer: ImportService
    segments: SegmentService
    folder: Path

    async def add_file(self, path: Path) -> int:
        report = await self.importer.import_paths([path])
        assert not report.failed, report.failed
        return report.imported[0][1]

    async def add_video(self, name: str, shots: list[Shot]) -> tuple[int, list[float]]:
        path = self.folder / name
        cuts = write_video(path, shots, size=SIZE, fps=FPS)
        return await self.add_file(path), cuts

    def service(self, **options: float) -> SegmentService:
        transfers = self.transfers
        return SegmentService(
            self.sessions, transfers.ensure_local, transfers.store, transfers.index, **options
        )


@pytest.fixture
async def library(
    sessions: async_sessionmaker[AsyncSession], db_url: URL, tmp_path: Path
) -> AsyncIterator[Library]:
    http = SafeHttp()
    transfers = build_transfers(sessions, db_url, tmp_path / "cache", http=http)
    importer = ImportService(sessions, transfers.store, transfers.index)
    folder = tmp_path / "media"
    folder.mkdir()
    service = SegmentService(sessions, transfers.ensure_local, transfers.store, transfers.index)
    try:
        yield Library(sessions, transfers, importer, service, folder)
    finally:
        await service.aclose()
        await transfers.aclose()
        await http.aclose()


def colour_shots() -> list[Shot]:
    return [Shot(1.5, solid(SIZE, RED)), Shot(1.5, solid(SIZE, BLUE)), Shot(1.5, solid(SIZE, GREEN))]


async def scene_rows(library: Library, asset_id: int) -> list[AssetTemporalSegment]:
    async with library.sessions() as session:
        rows = await session.scalars(
            select(AssetTemporalSegment)
            .where(AssetTemporalSegment.asset_id == asset_id)
            .order_by(AssetTemporalSegment.start_sec)
        )
        return list(rows)


def assert_mean_colour(picture: Image.Image, rgb: tuple[int, int, int]) -> None:
    assert ImageStat.Stat(picture).mean == pytest.approx(rgb, abs=8)


async def test_analysis_stores_scenes_with_keyframe_pictures(library: Library) -> None:
    asset_id, cuts = await library.add_video("colours.mp4", colour_shots())
    infos = await library.segments.analyse(asset_id)

    assert [info.asset_id for info in infos] == [asset_id] * 3
    assert infos[0].start_sec == 0
    for info, cut in zip(infos[1:], cuts, strict=True):
        assert cut <= info.start_sec <= cut + 1 / SAMPLE_FPS + 1 / FPS
    assert infos[-1].end_sec == pytest.approx(4.5, abs=1 / FPS)
    for info, colour in zip(infos, (RED, BLUE, GREEN), strict=True):
        assert info.start_sec <= info.timestamp_sec < (info.end_sec or 0)
        assert info.frame_number == round(info.timestamp_sec * FPS)
        assert info.thumbnail_sha256 is not None
        stored = library.transfers.store.object_path(info.thumbnail_sha256)
        with Image.open(stored) as picture:
            assert picture.format == "WEBP"
            assert picture.size == SIZE
        assert_mean_colour(await library.segments.keyframe_image(info.id), colour)

    assert await library.segments.segments(asset_id) == infos
    rows = await scene_rows(library, asset_id)
    assert [row.segment_type for row in rows] == [SegmentType.SCENE] * 3
    async with library.sessions() as session:
        indexed = await session.scalar(
            select(func.count()).where(CacheEntry.sha256.in_([i.thumbnail_sha256 for i in infos]))
        )
    assert indexed == 3, "keyframe pictures are indexed cache files (evictable, counted in the stats)"


async def test_a_video_without_cuts_is_one_segment_and_counts_as_analysed(library: Library) -> None:
    still, _ = await library.add_video("still.mp4", [Shot(2.0, moving(SIZE, 3))])
    assert await library.segments.unanalysed_videos(10) == [still]
    (info,) = await library.segments.analyse(still)
    assert (info.start_sec, info.end_sec) == pytest.approx((0.0, 2.0), abs=1 / FPS)
    assert await library.segments.unanalysed_videos(10) == []


async def test_analysing_again_keeps_the_segments_and_their_embeddings(library: Library) -> None:
    asset_id, _ = await library.add_video("colours.mp4", colour_shots())
    first = await library.segments.analyse(asset_id)
    async with library.sessions() as session, session.begin():
        model = EmbeddingModel(name="test/colour@1", dimensions=3)
        session.add(model)
        await session.flush()
        session.add(Embedding(model_id=model.id, segment_id=first[1].id, embedding=[0.0, 0.0, 1.0]))

    again = await library.segments.analyse(asset_id)

    assert again == first
    async with library.sessions() as session:
        kept = await session.scalar(select(func.count()).select_from(Embedding))
    assert kept == 1


async def test_a_different_result_replaces_only_the_scene_segments(library: Library) -> None:
    asset_id, _ = await library.add_video("colours.mp4", colour_shots())
    await library.segments.analyse(asset_id)
    async with library.sessions() as session, session.begin():
        session.add(
            AssetTemporalSegment(
                asset_id=asset_id,
                segment_type=SegmentType.LOOP,
                start_sec=0.5,
                end_sec=1.0,
                timestamp_sec=0.5,
            )
        )

    # Scenes must now last 2 s: the blue one cannot stand alone, and the green one joins it.
    async with library.service(min_scene_sec=2.0) as strict:
        (only,) = await strict.analyse(asset_id)

    assert (only.start_sec, only.end_sec) == pytest.approx((0.0, 4.5), abs=1 / FPS)
    rows = await scene_rows(library, asset_id)
    assert sorted(row.segment_type for row in rows) == [SegmentType.LOOP, SegmentType.SCENE]
    assert await library.segments.segments(asset_id) == [only]


async def test_a_failed_analysis_changes_nothing_and_is_not_offered_again(library: Library) -> None:
    asset_id, _ = await library.add_video("colours.mp4", colour_shots())
    before = await library.segments.analyse(asset_id)
    broken, _ = await library.add_video("broken.mp4", [Shot(2.0, moving(SIZE, 1))])
    # Damage both stored files in place, keeping their size: disk corruption the store cannot see.
    for victim in (asset_id, broken):
        path = await library.transfers.ensure_local(victim)
        data = bytearray(path.read_bytes())
        start = data.index(b"mdat") + 4
        data[start : start + len(data) // 2] = bytes(len(data[start : start + len(data) // 2]))
        path.write_bytes(bytes(data))

    with pytest.raises(MediaError, match="damaged video"):
        await library.segments.analyse(asset_id)
    assert await library.segments.segments(asset_id) == before

    assert await library.segments.unanalysed_videos(10) == [broken]
    with pytest.raises(MediaError):
        await library.segments.analyse(broken)
    assert await library.segments.unanalysed_videos(10) == []
    assert "damaged video" in library.segments.failures[broken]


async def test_cancelling_changes_nothing(library: Library) -> None:
    asset_id, _ = await library.add_video(
        "long.mp4", [Shot(6.0, moving(SIZE, 1)), Shot(6.0, moving(SIZE, 2))]
    )
    stop = asyncio.Event()
    stop.set()
    with pytest.raises(AnalysisCancelled):
        await library.segments.analyse(asset_id, cancel=stop)
    assert await scene_rows(library, asset_id) == []

    seen: list[float] = []
    started = asyncio.Event()

    def progress(done: float, total: float) -> None:
        seen.append(done)
        started.set()

    task = asyncio.ensure_future(library.segments.analyse(asset_id, progress=progress))
    await asyncio.wait_for(started.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await scene_rows(library, asset_id) == []
    assert seen and max(seen) < 12.0
    # The worker stopped: the next analysis runs at once and reports all the way.
    seen.clear()
    infos = await asyncio.wait_for(library.segments.analyse(asset_id, progress=progress), 60)
    assert len(infos) == 2
    assert seen[-1] == pytest.approx(12.0)


async def test_unanalysed_videos_are_the_newest_videos_without_scenes(library: Library) -> None:
    first, _ = await library.add_video("a.mp4", [Shot(1.0, moving(SIZE, 1))])
    second, _ = await library.add_video("b.mp4", [Shot(1.0, moving(SIZE, 2))])
    third, _ = await library.add_video("c.mp4", [Shot(1.0, moving(SIZE, 3))])
    picture = library.folder / "still.png"
    picture.write_bytes(tiny_png())
    await library.add_file(picture)

    assert await library.segments.unanalysed_videos(10) == [third, second, first]
    assert await library.segments.unanalysed_videos(2) == [third, second]
    await library.segments.analyse(second)
    assert await library.segments.unanalysed_videos(10) == [third, first]
    assert await library.segments.unanalysed_videos(0) == []


async def test_an_evicted_keyframe_is_made_again_from_the_video(library: Library) -> None:
    asset_id, _ = await library.add_video("colours.mp4", colour_shots())
    infos = await library.segments.analyse(asset_id)
    blue = infos[1]
    assert blue.thumbnail_sha256 is not None
    library.transfers.store.remove(blue.thumbnail_sha256)

    assert_mean_colour(await library.segments.keyframe_image(blue.id), BLUE)
    again = await library.segments.segment(blue.id)
    assert again.thumbnail_sha256 is not None
    assert library.transfers.store.has(again.thumbnail_sha256)


async def test_wrong_requests_are_refused_clearly(
    library: Library, sessions: async_sessionmaker[AsyncSession]
) -> None:
    picture = library.folder / "still.png"
    picture.write_bytes(tiny_png())
    image_id = await library.add_file(picture)
    with pytest.raises(SegmentError, match=f"Asset {image_id} is an image: only videos have scenes"):
        await library.segments.analyse(image_id)
    with pytest.raises(SegmentError, match="There is no asset 999999"):
        await library.segments.analyse(999_999)
    with pytest.raises(SegmentError, match="There is no segment 424242"):
        await library.segments.keyframe_image(424_242)
    assert await library.segments.segments(image_id) == []


async def test_a_remote_only_video_without_a_reachable_copy_fails_clearly(
    library: Library, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as session, session.begin():
        asset = await add_asset(session, media_type=MediaType.VIDEO, remote_url=None, provider_id="local")
        asset_id = asset.id
    with pytest.raises(CacheError, match="import it again"):
        await library.segments.analyse(asset_id)
    assert asset_id in library.segments.failures
    assert await scene_rows(library, asset_id) == []


def test_segment_info_is_a_plain_value() -> None:
    info = SegmentInfo(1, 2, 0.0, 1.5, 0.25, 6, None)
    assert info == SegmentInfo(1, 2, 0.0, 1.5, 0.25, 6, None)


# -- the command line -------------------------------------------------------------------------------


async def _import_files(url: URL, settings: Settings, paths: list[Path]) -> list[int]:
    engine = make_async_engine(url)
    try:
        sessions = make_async_session_factory(engine)
        store = ContentStore(settings.effective_cache_dir)
        report = await ImportService(sessions, store, CacheIndex(sessions, store)).import_paths(paths)
        return [asset_id for _, asset_id in report.imported]
    finally:
        await engine.dispose()


def segments_args(*asset_ids: int, all_videos: bool = False, as_json: bool = False) -> argparse.Namespace:
    return argparse.Namespace(asset_ids=list(asset_ids), all=all_videos, json=as_json)


def test_the_segments_command_analyses_videos_and_prints_their_scenes(
    db_url: URL, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        config_dir=tmp_path / "config",
        database_url=db_url.render_as_string(hide_password=False),
    )
    write_video(tmp_path / "colours.mp4", colour_shots(), size=SIZE, fps=FPS)
    write_video(tmp_path / "still.mp4", [Shot(1.0, moving(SIZE, 2))], size=SIZE, fps=FPS)
    (tmp_path / "still.png").write_bytes(tiny_png())
    colours, still, picture = asyncio.run(
        _import_files(
            db_url, settings, [tmp_path / "colours.mp4", tmp_path / "still.mp4", tmp_path / "still.png"]
        )
    )

    assert run_segments_command(segments_args(colours), settings) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == f"asset {colours}: 3 scenes"
    assert out.splitlines()[1].startswith("    1  0:00.00 – 0:01.")
    assert "scenes 1/1 videos" in err

    assert run_segments_command(segments_args(all_videos=True, as_json=True), settings) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data["analysed"]) == [str(still)], "only the video without scenes"
    assert data["analysed"][str(still)][0]["start_sec"] == 0.0

    assert run_segments_command(segments_args(all_videos=True), settings) == 0
    assert capsys.readouterr().out.strip() == "every video already has its scenes"

    assert run_segments_command(segments_args(picture, colours), settings) == 1
    out, _ = capsys.readouterr()
    assert f"asset {picture}: not analysed: Asset {picture} is an image: only videos have scenes." in out
    assert f"asset {colours}: 3 scenes" in out

    assert run_segments_command(segments_args(), settings) == 2
    assert "or --all" in capsys.readouterr().err
