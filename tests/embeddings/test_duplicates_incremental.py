"""Incremental near-duplicate stacking: only newly embedded assets are looked up, yet the stored groups
are what a full pass would store. Real PNG/JPEG files, the real visual signature, the real database."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.enums import MediaType
from core.db.models import Asset
from core.embeddings import duplicates
from core.embeddings.indexer import Indexer, IndexEvent, IndexPhase
from core.embeddings.store import EmbeddingStore, Subject
from core.embeddings.visual import VisualSignatureEmbedder
from core.library import LibraryQuery, LibraryService
from tests.embeddings.test_duplicates import jpeg, picture
from tests.factories import add_asset

SIZE = (480, 360)


def bridge_pair() -> tuple[Image.Image, Image.Image, Image.Image]:
    """Two pictures too far apart to be versions of each other (≈ 0.12) and a blend within ≈ 0.05 of
    both: a new asset that bridges the two pictures' stacks."""
    left = picture(31, SIZE)
    right = Image.blend(left, picture(131, SIZE), 0.3)
    return left, right, Image.blend(left, right, 0.5)


class Shelf:
    """Assets backed by real files on disk, embedded with the real visual signature."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], root: Path) -> None:
        self.sessions = sessions
        self.root = root
        self.paths: dict[int, Path] = {}
        self.store = EmbeddingStore(sessions)
        self.embedder = VisualSignatureEmbedder()

    async def model_id(self) -> int:
        return await self.store.ensure_model(self.embedder)

    async def add(self, *images: Image.Image, fmt: str = "PNG") -> list[int]:
        """Import: one asset per picture, saved as a real file (JPEG re-encodes are lossy)."""
        ids = []
        async with self.sessions() as session, session.begin():
            for image in images:
                asset = await add_asset(
                    session, media_type=MediaType.IMAGE, width=image.width, height=image.height
                )
                path = self.root / f"{asset.id}.{fmt.lower()}"
                image.save(path, fmt, **({"quality": 60} if fmt == "JPEG" else {}))
                self.paths[asset.id] = path
                ids.append(asset.id)
        return ids

    async def embed(self, ids: Sequence[int]) -> None:
        """Store the visual signatures of ``ids`` (read back from their files) without stacking."""
        pictures = []
        for i in ids:
            with Image.open(self.paths[i]) as image:
                pictures.append(image.convert("RGB"))
        vectors = self.embedder.embed_images(pictures)
        await self.store.upsert(await self.model_id(), [Subject.asset(i) for i in ids], vectors)

    async def refresh_assets(self, ids: Sequence[int]) -> duplicates.DuplicateSummary:
        return await duplicates.refresh_assets(
            self.sessions, await self.model_id(), self.embedder.dimensions, ids
        )

    async def labels(self) -> dict[int, int | None]:
        async with self.sessions() as session:
            rows = (await session.execute(select(Asset.id, Asset.duplicate_group_id))).all()
        return {int(i): g for i, g in rows}

    async def stored_groups(self) -> list[list[int]]:
        by_label: dict[int, list[int]] = {}
        for asset_id, label in (await self.labels()).items():
            if label is not None:
                by_label.setdefault(label, []).append(asset_id)
        for label, members in by_label.items():
            assert label == min(members), "a group's label is its smallest id"
        return sorted(sorted(g) for g in by_label.values())

    async def full_groups(self) -> list[list[int]]:
        return await duplicates.find_groups(
            self.sessions, await self.model_id(), self.embedder.dimensions, duplicates.DEFAULT_THRESHOLD
        )

    async def local_file(self, asset_id: int) -> Path:
        return self.paths[asset_id]


@pytest.fixture
def shelf(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> Shelf:
    return Shelf(sessions, tmp_path)


async def test_incremental_stacking_after_each_import_equals_a_full_pass_at_the_end(
    shelf: Shelf,
) -> None:
    originals = [picture(60 + i, SIZE) for i in range(5)]
    left, right, blend = bridge_pair()
    imports: list[tuple[list[Image.Image], str]] = [
        ([*originals, left, right], "PNG"),  # 7 distinct pictures: no stacks
        ([originals[0].resize((240, 180)), originals[2]], "JPEG"),  # two re-encodes
        ([originals[0], right.resize((320, 240))], "JPEG"),  # a third copy of 0, a copy of `right`
        ([blend, picture(90, SIZE)], "PNG"),  # joins left's and right's stacks; an unrelated one
    ]
    added: list[list[int]] = []
    for images, fmt in imports:
        ids = await shelf.add(*images, fmt=fmt)
        await shelf.embed(ids)
        await shelf.refresh_assets(ids)
        added.append(ids)
        # After every import, the stored stacks are exactly what a full pass finds.
        assert await shelf.stored_groups() == await shelf.full_groups()

    first = added[0]
    groups = await shelf.stored_groups()
    assert groups == [
        [first[0], added[1][0], added[2][0]],
        [first[2], added[1][1]],
        [first[5], first[6], added[2][1], added[3][0]],
    ]
    before = await shelf.labels()
    full = await duplicates.refresh(shelf.sessions, await shelf.model_id(), shelf.embedder.dimensions)
    assert full.changed == 0, "a full pass has nothing left to fix"
    assert await shelf.labels() == before


async def test_a_new_re_encode_joins_the_existing_stack(shelf: Shelf) -> None:
    sea = picture(70, SIZE)
    ids = await shelf.add(sea, sea.resize((320, 240)), picture(71, SIZE))
    await shelf.embed(ids)
    await duplicates.refresh(shelf.sessions, await shelf.model_id(), shelf.embedder.dimensions)
    assert await shelf.stored_groups() == [ids[:2]]

    [copy] = await shelf.add(sea.resize((200, 150)), fmt="JPEG")
    await shelf.embed([copy])
    summary = await shelf.refresh_assets([copy])
    assert (summary.groups, summary.assets, summary.changed) == (1, 3, 1), "only the copy is written"
    labels = await shelf.labels()
    assert labels[copy] == ids[0]
    assert labels[ids[2]] is None
    assert (await shelf.refresh_assets([copy])).changed == 0, "a rerun writes nothing"


async def test_a_new_asset_bridging_two_stacks_merges_them_under_the_smallest_id(shelf: Shelf) -> None:
    left, right, blend = bridge_pair()
    # The right stack is imported first, so the merged group's label changes for the left stack.
    right_ids = await shelf.add(right, jpeg(right.resize((240, 180)), 50))
    left_ids = await shelf.add(left, jpeg(left, 50))
    await shelf.embed([*right_ids, *left_ids])
    await duplicates.refresh(shelf.sessions, await shelf.model_id(), shelf.embedder.dimensions)
    assert await shelf.stored_groups() == [right_ids, left_ids], "too far apart to stack on their own"

    [bridge] = await shelf.add(blend)
    await shelf.embed([bridge])
    summary = await shelf.refresh_assets([bridge])
    assert (summary.groups, summary.assets, summary.changed) == (1, 5, 3)
    assert await shelf.stored_groups() == [[*right_ids, *left_ids, bridge]]
    assert await shelf.stored_groups() == await shelf.full_groups()
    assert {(await shelf.labels())[i] for i in [*left_ids, bridge]} == {right_ids[0]}


async def test_an_unrelated_new_asset_stays_alone_and_other_stacks_are_untouched(shelf: Shelf) -> None:
    sea = picture(80, SIZE)
    ids = await shelf.add(sea, jpeg(sea, 40))
    await shelf.embed(ids)
    await shelf.refresh_assets(ids)
    assert await shelf.stored_groups() == [ids]

    [other] = await shelf.add(picture(81, SIZE), fmt="JPEG")
    await shelf.embed([other])
    summary = await shelf.refresh_assets([other])
    assert (summary.groups, summary.assets, summary.changed) == (0, 0, 0)
    labels = await shelf.labels()
    assert labels[other] is None and labels[ids[1]] == ids[0]


async def test_assets_without_a_vector_are_ignored_and_a_cancel_writes_nothing(shelf: Shelf) -> None:
    sea = picture(82, SIZE)
    ids = await shelf.add(sea, jpeg(sea, 40))
    summary = await shelf.refresh_assets(ids)  # not embedded yet
    assert (summary.groups, summary.changed) == (0, 0)
    await shelf.embed(ids)
    cancel = asyncio.Event()
    cancel.set()
    with pytest.raises(asyncio.CancelledError):
        await duplicates.refresh_assets(
            shelf.sessions, await shelf.model_id(), shelf.embedder.dimensions, ids, cancel=cancel
        )
    assert await shelf.stored_groups() == []
    with pytest.raises(ValueError, match="threshold"):
        await duplicates.refresh_assets(
            shelf.sessions, await shelf.model_id(), shelf.embedder.dimensions, ids, threshold=2.5
        )


async def test_an_indexing_pass_stacks_a_newly_imported_re_encode_by_itself(shelf: Shelf) -> None:
    sea, field = picture(84, SIZE), picture(85, SIZE)
    ids = await shelf.add(sea, field)
    indexer = Indexer(shelf.sessions, shelf.store, [shelf.embedder], shelf.local_file)
    events: list[IndexEvent] = []
    indexer.subscribe(events.append)
    first = await indexer.run_once()
    assert first.duplicates is not None and first.duplicates.changed == 0

    # The user imports a re-encode of the sea; the queue's next pass embeds and stacks it.
    [copy] = await shelf.add(sea.resize((240, 180)), fmt="JPEG")
    events.clear()
    summary = await indexer.run_once()
    assert summary.embedded == 1
    done = events[-1]
    assert done.phase is IndexPhase.DONE and done.duplicates == summary.duplicates
    assert done.duplicates is not None and (done.duplicates.groups, done.duplicates.changed) == (1, 2)
    assert "near-duplicates stacked" in done.label
    assert (await shelf.labels())[copy] == ids[0]

    library = LibraryService(shelf.sessions)
    cards = await library.search(LibraryQuery(stack_duplicates=True))
    assert sorted((c.id, c.stack_size) for c in cards) == [(ids[0], 2), (ids[1], 1)]
    assert await library.count(LibraryQuery()) == 3, "nothing deleted"

    # A pass with nothing new does not look for duplicates again.
    assert (await indexer.run_once()).duplicates is None


async def test_a_cancelled_pass_stacks_its_new_vectors_on_the_next_pass(shelf: Shelf) -> None:
    sea = picture(86, SIZE)
    ids = await shelf.add(sea, jpeg(sea, 40), picture(87, SIZE))
    indexer = Indexer(shelf.sessions, shelf.store, [shelf.embedder], shelf.local_file)

    def cancel_once_embedded(event: IndexEvent) -> None:
        if event.phase is IndexPhase.EMBEDDING and event.total and event.done == event.total:
            indexer.cancel()

    unsubscribe = indexer.subscribe(cancel_once_embedded)
    assert (await indexer.run_once()).cancelled
    assert await shelf.store.count(await shelf.model_id()) == 3, "the vectors are kept"
    assert await shelf.stored_groups() == [], "stacking was cancelled with the pass"
    unsubscribe()

    summary = await indexer.run_once()
    assert summary.embedded == 0 and summary.duplicates is not None
    assert await shelf.stored_groups() == [ids[:2]]
