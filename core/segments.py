"""Temporal segments of videos: scenes found by ``core.media.scenes``, kept in ``asset_temporal_segments``
with a keyframe picture each in the content store.

``analyse`` is the one writer: it detects the scenes in a worker thread, stores the keyframe pictures
(WebP, addressed by sha256) and then replaces the video's scene segments in one transaction, so readers
see the old segments or the new ones, never a mix. A video is *analysed* when it has at least one scene
segment (a video without cuts has one covering it all). Analysing again gives the same segments; when
nothing changed the rows, their ids and their embeddings are kept.

Keyframe pictures are cache: they are indexed like downloaded files and may be evicted; ``keyframe_file``
makes a missing one again from the video.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import io
import logging
import os
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from PIL import Image
from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.cache.index import CacheIndex
from core.cache.store import ContentStore
from core.db.enums import MediaType, SegmentType
from core.db.models import Asset, AssetTemporalSegment
from core.errors import CacheError, MediaError, PixSimError
from core.media.scenes import (
    DEFAULT_MIN_SCENE_SEC,
    DEFAULT_THRESHOLD,
    KEYFRAME_SIZE,
    AnalysisCancelled,
    Scene,
    detect_scenes,
)
from core.thumbnails import render_frame

log = logging.getLogger(__name__)

# A local copy of an asset's file: ``TransferService.ensure_local`` (downloads it once if needed).
LocalFile = Callable[[int], Awaitable[Path]]
# Seconds analysed so far and the video's duration; called on the event loop.
Progress = Callable[[float, float], None]

# Keyframes are stored like thumbnails: WebP is about half the size of JPEG at the same look.
_KEYFRAME_FORMAT = "WEBP"
_KEYFRAME_OPTIONS: dict[str, object] = {"quality": 80, "method": 4}
# Two analyses giving times this close found the same scene.
_SAME_TIME_SEC = 1e-3


class SegmentError(PixSimError):
    """A segment request names an asset or segment that does not exist, or an asset that is no video."""


@dataclass(frozen=True)
class SegmentInfo:
    id: int
    asset_id: int
    start_sec: float
    end_sec: float | None
    # The representative instant (the keyframe) and its frame number.
    timestamp_sec: float
    frame_number: int | None
    thumbnail_sha256: str | None


@dataclass(frozen=True)
class _Stored:
    """A scene and the sha256 of its stored keyframe picture."""

    scene: Scene
    sha256: str
    size: int


class SegmentService:
    """Scene segments of videos: analysis (one at a time, in a low-priority worker thread) and reads."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        local_file: LocalFile,
        store: ContentStore,
        index: CacheIndex | None = None,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        min_scene_sec: float = DEFAULT_MIN_SCENE_SEC,
    ) -> None:
        self._sessions = sessions
        self._local_file = local_file
        self._store = store
        self._index = index
        self._threshold = threshold
        self._min_scene_sec = min_scene_sec
        # Decoding uses every core already; analyses queue behind each other.
        self._executor = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="scenes", initializer=_background_priority
        )
        # Videos whose analysis failed in this process, and why: not offered again by unanalysed_videos.
        self._failed: dict[int, str] = {}

    @property
    def failures(self) -> dict[int, str]:
        """Asset id -> why its analysis failed (since this service started)."""
        return dict(self._failed)

    async def analyse(
        self,
        asset_id: int,
        *,
        cancel: asyncio.Event | None = None,
        progress: Progress | None = None,
    ) -> list[SegmentInfo]:
        """Find the video's scenes and make them its scene segments (replacing earlier ones); the segments.

        ``SegmentError`` for an unknown asset or one that is not a video, ``MediaError`` when its file
        cannot be read, ``AnalysisCancelled`` when ``cancel`` is set. A cancelled or failed analysis
        changes nothing. Cancelling the awaiting task stops the worker thread too.
        """
        await self._video(asset_id)
        try:
            path = await self._local_file(asset_id)
            stored = await self._detect_and_store(path, cancel, progress)
        except (MediaError, CacheError) as exc:
            self._failed[asset_id] = str(exc)
            raise
        infos = await self._replace(asset_id, stored)
        self._failed.pop(asset_id, None)
        log.info("asset %s: %d scene segments", asset_id, len(infos))
        return infos

    async def unanalysed_videos(self, limit: int) -> list[int]:
        """Up to ``limit`` ids of videos without scene segments, newest first; videos whose analysis
        failed in this process are left out (see ``failures``)."""
        if limit < 1:
            return []
        analysed = exists().where(
            AssetTemporalSegment.asset_id == Asset.id,
            AssetTemporalSegment.segment_type == SegmentType.SCENE,
        )
        stmt = select(Asset.id).where(Asset.media_type == MediaType.VIDEO, ~analysed)
        if self._failed:
            stmt = stmt.where(Asset.id.not_in(list(self._failed)))
        async with self._sessions() as session:
            rows = await session.scalars(stmt.order_by(Asset.id.desc()).limit(limit))
            return list(rows)

    async def segments(self, asset_id: int) -> list[SegmentInfo]:
        """The video's scene segments in time order (empty when it was not analysed yet)."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(AssetTemporalSegment)
                .where(
                    AssetTemporalSegment.asset_id == asset_id,
                    AssetTemporalSegment.segment_type == SegmentType.SCENE,
                )
                .order_by(AssetTemporalSegment.start_sec)
            )
            return [_info(row) for row in rows]

    async def segment(self, segment_id: int) -> SegmentInfo:
        """One segment; ``SegmentError`` when there is no such segment."""
        async with self._sessions() as session:
            row = await session.get(AssetTemporalSegment, segment_id)
            if row is None:
                raise SegmentError(f"There is no segment {segment_id}: its video may have been re-analysed.")
            return _info(row)

    async def keyframe_file(self, segment_id: int) -> Path:
        """The stored keyframe picture of a segment (a WebP file), made again from the video when it was
        evicted from the cache or never made."""
        info = await self.segment(segment_id)
        known = info.thumbnail_sha256
        if known is not None and await asyncio.to_thread(self._store.has, known):
            if self._index is not None:
                await self._index.touch(known)
            return self._store.object_path(known)
        path = await self._local_file(info.asset_id)
        picture = await asyncio.to_thread(render_frame, path, info.timestamp_sec, KEYFRAME_SIZE)
        sha256, size = await asyncio.to_thread(self._put_picture, picture)
        if self._index is not None:
            await self._index.record(sha256, size)
        async with self._sessions() as session, session.begin():
            row = await session.get(AssetTemporalSegment, segment_id)
            if row is not None:
                row.thumbnail_sha256 = sha256
        return self._store.object_path(sha256)

    async def keyframe_image(self, segment_id: int) -> Image.Image:
        """The segment's keyframe picture, RGB, decoded (for embedders and the inspector)."""
        path = await self.keyframe_file(segment_id)
        return await asyncio.to_thread(_read_picture, path)

    async def aclose(self) -> None:
        """Stop the worker thread (an analysis in progress is finished first)."""
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)

    async def __aenter__(self) -> SegmentService:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- analysis --------------------------------------------------------------------------------

    async def _video(self, asset_id: int) -> None:
        async with self._sessions() as session:
            media_type = await session.scalar(select(Asset.media_type).where(Asset.id == asset_id))
        if media_type is None:
            raise SegmentError(f"There is no asset {asset_id}.")
        if media_type is not MediaType.VIDEO:
            raise SegmentError(
                f"Asset {asset_id} is {'an' if media_type.value[0] in 'aeiou' else 'a'} "
                f"{media_type.value.replace('_', ' ')}: only videos have scenes."
            )

    async def _detect_and_store(
        self, path: Path, cancel: asyncio.Event | None, progress: Progress | None
    ) -> list[_Stored]:
        """The scenes of ``path``, their keyframes written to the store, on the worker thread.

        If the awaiting task is cancelled, the thread is told to stop and waited for, so nothing runs on
        after the caller has gone.
        """
        loop = asyncio.get_running_loop()
        stop = threading.Event()

        def cancelled() -> bool:
            return stop.is_set() or (cancel is not None and cancel.is_set())

        def report(done: float, total: float) -> None:
            if progress is not None:
                with contextlib.suppress(RuntimeError):  # the loop closed: nobody listens any more
                    loop.call_soon_threadsafe(progress, done, total)

        def work() -> list[_Stored]:
            scenes = detect_scenes(
                path,
                threshold=self._threshold,
                min_scene_sec=self._min_scene_sec,
                cancel=cancelled,
                progress=report,
            )
            stored = []
            for scene in scenes:
                if cancelled():
                    raise AnalysisCancelled(f"Scene detection of {path} was cancelled.")
                sha256, size = self._put_picture(scene.keyframe)
                stored.append(_Stored(scene, sha256, size))
            return stored

        future = loop.run_in_executor(self._executor, work)
        try:
            stored = await asyncio.shield(future)
        except asyncio.CancelledError:
            stop.set()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await future
            raise
        if self._index is not None:
            for item in stored:
                await self._index.record(item.sha256, item.size)
        return stored

    def _put_picture(self, picture: Image.Image) -> tuple[str, int]:
        """Store ``picture`` as WebP in the content store (fsynced, renamed into place); its sha256, size."""
        buffer = io.BytesIO()
        picture.convert("RGB").save(buffer, _KEYFRAME_FORMAT, **_KEYFRAME_OPTIONS)
        data = buffer.getvalue()
        sha256 = hashlib.sha256(data).hexdigest()
        if self._store.has(sha256, len(data)):
            return sha256, len(data)
        self._store.ensure_dirs()
        partial = self._store.partial(f"keyframe-{uuid.uuid4().hex}")
        try:
            with partial.path.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            self._store.commit(partial, sha256)
        except OSError as exc:
            partial.discard()
            raise CacheError(
                f"Cannot store a keyframe picture in {self._store.root}: {exc.strerror or exc}."
            ) from None
        return sha256, len(data)

    async def _replace(self, asset_id: int, stored: Sequence[_Stored]) -> list[SegmentInfo]:
        """Make ``stored`` the video's scene segments, in one transaction; rows that did not change stay."""
        async with self._sessions() as session, session.begin():
            # The row lock orders concurrent analyses of one video (this process or another).
            locked = await session.scalar(select(Asset.id).where(Asset.id == asset_id).with_for_update())
            if locked is None:
                raise SegmentError(f"There is no asset {asset_id}: it was deleted during the analysis.")
            old = list(
                await session.scalars(
                    select(AssetTemporalSegment)
                    .where(
                        AssetTemporalSegment.asset_id == asset_id,
                        AssetTemporalSegment.segment_type == SegmentType.SCENE,
                    )
                    .order_by(AssetTemporalSegment.start_sec)
                )
            )
            if _same_scenes(old, stored):
                for row, item in zip(old, stored, strict=True):
                    row.thumbnail_sha256 = item.sha256
                return [_info(row) for row in old]
            await session.execute(
                delete(AssetTemporalSegment).where(
                    AssetTemporalSegment.asset_id == asset_id,
                    AssetTemporalSegment.segment_type == SegmentType.SCENE,
                )
            )
            rows = [
                AssetTemporalSegment(
                    asset_id=asset_id,
                    segment_type=SegmentType.SCENE,
                    start_sec=item.scene.start_sec,
                    end_sec=item.scene.end_sec,
                    timestamp_sec=item.scene.keyframe_sec,
                    frame_number=item.scene.frame_number,
                    thumbnail_sha256=item.sha256,
                )
                for item in stored
            ]
            session.add_all(rows)
            await session.flush()
            return [_info(row) for row in rows]


