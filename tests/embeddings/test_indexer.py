"""The indexing queue on real files (PNG pictures, H.264 clips) and the real embedded PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.enums import MediaType
from core.embeddings.indexer import Indexer, IndexEvent, IndexPhase
from core.embeddings.store import EmbeddingStore, Subject
from tests.embeddings.colour_embedder import ColourGridEmbedder
from tests.factories import add_asset
from tests.fakes.media import tiny_mp4, tiny_png


class Files:
    """Asset id -> a real local file, like TransferService.ensure_local for files already on disk."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.paths: dict[int, Path] = {}
        self.fetched: list[int] = []

    def put(self, asset_id: int, name: str, data: bytes) -> None:
        path = self.root / name
        path.write_bytes(data)
        self.paths[asset_id] = path

    async def __call__(self, asset_id: int) -> Path:
        self.fetched.append(asset_id)
        return self.paths[asset_id]


async def add_media(
    sessions: async_sessionmaker[AsyncSession], files: Files, images: int, videos: int, *, seed: int = 0
) -> list[int]:
    ids = []
    async with sessions() as session, session.begin():
        for n in range(images):
            asset = await add_asset(session, media_type=MediaType.IMAGE, mime_type="image/png")
            files.put(asset.id, f"{asset.id}.png", tiny_png(seed + n))
            ids.append(asset.id)
        for n in range(videos):
            asset = await add_asset(session, media_type=MediaType.VIDEO, duration_sec=1.0)
            files.put(asset.id, f"{asset.id}.mp4", tiny_mp4(seed + 100 + n))
            ids.append(asset.id)
        await add_asset(session, media_type=MediaType.AUDIO, mime_type="audio/wav")  # never embedded
    return ids


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path)


async def test_a_pass_embeds_every_picture_and_video_once_with_progress(
    sessions: async_sessionmaker[AsyncSession], files: Files
) -> None:
    ids = await add_media(sessions, files, images=20, videos=3)
    store = EmbeddingStore(sessions)
    embedder = ColourGridEmbedder()
    indexer = Indexer(sessions, store, [embedder], files)
    indexer.BATCH = 8
    events: list[IndexEvent] = []
    indexer.subscribe(events.append)

    summary = await indexer.run_once()
    assert (summary.embedded, summary.skipped, summary.cancelled) == (23, 0, False)
    model_id = await store.ensure_model(embedder)
    assert await store.count(model_id) == 23
    embedding = [e for e in events if e.phase is IndexPhase.EMBEDDING]
    assert [e.done for e in embedding] == [0, 8, 16, 23]
    assert {e.total for e in embedding} == {23}
    assert "23 of 23" in embedding[-1].label
    assert events[-1].phase is IndexPhase.DONE

    # A video's vector is its middle frame: searching with it finds that video first.
    video = ids[-1]
    hits = await store.similar(model_id, await store.vector(model_id, Subject.asset(video)), k=1)
    assert hits[0].asset_id == video

    again = await indexer.run_once()
    assert again.embedded == 0 and embedder.calls == 23


async def test_an_unreadable_file_is_skipped_reported_and_not_retried(
    sessions: async_sessionmaker[AsyncSession], files: Files
) -> None:
    ids = await add_media(sessions, files, images=3, videos=0)
    files.paths[ids[1]].write_bytes(b"this is not a picture")
    indexer = Indexer(sessions, EmbeddingStore(sessions), [ColourGridEmbedder()], files)
    summary = await indexer.run_once()
    assert (summary.embedded, summary.skipped) == (2, 1)
    assert list(indexer.failures) == [("asset", ids[1])]
    files.fetched.clear()
    assert (await indexer.run_once()).embedded == 0
    assert files.fetched == [], "the broken file is not fetched again"


