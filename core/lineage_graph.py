"""The lineage graph: which assets came from which, loaded from ``asset_lineage`` and laid out as a
layered DAG (parents above children) for the graph view.

``LineageGraphService`` loads an asset's N-hop neighbourhood (ancestors up to N generations above,
descendants up to N below, in one recursive query) or the whole library's lineage, filtered by
provider and operation. ``layout_graph`` places the nodes: longest-path layering with nodes pulled
down next to their children, long edges split by dummy points, barycentre sweeps against crossings,
coordinates centred over parents (multi-parent transitions and storyboards sit between their parents)
and components packed side by side in rows. Cycles (the schema cannot rule them out) are broken
deterministically by reversing the edges that close them. Numpy keeps 10,000 nodes under a second.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import BigInteger, String, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.enums import ContentRating, MediaType, ParentRole, SyncStatus
from core.db.models import LOCAL_USERNAME
from core.errors import PixSimError
from core.library import AGE_GATED_RATINGS, AssetCard, display_name

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

MAX_HOPS = 50
# Beyond this many layer-crossing points, long edges are drawn straight (see layout_graph).
MAX_DUMMIES = 50_000
# Beyond this many nodes a view is a texture, not a picture: the query stops there and says so.
DEFAULT_MAX_NODES = 20_000


class LineageGraphError(PixSimError):
    """A lineage graph cannot be loaded as asked (the message says why)."""


# -- what the view receives ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GraphNode:
    """An asset in the graph: its grid card (name, media type, provider, sha256 for the thumbnail) and
    the frame rate that turns keyframe frames into seconds."""

    card: AssetCard
    fps: float | None
    depth: int = 0  # hops from the focus asset (0 in the whole-library view)

    @property
    def id(self) -> int:
        return self.card.id

    @property
    def name(self) -> str:
        return self.card.display_name

    @property
    def media_type(self) -> MediaType:
        return self.card.media_type

    @property
    def provider_id(self) -> str:
        return self.card.provider_id

    @property
    def thumbnail_key(self) -> tuple[int, str]:
        """The key the library grid's ``ThumbnailCache`` holds this asset's thumbnail under."""
        return (self.card.id, "thumb")


@dataclass(frozen=True, slots=True)
class GraphEdge:
    """A typed lineage edge: ``parent_id`` took part, as ``role``, in making ``child_id``."""

    id: int
    parent_id: int
    child_id: int
    operation: str
    role: str
    provider_id: str | None
    job_id: int | None
    start_sec: float | None
    end_sec: float | None
    frame: int | None
    sequence_order: int

    def label(self, child_fps: float | None = None) -> str | None:
        """Where in time the edge anchors: "keyframe #2 @ 1.5 s", "from 3.2 s", "last frame"; else None.

        A keyframe's frame is a frame of the child (the new video), so the child's fps gives seconds.
        """
        if self.role == ParentRole.KEYFRAME.value or (self.frame is not None and self.start_sec is None):
            name = f"keyframe #{self.sequence_order + 1}"
            if self.frame is None:
                return name
            if child_fps:
                return f"{name} @ {_seconds(self.frame / child_fps)} s"
            return f"{name} @ frame {self.frame}"
        if self.start_sec is not None:
            if self.end_sec is not None:
                return f"{_seconds(self.start_sec)}–{_seconds(self.end_sec)} s"
            return f"from {_seconds(self.start_sec)} s"
        if self.role == ParentRole.FIRST_FRAME.value:
            return "first frame"
        if self.role == ParentRole.LAST_FRAME.value:
            return "last frame"
        return None


def _seconds(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0") if value != int(value) else f"{int(value)}"


@dataclass(frozen=True, slots=True)
class GraphFilter:
    """Which edges the graph follows; an empty set means "any". ``providers`` match the provider that
    made the child (the edge's job's provider)."""

    providers: frozenset[str] = frozenset()
    operations: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "providers", frozenset(self.providers))
        object.__setattr__(self, "operations", frozenset(self.operations))


@dataclass(frozen=True)
class LineageGraph:
    """Nodes (by id, in id order) and edges of one view; ``truncated`` when ``max_nodes`` cut it short.
    ``providers``/``operations`` list every value the unfiltered graph's edges carry (for the filters)."""

    nodes: dict[int, GraphNode]
    edges: tuple[GraphEdge, ...]
    focus_id: int | None = None
    hops: int | None = None
    truncated: bool = False
    providers: tuple[str, ...] = ()
    operations: tuple[str, ...] = ()

    def parents_of(self, node_id: int) -> list[GraphEdge]:
        return [e for e in self.edges if e.child_id == node_id]

    def children_of(self, node_id: int) -> list[GraphEdge]:
        return [e for e in self.edges if e.parent_id == node_id]