def _same_scenes(old: Sequence[AssetTemporalSegment], new: Sequence[_Stored]) -> bool:
    def close(a: float | None, b: float) -> bool:
        return a is not None and abs(a - b) <= _SAME_TIME_SEC

    return len(old) == len(new) and all(
        close(row.start_sec, item.scene.start_sec)
        and close(row.end_sec, item.scene.end_sec)
        and close(row.timestamp_sec, item.scene.keyframe_sec)
        for row, item in zip(old, new, strict=True)
    )


def _info(row: AssetTemporalSegment) -> SegmentInfo:
    return SegmentInfo(
        id=row.id,
        asset_id=row.asset_id,
        start_sec=row.start_sec,
        end_sec=row.end_sec,
        timestamp_sec=row.timestamp_sec,
        frame_number=row.frame_number,
        thumbnail_sha256=row.thumbnail_sha256,
    )


def _read_picture(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise CacheError(f"The keyframe picture {path} was removed while it was read; try again.") from None
    except (OSError, ValueError) as exc:
        raise CacheError(f"The keyframe picture {path} is damaged ({exc}).") from None


def _background_priority() -> None:
    """Analysis is background work: on Linux its thread (and the decoder threads it starts, which inherit
    its niceness) yields the CPU to the UI."""
    if sys.platform.startswith("linux") and hasattr(os, "setpriority"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