async def test_cancelling_keeps_what_was_stored_and_the_next_pass_finishes(
    sessions: async_sessionmaker[AsyncSession], files: Files
) -> None:
    await add_media(sessions, files, images=12, videos=0)
    store = EmbeddingStore(sessions)
    embedder = ColourGridEmbedder()
    indexer = Indexer(sessions, store, [embedder], files)
    indexer.BATCH = 4

    def cancel_after_first_batch(event: IndexEvent) -> None:
        if event.phase is IndexPhase.EMBEDDING and event.done == 4:
            indexer.cancel()

    unsubscribe = indexer.subscribe(cancel_after_first_batch)
    summary = await indexer.run_once()
    assert summary.cancelled and summary.embedded == 0  # counted per finished embedder
    model_id = await store.ensure_model(embedder)
    assert await store.count(model_id) == 4
    unsubscribe()
    assert (await indexer.run_once()).embedded == 8
    assert await store.count(model_id) == 12


async def test_a_new_model_is_indexed_from_scratch_and_the_old_one_is_kept(
    sessions: async_sessionmaker[AsyncSession], files: Files
) -> None:
    await add_media(sessions, files, images=5, videos=1)
    store = EmbeddingStore(sessions)
    first, second = ColourGridEmbedder("tests/first@1"), ColourGridEmbedder("tests/second@1")
    indexer = Indexer(sessions, store, [first], files)
    await indexer.run_once()
    await indexer.set_embedders([first, second])
    summary = await indexer.run_once()
    assert summary.embedded == 6
    assert await store.count(await store.ensure_model(first)) == 6
    assert await store.count(await store.ensure_model(second)) == 6


async def test_the_queue_indexes_new_imports_when_notified(
    sessions: async_sessionmaker[AsyncSession], files: Files
) -> None:
    await add_media(sessions, files, images=2, videos=0)
    store = EmbeddingStore(sessions)
    embedder = ColourGridEmbedder()
    indexer = Indexer(sessions, store, [embedder], files, sweep_interval_s=3600)
    finished: asyncio.Queue[IndexEvent] = asyncio.Queue()
    indexer.subscribe(lambda e: finished.put_nowait(e) if e.phase.is_final else None)
    indexer.start()
    try:
        assert (await asyncio.wait_for(finished.get(), 30)).phase is IndexPhase.DONE
        await add_media(sessions, files, images=3, videos=0, seed=50)
        indexer.notify()
        assert (await asyncio.wait_for(finished.get(), 30)).phase is IndexPhase.DONE
    finally:
        await indexer.stop()
    assert await store.count(await store.ensure_model(embedder)) == 5


async def test_videos_are_split_into_scenes_first_and_each_scene_is_embedded(
    sessions: async_sessionmaker[AsyncSession], files: Files, tmp_path: Path
) -> None:
    from core.cache.store import ContentStore
    from core.segments import SegmentService

    ids = await add_media(sessions, files, images=1, videos=2)
    store = EmbeddingStore(sessions)
    embedder = ColourGridEmbedder()
    async with SegmentService(sessions, files, ContentStore(tmp_path / "store")) as segments:
        indexer = Indexer(sessions, store, [embedder], files, segments=segments)
        phases: list[IndexPhase] = []
        indexer.subscribe(lambda e: phases.append(e.phase))
        summary = await indexer.run_once()
        assert summary.analysed == 2
        assert phases.index(IndexPhase.ANALYSING) < phases.index(IndexPhase.EMBEDDING)
        scenes = [s for video in ids[1:] for s in await segments.segments(video)]
    assert scenes, "every analysed video has at least one segment"
    assert summary.embedded == 3 + len(scenes)
    model_id = await store.ensure_model(embedder)
    # A segment's keyframe vector finds that scene, with its video and start time.
    scene = scenes[0]
    hits = await store.similar(
        model_id, await store.vector(model_id, Subject.segment(scene.id)), k=1, include_segments=True
    )
    assert (hits[0].segment_id, hits[0].asset_id, hits[0].start_sec) == (
        scene.id,
        scene.asset_id,
        scene.start_sec,
    )
