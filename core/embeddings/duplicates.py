"""Near-duplicate groups: assets whose visual signatures lie within a small cosine distance.

Each asset's nearest neighbours come from the model's HNSW index (a LATERAL query per batch of
assets, ``NEIGHBOURS`` each), pairs within the threshold are joined with union-find, and every group
of two or more is stored as ``assets.duplicate_group_id`` (migration 0006). The label of a group is
its smallest asset id, so re-running on unchanged vectors writes nothing. Nothing is ever deleted:
the library grid can *stack* a group into one card (``LibraryQuery.stack_duplicates``).

Only assets of one media type pair up, and never derived works of each other (one the other's
lineage ancestor, or both made from a common parent): extends, variants continued from one branch
point and the video made from a still look alike by design, and are not versions of one picture.

Union-find makes grouping transitive (A~B and B~C put A, B and C together even if A and C are
further apart): that is what a user expects of "versions of one picture" (a resize of a crop).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import TextClause, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.types import BigInteger

from core.db.locks import lock_key
from core.db.models import Asset, Embedding

# Cosine distance under which two visual signatures are versions of one picture (re-encodes,
# resizes, small crops, light colour changes measure below 0.07 in tests/embeddings/test_visual.py,
# unrelated pictures above 0.15).
DEFAULT_THRESHOLD = 0.08
NEIGHBOURS = 16
# How many generations up the lineage a pair is checked for being derived works of each other.
LINEAGE_DEPTH = 12
BATCH = 1000

Progress = Callable[[int, int], None]
# One key for every writer of the labels (full refresh, incremental refresh, any process).
LABELS_LOCK = lock_key("pixsim", "duplicate-groups")


@dataclass(frozen=True, slots=True)
class DuplicateSummary:
    groups: int
    assets: int  # assets in some group
    changed: int  # assets whose group label changed


# Set each listed asset's label; rows already carrying it are not written (a rerun writes nothing).
_RELABEL = text(
    """
    UPDATE assets SET duplicate_group_id = v.label
    FROM unnest(CAST(:ids AS bigint[]), CAST(:labels AS bigint[])) AS v(id, label)
    WHERE assets.id = v.id AND assets.duplicate_group_id IS DISTINCT FROM v.label
    """
)


async def _embedded_assets(
    sessions: async_sessionmaker[AsyncSession], model_id: int, among: Sequence[int] | None = None
) -> list[int]:
    """The ids of assets with a vector of ``model_id`` (all of them, or those ``among`` the given), sorted."""
    condition = Embedding.asset_id.is_not(None) if among is None else Embedding.asset_id.in_(among)
    async with sessions() as session:
        rows = await session.scalars(
            select(Embedding.asset_id)
            .where(Embedding.model_id == model_id, condition)
            .order_by(Embedding.asset_id)
        )
        return [int(i) for i in rows if i is not None]


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


def _pairs_query(model_id: int, dims: int) -> TextClause:
    """Each listed asset's ``NEIGHBOURS`` nearest assets within ``:threshold`` (the HNSW index)."""
    model, dims = int(model_id), int(dims)
    vector = f"embedding::halfvec({dims})"
    # Literal model id and dimension (ints) so the planner matches the model's partial HNSW index.
    return text(
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
        JOIN assets aa ON aa.id = a.asset_id
        JOIN assets ab ON ab.id = n.asset_id
        WHERE a.model_id = {model} AND a.asset_id = ANY(:ids) AND n.distance <= :threshold
          AND aa.media_type = ab.media_type
        """  # noqa: S608
    ).bindparams(bindparam("ids", type_=ARRAY(BigInteger)))


# Each listed asset's lineage ancestors, up to ``:depth`` generations (depth 1: its parents).
_ANCESTORS = text(
    """
    WITH RECURSIVE up(start, node, depth) AS (
        SELECT s, s, 0 FROM unnest(CAST(:ids AS bigint[])) AS s
        UNION
        SELECT up.start, l.parent_asset_id, up.depth + 1
        FROM up JOIN asset_lineage l ON l.child_asset_id = up.node
        WHERE up.depth < :depth
    )
    SELECT start, node, min(depth) FROM up WHERE depth > 0 GROUP BY start, node
    """
)


async def _unrelated(session: AsyncSession, pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The pairs that are not derived works of each other.

    An extend of a video, the variants continued from one branch point, the video made from a still:
    they look alike by design, and stacking them would hide a story's variants. So a pair is dropped
    when one is the other's lineage ancestor (within ``LINEAGE_DEPTH`` generations) or both were made
    from a common parent. Copies, re-encodes and re-imports carry no such lineage and still pair up.
    """
    if not pairs:
        return pairs
    ids = sorted({x for pair in pairs for x in pair})
    ancestors: dict[int, set[int]] = {}
    parents: dict[int, set[int]] = {}
    rows = await session.execute(_ANCESTORS, {"ids": ids, "depth": LINEAGE_DEPTH})
    for start, node, depth in rows:
        ancestors.setdefault(int(start), set()).add(int(node))
        if depth == 1:
            parents.setdefault(int(start), set()).add(int(node))
    empty: set[int] = set()
    return [
        (a, b)
        for a, b in pairs
        if b not in ancestors.get(a, empty)
        and a not in ancestors.get(b, empty)
        and not (parents.get(a, empty) & parents.get(b, empty))
    ]


async def _neighbour_pairs(
    sessions: async_sessionmaker[AsyncSession],
    model_id: int,
    dims: int,
    ids: Sequence[int],
    threshold: float,
    progress: Progress | None,
    cancel: asyncio.Event | None,
) -> AsyncIterator[list[tuple[int, int]]]:
    """(asset, neighbour) pairs within ``threshold``, one list per batch of ``ids``; cancellable
    between batches (``asyncio.CancelledError``)."""
    pairs = _pairs_query(model_id, dims)
    for start in range(0, len(ids), BATCH):
        if cancel is not None and cancel.is_set():
            raise asyncio.CancelledError("near-duplicate search cancelled")
        chunk = list(ids[start : start + BATCH])
        async with sessions() as session, session.begin():
            # Segments share the index: keep scanning until NEIGHBOURS assets came up.
            await session.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
            await session.execute(text(f"SET LOCAL hnsw.ef_search = {max(40, NEIGHBOURS * 2)}"))
            rows = (await session.execute(pairs, {"ids": chunk, "threshold": threshold})).all()
            found = await _unrelated(session, [(int(a), int(b)) for a, b in rows])
        yield found
        if progress is not None:
            progress(min(start + BATCH, len(ids)), len(ids))


async def _lock_labels(session: AsyncSession) -> None:
    """Serialise writers of ``assets.duplicate_group_id`` across processes until the transaction ends."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LABELS_LOCK})


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
    ids = await _embedded_assets(sessions, model_id)
    found = _UnionFind()
    async for rows in _neighbour_pairs(sessions, model_id, dims, ids, threshold, progress, cancel):
        for a, b in rows:
            found.union(a, b)
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
    clear = text(
        """
        UPDATE assets SET duplicate_group_id = NULL
        WHERE duplicate_group_id IS NOT NULL AND NOT (id = ANY(CAST(:ids AS bigint[])))
        """
    )
    async with sessions() as session, session.begin():
        await _lock_labels(session)
        cleared = await session.execute(clear, {"ids": members})
        changed = await session.execute(_RELABEL, {"ids": members, "labels": labels})
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


async def refresh_assets(
    sessions: async_sessionmaker[AsyncSession],
    model_id: int,
    dims: int,
    asset_ids: Iterable[int],
    threshold: float = DEFAULT_THRESHOLD,
    *,
    cancel: asyncio.Event | None = None,
) -> DuplicateSummary:
    """Stack newly embedded assets with their near-duplicates without a full pass.

    Only ``asset_ids`` are queried against the HNSW index (one query each, like ``find_groups``);
    their pairs are joined with the stored groups of everything they touch (union-find over the new
    pairs and those groups' current members), and the labels of the affected assets alone are
    rewritten (smallest id of each group), in one transaction under the labels' advisory lock.
    Groups only grow or merge; nothing is split, cleared or deleted. The result is what ``refresh``
    would store for these groups, given stored labels that came from ``refresh``/``refresh_assets``
    and as long as a picture has at most ``NEIGHBOURS`` near-duplicates (past that both are
    approximate in their own way). Returns the affected groups, their assets, and the labels
    changed. Cancelling (``cancel`` set) before the write raises ``asyncio.CancelledError`` and
    changes nothing.
    """
    if not 0 <= threshold < 2:
        raise ValueError("a cosine distance threshold lies in [0, 2)")
    wanted = sorted({int(i) for i in asset_ids})
    if not wanted:
        return DuplicateSummary(groups=0, assets=0, changed=0)
    ids = await _embedded_assets(sessions, model_id, wanted)
    pairs: list[tuple[int, int]] = []
    async for rows in _neighbour_pairs(sessions, model_id, dims, ids, threshold, None, cancel):
        pairs.extend(rows)
    if cancel is not None and cancel.is_set():
        raise asyncio.CancelledError("near-duplicate search cancelled")
    touched = sorted({*ids, *(b for _, b in pairs)})
    async with sessions() as session, session.begin():
        # Read the stored groups under the lock: another writer's merge is either fully seen or waits.
        await _lock_labels(session)
        labels = {
            int(label)
            for label in await session.scalars(
                select(Asset.duplicate_group_id).where(
                    Asset.id.in_(touched), Asset.duplicate_group_id.is_not(None)
                )
            )
            if label is not None
        }
        found = _UnionFind()
        if labels:
            stored = await session.execute(
                select(Asset.id, Asset.duplicate_group_id).where(Asset.duplicate_group_id.in_(labels))
            )
            for member, label in stored.all():
                found.union(member, label if label is not None else member)
        for a, b in pairs:
            found.union(a, b)
        groups = found.groups()
        members = [m for g in groups for m in g]
        result = await session.execute(
            _RELABEL, {"ids": members, "labels": [min(g) for g in groups for _ in g]}
        )
    changed = int(getattr(result, "rowcount", 0))
    return DuplicateSummary(groups=len(groups), assets=len(members), changed=changed)
