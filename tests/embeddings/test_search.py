"""Find-similar and text search combined with the library filters, on the real embedded PostgreSQL."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.enums import ContentRating, MediaType, SegmentType, UploadMethod
from core.db.models import Asset, AssetTemporalSegment, User
from core.embeddings.base import l2_normalise
from core.embeddings.store import EmbeddingStore, EmbeddingStoreError, NotEmbedded, SimilarHit, Subject
from core.library import LibraryQuery
from tests.embeddings.colour_embedder import ColourGridEmbedder
from tests.factories import add_asset, local_user_id

DIMS = 48
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Library:
    model_id: int
    query_vector: np.ndarray
    videos: list[int]
    images: list[int]  # 1 % of the library
    gated: int  # age-restricted, the nearest of all to the query vector
    tagged: list[int]  # tagged "boss", among the videos
    segments: dict[int, tuple[int, float]]  # segment id -> (video id, start_sec)
    foreign: int  # another user's asset


async def bulk_assets(session: AsyncSession, rows: list[dict[str, Any]]) -> list[int]:
    """Many assets in one statement (``add_asset``'s defaults), ids in the order given."""
    user_id = await local_user_id(session)
    values = []
    for n, fields in enumerate(rows):
        key = f"bulk-{len(rows)}-{n}-{fields}"
        values.append(
            {
                "user_id": user_id,
                "media_type": MediaType.VIDEO,
                "provider_id": "pixverse",
                "provider_asset_id": hashlib.sha256(key.encode()).hexdigest()[:32],
                "sha256": hashlib.sha256(key.encode()).hexdigest(),
                "mime_type": "video/mp4",
                "width": 1280,
                "height": 720,
                "duration_sec": 5.0,
                "upload_method": UploadMethod.GENERATED,
                **fields,
            }
        )
    result = await session.scalars(insert(Asset).returning(Asset.id, sort_by_parameter_order=True), values)
    return list(result)


def noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return l2_normalise(rng.standard_normal((n, DIMS)).astype(np.float32))


def near(rng: np.random.Generator, centre: np.ndarray, n: int, spread: float) -> np.ndarray:
    return l2_normalise((centre[None] + spread * rng.standard_normal((n, DIMS))).astype(np.float32))


@pytest.fixture
def store(sessions: async_sessionmaker[AsyncSession]) -> Iterator[EmbeddingStore]:
    yield EmbeddingStore(sessions)


@pytest.fixture
async def library(sessions: async_sessionmaker[AsyncSession], store: EmbeddingStore) -> Library:
    """1,000 embedded assets: 990 videos (20 tagged "boss", 10 with two segments), 10 images, one
    age-restricted asset and one of another user, all near one query vector or not."""
    rng = np.random.default_rng(7)
    model_id = await store.ensure_model(ColourGridEmbedder())
    centre = noise(rng, 1)[0]
    async with sessions() as session, session.begin():
        other = User(username="someone-else")
        session.add(other)
        await session.flush()
        videos = await bulk_assets(
            session,
            [
                {"created_at": T0 + timedelta(hours=i), "tags": ["boss"] if i % 50 == 0 else ["crowd"]}
                for i in range(990)
            ],
        )
        images = await bulk_assets(
            session, [{"media_type": MediaType.IMAGE, "mime_type": "image/png", "duration_sec": None}] * 10
        )
        gated = (await add_asset(session, content_rating=ContentRating.EXPLICIT)).id
        foreign = (await add_asset(session, user_id=other.id)).id
        segments: dict[int, tuple[int, float]] = {}
        for video in videos[:10]:
            for start in (0.0, 2.5):
                segment = AssetTemporalSegment(
                    asset_id=video,
                    segment_type=SegmentType.SCENE,
                    start_sec=start,
                    end_sec=start + 2.5,
                    timestamp_sec=start + 1.0,
                )
                session.add(segment)
                await session.flush()
                segments[segment.id] = (video, start)
    ids = [*videos, *images, gated, foreign]
    # Images and the gated asset lie far from the centre, the videos spread around it; the gated
    # and the foreign asset are the nearest of all (filters must drop them, not the distance).
    vectors = np.concatenate(
        [near(rng, centre, 990, 0.15), noise(rng, 10), near(rng, centre, 2, 0.001)],
    )
    await store.upsert(model_id, [Subject.asset(i) for i in ids], vectors)
    await store.upsert(
        model_id, [Subject.segment(s) for s in segments], near(rng, centre, len(segments), 0.05)
    )
    tagged = [v for i, v in enumerate(videos) if i % 50 == 0]
    return Library(model_id, centre, videos, images, gated, tagged, segments, foreign)


def distances_ascend(hits: list[SimilarHit]) -> bool:
    return all(a.distance <= b.distance for a, b in itertools.pairwise(hits))


@pytest.mark.parametrize("path", ["planned", "hnsw"])
async def test_filtered_search_returns_k_even_when_one_asset_in_a_hundred_matches(
    store: EmbeddingStore, library: Library, path: str
) -> None:
    if path == "hnsw":
        store.EXACT_BELOW = 0  # never bypass the graph: the iterative scan alone must find them
    images = LibraryQuery(media_types=frozenset({MediaType.IMAGE}))
    hits = await store.similar(library.model_id, library.query_vector, query=images, k=8)
    assert len(hits) == 8
    assert {h.asset_id for h in hits} <= set(library.images)
    assert distances_ascend(hits)
    assert store.last_plan is not None
    assert store.last_plan.method == ("exact" if path == "planned" else "hnsw")
    # Asking for more than match gives every match, no more.
    hits = await store.similar(library.model_id, library.query_vector, query=images, k=50)
    assert sorted(h.asset_id for h in hits) == library.images


async def test_unfiltered_search_walks_the_graph_and_respects_the_age_gate_and_the_user(
    store: EmbeddingStore, library: Library
) -> None:
    hits = await store.similar(library.model_id, library.query_vector, query=LibraryQuery(), k=20)
    assert len(hits) == 20
    assert store.last_plan is not None and store.last_plan.method == "hnsw"
    found = {h.asset_id for h in hits}
    assert library.gated not in found and library.foreign not in found
    assert found <= set(library.videos)

    shown = LibraryQuery(include_age_restricted=True)
    hits = await store.similar(library.model_id, library.query_vector, query=shown, k=20)
    assert hits[0].asset_id == library.gated
    assert library.foreign not in {h.asset_id for h in hits}


async def test_tags_words_and_dates_filter_like_the_grid(store: EmbeddingStore, library: Library) -> None:
    boss = LibraryQuery(tags=frozenset({"Boss"}))
    hits = await store.similar(library.model_id, library.query_vector, query=boss, k=10)
    assert len(hits) == 10 and {h.asset_id for h in hits} <= set(library.tagged)

    words = LibraryQuery(text="bos")  # prefix of a tag, as typed in the search box
    hits = await store.similar(library.model_id, library.query_vector, query=words, k=30)
    assert sorted(h.asset_id for h in hits) == library.tagged

    window = LibraryQuery(created_from=T0 + timedelta(hours=100), created_to=T0 + timedelta(hours=110))
    hits = await store.similar(library.model_id, library.query_vector, query=window, k=20)
    assert sorted(h.asset_id for h in hits) == library.videos[100:110]


async def test_similar_to_an_asset_leaves_it_out(store: EmbeddingStore, library: Library) -> None:
    start = library.videos[3]  # has segments too
    hits = await store.similar_to_asset(
        library.model_id, start, query=LibraryQuery(), k=15, include_segments=True
    )
    assert len(hits) == 15
    assert start not in {h.asset_id for h in hits}
    with pytest.raises(NotEmbedded):
        await store.similar_to_asset(library.model_id, 10**9)


async def test_segment_hits_carry_their_video_and_start_time(store: EmbeddingStore, library: Library) -> None:
    hits = await store.similar(
        library.model_id, library.query_vector, query=LibraryQuery(), k=40, include_segments=True
    )
    segment_hits = [h for h in hits if h.segment_id is not None]
    assert len(segment_hits) == len(library.segments), "segments lie nearest to the query"
    for hit in segment_hits:
        assert hit.segment_id is not None
        assert (hit.asset_id, hit.start_sec) == library.segments[hit.segment_id]
    without = await store.similar(library.model_id, library.query_vector, query=LibraryQuery(), k=40)
    assert all(h.segment_id is None and h.start_sec is None for h in without)

    segment_id, (video, _) = next(iter(library.segments.items()))
    hits = await store.similar_to_segment(library.model_id, segment_id, query=LibraryQuery(), k=10)
    assert video not in {h.asset_id for h in hits}, "the segment's own video is left out"
    assert len(hits) == 10


async def test_text_search_finds_the_colour_named(sessions: async_sessionmaker[AsyncSession]) -> None:
    store = EmbeddingStore(sessions)
    embedder = ColourGridEmbedder()
    model_id = await store.ensure_model(embedder)
    colours = {"red": (220, 20, 30), "green": (20, 200, 40), "blue": (30, 40, 210)}
    ids: dict[str, list[int]] = {}
    async with sessions() as session, session.begin():
        for name in colours:
            ids[name] = [(await add_asset(session, media_type=MediaType.IMAGE)).id for _ in range(3)]
    for name, rgb in colours.items():
        shades = [Image.new("RGB", (32, 32), tuple(min(255, c + d) for c in rgb)) for d in (0, 15, 30)]
        await store.upsert(model_id, [Subject.asset(i) for i in ids[name]], embedder.embed_images(shades))

    hits = await store.search_text("green", embedder, LibraryQuery(), k=3)
    assert sorted(h.asset_id for h in hits) == ids["green"]
    with pytest.raises(EmbeddingStoreError, match="Type what"):
        await store.search_text("  ", embedder, LibraryQuery(), k=3)


async def test_the_graph_path_uses_the_models_hnsw_index_and_the_exact_path_does_not(
    store: EmbeddingStore, library: Library
) -> None:
    graph = await store.explain(library.model_id, library.query_vector, query=LibraryQuery(), k=20)
    assert f"ix_embeddings_model_{library.model_id}_hnsw" in graph
    exact = await store.explain(
        library.model_id, library.query_vector, query=LibraryQuery(), k=20, exact=True
    )
    assert "hnsw" not in exact


async def test_an_exact_search_skips_the_graph_and_finds_the_same_nearest(
    store: EmbeddingStore, library: Library
) -> None:
    walked = await store.similar(library.model_id, library.query_vector, query=LibraryQuery(), k=20)
    exact = await store.similar(
        library.model_id, library.query_vector, query=LibraryQuery(), k=20, exact=True
    )
    assert store.last_plan is not None and store.last_plan.method == "exact"
    assert len(exact) == 20 and distances_ascend(exact)
    assert library.gated not in {h.asset_id for h in exact}, "the filters still apply"
    # On this small, well-separated library the graph walk finds the true nearest.
    assert [h.asset_id for h in exact] == [h.asset_id for h in walked]