# -- queries ----------------------------------------------------------------------------------------------

# Edges a view may follow: the user's filters, and neither end hidden by the age gate.
_EDGE_OK = """
    (cardinality(:operations) = 0 OR l.operation = ANY(:operations))
    AND (cardinality(:providers) = 0 OR l.provider_id = ANY(:providers))
"""

_VISIBLE = """
    a.user_id = :user_id
    AND (:include_gated OR (NOT a.age_restricted AND a.content_rating <> ALL(:gated)))
"""

# Ancestors (up) and descendants (down) of the focus, each at most :hops steps away. UNION (not UNION
# ALL) keeps each (asset, depth) once, so diamonds in the DAG cannot multiply rows; depth bounds a cycle.
_NEIGHBOURHOOD_SQL = f"""
WITH RECURSIVE
up(id, depth) AS (
    SELECT CAST(:focus AS bigint), 0
    UNION
    SELECT l.parent_asset_id, up.depth + 1
    FROM up JOIN asset_lineage l ON l.child_asset_id = up.id
    JOIN assets a ON a.id = l.parent_asset_id
    WHERE up.depth < :hops AND {_EDGE_OK} AND {_VISIBLE}
),
down(id, depth) AS (
    SELECT CAST(:focus AS bigint), 0
    UNION
    SELECT l.child_asset_id, down.depth + 1
    FROM down JOIN asset_lineage l ON l.parent_asset_id = down.id
    JOIN assets a ON a.id = l.child_asset_id
    WHERE down.depth < :hops AND {_EDGE_OK} AND {_VISIBLE}
)
SELECT id, min(depth) AS depth FROM (SELECT * FROM up UNION ALL SELECT * FROM down) AS reached
GROUP BY id ORDER BY min(depth), id LIMIT :limit
"""  # noqa: S608 - constant fragments; values are bound

# Every asset with at least one followed edge whose other end is also shown. Joins (not a lateral per
# edge end) let the planner hash both ends at once: tens of milliseconds at 10,000 assets, not hundreds.
_LIBRARY_SQL = f"""
WITH followed AS (
    SELECT l.parent_asset_id AS parent, l.child_asset_id AS child
    FROM asset_lineage l
    JOIN assets a ON a.id = l.parent_asset_id
    JOIN assets other ON other.id = l.child_asset_id
    WHERE {_EDGE_OK} AND {_VISIBLE}
      AND other.user_id = :user_id
      AND (:include_gated OR (NOT other.age_restricted AND other.content_rating <> ALL(:gated)))
)
SELECT id, 0 AS depth FROM (SELECT parent AS id FROM followed UNION SELECT child FROM followed) AS ends
ORDER BY id LIMIT :limit
"""  # noqa: S608 - constant fragments; values are bound

# Columns in the order _node unpacks them.
_NODES_SQL = """
SELECT a.id, a.media_type, a.provider_id, a.title, a.description, a.width, a.height, a.duration_sec,
       a.file_size_bytes, a.sha256, a.mime_type, a.created_at, a.tags, a.content_rating,
       a.age_restricted, a.sync_status, a.fps
FROM assets a WHERE a.id = ANY(:ids) ORDER BY a.id
"""

# Columns in the order of GraphEdge's fields (_edge relies on it). IN (unnest) rather than = ANY: with
# thousands of ids the planner hashes them instead of estimating every element (20 ms of planning).
_EDGES_SQL = f"""
SELECT l.id, l.parent_asset_id, l.child_asset_id, l.operation, l.parent_role, l.provider_id, l.job_id,
       l.parent_start_sec, l.parent_end_sec, l.parent_frame, l.sequence_order
FROM asset_lineage l
WHERE l.parent_asset_id IN (SELECT unnest(:ids)) AND l.child_asset_id IN (SELECT unnest(:ids))
  AND {_EDGE_OK}
ORDER BY l.child_asset_id, l.sequence_order, l.id
"""  # noqa: S608 - constant fragments; values are bound

