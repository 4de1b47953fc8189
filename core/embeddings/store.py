"""Vectors per (subject, model) in PostgreSQL, and the searches over them.

Each embedding model gets a row in ``embedding_models`` and its own *partial* HNSW index
``ix_embeddings_model_<id>_hnsw`` on ``(embedding::halfvec(dims)) halfvec_cosine_ops WHERE model_id =
<id>``: the column has no fixed dimension (models differ), the index expression fixes it, and the
predicate keeps each model's graph apart, so a query for one model never meets another's vectors.

Searches combine a vector with the library's filters (``core.library._conditions``, the grid's own
WHERE terms, not a copy) and always return ``k`` hits when that many subjects match:

* the HNSW path runs with ``hnsw.iterative_scan = relaxed_order``: the index keeps producing
  candidates until ``k`` pass the filters (or ``hnsw.max_scan_tuples`` is reached), and the outer
  query re-ranks them by exact distance (relaxed order may emit them slightly out of order);
* when the planner estimates that few assets pass the filters, an exact scan of just those assets'
  vectors is faster than walking the graph past thousands of rejected candidates (bench/vector_search.py
  measures both), so the index is bypassed;
* if the HNSW path still returns fewer than ``k`` (a filter it could not satisfy within the scan
  limit), the exact scan runs: its answer is complete by construction.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pgvector import HalfVector
from sqlalchemy import ColumnElement, Float, Select, delete, func, literal_column, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ClauseElement, Executable

from core.db.models import LOCAL_USERNAME, Asset, AssetTemporalSegment, Embedding, EmbeddingModel, User
from core.db.models.embedding import DYNAMIC_INDEX_PREFIX
from core.embeddings.base import Embedder, TextEmbedder, Vectors
from core.errors import PixSimError
from core.library import LibraryQuery, _conditions

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key serializing model registration ("pixsim-e").
_MODEL_LOCK_KEY = 0x70697873696D2D65
_HALF_MAX = 65504.0  # largest finite float16


class EmbeddingStoreError(PixSimError):
    """Vectors cannot be stored or searched as asked (the message says why)."""


class UnknownModel(EmbeddingStoreError):
    """No embedding model with that id is registered (any more)."""


class DimensionMismatch(EmbeddingStoreError):
    """A vector's dimension differs from its model's."""


class NotEmbedded(EmbeddingStoreError):
    """The asset or segment has no vector for this model yet."""


@dataclass(frozen=True, slots=True)
class Subject:
    """What a vector describes: a whole asset, or one temporal segment of a video."""

    asset_id: int | None = None
    segment_id: int | None = None

    def __post_init__(self) -> None:
        if (self.asset_id is None) == (self.segment_id is None):
            raise ValueError("a subject is exactly one of an asset or a segment")

    @classmethod
    def asset(cls, asset_id: int) -> Subject:
        return cls(asset_id=asset_id)

    @classmethod
    def segment(cls, segment_id: int) -> Subject:
        return cls(segment_id=segment_id)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: int
    name: str
    dimensions: int


@dataclass(frozen=True, slots=True)
class SimilarHit:
    """One result. A segment hit names its video (``asset_id``) and where to open it (``start_sec``)."""

    asset_id: int
    segment_id: int | None
    start_sec: float | None
    distance: float  # cosine distance: 0 identical, 2 opposite


@dataclass(frozen=True, slots=True)
class SearchPlan:
    """How the last ``similar`` ran (for tests and diagnostics)."""

    method: str  # "hnsw", "exact", or "hnsw+exact" when the index path came up short
    estimated_matches: int | None


def index_name(model_id: int) -> str:
    return f"{DYNAMIC_INDEX_PREFIX}{int(model_id)}_hnsw"


def _vector_text(vector: Vectors | Sequence[float]) -> str:
    return str(HalfVector._to_db(np.asarray(vector, dtype=np.float32)))


class EmbeddingStore:
    # Graph parameters, measured by bench/vector_search.py on clustered 512-d data (1000 gaussian
    # clusters, 1M rows, 2 shared cores): m=16 with ef_construction=64 reached recall@20 0.81 at
    # ef_search 100 and 0.95 only at ef_search 800; ef_construction=128 gives 0.965-0.993 at ef_search 200
    # (p95 11 ms; two builds differ: parallel builds are not deterministic), building in 11-12 min at 1M.
    HNSW_M = 16
    HNSW_EF_CONSTRUCTION = 128
    EF_SEARCH = 200
    # Candidates an iterative scan may visit before giving up (pgvector's default is 20,000).
    MAX_SCAN_TUPLES = 50_000
    # Below this many estimated matching assets an exact scan beats the graph (bench/vector_search.py).
    EXACT_BELOW = 10_000

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, username: str = LOCAL_USERNAME) -> None:
        self._sessions = sessions
        self._username = username
        self._user_id: int | None = None
        self._models: dict[int, ModelInfo] = {}
        self.last_plan: SearchPlan | None = None

    # -- models --------------------------------------------------------------------------------------

    async def ensure_model(self, embedder: Embedder) -> int:
        """Register ``embedder``'s model (once) and its HNSW index; returns the model id.

        The index is created with a plain ``CREATE INDEX`` in the same transaction as the model's row,
        not ``CONCURRENTLY`` (which cannot run in a transaction): a newly registered model has no
        vectors yet, so building its partial index is one pass over the table without graph work,
        and a model row never exists without its index (a crash leaves neither). ``CONCURRENTLY``
        would scan the table twice and leave an INVALID index behind on failure. When the model
        already exists with its index nothing is locked at all.
        """
        name, dims = embedder.model_id, int(embedder.dimensions)
        if not 0 < dims <= 4000:
            raise DimensionMismatch(f"The embedder {name} gives {dims}-d vectors; 1 to 4000 are supported.")
        async with self._sessions() as session, session.begin():
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MODEL_LOCK_KEY})
            row = (
                await session.execute(
                    select(EmbeddingModel.id, EmbeddingModel.dimensions).where(EmbeddingModel.name == name)
                )
            ).one_or_none()
            if row is None:
                model_id = int(
                    await session.scalar(
                        pg_insert(EmbeddingModel)
                        .values(name=name, dimensions=dims, distance="cosine")
                        .returning(EmbeddingModel.id)
                    )
                    or 0
                )
            else:
                model_id, stored = int(row.id), int(row.dimensions)
                if stored != dims:
                    raise DimensionMismatch(
                        f"The embedding model {name} is stored with {stored}-d vectors but the embedder "
                        f"gives {dims}-d ones. An embedder whose vectors change must change its model id."
                    )
            exists = await session.scalar(select(func.to_regclass(index_name(model_id))))
            if exists is None:
                await session.execute(
                    text(
                        f"CREATE INDEX {index_name(model_id)} ON embeddings USING hnsw "
                        f"((embedding::halfvec({dims})) halfvec_cosine_ops) "
                        f"WITH (m = {self.HNSW_M}, ef_construction = {self.HNSW_EF_CONSTRUCTION}) "
                        f"WHERE model_id = {model_id}"
                    )
                )
        self._models[model_id] = ModelInfo(model_id, name, dims)
        return model_id

    async def models(self) -> list[ModelInfo]:
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(EmbeddingModel.id, EmbeddingModel.name, EmbeddingModel.dimensions).order_by(
                        EmbeddingModel.id
                    )
                )
            ).all()
        return [ModelInfo(r.id, r.name, r.dimensions) for r in rows]

    async def model(self, model_id: int) -> ModelInfo:
        found = self._models.get(model_id)
        if found is None:
            async with self._sessions() as session:
                row = (
                    await session.execute(
                        select(EmbeddingModel.name, EmbeddingModel.dimensions).where(
                            EmbeddingModel.id == model_id
                        )
                    )
                ).one_or_none()
            if row is None:
                raise UnknownModel(f"There is no embedding model {model_id} (it may have been deleted).")
            found = self._models[model_id] = ModelInfo(model_id, row.name, row.dimensions)
        return found

    async def delete_model(self, model_id: int) -> None:
        """Remove a model, all its vectors and its index."""
        async with self._sessions() as session, session.begin():
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MODEL_LOCK_KEY})
            deleted = await session.scalar(
                delete(EmbeddingModel).where(EmbeddingModel.id == model_id).returning(EmbeddingModel.id)
            )
            await session.execute(text(f"DROP INDEX IF EXISTS {index_name(model_id)}"))
        self._models.pop(model_id, None)
        if deleted is None:
            raise UnknownModel(f"There is no embedding model {model_id} (it may have been deleted).")

    # -- vectors -------------------------------------------------------------------------------------

    async def upsert(self, model_id: int, subjects: Sequence[Subject], vectors: Vectors) -> None:
        """Store (or replace) one vector per subject. Nothing is stored if any vector is unfit."""
        info = await self.model(model_id)
        array = np.asarray(vectors, dtype=np.float32)
        if array.ndim != 2 or array.shape[0] != len(subjects):
            raise EmbeddingStoreError(
                f"Expected {len(subjects)} vectors (one per subject), got an array of shape {array.shape}."
            )
        if not subjects:
            return
        self._check(info, array)
        asset_rows = [
            {"model_id": model_id, "asset_id": s.asset_id, "embedding": v}
            for s, v in zip(subjects, array, strict=True)
            if s.asset_id is not None
        ]
        segment_rows = [
            {"model_id": model_id, "segment_id": s.segment_id, "embedding": v}
            for s, v in zip(subjects, array, strict=True)
            if s.segment_id is not None
        ]
        async with self._sessions() as session, session.begin():
            for rows, key in ((asset_rows, Embedding.asset_id), (segment_rows, Embedding.segment_id)):
                if not rows:
                    continue
                stmt = pg_insert(Embedding).values(rows)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[key, Embedding.model_id],
                    index_where=key.is_not(None),
                    set_={"embedding": stmt.excluded.embedding, "created_at": func.now()},
                )
                await session.execute(stmt)

    def _check(self, info: ModelInfo, array: Vectors) -> None:
        if array.shape[1] != info.dimensions:
            raise DimensionMismatch(
                f"The model {info.name} takes {info.dimensions}-d vectors, not {array.shape[1]}-d ones."
            )
        if not np.isfinite(array).all() or (np.abs(array) > _HALF_MAX).any():
            raise EmbeddingStoreError(
                f"A vector for {info.name} has values that are not finite or do not fit half precision."
            )

    async def vector(self, model_id: int, subject: Subject) -> Vectors:
        """The stored vector of one subject (as float32), or ``NotEmbedded``."""
        await self.model(model_id)
        where = (
            Embedding.asset_id == subject.asset_id
            if subject.asset_id is not None
            else Embedding.segment_id == subject.segment_id
        )
        async with self._sessions() as session:
            value = await session.scalar(
                select(Embedding.embedding).where(Embedding.model_id == model_id, where)
            )
        if value is None:
            what = (
                f"asset {subject.asset_id}"
                if subject.asset_id is not None
                else f"segment {subject.segment_id}"
            )
            raise NotEmbedded(
                f"The {what} has not been indexed for this model yet; try again after indexing."
            )
        return np.asarray(value.to_numpy() if isinstance(value, HalfVector) else value, dtype=np.float32)

    async def count(self, model_id: int) -> int:
        async with self._sessions() as session:
            return int(
                await session.scalar(
                    select(func.count()).select_from(Embedding).where(Embedding.model_id == model_id)
                )
                or 0
            )

    async def assets_without_vectors(self, model_id: int, limit: int, *, after: int = 0) -> list[int]:
        """Assets (images and videos, by id, ids above ``after``) that have no vector for this model."""
        stmt = (
            select(Asset.id)
            .where(
                Asset.id > after,
                Asset.media_type.in_(["image", "video"]),
                ~select(Embedding.id)
                .where(Embedding.asset_id == Asset.id, Embedding.model_id == model_id)
                .exists(),
            )
            .order_by(Asset.id)
            .limit(limit)
        )
        async with self._sessions() as session:
            return list(await session.scalars(stmt))

    async def segments_without_vectors(self, model_id: int, limit: int, *, after: int = 0) -> list[int]:
        S = AssetTemporalSegment
        stmt = (
            select(S.id)
            .where(
                S.id > after,
                ~select(Embedding.id)
                .where(Embedding.segment_id == S.id, Embedding.model_id == model_id)
                .exists(),
            )
            .order_by(S.id)
            .limit(limit)
        )
        async with self._sessions() as session:
            return list(await session.scalars(stmt))

    async def missing_counts(self, model_id: int) -> tuple[int, int]:
        """(assets, segments) still lacking a vector for this model."""
        S = AssetTemporalSegment
        async with self._sessions() as session:
            assets = await session.scalar(
                select(func.count())
                .select_from(Asset)
                .where(
                    Asset.media_type.in_(["image", "video"]),
                    ~select(Embedding.id)
                    .where(Embedding.asset_id == Asset.id, Embedding.model_id == model_id)
                    .exists(),
                )
            )
            segments = await session.scalar(
                select(func.count())
                .select_from(S)
                .where(
                    ~select(Embedding.id)
                    .where(Embedding.segment_id == S.id, Embedding.model_id == model_id)
                    .exists()
                )
            )
        return int(assets or 0), int(segments or 0)

    # -- search --------------------------------------------------------------------------------------

    async def similar(
        self,
        model_id: int,
        vector: Vectors | Sequence[float],
        *,
        query: LibraryQuery | None = None,
        k: int = 20,
        include_segments: bool = False,
        exclude_asset_id: int | None = None,
        exact: bool = False,
    ) -> list[SimilarHit]:
        """The ``k`` nearest subjects to ``vector``, nearest first.

        ``query`` applies the library's filters (media type, provider, tags, words, dates, age gate,
        ...) to the asset a vector belongs to (a segment's video); ``None`` means no filter at all, not
        even the age gate (internal use: the UI always passes its query). Segment hits are included
        when ``include_segments``. ``exclude_asset_id`` leaves out an asset and its segments (the
        asset the search started from). ``exact`` skips the graph (ground truth, benchmarks).
        """
        if k <= 0:
            return []
        info = await self.model(model_id)
        array = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        self._check(info, array)
        user_id = await self._user() if query is not None else None
        conditions = _conditions(query, user_id) if query is not None and user_id is not None else []
        base = self._statement(info, _vector_text(array[0]), conditions, include_segments, exclude_asset_id)

        async with self._sessions() as session, session.begin():
            if exact:
                self.last_plan = SearchPlan("exact", None)
                return await self._run(session, base, info, k, exact=True)
            estimate = None
            if query is not None and _filters_more_than_default(query):
                estimate = await _estimate(session, select(Asset.id).where(*conditions))
            if estimate is not None and estimate < self.EXACT_BELOW:
                self.last_plan = SearchPlan("exact", estimate)
                return await self._run(session, base, info, k, exact=True)
            await self._tune(session, k)
            hits = await self._run(session, base, info, k, exact=False)
            if len(hits) >= k:
                self.last_plan = SearchPlan("hnsw", estimate)
                return hits
            self.last_plan = SearchPlan("hnsw+exact", estimate)
            return await self._run(session, base, info, k, exact=True)

    async def explain(
        self,
        model_id: int,
        vector: Vectors | Sequence[float],
        *,
        query: LibraryQuery | None = None,
        k: int = 20,
        include_segments: bool = False,
        exact: bool = False,
    ) -> str:
        """The plan (EXPLAIN ANALYZE, text) of one search path, for tests and diagnostics."""
        info = await self.model(model_id)
        conditions = _conditions(query, await self._user()) if query is not None else []
        base = self._statement(
            info, _vector_text(np.asarray(vector, np.float32)), conditions, include_segments, None
        )
        async with self._sessions() as session, session.begin():
            await self._tune(session, k)
            plan = await session.execute(_Explain(self._ranked(base, k, exact=exact), analyze=True))
            return "\n".join(str(row[0]) for row in plan)

    async def similar_to_asset(
        self,
        model_id: int,
        asset_id: int,
        *,
        query: LibraryQuery | None = None,
        k: int = 20,
        include_segments: bool = False,
        exact: bool = False,
    ) -> list[SimilarHit]:
        """Subjects like an asset's stored vector, the asset itself (and its segments) left out."""
        vector = await self.vector(model_id, Subject.asset(asset_id))
        return await self.similar(
            model_id,
            vector,
            query=query,
            k=k,
            include_segments=include_segments,
            exclude_asset_id=asset_id,
            exact=exact,
        )

    async def similar_to_segment(
        self,
        model_id: int,
        segment_id: int,
        *,
        query: LibraryQuery | None = None,
        k: int = 20,
        include_segments: bool = True,
    ) -> list[SimilarHit]:
        """Subjects like a segment's stored vector; the segment's own video is left out."""
        vector = await self.vector(model_id, Subject.segment(segment_id))
        async with self._sessions() as session:
            video = await session.scalar(
                select(AssetTemporalSegment.asset_id).where(AssetTemporalSegment.id == segment_id)
            )
        return await self.similar(
            model_id, vector, query=query, k=k, include_segments=include_segments, exclude_asset_id=video
        )

    async def search_text(
        self,
        text_query: str,
        text_embedder: TextEmbedder,
        query: LibraryQuery | None = None,
        k: int = 20,
        *,
        include_segments: bool = True,
    ) -> list[SimilarHit]:
        """Assets (and segments) matching a description, through a text-capable embedder (CLIP).

        The text is embedded in a worker thread; the model must have been registered (indexed).
        """
        words = text_query.strip()
        if not words:
            raise EmbeddingStoreError("Type what you are looking for first.")
        if not text_embedder.supports_text:
            raise EmbeddingStoreError(f"The model {text_embedder.model_id} cannot search by text.")
        model_id = await self.ensure_model(text_embedder)
        vectors = await asyncio.to_thread(text_embedder.embed_text, [words])
        return await self.similar(model_id, vectors[0], query=query, k=k, include_segments=include_segments)

    async def near_duplicate_groups(self, model_id: int, threshold: float) -> list[list[int]]:
        """Groups (≥ 2 assets, each group sorted) whose vectors are within ``threshold`` cosine
        distance of another member; see ``core.embeddings.duplicates``."""
        from core.embeddings.duplicates import find_groups

        info = await self.model(model_id)
        return await find_groups(self._sessions, info.id, info.dimensions, threshold)

    # -- internals -----------------------------------------------------------------------------------

    def _statement(
        self,
        info: ModelInfo,
        vector_text: str,
        conditions: list[ColumnElement[bool]],
        include_segments: bool,
        exclude_asset_id: int | None,
    ) -> Select[Any]:
        E, S = Embedding, AssetTemporalSegment
        # Literal model id and dimension: the planner must prove the partial index's predicate and
        # match its expression at plan time, which bound parameters would not allow.
        distance = literal_column(f"(embeddings.embedding::halfvec({info.dimensions}))").op(
            "<=>", return_type=Float
        )(literal_column(f"'{vector_text}'::halfvec({info.dimensions})"))
        owner = func.coalesce(E.asset_id, S.asset_id)
        stmt = (
            select(owner.label("asset_id"), E.segment_id, S.start_sec, distance.label("distance"))
            .select_from(E)
            .outerjoin(S, S.id == E.segment_id)
            .where(E.model_id == literal_column(str(info.id)))
        )
        if not include_segments:
            stmt = stmt.where(E.asset_id.is_not(None))
        if exclude_asset_id is not None:
            stmt = stmt.where(owner != exclude_asset_id)
        if conditions:
            stmt = stmt.join(Asset, Asset.id == owner).where(*conditions)
        return stmt

    async def _tune(self, session: AsyncSession, k: int) -> None:
        """Session settings of the graph walk, for this transaction only."""
        await session.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
        await session.execute(text(f"SET LOCAL hnsw.ef_search = {max(self.EF_SEARCH, min(k, 1000))}"))
        await session.execute(text(f"SET LOCAL hnsw.max_scan_tuples = {self.MAX_SCAN_TUPLES}"))

    @staticmethod
    def _ranked(base: Select[Any], k: int, *, exact: bool) -> Select[Any]:
        distance = base.selected_columns.distance
        # "+ 0" makes the sort key an expression no index provides: the planner filters first and
        # sorts the survivors (exact), instead of walking the graph. The outer ORDER BY re-ranks
        # what a relaxed-order scan returned.
        inner = base.order_by(distance + 0 if exact else distance).limit(k).subquery()
        return select(inner).order_by(inner.c.distance, inner.c.asset_id, inner.c.segment_id.nulls_first())

    async def _run(
        self, session: AsyncSession, base: Select[Any], info: ModelInfo, k: int, *, exact: bool
    ) -> list[SimilarHit]:
        rows = (await session.execute(self._ranked(base, k, exact=exact))).all()
        return [
            SimilarHit(
                asset_id=int(r.asset_id),
                segment_id=r.segment_id,
                start_sec=r.start_sec,
                distance=float(r.distance),
            )
            for r in rows
        ]

    async def _user(self) -> int:
        if self._user_id is None:
            async with self._sessions() as session:
                user_id = await session.scalar(select(User.id).where(User.username == self._username))
            if user_id is None:
                raise EmbeddingStoreError(f'The library has no user "{self._username}".')
            self._user_id = int(user_id)
        return self._user_id


def _filters_more_than_default(query: LibraryQuery) -> bool:
    """True if the query narrows the library beyond the default view (worth estimating)."""
    default = LibraryQuery(include_age_restricted=query.include_age_restricted, sort=query.sort)
    return query != default


class _Explain(Executable, ClauseElement):
    """``EXPLAIN (FORMAT JSON) <select>`` with the select's parameters bound as usual."""

    inherit_cache = False

    def __init__(self, stmt: Select[Any], *, analyze: bool = False) -> None:
        self.stmt = stmt
        self.analyze = analyze


@compiles(_Explain, "postgresql")
def _compile_explain(element: _Explain, compiler: Any, **kw: Any) -> str:
    options = "ANALYZE, COSTS OFF" if element.analyze else "FORMAT JSON"
    return f"EXPLAIN ({options}) " + str(compiler.process(element.stmt, **kw))


async def _estimate(session: AsyncSession, stmt: Select[Any]) -> int:
    """The planner's row estimate for ``stmt`` (planned, not run: about a millisecond)."""
    plan = (await session.execute(_Explain(stmt))).scalar_one()
    document = json.loads(plan) if isinstance(plan, str) else plan
    return int(document[0]["Plan"]["Plan Rows"])
