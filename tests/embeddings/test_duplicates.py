"""Near-duplicate groups from real pictures' vectors, stored and stacked in the library grid."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.enums import MediaType
from core.db.models import Asset
from core.embeddings import duplicates
from core.embeddings.store import EmbeddingStore, Subject
from core.library import LibraryQuery, LibraryService
from tests.embeddings.colour_embedder import ColourGridEmbedder
from tests.factories import add_asset

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def picture(seed: int, size: tuple[int, int] = (400, 300)) -> Image.Image:
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", size, tuple(int(c) for c in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = int(rng.integers(0, size[0] - 60)), int(rng.integers(0, size[1] - 60))
        draw.rectangle((x, y, x + 120, y + 90), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    return image


def jpeg(image: Image.Image, quality: int = 40) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


@dataclass
class Shelf:
    model_id: int
    sunset: list[int]  # original (largest), a small re-encode, a mid-size copy
    harbour: list[int]  # original, a resize
    singles: list[int]


@pytest.fixture
async def shelf(sessions: async_sessionmaker[AsyncSession]) -> Shelf:
    store = EmbeddingStore(sessions)
    embedder = ColourGridEmbedder()
    model_id = await store.ensure_model(embedder)
    sunset, harbour = picture(1), picture(2)
    images = [
        (sunset, (1920, 1080), T0 + timedelta(days=2)),
        (jpeg(sunset.resize((320, 240))), (320, 240), T0),
        (jpeg(sunset, 80), (1280, 720), T0 + timedelta(days=1)),
        (harbour, (800, 600), T0 + timedelta(days=5)),
        (jpeg(harbour.resize((200, 150)), 60), (800, 600), T0 + timedelta(days=3)),
        *((picture(10 + i), (640, 480), T0 + timedelta(days=10 + i)) for i in range(12)),
    ]
    async with sessions() as session, session.begin():
        ids = [
            (
                await add_asset(
                    session, media_type=MediaType.IMAGE, width=w, height=h, created_at=at, tags=["photo"]
                )
            ).id
            for _, (w, h), at in images
        ]
    await store.upsert(
        model_id, [Subject.asset(i) for i in ids], embedder.embed_images([i for i, _, _ in images])
    )
    return Shelf(model_id, ids[:3], ids[3:5], ids[5:])


async def test_versions_of_one_picture_form_a_group_and_nothing_else_does(
    sessions: async_sessionmaker[AsyncSession], shelf: Shelf
) -> None:
    store = EmbeddingStore(sessions)
    groups = await store.near_duplicate_groups(shelf.model_id, duplicates.DEFAULT_THRESHOLD)
    assert groups == [shelf.sunset, shelf.harbour]


async def test_groups_are_stored_as_labels_and_a_rerun_changes_nothing(
    sessions: async_sessionmaker[AsyncSession], shelf: Shelf
) -> None:
    seen: list[tuple[int, int]] = []
    summary = await duplicates.refresh(
        sessions, shelf.model_id, 48, progress=lambda d, t: seen.append((d, t))
    )
    assert (summary.groups, summary.assets, summary.changed) == (2, 5, 5)
    assert seen[-1] == (17, 17)
    async with sessions() as session:
        labels = {i: g for i, g in (await session.execute(select(Asset.id, Asset.duplicate_group_id))).all()}
    assert {labels[i] for i in shelf.sunset} == {min(shelf.sunset)}
    assert {labels[i] for i in shelf.harbour} == {min(shelf.harbour)}
    assert all(labels[i] is None for i in shelf.singles)

    again = await duplicates.refresh(sessions, shelf.model_id, 48)
    assert again.changed == 0

    # A stricter threshold splits the groups; labels of assets left alone are cleared.
    strict = await duplicates.refresh(sessions, shelf.model_id, 48, threshold=0.0)
    assert strict.groups == 0 and strict.changed == 5
    async with sessions() as session:
        grouped = await session.scalar(
            select(func.count()).select_from(Asset).where(Asset.duplicate_group_id.is_not(None))
        )
    assert grouped == 0


async def test_the_grid_stacks_each_group_into_its_best_member_and_deletes_nothing(
    sessions: async_sessionmaker[AsyncSession], shelf: Shelf
) -> None:
    await duplicates.refresh(sessions, shelf.model_id, 48)
    library = LibraryService(sessions)
    flat = await library.search(LibraryQuery(), limit=100)
    assert len(flat) == 17 and all(c.stack_size == 1 for c in flat)

    stacked_query = LibraryQuery(stack_duplicates=True)
    stacked = await library.search(stacked_query, limit=100)
    assert len(stacked) == await library.count(stacked_query) == 12 + 2
    by_id = {c.id: c for c in stacked}
    # The representative: highest resolution (then oldest).
    assert by_id[shelf.sunset[0]].stack_size == 3
    assert by_id[shelf.harbour[1]].stack_size == 2, "same resolution: the older copy"
    assert shelf.harbour[0] not in by_id
    assert all(by_id[i].stack_size == 1 for i in shelf.singles)

    # A filter that rules out the best member shows the next one, never hides the stack.
    before_day_2 = LibraryQuery(stack_duplicates=True, created_to=T0 + timedelta(days=2))
    cards = await library.search(before_day_2)
    assert [(c.id, c.stack_size) for c in cards] == [(shelf.sunset[2], 2)]
    assert await library.count(before_day_2) == 1

    # Expanding a stack lists its members; nothing was deleted.
    members = await library.search(LibraryQuery(duplicate_group=min(shelf.sunset)))
    assert sorted(c.id for c in members) == shelf.sunset
    assert await library.count(LibraryQuery()) == 17


async def test_indexed_with_the_visual_signature_re_encodes_stack_and_distinct_pictures_do_not(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    """End to end: real files, the built-in visual signature embedder, the indexer, the groups."""
    from core.embeddings.indexer import Indexer
    from core.embeddings.visual import VisualSignatureEmbedder

    originals = [picture(40 + i, (480, 360)) for i in range(6)]
    variants = {0: jpeg(originals[0].resize((240, 180)), 50), 3: jpeg(originals[3], 30)}
    paths: dict[int, Path] = {}
    async with sessions() as session, session.begin():
        for image in [*originals, *variants.values()]:
            asset = await add_asset(
                session, media_type=MediaType.IMAGE, width=image.width, height=image.height
            )
            paths[asset.id] = tmp_path / f"{asset.id}.png"
            image.save(paths[asset.id])
    ids = list(paths)

    async def local_file(asset_id: int) -> Path:
        return paths[asset_id]

    store = EmbeddingStore(sessions)
    embedder = VisualSignatureEmbedder()
    await Indexer(sessions, store, [embedder], local_file).run_once()
    model_id = await store.ensure_model(embedder)
    summary = await duplicates.refresh(sessions, model_id, embedder.dimensions)
    assert summary.groups == 2
    groups = await store.near_duplicate_groups(model_id, duplicates.DEFAULT_THRESHOLD)
    assert groups == [[ids[0], ids[6]], [ids[3], ids[7]]]


async def test_derived_works_look_alike_but_are_not_stacked(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """An extend chain, the variants continued from one moment and the video made from a still look
    alike by design; stacking them would hide a story's variants. A plain copy still stacks."""
    from core.db.models import AssetLineage

    store = EmbeddingStore(sessions)
    embedder = ColourGridEmbedder()
    model_id = await store.ensure_model(embedder)
    scene = picture(7)
    frames = [jpeg(scene, q) for q in (95, 90, 85, 80, 75, 70)] + [scene]
    kinds = [MediaType.IMAGE] + [MediaType.VIDEO] * 5 + [MediaType.IMAGE]
    async with sessions() as session, session.begin():
        still, video, extend1, extend2, variant_a, variant_b, copy = [
            (await add_asset(session, media_type=kind)).id for kind in kinds
        ]
        for parent, child, operation in (
            (still, video, "image_to_video"),
            (video, extend1, "video_extend"),
            (extend1, extend2, "video_extend"),
            (extend2, variant_a, "video_extend"),
            (extend2, variant_b, "video_extend"),
        ):
            session.add(
                AssetLineage(
                    parent_asset_id=parent, child_asset_id=child, operation=operation, parent_role="source"
                )
            )
    ids = [still, video, extend1, extend2, variant_a, variant_b, copy]
    await store.upsert(model_id, [Subject.asset(i) for i in ids], embedder.embed_images(frames))
    assert max(float(d) for d in _distances(embedder, frames)) < duplicates.DEFAULT_THRESHOLD

    groups = await duplicates.find_groups(
        sessions, model_id, embedder.dimensions, duplicates.DEFAULT_THRESHOLD
    )
    # Only the imported copy of the still (no lineage between them) pairs with it.
    assert groups == [sorted([still, copy])]


def _distances(embedder: ColourGridEmbedder, frames: list[Image.Image]) -> list[float]:
    vectors = embedder.embed_images(frames)
    return [float(1 - vectors[i] @ vectors[j]) for i in range(len(frames)) for j in range(i + 1, len(frames))]