# What the filters can offer: every provider and operation on the edges of the shown nodes, unfiltered.
_VOCABULARY_SQL = """
SELECT array_agg(DISTINCT l.operation ORDER BY l.operation),
       array_remove(array_agg(DISTINCT l.provider_id ORDER BY l.provider_id), NULL)
FROM asset_lineage l
WHERE l.parent_asset_id = ANY(:ids) OR l.child_asset_id = ANY(:ids)
"""

_LIBRARY_VOCABULARY_SQL = """
SELECT array_agg(DISTINCT l.operation ORDER BY l.operation),
       array_remove(array_agg(DISTINCT l.provider_id ORDER BY l.provider_id), NULL)
FROM asset_lineage l
"""

_TEXT_ARRAYS = (
    bindparam("operations", type_=ARRAY(String)),
    bindparam("providers", type_=ARRAY(String)),
    bindparam("gated", type_=ARRAY(String)),
)
_IDS = bindparam("ids", type_=ARRAY(BigInteger))


class LineageGraphService:
    """Loads lineage graphs for one user (the local user by default)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, username: str = LOCAL_USERNAME) -> None:
        self._sessions = sessions
        self._username = username
        self._user_id: int | None = None

    async def _user(self, session: AsyncSession) -> int:
        if self._user_id is None:
            found = await session.scalar(
                text("SELECT id FROM users WHERE username = :name"), {"name": self._username}
            )
            if found is None:
                raise LineageGraphError(f'The library has no user "{self._username}".')
            self._user_id = int(found)
        return self._user_id

    async def neighbourhood(
        self,
        asset_id: int,
        hops: int = 2,
        *,
        graph_filter: GraphFilter = GraphFilter(),
        include_age_restricted: bool = False,
        max_nodes: int = DEFAULT_MAX_NODES,
    ) -> LineageGraph:
        """The asset, its ancestors up to ``hops`` generations above and its descendants up to ``hops``
        below, following only edges the filter keeps; the edges among them."""
        if not 0 <= hops <= MAX_HOPS:
            raise LineageGraphError(f"Choose between 0 and {MAX_HOPS} hops (asked for {hops}).")
        async with self._sessions() as session:
            user_id = await self._user(session)
            owner = await session.scalar(text("SELECT user_id FROM assets WHERE id = :id"), {"id": asset_id})
            if owner is None or owner != user_id:
                raise LineageGraphError(f"Asset {asset_id} is not in the library (any more).")
            params = self._params(user_id, graph_filter, include_age_restricted, max_nodes)
            reached = await self._reached(
                session, _NEIGHBOURHOOD_SQL, {**params, "focus": asset_id, "hops": hops}
            )
            return await self._graph(
                session, reached, params, max_nodes, focus_id=asset_id, hops=hops, library=False
            )

    async def whole_library(
        self,
        *,
        graph_filter: GraphFilter = GraphFilter(),
        include_age_restricted: bool = False,
        max_nodes: int = DEFAULT_MAX_NODES,
    ) -> LineageGraph:
        """Every asset with a lineage edge the filter keeps (assets without lineage are left out)."""
        async with self._sessions() as session:
            user_id = await self._user(session)
            params = self._params(user_id, graph_filter, include_age_restricted, max_nodes)
            reached = await self._reached(session, _LIBRARY_SQL, params)
            return await self._graph(session, reached, params, max_nodes, library=True)

    @staticmethod
    def _params(
        user_id: int, graph_filter: GraphFilter, include_gated: bool, max_nodes: int
    ) -> dict[str, Any]:
        if max_nodes < 1:
            raise LineageGraphError("A lineage graph needs room for at least one asset.")
        return {
            "user_id": user_id,
            "operations": sorted(graph_filter.operations),
            "providers": sorted(graph_filter.providers),
            "include_gated": include_gated,
            "gated": sorted(r.value for r in AGE_GATED_RATINGS),
            # One more than asked: finding it means the graph was cut short.
            "limit": max_nodes + 1,
        }

    @staticmethod
    async def _reached(session: AsyncSession, sql: str, params: dict[str, Any]) -> dict[int, int]:
        rows = await session.execute(text(sql).bindparams(*_TEXT_ARRAYS), params)
        return {int(row.id): int(row.depth) for row in rows}

    async def _graph(
        self,
        session: AsyncSession,
        reached: dict[int, int],
        params: dict[str, Any],
        max_nodes: int,
        *,
        focus_id: int | None = None,
        hops: int | None = None,
        library: bool,
    ) -> LineageGraph:
        truncated = len(reached) > max_nodes
        ids = list(reached)[:max_nodes]
        node_rows = await session.execute(text(_NODES_SQL).bindparams(_IDS), {"ids": ids})
        nodes = {row[0]: _node(row, reached.get(row[0], 0)) for row in node_rows}
        edge_rows = await session.execute(
            text(_EDGES_SQL).bindparams(_IDS, *_TEXT_ARRAYS[:2]),
            {"ids": list(nodes), "operations": params["operations"], "providers": params["providers"]},
        )
        edges = tuple(_edge(row) for row in edge_rows)
        if library:
            vocabulary = (await session.execute(text(_LIBRARY_VOCABULARY_SQL))).one()
        else:
            vocabulary = (
                await session.execute(text(_VOCABULARY_SQL).bindparams(_IDS), {"ids": list(nodes)})
            ).one()
        return LineageGraph(
            nodes=dict(sorted(nodes.items())),
            edges=edges,
            focus_id=focus_id,
            hops=hops,
            truncated=truncated,
            operations=tuple(vocabulary[0] or ()),
            providers=tuple(vocabulary[1] or ()),
        )


# Enum members by stored value: a dict lookup is several times cheaper than calling the enum, which
# counts at 10,000 nodes.
_MEDIA_TYPES = {m.value: m for m in MediaType}
_RATINGS = {r.value: r for r in ContentRating}
_SYNC = {st.value: st for st in SyncStatus}


def _node(row: Sequence[Any], depth: int) -> GraphNode:
    """A ``_NODES_SQL`` row (unpacked by position: named access on a result row costs a microsecond or
    two a column, most of the whole-library load at 10,000 nodes)."""
    (
        asset_id, media, provider_id, title, description, width, height, duration_sec, file_size_bytes,
        sha256, mime_type, created_at, tags, rating, age_restricted, sync_status, fps,
    ) = row  # fmt: skip
    media_type = _MEDIA_TYPES[media]
    card = AssetCard(
        id=asset_id,
        media_type=media_type,
        provider_id=provider_id,
        display_name=display_name(asset_id, media_type, title, description),
        width=width,
        height=height,
        duration_sec=duration_sec,
        file_size_bytes=file_size_bytes,
        sha256=sha256,
        mime_type=mime_type,
        created_at=created_at,
        tags=tuple(tags) if tags else (),
        content_rating=_RATINGS[rating],
        age_restricted=age_restricted,
        sync_status=_SYNC[sync_status],
        providers=(),
    )
    return GraphNode(card, fps, depth)


def _edge(row: Sequence[Any]) -> GraphEdge:
    """An ``_EDGES_SQL`` row: its columns are ``GraphEdge``'s fields, in order."""
    return GraphEdge(*row)


