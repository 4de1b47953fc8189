"""Near-duplicate groups: assets whose visual signatures lie within a small cosine distance.

Each asset's nearest neighbours come from the model's HNSW index (a LATERAL query per batch of
assets, ``NEIGHBOURS`` each), pairs within the threshold are joined with union-find, and every group
of two or more is stored as ``assets.duplicate_group_id`` (migration 0006). The label of a group is
its smallest asset id, so re-running on unchanged vectors writes nothing. Nothing is ever deleted:
the library grid can *stack* a group into one card (``LibraryQuery.stack_duplicates``).

Union-find makes grouping transitive (A~B and B~C put A, B and C together even if A and C are
further apart): that is what a user expects of "versions of one picture" (a resize of a crop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.types import BigInteger

from core.db.models import Embedding

# Cosine distance under which two visual signatures are versions of one picture (re-encodes,
# resizes, small crops, light colour changes measure below 0.07 in tests/embeddings/test_visual.py,
# unrelated pictures above 0.15).
DEFAULT_THRESHOLD = 0.08
NEIGHBOURS = 16
BATCH = 1000

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class DuplicateSummary:
    groups: int
    assets: int  # assets in some group
    changed: int  # assets whose group label changed


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        parent = self.parent.setdefault(x, x)
        while parent != x:
            grand = self.parent.setdefault(parent, parent)
            self.parent[x] = grand  # path halving
            x, parent = parent, grand
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> list[list[int]]:
        found: dict[int, list[int]] = {}
        for x in self.parent:
            found.setdefault(self.find(x), []).append(x)
        return sorted(sorted(g) for g in found.values() if len(g) > 1)


async def find_groups(
    sessions: async_sessionmaker[AsyncSession],
    model_id: int,
    dims: int,
    threshold: float,
    *,
    progress: Progress | None = None,
    cancel: asyncio.Event | None = None,
) -> list[list[int]]:
    """Groups of ≥ 2 asset ids (each sorted, the list sorted) within ``threshold`` of a neighbour."""
    if not 0 <= threshold < 2:
        raise ValueError("a cosine distance threshold lies in [0, 2)")
    async with sessions() as session:
        ids = list(
            await session.scalars(
                select(Embedding.asset_id)
                .where(Embedding.model_id == model_id, Embedding.asset_id.is_not(None))
                .order_by(Embedding.asset_id)
            )
        )
    model, dims = int(model_id), int(dims)
    vector = f"embedding::halfvec({dims})"
    # Literal model id and dimension (ints) so the planner matches the model's partial HNSW index.
    pairs = text(
        f"""
        SELECT a.asset_id AS a, n.asset_id AS b
        FROM embeddings a
        CROSS JOIN LATERAL (
            SELECT b.asset_id, b.{vector} <=> a.{vector} AS distance
            FROM embeddings b
            WHERE b.model_id = {model} AND b.asset_id IS NOT NULL AND b.asset_id <> a.asset_id
            ORDER BY b.{vector} <=> a.{vector}
            LIMIT {NEIGHBOURS}
        ) n
        WHERE a.model_id = {model} AND a.asset_id = ANY(:ids) AND n.distance <= :threshold
        """  # noqa: S608
    ).bindparams(bindparam("ids", type_=ARRAY(BigInteger)))
    found = _UnionFind()
    for start in range(0, len(ids), BATCH):
        if cancel is not None and cancel.is_set():
            raise asyncio.CancelledError("near-duplicate search cancelled")
        chunk = ids[start : start + BATCH]
        async with sessions() as session, session.begin():
            # Segments share the index: keep scanning until NEIGHBOURS assets came up.
            await session.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
            await session.execute(text(f"SET LOCAL hnsw.ef_search = {max(40, NEIGHBOURS * 2)}"))
            rows = (await session.execute(pairs, {"ids": chunk, "threshold": threshold})).all()
        for a, b in rows:
            found.union(int(a), int(b))
        if progress is not None:
            progress(min(start + BATCH, len(ids)), len(ids))
    return found.groups()


async def store_groups(sessions: async_sessionmaker[AsyncSession], groups: Sequence[Sequence[int]]) -> int:
    """Make ``groups`` the library's duplicate groups (labels: each group's smallest id); assets in
    no group lose their label. Returns how many assets changed."""
    members: list[int] = []
    labels: list[int] = []
    for group in groups:
        label = min(group)
        members.extend(group)
        labels.extend([label] * len(group))
    relabel = text(
        """
        UPDATE assets SET duplicate_group_id = v.label
        FROM unnest(CAST(:ids AS bigint[]), CAST(:labels AS bigint[])) AS v(id, label)
        WHERE assets.id = v.id AND assets.duplicate_group_id IS DISTINCT FROM v.label
        """
    )
    clear = text(
        """
        UPDATE assets SET duplicate_group_id = NULL
        WHERE duplicate_group_id IS NOT NULL AND NOT (id = ANY(CAST(:ids AS bigint[])))
        """
    )
    async with sessions() as session, session.begin():
        cleared = await session.execute(clear, {"ids": members})
        changed = await session.execute(relabel, {"ids": members, "labels": labels})
    return int(getattr(cleared, "rowcount", 0)) + int(getattr(changed, "rowcount", 0))


async def refresh(
    sessions: async_sessionmaker[AsyncSession],
    model_id: int,
    dims: int,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    progress: Progress | None = None,
    cancel: asyncio.Event | None = None,
) -> DuplicateSummary:
    """Find the groups of one model's vectors and store them (a background job's work)."""
    groups = await find_groups(sessions, model_id, dims, threshold, progress=progress, cancel=cancel)
    changed = await store_groups(sessions, groups)
    return DuplicateSummary(groups=len(groups), assets=sum(len(g) for g in groups), changed=changed)
