"""EmbeddingStore on the real embedded PostgreSQL: models and their HNSW indexes, vectors, isolation."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import Embedding, EmbeddingModel
from core.embeddings.base import l2_normalise
from core.embeddings.store import (
    DimensionMismatch,
    EmbeddingStore,
    EmbeddingStoreError,
    NotEmbedded,
    Subject,
    UnknownModel,
    index_name,
)
from tests.embeddings.colour_embedder import ColourGridEmbedder
from tests.factories import add_asset


def unit(rng: np.random.Generator, n: int, dims: int) -> np.ndarray:
    return l2_normalise(rng.standard_normal((n, dims)).astype(np.float32))


async def make_assets(sessions: async_sessionmaker[AsyncSession], n: int) -> list[int]:
    async with sessions() as session, session.begin():
        return [(await add_asset(session)).id for _ in range(n)]


async def index_definition(sessions: async_sessionmaker[AsyncSession], name: str) -> str | None:
    async with sessions() as session:
        found = await session.scalar(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"), {"n": name}
        )
    return None if found is None else str(found)


async def test_ensure_model_registers_once_with_its_partial_hnsw_index(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    store = EmbeddingStore(sessions)
    embedder = ColourGridEmbedder()
    model_id = await store.ensure_model(embedder)
    assert await store.ensure_model(embedder) == model_id
    assert await EmbeddingStore(sessions).ensure_model(embedder) == model_id

    definition = await index_definition(sessions, index_name(model_id))
    assert definition is not None
    assert "USING hnsw" in definition
    assert f"(embedding)::halfvec({embedder.dimensions})" in definition
    assert "halfvec_cosine_ops" in definition
    assert f"WHERE (model_id = {model_id})" in definition
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(EmbeddingModel)) == 1


async def test_a_model_id_reused_with_another_dimension_is_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    store = EmbeddingStore(sessions)
    await store.ensure_model(ColourGridEmbedder("tests/same-name"))

    class Wider(ColourGridEmbedder):
        @property
        def dimensions(self) -> int:
            return 64

    with pytest.raises(DimensionMismatch, match="must change its model id"):
        await store.ensure_model(Wider("tests/same-name"))


async def test_vectors_of_the_wrong_dimension_are_refused_and_nothing_is_stored(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    store = EmbeddingStore(sessions)
    model_id = await store.ensure_model(ColourGridEmbedder())
    ids = await make_assets(sessions, 2)
    rng = np.random.default_rng(1)
    with pytest.raises(DimensionMismatch, match="48-d vectors, not 47-d"):
        await store.upsert(model_id, [Subject.asset(i) for i in ids], unit(rng, 2, 47))
    bad = unit(rng, 2, 48)
    bad[1, 3] = np.nan
    with pytest.raises(EmbeddingStoreError, match="not finite"):
        await store.upsert(model_id, [Subject.asset(i) for i in ids], bad)
    with pytest.raises(EmbeddingStoreError, match="one per subject"):
        await store.upsert(model_id, [Subject.asset(ids[0])], unit(rng, 2, 48))
    with pytest.raises(DimensionMismatch):
        await store.similar(model_id, unit(rng, 1, 12)[0])
    assert await store.count(model_id) == 0


async def test_upsert_replaces_a_subjects_vector_and_reads_it_back(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    store = EmbeddingStore(sessions)
    model_id = await store.ensure_model(ColourGridEmbedder())
    (asset_id,) = await make_assets(sessions, 1)
    rng = np.random.default_rng(2)
    first, second = unit(rng, 2, 48)
    await store.upsert(model_id, [Subject.asset(asset_id)], first[None])
    await store.upsert(model_id, [Subject.asset(asset_id)], second[None])
    assert await store.count(model_id) == 1
    stored = await store.vector(model_id, Subject.asset(asset_id))
    np.testing.assert_allclose(stored, second, atol=2e-3)  # half precision
    with pytest.raises(NotEmbedded, match="not been indexed"):
        await store.vector(model_id, Subject.asset(asset_id + 1000))


async def test_models_coexist_and_never_see_each_others_vectors(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    store = EmbeddingStore(sessions)
    colour = await store.ensure_model(ColourGridEmbedder("tests/model-x"))
    other = await store.ensure_model(ColourGridEmbedder("tests/model-y"))
    assert colour != other
    ids = await make_assets(sessions, 40)
    rng = np.random.default_rng(3)
    query = unit(rng, 1, 48)[0]
    # Model Y holds the query vector itself for every asset; model X only for the first ten.
    await store.upsert(other, [Subject.asset(i) for i in ids], np.repeat(query[None], len(ids), axis=0))
    far = unit(rng, len(ids) - 10, 48)
    await store.upsert(
        colour,
        [Subject.asset(i) for i in ids],
        np.concatenate([np.repeat(query[None], 10, axis=0), far]),
    )
    hits = await store.similar(colour, query, k=len(ids) * 2)
    assert len(hits) == len(ids), "one hit per asset of model X, none of model Y"
    assert sorted(h.asset_id for h in hits[:10]) == ids[:10]
    assert all(h.distance > 0.05 for h in hits[10:])
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)


async def test_deleting_a_model_removes_its_vectors_and_index_only(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    store = EmbeddingStore(sessions)
    gone = await store.ensure_model(ColourGridEmbedder("tests/gone"))
    kept = await store.ensure_model(ColourGridEmbedder("tests/kept"))
    ids = await make_assets(sessions, 5)
    rng = np.random.default_rng(4)
    for model_id in (gone, kept):
        await store.upsert(model_id, [Subject.asset(i) for i in ids], unit(rng, 5, 48))

    await store.delete_model(gone)
    assert await index_definition(sessions, index_name(gone)) is None
    assert await index_definition(sessions, index_name(kept)) is not None
    async with sessions() as session:
        rows = await session.scalar(
            select(func.count()).select_from(Embedding).where(Embedding.model_id == gone)
        )
    assert rows == 0
    assert await store.count(kept) == 5
    with pytest.raises(UnknownModel):
        await store.similar(gone, unit(rng, 1, 48)[0])
    with pytest.raises(UnknownModel):
        await store.delete_model(gone)


async def test_vectors_of_deleted_assets_go_with_them(sessions: async_sessionmaker[AsyncSession]) -> None:
    store = EmbeddingStore(sessions)
    model_id = await store.ensure_model(ColourGridEmbedder())
    ids = await make_assets(sessions, 3)
    await store.upsert(model_id, [Subject.asset(i) for i in ids], unit(np.random.default_rng(5), 3, 48))
    async with sessions() as session, session.begin():
        await session.execute(text("DELETE FROM assets WHERE id = :id"), {"id": ids[0]})
    assert await store.count(model_id) == 2
    assert await store.assets_without_vectors(model_id, 10) == []