# -- layout -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LayoutSpacing:
    """Sizes in scene units: a node's box, the gaps between boxes and between packed components."""

    node_width: float = 160.0
    node_height: float = 120.0
    column_gap: float = 40.0
    layer_gap: float = 90.0
    component_gap: float = 120.0


@dataclass(frozen=True, eq=False)
class GraphLayout:
    """Where everything goes. ``x``/``y`` are node centres, in the order of ``node_ids``; ``routes[i]``
    is edge ``i``'s polyline (k × 2, parent's bottom to child's top, through the points where it
    crosses layers); ``reversed_edges`` are edges drawn against the flow to break a cycle."""

    node_ids: IntArray
    x: FloatArray
    y: FloatArray
    layer: IntArray
    component: IntArray
    routes: list[FloatArray]
    reversed_edges: frozenset[int]
    width: float
    height: float
    spacing: LayoutSpacing
    index_of: dict[int, int] = field(repr=False)

    def position(self, node_id: int) -> tuple[float, float]:
        i = self.index_of[node_id]
        return float(self.x[i]), float(self.y[i])


def layout_graph(
    node_ids: Sequence[int],
    edges: Sequence[tuple[int, int]],
    *,
    spacing: LayoutSpacing = LayoutSpacing(),
    sweeps: int = 4,
    first_component_of: int | None = None,
) -> GraphLayout:
    """Lay out a DAG in layers, parents above children. ``edges`` are (parent id, child id); edges
    naming unknown nodes are ignored (routed as empty). The component holding ``first_component_of``
    (the focus) is placed first, top left."""
    ids = np.asarray(list(dict.fromkeys(node_ids)), dtype=np.int64)
    n = len(ids)
    index_of = {int(v): i for i, v in enumerate(ids)}
    e_src = np.fromiter((index_of.get(p, -1) for p, _ in edges), dtype=np.int64, count=len(edges))
    e_dst = np.fromiter((index_of.get(c, -1) for _, c in edges), dtype=np.int64, count=len(edges))
    valid = (e_src >= 0) & (e_dst >= 0) & (e_src != e_dst)
    if n == 0:
        return GraphLayout(
            ids, np.zeros(0), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64),
            [np.zeros((0, 2)) for _ in edges], frozenset(), 0.0, 0.0, spacing, index_of,
        )  # fmt: skip

    # Unique directed pairs drive the layout; parallel edges share a route.
    pair_key = e_src * n + e_dst
    uniq_keys, pair_of_edge = np.unique(np.where(valid, pair_key, -1), return_inverse=True)
    keep = uniq_keys >= 0
    u_src = (uniq_keys[keep] // n).astype(np.int64)
    u_dst = (uniq_keys[keep] % n).astype(np.int64)
    offset = 0 if keep.all() else 1  # index shift when the -1 (invalid) bucket exists

    flipped = _break_cycles(n, u_src, u_dst)
    top = np.where(flipped, u_dst, u_src)
    bottom = np.where(flipped, u_src, u_dst)
    # A cycle broken both ways (a→b and b→a) leaves two identical pairs: fine for layering.
    layer = _layers(n, top, bottom)
    component = _components(n, top, bottom)

    # Long edges get one dummy point per layer they cross.
    span = layer[bottom] - layer[top]
    dummies = int((span - 1).sum())
    if dummies > max(MAX_DUMMIES, 4 * n):
        # Pathological spans (a tangle of cycles stretched over thousands of layers): long edges are
        # drawn straight rather than split into millions of points.
        span = np.minimum(span, 1)
        dummies = 0
    total = n + dummies
    all_layer = np.empty(total, dtype=np.int64)
    all_layer[:n] = layer
    all_comp = np.empty(total, dtype=np.int64)
    all_comp[:n] = component
    chain_start = np.zeros(len(top), dtype=np.int64)
    seg_src: list[IntArray] = []
    seg_dst: list[IntArray] = []
    short = span == 1
    seg_src.append(top[short])
    seg_dst.append(bottom[short])
    if dummies:
        long_idx = np.nonzero(~short)[0]
        counts = span[long_idx] - 1
        starts = n + np.concatenate(([0], np.cumsum(counts)[:-1]))
        chain_start[long_idx] = starts
        owner = np.repeat(long_idx, counts)
        step = np.arange(dummies) - np.repeat(starts - n, counts)  # 0..count-1 within each edge
        d_ids = n + np.arange(dummies)
        all_layer[n:] = layer[top[owner]] + 1 + step
        all_comp[n:] = component[top[owner]]
        prev = np.where(step == 0, top[owner], d_ids - 1)
        seg_src.append(prev)
        seg_dst.append(d_ids)
        last = starts + counts - 1
        seg_src.append(last)
        seg_dst.append(bottom[long_idx])
    s_src = np.concatenate(seg_src)
    s_dst = np.concatenate(seg_dst)

    order = _order(total, all_layer, all_comp, s_src, s_dst, sweeps)
    slot_x = _coordinates(total, all_layer, all_comp, order, s_src, s_dst, sweeps)
    comp_x, comp_y, width, height = _pack(
        all_comp, all_layer, slot_x, component, spacing, first_component_of, index_of
    )

    pitch_x = spacing.node_width + spacing.column_gap
    pitch_y = spacing.node_height + spacing.layer_gap
    px = comp_x + slot_x * pitch_x + spacing.node_width / 2
    py = comp_y + all_layer * pitch_y + spacing.node_height / 2

    routes_u = _routes(top, bottom, span, chain_start, flipped, px, py, spacing)
    empty = np.zeros((0, 2))
    routes = [routes_u[p - offset] if valid[i] else empty for i, p in enumerate(pair_of_edge)]
    reversed_edges = frozenset(int(i) for i in np.nonzero(valid)[0] if flipped[pair_of_edge[i] - offset])
    return GraphLayout(
        node_ids=ids,
        x=px[:n].copy(),
        y=py[:n].copy(),
        layer=layer,
        component=component,
        routes=routes,
        reversed_edges=reversed_edges,
        width=width,
        height=height,
        spacing=spacing,
        index_of=index_of,
    )


def _break_cycles(n: int, src: IntArray, dst: IntArray) -> npt.NDArray[np.bool_]:
    """Which edges to flip so the graph is acyclic: Kahn's order, lowest index first; when only
    cycles remain, the lowest-index unplaced node goes next and its incoming edges from unplaced
    nodes flip (ids follow creation, so the edge from the newer asset is the one reversed).
    Deterministic for the same input; linear time."""
    flipped = np.zeros(len(src), dtype=bool)
    out_edges = _adjacency(n, src)
    in_edges = _adjacency(n, dst)
    placed = [False] * n
    indeg = np.bincount(dst, minlength=n).tolist()
    ready = [v for v in range(n) if indeg[v] == 0]
    heapq.heapify(ready)
    src_l, dst_l = src.tolist(), dst.tolist()
    done = 0
    lowest_unplaced = 0
    while done < n:
        if not ready:
            while placed[lowest_unplaced]:
                lowest_unplaced += 1
            pick = lowest_unplaced
            for e in in_edges[pick]:
                if not placed[src_l[e]] and not flipped[e]:
                    flipped[e] = True
                    indeg[pick] -= 1
            ready.append(pick)
        v = heapq.heappop(ready)
        if placed[v]:
            continue
        placed[v] = True
        done += 1
        for e in out_edges[v]:
            if flipped[e]:
                continue
            w = dst_l[e]
            if placed[w]:
                continue
            indeg[w] -= 1
            if indeg[w] == 0:
                heapq.heappush(ready, w)
    return flipped


def _adjacency(n: int, key: IntArray) -> list[list[int]]:
    adjacency: list[list[int]] = [[] for _ in range(n)]
    for e, v in enumerate(key.tolist()):
        adjacency[v].append(e)
    return adjacency


def _layers(n: int, top: IntArray, bottom: IntArray) -> IntArray:
    """Longest-path layers from the sources, then each node with children pulled down to just above
    its highest child (a still used only by a late storyboard sits next to it, not at the top)."""
    order = _topological(n, top, bottom)
    layer = np.zeros(n, dtype=np.int64)
    top_l, bottom_l = top.tolist(), bottom.tolist()
    out_edges = _adjacency(n, top)
    lay = layer.tolist()
    for v in order:
        base = lay[v] + 1
        for e in out_edges[v]:
            w = bottom_l[e]
            if lay[w] < base:
                lay[w] = base
    for v in reversed(order):
        children = out_edges[v]
        if children:
            lowest = min(lay[bottom_l[e]] for e in children) - 1
            if lowest > lay[v]:
                lay[v] = lowest
    del top_l
    return np.asarray(lay, dtype=np.int64)


def _topological(n: int, top: IntArray, bottom: IntArray) -> list[int]:
    indeg = np.bincount(bottom, minlength=n).tolist()
    out_edges = _adjacency(n, top)
    bottom_l = bottom.tolist()
    queue = [v for v in range(n) if indeg[v] == 0]
    order: list[int] = []
    i = 0
    while i < len(queue):
        v = queue[i]
        i += 1
        order.append(v)
        for e in out_edges[v]:
            w = bottom_l[e]
            indeg[w] -= 1
            if indeg[w] == 0:
                queue.append(w)
    return order


def _components(n: int, a: IntArray, b: IntArray) -> IntArray:
    """Weakly connected components (union-find), numbered by their smallest node index."""
    parent = list(range(n))

    def find(v: int) -> int:
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    for u, v in zip(a.tolist(), b.tolist(), strict=True):
        ru, rv = find(u), find(v)
        if ru != rv:
            if ru < rv:
                parent[rv] = ru
            else:
                parent[ru] = rv
    roots = np.asarray([find(v) for v in range(n)], dtype=np.int64)
    _, numbered = np.unique(roots, return_inverse=True)
    return numbered.astype(np.int64)


class _Sweeps:
    """Per-layer index of nodes and of the edge segments entering (down sweeps) or leaving (up sweeps)
    each layer, with the layer-local slot of every end: a sweep step is then a few small bincounts."""

    def __init__(self, layer: IntArray, src: IntArray, dst: IntArray) -> None:
        self.n_layers = int(layer.max()) + 1
        self.members = _group(layer, self.n_layers)
        self.local = np.empty(len(layer), dtype=np.int64)
        for nodes in self.members:
            self.local[nodes] = np.arange(len(nodes))
        self.src, self.dst = src, dst
        self.into = _group(layer[dst], self.n_layers)
        self.out_of = _group(layer[src], self.n_layers)

    def mean_neighbour(self, lay: int, down: bool, value: FloatArray) -> FloatArray:
        """The mean ``value`` of each node's neighbours in the layer above (down) or below (up); a
        node without any keeps its own value."""
        nodes = self.members[lay]
        group = self.into[lay] if down else self.out_of[lay]
        if len(group) == 0:
            return np.asarray(value[nodes], dtype=np.float64)
        mine = self.local[self.dst[group] if down else self.src[group]]
        other = self.src[group] if down else self.dst[group]
        weight = np.bincount(mine, weights=value[other], minlength=len(nodes))
        count = np.bincount(mine, minlength=len(nodes))
        return np.where(count > 0, weight / np.maximum(count, 1), value[nodes])

    def layers(self, down: bool) -> range:
        return range(1, self.n_layers) if down else range(self.n_layers - 2, -1, -1)


def _order(
    total: int, layer: IntArray, comp: IntArray, src: IntArray, dst: IntArray, sweeps: int
) -> FloatArray:
    """Rank of every node within its layer after barycentre sweeps (down, then up, repeated).
    Components never interleave: ranks sort by component first. The first order is by node index
    (ids follow creation, so siblings start in the order they were made)."""
    plan = _Sweeps(layer, src, dst)
    pos = np.arange(total, dtype=np.float64)
    for nodes in plan.members:
        pos[nodes] = _ranks(comp[nodes], pos[nodes])
    for sweep in range(sweeps):
        down = sweep % 2 == 0
        for lay in plan.layers(down):
            nodes = plan.members[lay]
            if len(nodes) > 1:
                pos[nodes] = _ranks(comp[nodes], plan.mean_neighbour(lay, down, pos))
    return pos


def _group(key: IntArray, size: int) -> list[IntArray]:
    """Indices of ``key`` grouped by value 0..size-1 (stable)."""
    order = np.argsort(key, kind="stable")
    bounds = np.searchsorted(key[order], np.arange(size + 1))
    return [order[bounds[i] : bounds[i + 1]] for i in range(size)]


def _ranks(comp: IntArray, value: FloatArray) -> FloatArray:
    order = np.lexsort((value, comp))
    ranks = np.empty(len(order), dtype=np.float64)
    ranks[order] = np.arange(len(order), dtype=np.float64)
    return ranks


def _coordinates(
    total: int, layer: IntArray, comp: IntArray, rank: FloatArray, src: IntArray, dst: IntArray, sweeps: int
) -> FloatArray:
    """x in slots (1 = one node pitch): each node as close as it can be to the mean of its neighbours
    in the layer just handled, keeping one slot between neighbours of the same component's row."""
    # Members of each layer sorted by (component, rank): _separate keeps that order.
    layer_order = np.lexsort((rank, comp, layer))
    plan = _Sweeps(layer[layer_order], _inverse(layer_order)[src], _inverse(layer_order)[dst])
    comp_sorted = comp[layer_order]
    x = np.zeros(total)
    for nodes in plan.members:
        x[nodes] = _segment_rank(comp_sorted[nodes])
    for sweep in range(max(2, sweeps)):
        down = sweep % 2 == 0
        for lay in plan.layers(down):
            nodes = plan.members[lay]
            x[nodes] = _separate(plan.mean_neighbour(lay, down, x), comp_sorted[nodes])
    result = np.empty(total)
    result[layer_order] = x
    # Each component starts at slot 0.
    lowest = np.full(int(comp.max()) + 1, np.inf)
    np.minimum.at(lowest, comp, result)
    return np.asarray(result - lowest[comp], dtype=np.float64)


def _inverse(permutation: IntArray) -> IntArray:
    inverse = np.empty_like(permutation)
    inverse[permutation] = np.arange(len(permutation))
    return inverse


def _segment_rank(comp: IntArray) -> FloatArray:
    """0, 1, 2… within each run of equal ``comp`` (the array is sorted by component)."""
    idx = np.arange(len(comp))
    starts = np.concatenate(([0], np.nonzero(np.diff(comp))[0] + 1))
    run_start = np.repeat(starts, np.diff(np.concatenate((starts, [len(comp)]))))
    return np.asarray(idx - run_start, dtype=np.float64)


def _separate(desired: FloatArray, comp: IntArray) -> FloatArray:
    """The positions nearest ``desired`` (kept in order) with at least one slot between neighbours of
    the same component: the mean of a left-to-right and a right-to-left push, each a running maximum."""
    if len(desired) <= 1:
        return np.array(desired, dtype=np.float64)  # one node: nothing to keep apart (a chain's layers)
    rank = _segment_rank(comp)
    seg = np.concatenate(([0.0], np.cumsum(np.diff(comp) != 0)))
    spread = float(np.abs(desired).max() + len(desired) + 1) * 4
    left = np.maximum.accumulate(desired - rank + seg * spread) - seg * spread + rank
    rev = desired[::-1]
    rrank = _segment_rank(comp[::-1])
    rseg = seg[::-1].max() - seg[::-1]
    right = -(np.maximum.accumulate(-rev - rrank + rseg * spread) - rseg * spread + rrank)
    return np.asarray((left + right[::-1]) / 2, dtype=np.float64)


def _pack(
    all_comp: IntArray,
    all_layer: IntArray,
    slot_x: FloatArray,
    component: IntArray,
    spacing: LayoutSpacing,
    first_component_of: int | None,
    index_of: dict[int, int],
) -> tuple[FloatArray, FloatArray, float, float]:
    """Offsets per node placing each component's box in rows (shelves) about as wide as the whole
    area is tall, largest components first; returns per-node x/y offsets and the total size."""
    n_comp = int(all_comp.max()) + 1
    pitch_x = spacing.node_width + spacing.column_gap
    pitch_y = spacing.node_height + spacing.layer_gap
    max_slot = np.zeros(n_comp)
    np.maximum.at(max_slot, all_comp, slot_x)
    max_layer = np.zeros(n_comp, dtype=np.int64)
    np.maximum.at(max_layer, all_comp, all_layer)
    min_layer = np.full(n_comp, np.iinfo(np.int64).max)
    np.minimum.at(min_layer, all_comp, all_layer)
    widths = (max_slot + 1) * pitch_x - spacing.column_gap
    heights = (max_layer - min_layer + 1) * pitch_y - spacing.layer_gap
    sizes = np.bincount(component, minlength=n_comp)
    order = list(np.lexsort((np.arange(n_comp), -sizes)))
    if first_component_of is not None and first_component_of in index_of:
        first = int(component[index_of[first_component_of]])
        order.remove(first)
        order.insert(0, first)
    area = float(((widths + spacing.component_gap) * (heights + spacing.component_gap)).sum())
    row_width = max(float(widths.max()), math.sqrt(area) * 1.6)
    off_x = np.zeros(n_comp)
    off_y = np.zeros(n_comp)
    cursor_x = cursor_y = shelf = 0.0
    total_w = 0.0
    for c in order:
        if cursor_x > 0 and cursor_x + widths[c] > row_width:
            cursor_x = 0.0
            cursor_y += shelf + spacing.component_gap
            shelf = 0.0
        off_x[c] = cursor_x
        off_y[c] = cursor_y - min_layer[c] * pitch_y
        cursor_x += float(widths[c]) + spacing.component_gap
        shelf = max(shelf, float(heights[c]))
        total_w = max(total_w, cursor_x - spacing.component_gap)
    return off_x[all_comp], off_y[all_comp], total_w, cursor_y + shelf


def _routes(
    top: IntArray,
    bottom: IntArray,
    span: IntArray,
    chain_start: IntArray,
    flipped: npt.NDArray[np.bool_],
    px: FloatArray,
    py: FloatArray,
    spacing: LayoutSpacing,
) -> list[FloatArray]:
    """Polylines per unique edge, from the parent's bottom edge to the child's top edge (reversed for
    flipped edges, so every route runs parent → child)."""
    half = spacing.node_height / 2
    routes: list[FloatArray] = []
    for e in range(len(top)):
        t, b, s = int(top[e]), int(bottom[e]), int(span[e])
        xs = [px[t]]
        ys = [py[t] + half]
        if s > 1:
            chain = np.arange(chain_start[e], chain_start[e] + s - 1)
            xs.extend(px[chain].tolist())
            ys.extend(py[chain].tolist())
        xs.append(px[b])
        ys.append(py[b] - half)
        route = np.column_stack((xs, ys))
        routes.append(route[::-1].copy() if flipped[e] else route)
    return routes
