"""The lineage graph at 10,000 assets: layout time, and pan frame times of the real view next to a naive
scene (one QGraphicsItem per node, edge and name) panned the same way in the same run.

    .venv/bin/python bench/lineage_graph.py [--nodes 10000] [--runs 5] [--platform offscreen|xcb] [--no-db]
    xvfb-run -a .venv/bin/python bench/lineage_graph.py --platform xcb   # under a real X server

The graph comes from ``bench/lineage_shapes.py`` (projects of stills, image-to-video, extend chains,
fan-outs of variants, two-parent transitions, three-to-four-keyframe storyboards, cross-project
remixes), as ``GraphNode``/``GraphEdge`` values with real ``AssetCard``s, the types the database
query returns.

* database (skipped with ``--no-db``): a fresh embedded PostgreSQL in a temporary directory,
  migrated to head, the same assets (owned by the local user) and edges COPYed into ``assets`` and
  ``asset_lineage``, then ``VACUUM ANALYZE``. The real ``LineageGraphService`` then loads the whole
  library (``load_whole_ms``, median of max(3, ``--runs``) after one warm-up load), the whole library
  plus the layout as the view's reload does it (``load_whole_plus_layout_ms``), and the 2- and 5-hop
  neighbourhoods of five assets (the busiest and four spread over the ids), ``--runs`` loads each
  (``load_neighbourhood_ms`` is the p50 at 2 hops, the view's default). Times are wall clock from
  the calling thread into the core loop and back, as the view waits for them.
* layout: ``layout_graph`` on the whole graph, median of ``--runs``.
* pan: the ``LineageView`` shown at ``--size`` with the graph; a frame is
  ``horizontalScrollBar().setValue(value + viewport/8)`` plus ``viewport().repaint()``, ``--frames``
  frames left to right, at the default zoom (cards with names, edge labels) and zoomed out so the
  whole graph fits (batched boxes and paths). No thumbnails are loaded (no store): cards show the
  placeholder, as before thumbnails arrive.
* baselines, same view size, same zoom, same steps: (a) the same view without the item's device
  coordinate cache, (b) without the cache and without level of detail (every visible node drawn as a
  card at any zoom); (c) a naive scene: ``QGraphicsRectItem`` +
  ``QGraphicsSimpleTextItem`` per node and ``QGraphicsPathItem`` per edge in a BSP-indexed scene.

Human-readable lines first; the last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import URL

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import percentile
from bench.lineage_shapes import SynthEdge, SynthNode, synthetic_lineage
from core.db import migrate
from core.db.embedded import EmbeddedDatabase
from core.db.engine import make_async_engine, make_async_session_factory
from core.db.enums import ContentRating, MediaType, SyncStatus
from core.db.models import LOCAL_USERNAME
from core.library import AssetCard
from core.lineage_graph import (
    GraphEdge,
    GraphLayout,
    GraphNode,
    LineageGraph,
    LineageGraphService,
    layout_graph,
)
from core.runtime import CoreLoop

TARGETS = {"layout_ms": 1000.0, "pan_frame_p95_ms": 33.0}


def build_graph(nodes: list[SynthNode], edges: list[SynthEdge]) -> LineageGraph:
    """The synthetic lineage as the values the database query returns, without a database."""
    made = datetime(2025, 1, 1, tzinfo=UTC)
    graph_nodes = {
        n.id: GraphNode(
            card=AssetCard(
                id=n.id,
                media_type=MediaType(n.media_type),
                provider_id=n.provider_id,
                display_name=f"{n.title} #{n.id}",
                width=1280,
                height=720,
                duration_sec=5.0 if n.media_type == "video" else None,
                file_size_bytes=2_000_000,
                sha256=f"{n.id:064x}",
                mime_type="video/mp4" if n.media_type == "video" else "image/png",
                created_at=made,
                tags=(),
                content_rating=ContentRating.GENERAL,
                age_restricted=False,
                sync_status=SyncStatus.REMOTE,
                providers=(),
            ),
            fps=24.0 if n.media_type == "video" else None,
        )
        for n in nodes
    }
    graph_edges = tuple(
        GraphEdge(
            id=i + 1,
            parent_id=e.parent,
            child_id=e.child,
            operation=e.operation,
            role=e.role,
            provider_id=e.provider_id,
            job_id=None,
            start_sec=e.start_sec,
            end_sec=None,
            frame=e.frame,
            sequence_order=e.sequence_order,
        )
        for i, e in enumerate(edges)
    )
    operations = tuple(sorted({e.operation for e in graph_edges}))
    providers = tuple(sorted({n.provider_id for n in nodes}))
    return LineageGraph(graph_nodes, graph_edges, providers=providers, operations=operations)


def measure_layout(graph: LineageGraph, runs: int) -> tuple[list[float], GraphLayout]:
    pairs = [(e.parent_id, e.child_id) for e in graph.edges]
    ids = list(graph.nodes)
    timings: list[float] = []
    layout: GraphLayout | None = None
    for _ in range(runs):
        start = time.perf_counter()
        layout = layout_graph(ids, pairs)
        timings.append((time.perf_counter() - start) * 1000)
    assert layout is not None
    return timings, layout


# -- the database stage -----------------------------------------------------------------------------------

_ASSET_COPY = """COPY assets (id, user_id, media_type, provider_id, provider_asset_id, sha256, sync_status,
    file_size_bytes, mime_type, width, height, duration_sec, fps, title, content_rating, upload_method,
    created_at) FROM STDIN"""

_LINEAGE_COPY = """COPY asset_lineage (parent_asset_id, child_asset_id, operation, parent_role, provider_id,
    parent_start_sec, parent_frame, sequence_order) FROM STDIN"""


def libpq(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def fill_database(url: URL, nodes: list[SynthNode], edges: list[SynthEdge]) -> None:
    """The synthetic assets (ids as generated, owned by the local user the migrations create) and their
    edges, by COPY in one transaction, then ``VACUUM ANALYZE`` as autovacuum would after such growth."""
    made = datetime(2025, 1, 1, tzinfo=UTC)
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        row = conn.execute("SELECT id FROM users WHERE username = %s", (LOCAL_USERNAME,)).fetchone()
        if row is None:
            raise SystemExit(f'the migrated database has no "{LOCAL_USERNAME}" user')
        user_id = int(row[0])
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(_ASSET_COPY) as copy:
                for n in nodes:
                    video = n.media_type == "video"
                    copy.write_row(
                        (
                            n.id, user_id, n.media_type, n.provider_id, f"synthetic_{n.id}",
                            hashlib.sha256(str(n.id).encode()).hexdigest(), "remote", 2_000_000,
                            "video/mp4" if video else "image/png", 1280, 720, 5.0 if video else None,
                            24.0 if video else None, n.title, "general", "generated",
                            made + timedelta(minutes=n.id),
                        )
                    )  # fmt: skip
            with cur.copy(_LINEAGE_COPY) as copy:
                for e in edges:
                    copy.write_row(
                        (
                            e.parent, e.child, e.operation, e.role, e.provider_id, e.start_sec, e.frame,
                            e.sequence_order,
                        )
                    )  # fmt: skip
            # Explicit ids: move the identity past them, as if the assets had been added one by one.
            cur.execute("SELECT setval(pg_get_serial_sequence('assets', 'id'), (SELECT max(id) FROM assets))")
        conn.execute("VACUUM ANALYZE assets")
        conn.execute("VACUUM ANALYZE asset_lineage")


def centres(edges: list[SynthEdge], count: int = 5) -> list[int]:
    """Focus assets for the neighbourhood loads: the busiest node (most edges) and assets spread evenly
    over the ids that have lineage (old and new projects alike)."""
    degree: dict[int, int] = {}
    for e in edges:
        degree[e.parent] = degree.get(e.parent, 0) + 1
        degree[e.child] = degree.get(e.child, 0) + 1
    ids = sorted(degree)
    busiest = max(ids, key=lambda i: (degree[i], -i))
    spread = [ids[round((k + 0.5) * len(ids) / (count - 1)) - 1] for k in range(count - 1)]
    return list(dict.fromkeys([busiest, *spread]))


def measure_database(
    core: CoreLoop, nodes: list[SynthNode], edges: list[SynthEdge], runs: int
) -> dict[str, Any]:
    """Fresh embedded PostgreSQL with the graph in it; the real ``LineageGraphService`` timed loading the
    whole library (alone, and with the layout the view runs after it) and neighbourhoods at 2 and 5 hops."""
    runs = max(3, runs)
    tmp = Path(tempfile.mkdtemp(prefix="pixsim-lineage-"))
    database: EmbeddedDatabase | None = None
    results: dict[str, Any] = {}
    try:
        start = time.perf_counter()
        database = EmbeddedDatabase(tmp / "data")
        url = database.start().url
        migrate.upgrade(url, "head")
        migrated = time.perf_counter()
        fill_database(url, nodes, edges)
        filled = time.perf_counter()
        print(
            f"database: started and migrated in {migrated - start:.1f} s; {len(nodes):,} assets and "
            f"{len(edges):,} edges by COPY + VACUUM ANALYZE in {filled - migrated:.1f} s"
        )
        engine = make_async_engine(url)
        service = LineageGraphService(make_async_session_factory(engine))

        async def load_and_layout() -> tuple[LineageGraph, GraphLayout]:
            # What LineageView.reload does for the whole library.
            graph = await service.whole_library()
            pairs = [(e.parent_id, e.child_id) for e in graph.edges]
            layout = await asyncio.to_thread(layout_graph, list(graph.nodes), pairs)
            return graph, layout

        def timed(make: Callable[[], Coroutine[Any, Any, Any]]) -> tuple[float, Any]:
            begin = time.perf_counter()
            value = core.run(make(), timeout=120)
            return (time.perf_counter() - begin) * 1000, value

        try:
            first_ms, graph = timed(service.whole_library)  # opens the pool's connection, too
            whole = [timed(service.whole_library)[0] for _ in range(runs)]
            with_layout = [timed(load_and_layout)[0] for _ in range(runs)]
            linked = len({e.parent for e in edges} | {e.child for e in edges})
            results["db_nodes"] = len(graph.nodes)
            results["db_edges"] = len(graph.edges)
            if len(graph.nodes) != linked or len(graph.edges) != len(edges):
                print(
                    f"WARNING: the whole library loaded {len(graph.nodes):,} nodes and {len(graph.edges):,} "
                    f"edges; expected {linked:,} and {len(edges):,}"
                )
            results["load_whole_first_ms"] = first_ms
            results["load_whole_ms"] = statistics.median(whole)
            results["load_whole_runs_ms"] = whole
            results["load_whole_plus_layout_ms"] = statistics.median(with_layout)
            results["load_whole_plus_layout_runs_ms"] = with_layout
            print(
                f"whole library from the database: {len(graph.nodes):,} nodes, {len(graph.edges):,} edges; "
                f"median {results['load_whole_ms']:.0f} ms over {runs} runs "
                f"({', '.join(f'{t:.0f}' for t in whole)}; first {first_ms:.0f} ms); with the layout, "
                f"median {results['load_whole_plus_layout_ms']:.0f} ms"
            )
            focus = centres(edges)
            for hops in (2, 5):
                samples: list[float] = []
                sizes: list[int] = []
                for asset in focus:
                    for _ in range(runs):
                        ms, near = timed(functools.partial(service.neighbourhood, asset, hops=hops))
                        samples.append(ms)
                    sizes.append(len(near.nodes))
                results[f"load_neighbourhood_h{hops}_p50_ms"] = percentile(samples, 50)
                results[f"load_neighbourhood_h{hops}_p95_ms"] = percentile(samples, 95)
                results[f"load_neighbourhood_h{hops}_nodes"] = sizes
                print(
                    f"neighbourhood at {hops} hops of {len(focus)} assets ({', '.join(map(str, sizes))} nodes): "
                    f"p50 {percentile(samples, 50):.1f} ms, p95 {percentile(samples, 95):.1f} ms "
                    f"over {len(samples)} loads"
                )
            # The view's default: two hops.
            results["load_neighbourhood_ms"] = results["load_neighbourhood_h2_p50_ms"]
        finally:
            core.run(engine.dispose(), timeout=30)
    finally:
        if database is not None:
            database.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def rounded(value: Any) -> Any:
    """Figures to 0.1 ms in the JSON (lists too); counts as they are."""
    if isinstance(value, float):
        return round(value, 1)
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def pan(view: Any, frames: int) -> list[float]:
    """Frame times (ms) of scrolling right by an eighth of the viewport per frame, painting each."""
    from PySide6.QtWidgets import QApplication

    bar = view.horizontalScrollBar()
    step = max(1, view.viewport().width() // 8)
    view.viewport().repaint()
    QApplication.processEvents()
    times: list[float] = []
    for _ in range(frames):
        if bar.value() + step > bar.maximum():
            bar.setValue(bar.minimum())
            view.viewport().repaint()
        start = time.perf_counter()
        bar.setValue(bar.value() + step)
        view.viewport().repaint()
        times.append((time.perf_counter() - start) * 1000)
        QApplication.processEvents()
    return times


def naive_view(graph: LineageGraph, layout: GraphLayout, size: tuple[int, int]) -> Any:
    """A QGraphicsItem per node, name and edge, in a BSP-indexed scene: the obvious way to do it."""
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QBrush, QColor, QPainter, QPainterPath, QPen
    from PySide6.QtWidgets import QGraphicsScene, QGraphicsView

    from ui.lineage_view import operation_colour

    scene = QGraphicsScene()
    s = layout.spacing
    for i, node_id in enumerate(layout.node_ids.tolist()):
        x, y = float(layout.x[i]) - s.node_width / 2, float(layout.y[i]) - s.node_height / 2
        rect = scene.addRect(
            QRectF(x, y, s.node_width, s.node_height), QPen(QColor(90, 96, 110)), QBrush(QColor(50, 52, 60))
        )
        label = scene.addSimpleText(graph.nodes[node_id].name)
        label.setBrush(QColor(220, 220, 225))
        label.setPos(x + 6, y + s.node_height - 24)
        del rect
    for i, edge in enumerate(graph.edges):
        route = layout.routes[i]
        if len(route) < 2:
            continue
        path = QPainterPath()
        path.moveTo(float(route[0, 0]), float(route[0, 1]))
        for px, py in route[1:].tolist():
            path.lineTo(px, py)
        scene.addPath(path, QPen(operation_colour(edge.operation), 1.5))
    view = QGraphicsView(scene)
    scene.setParent(view)  # lives as long as the view
    view.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    view.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
    view.setBackgroundBrush(QColor(28, 30, 35))
    view.resize(*size)
    return view


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--size", default="1400x800", help="view size, WxH")
    parser.add_argument("--platform", default="offscreen", help="Qt platform: offscreen (default) or xcb")
    parser.add_argument(
        "--no-db", action="store_true", help="skip the database stage (no PostgreSQL is started)"
    )
    args = parser.parse_args()
    os.environ["QT_QPA_PLATFORM"] = args.platform
    width, height = (int(v) for v in args.size.split("x"))

    from PySide6.QtCore import qVersion
    from PySide6.QtWidgets import QApplication, QGraphicsItem

    from ui.bridge import CoreBridge
    from ui.lineage_view import DEFAULT_ZOOM, LineageView

    start = time.perf_counter()
    synth_nodes, synth_edges = synthetic_lineage(args.nodes)
    graph = build_graph(synth_nodes, synth_edges)
    print(
        f"graph: {len(graph.nodes):,} nodes, {len(graph.edges):,} edges ({time.perf_counter() - start:.2f} s to build)"
    )
    layout_runs, layout = measure_layout(graph, args.runs)
    layout_ms = statistics.median(layout_runs)
    components = int(layout.component.max()) + 1
    print(
        f"layout: median {layout_ms:.0f} ms over {args.runs} runs ({', '.join(f'{t:.0f}' for t in layout_runs)}); "
        f"{int(layout.layer.max()) + 1} layers, {components:,} components, {layout.width:,.0f} × {layout.height:,.0f}"
    )

    app = QApplication.instance() or QApplication(sys.argv)
    core = CoreLoop().start()
    results: dict[str, Any] = {}
    database: dict[str, Any] = {}
    try:
        if not args.no_db:
            database = measure_database(core, synth_nodes, synth_edges, args.runs)
        bridge = CoreBridge(core)
        view = LineageView(bridge)
        view.resize(width, height + 40)
        view.show()
        app.processEvents()
        view.show_graph(graph, layout)
        canvas = view.canvas
        focus = int(layout.node_ids[len(layout.node_ids) // 2])

        def typical() -> None:
            canvas.set_zoom(DEFAULT_ZOOM)
            canvas.centre_on(focus)

        zooms: dict[str, Callable[[], None]] = {"typical": typical, "zoomed_out": canvas.fit}
        variants = {
            "": (True, QGraphicsItem.CacheMode.DeviceCoordinateCache, "ours"),
            "_no_cache": (True, QGraphicsItem.CacheMode.NoCache, "ours without the device cache"),
            "_no_lod": (False, QGraphicsItem.CacheMode.NoCache, "ours without level of detail or cache"),
        }
        for name, apply in zooms.items():
            for suffix, (lod, cache_mode, label) in variants.items():
                canvas.item.detail_enabled = lod
                canvas.item.setCacheMode(cache_mode)
                apply()
                app.processEvents()
                # Without level of detail, zoomed out takes seconds a frame: a few frames tell enough.
                frames = pan(canvas, args.frames if lod or name == "typical" else 5)
                key = f"pan_{name}{suffix}"
                results[key + "_p95_ms"] = percentile(frames, 95)
                results[key + "_median_ms"] = statistics.median(frames)
                print(
                    f"{label} at {name} zoom ({canvas.zoom:.3f}): p95 {results[key + '_p95_ms']:.1f} ms, "
                    f"median {results[key + '_median_ms']:.1f} ms"
                )
        view.close()

        start = time.perf_counter()
        naive = naive_view(graph, layout, (width, height))
        build_s = time.perf_counter() - start
        naive.show()
        app.processEvents()
        for name in ("typical", "zoomed_out"):
            if name == "typical":
                naive.resetTransform()
                naive.scale(DEFAULT_ZOOM, DEFAULT_ZOOM)
                naive.centerOn(*layout.position(focus))
            else:
                naive.fitInView(naive.scene().itemsBoundingRect())
            app.processEvents()
            frames = pan(naive, max(10, args.frames // 4) if name == "zoomed_out" else args.frames)
            results[f"baseline_naive_{name}_p95_ms"] = percentile(frames, 95)
            results[f"baseline_naive_{name}_median_ms"] = statistics.median(frames)
            print(
                f"naive item-per-node scene at {name} zoom: p95 {percentile(frames, 95):.1f} ms, "
                f"median {statistics.median(frames):.1f} ms (scene built in {build_s:.1f} s)"
            )
        naive.close()
    finally:
        core.stop()

    pan_p95 = max(results["pan_typical_p95_ms"], results["pan_zoomed_out_p95_ms"])
    summary: dict[str, Any] = {
        "nodes": len(graph.nodes),
        "edges": len(graph.edges),
        "components": components,
        "layout_ms": round(layout_ms, 1),
        "layout_runs_ms": [round(t, 1) for t in layout_runs],
        "pan_frame_p95_ms": round(pan_p95, 2),
        **{k: round(v, 2) for k, v in results.items()},
        **{k: rounded(v) for k, v in database.items()},
        "targets": TARGETS,
        "meets_targets": layout_ms <= TARGETS["layout_ms"] and pan_p95 <= TARGETS["pan_frame_p95_ms"],
        "view_size": args.size,
        "frames": args.frames,
        "platform": args.platform,
        "qt": qVersion(),
        "python": sys.version.split()[0],
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
