"""The background indexing queue: every image and video (and every scene segment) gets a vector for
every installed embedder, without blocking anything.

One pass (``run_once``):

1. videos not analysed yet are split into scenes first (``SegmentService.analyse``), so their
   segments are embedded in the same pass;
2. for each embedder: its model is registered (``EmbeddingStore.ensure_model``), then the assets and
   segments lacking its vectors are embedded in batches: files are fetched on the core loop
   (``local_file``, which may download), decoded and embedded in one worker thread, and stored.

The queue (``start``) runs a pass when woken by ``notify`` (the app calls it after imports and
generated results), by ``set_embedders`` (a model installed or removed: the new model's vectors are
built, the old ones stay until the model is deleted), and by a periodic sweep that catches anything
missed. ``cancel`` stops the current pass between batches (what is stored stays stored). Progress is
published as ``IndexEvent``s (done / total / label) for the jobs panel.

A file that cannot be read is skipped for the rest of the process (``failures``) instead of being
retried on every pass.

After the embedders, the assets that got a visual signature in this pass are stacked with their
near-duplicates (``duplicates.refresh_assets``: only their neighbours are looked up, not the whole
library), so an imported re-encode joins its original's stack without "Find Duplicates". The result
rides on the DONE event (``IndexEvent.duplicates``). Assets whose stacking was cancelled or failed
stay pending for the next pass.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from PIL import Image
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.enums import MediaType
from core.db.models import Asset
from core.embeddings import duplicates
from core.embeddings.base import Embedder
from core.embeddings.duplicates import DuplicateSummary
from core.embeddings.store import EmbeddingStore, Subject
from core.embeddings.visual import MODEL_ID as VISUAL_SIGNATURE
from core.errors import PixSimError
from core.thumbnails import render_frame

log = logging.getLogger(__name__)

LocalFile = Callable[[int], Awaitable[Path]]
FRAME_SIZE = 512  # frames are reduced to this before embedding (every embedder resizes further)


class Segments(Protocol):
    """What the indexer needs of ``core.segments.SegmentService``."""

    async def unanalysed_videos(self, limit: int) -> list[int]: ...

    async def analyse(self, asset_id: int, *, cancel: asyncio.Event | None = None) -> Sequence[Any]: ...

    async def keyframe_image(self, segment_id: int) -> Image.Image: ...


class IndexPhase(enum.StrEnum):
    ANALYSING = "analysing"  # finding scenes in videos
    EMBEDDING = "embedding"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in (IndexPhase.DONE, IndexPhase.CANCELLED, IndexPhase.FAILED)


@dataclass(frozen=True, slots=True)
class IndexEvent:
    phase: IndexPhase
    done: int
    total: int
    label: str  # what the jobs panel shows, e.g. "Indexing for visual signature: 120 of 500"
    model: str | None = None
    message: str | None = None  # the error of FAILED
    # On DONE: the near-duplicate groups touched by this pass's new visual signatures (None: none).
    duplicates: DuplicateSummary | None = None


@dataclass(frozen=True, slots=True)
class IndexSummary:
    analysed: int = 0
    embedded: int = 0  # vectors stored (assets and segments, all models)
    skipped: int = 0  # files that could not be read
    cancelled: bool = False
    duplicates: DuplicateSummary | None = None  # see IndexEvent.duplicates


class IndexCancelled(PixSimError):
    """Indexing was cancelled; vectors stored so far are kept."""


Listener = Callable[[IndexEvent], None]


class Indexer:
    SWEEP_INTERVAL_S = 300.0
    BATCH = 16
    ANALYSE_LIMIT = 10_000

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        store: EmbeddingStore,
        embedders: Sequence[Embedder],
        local_file: LocalFile,
        *,
        segments: Segments | None = None,
        sweep_interval_s: float | None = None,
    ) -> None:
        self._sessions = sessions
        self._store = store
        self._embedders = list(embedders)
        self._local_file = local_file
        self._segments = segments
        self._sweep_s = self.SWEEP_INTERVAL_S if sweep_interval_s is None else sweep_interval_s
        self._listeners: list[Listener] = []
        # CPU work (decoding, embedding) on one thread: the GUI and the database keep the other core.
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="indexer")
        self._wake = asyncio.Event()
        self._cancel = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failed: dict[tuple[str, int], str] = {}
        self._unstacked: set[int] = set()  # assets with a new visual signature, not yet stacked
        self.running = False

    # -- events --------------------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _emit(self, event: IndexEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("index event listener failed")

    @property
    def failures(self) -> dict[tuple[str, int], str]:
        """("asset" | "segment", id) -> why it could not be embedded (since this indexer started)."""
        return dict(self._failed)

    # -- the queue -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Run the queue on the current (core) loop: one pass now, then on ``notify`` or every sweep."""
        if self._task is None:
            self._wake.set()
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="indexer")

    def notify(self, asset_ids: Sequence[int] = ()) -> None:
        """New or changed assets (imports, generated results): index them soon. Call on the core loop."""
        self._wake.set()

    async def set_embedders(self, embedders: Sequence[Embedder]) -> None:
        """The installed embedders changed: index for the new set (a new model is built from scratch)."""
        self._embedders = list(embedders)
        self.cancel()  # a pass for the old set stops at its next batch; the next pass uses the new set
        self._wake.set()

    def cancel(self) -> None:
        """Stop the current pass between batches. The queue stays alive for the next ``notify``."""
        if self.running:
            self._cancel.set()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._sweep_s)
            self._wake.clear()
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the queue alive; the panel shows the error
                log.exception("indexing pass failed")
                self._emit(IndexEvent(IndexPhase.FAILED, 0, 0, "Indexing failed", message=str(exc)))

    # -- one pass ------------------------------------------------------------------------------------

    async def run_once(self) -> IndexSummary:
        """Analyse unanalysed videos, then embed whatever lacks a vector for each embedder."""
        self._cancel.clear()
        self.running = True
        analysed = embedded = skipped = 0
        try:
            if self._segments is not None:
                analysed, failed = await self._analyse_videos(self._segments)
                skipped += failed
            for embedder in list(self._embedders):
                done, failed = await self._embed_all(embedder)
                embedded, skipped = embedded + done, skipped + failed
            stacked = await self._stack_duplicates()
        except IndexCancelled:
            self._emit(IndexEvent(IndexPhase.CANCELLED, 0, 0, "Indexing cancelled"))
            return IndexSummary(analysed, embedded, skipped, cancelled=True)
        finally:
            self.running = False
        label = f"Indexed {embedded} items"
        if stacked is not None and stacked.changed:
            label += f"; near-duplicates stacked ({stacked.groups} group{'s' if stacked.groups != 1 else ''})"
        self._emit(IndexEvent(IndexPhase.DONE, embedded, embedded, label, duplicates=stacked))
        return IndexSummary(analysed, embedded, skipped, duplicates=stacked)

    async def _stack_duplicates(self) -> DuplicateSummary | None:
        """Join the assets embedded with the visual signature (this pass or a cancelled one) to
        their near-duplicates' groups. A database error is logged and retried on the next pass."""
        embedder = next((e for e in self._embedders if e.model_id == VISUAL_SIGNATURE), None)
        if embedder is None:
            self._unstacked.clear()  # the model is gone; a later install re-embeds everything
            return None
        if not self._unstacked:
            return None
        self._check_cancel()
        ids = sorted(self._unstacked)
        model_id = await self._store.ensure_model(embedder)
        try:
            summary = await duplicates.refresh_assets(
                self._sessions, model_id, embedder.dimensions, ids, cancel=self._cancel
            )
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._cancel.is_set() and (task is None or not task.cancelling()):
                raise IndexCancelled("Indexing was cancelled.") from None
            raise
        except SQLAlchemyError:
            log.exception("stacking near-duplicates of %d new assets failed", len(ids))
            return None
        self._unstacked.difference_update(ids)
        return summary

    def _check_cancel(self) -> None:
        if self._cancel.is_set():
            raise IndexCancelled("Indexing was cancelled.")

    async def _analyse_videos(self, segments: Segments) -> tuple[int, int]:
        videos = await segments.unanalysed_videos(self.ANALYSE_LIMIT)
        done = failed = 0
        for n, asset_id in enumerate(videos):
            self._check_cancel()
            self._emit(
                IndexEvent(IndexPhase.ANALYSING, n, len(videos), f"Finding scenes: {n} of {len(videos)}")
            )
            try:
                await segments.analyse(asset_id, cancel=self._cancel)
                done += 1
            except PixSimError as exc:
                if self._cancel.is_set():
                    raise IndexCancelled("Indexing was cancelled.") from None
                log.warning("asset %s: scene analysis failed: %s", asset_id, exc)
                failed += 1
        return done, failed

    async def _embed_all(self, embedder: Embedder) -> tuple[int, int]:
        model_id = await self._store.ensure_model(embedder)
        name = embedder.model_id
        missing_assets, missing_segments = await self._store.missing_counts(model_id)
        skip_assets = {i for kind, i in self._failed if kind == "asset"}
        skip_segments = {i for kind, i in self._failed if kind == "segment"}
        total = max(0, missing_assets - len(skip_assets)) + max(0, missing_segments - len(skip_segments))
        done = failed = 0

        def progress() -> None:
            self._emit(
                IndexEvent(IndexPhase.EMBEDDING, done, total, f"Indexing for {name}: {done} of {total}", name)
            )

        progress()
        after = 0
        while True:
            self._check_cancel()
            ids = await self._store.assets_without_vectors(model_id, self.BATCH, after=after)
            ids = [i for i in ids if i not in skip_assets] if skip_assets else ids
            if not ids:
                break
            after = max(ids)
            subjects, images = await self._asset_frames(ids)
            failed += len(ids) - len(subjects)
            done += await self._embed(embedder, model_id, subjects, images)
            if name == VISUAL_SIGNATURE:
                self._unstacked.update(s.asset_id for s in subjects if s.asset_id is not None)
            progress()
        if self._segments is not None:
            after = 0
            while True:
                self._check_cancel()
                ids = await self._store.segments_without_vectors(model_id, self.BATCH, after=after)
                ids = [i for i in ids if i not in skip_segments]
                if not ids:
                    break
                after = max(ids)
                subjects, images = await self._segment_frames(ids)
                failed += len(ids) - len(subjects)
                done += await self._embed(embedder, model_id, subjects, images)
                progress()
        return done, failed

    async def _embed(
        self, embedder: Embedder, model_id: int, subjects: list[Subject], images: list[Image.Image]
    ) -> int:
        if not subjects:
            return 0
        loop = asyncio.get_running_loop()
        vectors = await loop.run_in_executor(self._executor, embedder.embed_images, images)
        await self._store.upsert(model_id, subjects, vectors)
        return len(subjects)

    async def _asset_frames(self, ids: list[int]) -> tuple[list[Subject], list[Image.Image]]:
        """Each asset's picture: an image itself, a video's middle frame. Unreadable ones are skipped."""
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(Asset.id, Asset.media_type, Asset.duration_sec).where(Asset.id.in_(ids))
                )
            ).all()
        loop = asyncio.get_running_loop()
        subjects: list[Subject] = []
        images: list[Image.Image] = []
        for asset_id, media_type, duration in rows:
            try:
                path = await self._local_file(asset_id)
                image = await loop.run_in_executor(self._executor, _frame, path, media_type, duration)
            except (PixSimError, OSError, ValueError) as exc:
                log.warning("asset %s: cannot index: %s", asset_id, exc)
                self._failed[("asset", asset_id)] = str(exc)
                continue
            subjects.append(Subject.asset(asset_id))
            images.append(image)
        return subjects, images

    async def _segment_frames(self, ids: list[int]) -> tuple[list[Subject], list[Image.Image]]:
        assert self._segments is not None
        subjects: list[Subject] = []
        images: list[Image.Image] = []
        for segment_id in ids:
            try:
                image = await self._segments.keyframe_image(segment_id)
            except (PixSimError, OSError, ValueError) as exc:
                log.warning("segment %s: cannot index: %s", segment_id, exc)
                self._failed[("segment", segment_id)] = str(exc)
                continue
            subjects.append(Subject.segment(segment_id))
            images.append(image.convert("RGB"))
        return subjects, images


def _frame(path: Path, media_type: MediaType, duration: float | None) -> Image.Image:
    """Decode the picture to embed (worker thread)."""
    if media_type == MediaType.VIDEO:
        return render_frame(path, (duration or 0.0) / 2, FRAME_SIZE).convert("RGB")
    with Image.open(path) as image:
        image.draft("RGB", (FRAME_SIZE, FRAME_SIZE))  # JPEG: decode at a reduced scale
        picture = image.convert("RGB")
    picture.thumbnail((FRAME_SIZE, FRAME_SIZE))
    return picture
