"""Find-similar as a mode of LibraryQuery: LibraryService.search / count / facets answer in similarity
order through the embedding store, combined with the grid's filters, on the real database."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pytest
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.enums import MediaType, SegmentType
from core.db.models import AssetTemporalSegment
from core.embeddings.store import EmbeddingStore, Subject
from core.embeddings.visual import VisualSignatureEmbedder
from core.library import LibraryError, LibraryQuery, LibraryService, SimilarTo
from tests.embeddings.colour_embedder import ColourGridEmbedder
from tests.factories import add_asset

T0 = datetime(2026, 4, 1, tzinfo=UTC)
COLOUR = ColourGridEmbedder().model_id


def frame(red: int, green: int, blue: int) -> Image.Image:
    return Image.new("RGB", (64, 48), (red, green, blue))


@dataclass
class Palette:
    reds: list[int]  # images, reddest first
    blues: list[int]  # images
    video: int  # a green video with a red second scene
    red_scene: int  # its segment id
    model_id: int


@pytest.fixture
async def palette(sessions: async_sessionmaker[AsyncSession]) -> Palette:
    """Twelve reds fading towards grey, eight blues, and a video whose second scene is red."""
    store = EmbeddingStore(sessions)
    embedder = ColourGridEmbedder()
    model_id = await store.ensure_model(embedder)
    pictures: list[Image.Image] = []
    async with sessions() as session, session.begin():
        reds = []
        for i in range(12):
            reds.append(
                (await add_asset(session, media_type=MediaType.IMAGE, tags=["warm"], created_at=T0)).id
            )
            pictures.append(frame(250 - i * 8, 20 + i * 8, 20 + i * 8))
        blues = []
        for i in range(8):
            blues.append((await add_asset(session, media_type=MediaType.IMAGE, created_at=T0)).id)
            pictures.append(frame(10, 20 + i * 5, 240))
        video = (await add_asset(session, media_type=MediaType.VIDEO, duration_sec=8.0)).id
        segments = [
            AssetTemporalSegment(
                asset_id=video,
                segment_type=SegmentType.SCENE,
                start_sec=s,
                end_sec=s + 4,
                timestamp_sec=s + 2,
            )
            for s in (0.0, 4.0)
        ]
        session.add_all(segments)
        await session.flush()
        scene_ids = [s.id for s in segments]
    await store.upsert(model_id, [Subject.asset(i) for i in reds + blues], embedder.embed_images(pictures))
    await store.upsert(
        model_id,
        [Subject.asset(video), Subject.segment(scene_ids[0]), Subject.segment(scene_ids[1])],
        embedder.embed_images([frame(20, 230, 20), frame(20, 230, 20), frame(245, 25, 25)]),
    )
    return Palette(reds, blues, video, scene_ids[1], model_id)


@pytest.fixture
def library(sessions: async_sessionmaker[AsyncSession]) -> LibraryService:
    return LibraryService(sessions)


def like(asset_id: int, k: int = 5, **kw: object) -> SimilarTo:
    return SimilarTo(label=f"asset {asset_id}", model=COLOUR, asset_id=asset_id, k=k, **kw)  # type: ignore[arg-type]


async def test_similar_to_an_asset_ranks_by_likeness_and_leaves_the_source_out(
    library: LibraryService, palette: Palette
) -> None:
    query = LibraryQuery(similar_to=like(palette.reds[0], k=5, include_segments=False))
    cards = await library.search(query)
    assert [c.id for c in cards] == palette.reds[1:6], "the nearest reds, nearest first, source left out"
    assert all(c.distance is not None for c in cards)
    distances = [c.distance or 0.0 for c in cards]
    assert distances == sorted(distances)
    assert await library.count(query) == 5


async def test_always_k_results_and_pages_that_join_up(library: LibraryService, palette: Palette) -> None:
    query = LibraryQuery(similar_to=like(palette.reds[0], k=15, include_segments=False))
    assert await library.count(query) == 15, "12 reds minus the source, then the nearest blues"
    first, second = await library.search(query, 0, 10), await library.search(query, 10, 10)
    whole = await library.search(query)
    assert [c.id for c in first + second] == [c.id for c in whole] and len(second) == 5


async def test_filters_combine_with_similarity(library: LibraryService, palette: Palette) -> None:
    query = LibraryQuery(tags=frozenset({"warm"}), similar_to=like(palette.blues[0], k=30))
    cards = await library.search(query)
    assert {c.id for c in cards} == set(palette.reds), "only the warm-tagged ones, however far"
    assert await library.count(query) == 12
    facets = await library.facets(query)
    assert facets.media_types[MediaType.IMAGE] == 12 and facets.media_types[MediaType.VIDEO] == 0


async def test_a_segment_hit_names_its_video_and_time(library: LibraryService, palette: Palette) -> None:
    query = LibraryQuery(similar_to=like(palette.reds[0], k=3))
    cards = await library.search(query)
    scene = next(c for c in cards if c.segment_id is not None)
    assert scene.id == palette.video and scene.segment_id == palette.red_scene
    assert scene.segment_start_sec == pytest.approx(4.0) and scene.media_type is MediaType.VIDEO
    videos_only = replace(query, media_types=frozenset({MediaType.VIDEO}))
    assert (await library.search(videos_only))[0].segment_id == palette.red_scene


async def test_similar_to_a_frame_vector(library: LibraryService, palette: Palette) -> None:
    vector = ColourGridEmbedder().embed_images([frame(12, 25, 238)])[0]
    similar = SimilarTo(
        label="frame", model=COLOUR, vector=tuple(vector.tolist()), k=4, include_segments=False
    )
    cards = await library.search(LibraryQuery(similar_to=similar))
    assert {c.id for c in cards} <= set(palette.blues) and len(cards) == 4


async def test_describe_search_needs_a_text_embedder(library: LibraryService, palette: Palette) -> None:
    query = LibraryQuery(similar_to=SimilarTo(label="“red”", model=COLOUR, text="red", k=3))
    with pytest.raises(LibraryError, match="pixsim models install clip"):
        await library.count(query)
    library.set_embedders([VisualSignatureEmbedder(), ColourGridEmbedder()])
    assert library.text_model == COLOUR
    cards = await library.search(query)
    assert len(cards) == 3 and cards[0].id in {*palette.reds, palette.video}
    assert all(c.id not in palette.blues for c in cards)


async def test_a_model_nothing_was_indexed_with_says_so(library: LibraryService, palette: Palette) -> None:
    query = LibraryQuery(
        similar_to=SimilarTo(label="x", model="pixsim/visual-signature@1", asset_id=palette.reds[0])
    )
    with pytest.raises(LibraryError, match="Nothing has been indexed"):
        await library.search(query)


async def test_stacked_results_fold_near_duplicates_but_keep_the_sources(
    library: LibraryService, palette: Palette, sessions: async_sessionmaker[AsyncSession]
) -> None:
    from sqlalchemy import update

    from core.db.models import Asset

    # The source and its two nearest reds are one group of versions; the next two another.
    async with sessions() as session, session.begin():
        await session.execute(
            update(Asset).where(Asset.id.in_(palette.reds[:3])).values(duplicate_group_id=palette.reds[0])
        )
        await session.execute(
            update(Asset).where(Asset.id.in_(palette.reds[3:5])).values(duplicate_group_id=palette.reds[3])
        )
    flat = LibraryQuery(similar_to=like(palette.reds[0], k=4, include_segments=False))
    stacked = replace(flat, stack_duplicates=True)
    assert [c.id for c in await library.search(flat)] == palette.reds[1:5]
    cards = await library.search(stacked)
    assert [c.id for c in cards] == [palette.reds[1], palette.reds[3], palette.reds[5], palette.reds[6]]
    assert [c.stack_size for c in cards] == [3, 2, 1, 1]
    assert await library.count(stacked) == 4


def test_similar_mode_is_not_saved_and_needs_one_source() -> None:
    query = LibraryQuery(text="harbour", similar_to=SimilarTo(label="a", model=COLOUR, asset_id=3))
    assert "similar_to" not in query.to_json()
    assert LibraryQuery.from_json(query.to_json()).similar_to is None
    assert hash(query) == hash(replace(query))
    with pytest.raises(ValueError):
        SimilarTo(label="a", model=COLOUR)
    with pytest.raises(ValueError):
        SimilarTo(label="a", model=COLOUR, asset_id=1, text="red")
    with pytest.raises(LibraryError, match="Describe"):
        SimilarTo(label="a", model=COLOUR, text="   ")
