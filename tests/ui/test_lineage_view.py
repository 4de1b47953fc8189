"""The lineage graph view on a real database: nodes and thumbnails, selection, filters, hops, the
whole library, the legend and the frame / time labels of keyframe and extend edges."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from pytestqt.qtbot import QtBot

from core.cache.store import ContentStore
from core.db.enums import MediaType
from core.lineage_graph import GraphFilter, LineageGraphService
from core.runtime import CoreLoop
from core.thumbnails import ThumbnailService, ThumbnailStore
from tests.factories import add_asset
from tests.fakes.media import tiny_png
from tests.lineage.graphs import add_edge, build_demo_like
from tests.ui.conftest import Library
from ui.bridge import CoreBridge
from ui.lineage_view import LABEL_ZOOM, LineageView
from ui.thumbnail_loader import CoreThumbnails


@pytest.fixture
def bridge(core: CoreLoop) -> CoreBridge:
    return CoreBridge(core)


@pytest.fixture
def world(library: Library) -> dict[str, int]:
    async def build() -> dict[str, int]:
        async with library.sessions() as session, session.begin():
            return await build_demo_like(session)

    return library.core.run(build(), timeout=30)


@pytest.fixture
def view(qtbot: QtBot, library: Library, bridge: CoreBridge) -> LineageView:
    widget = LineageView(bridge, LineageGraphService(library.sessions))
    qtbot.addWidget(widget)
    widget.resize(1100, 700)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def show(qtbot: QtBot, view: LineageView, action: Callable[[], object]) -> tuple[int, int]:
    """Do ``action`` and wait until the view shows the graph it loads; its node and edge counts."""
    with qtbot.waitSignal(view.graph_shown, timeout=10_000) as blocker:
        action()
    nodes, edges = blocker.args or (0, 0)
    view.canvas.viewport().repaint()
    return nodes, edges


def by_name(world: dict[str, int], ids: Iterable[int]) -> set[str]:
    names = {v: k for k, v in world.items()}
    return {names[i] for i in ids}


def click_node(qtbot: QtBot, view: LineageView, asset_id: int, *, double: bool = False) -> None:
    layout = view.canvas.item.layout
    assert layout is not None
    x, y = layout.position(asset_id)
    point: QPoint = view.canvas.mapFromScene(x, y)
    if double:
        qtbot.mouseDClick(view.canvas.viewport(), Qt.MouseButton.LeftButton, pos=point)
    else:
        qtbot.mouseClick(view.canvas.viewport(), Qt.MouseButton.LeftButton, pos=point)


def test_the_neighbourhood_of_the_selected_asset_is_drawn_centred_with_a_legend(
    qtbot: QtBot, view: LineageView, world: dict[str, int]
) -> None:
    nodes, edges = show(qtbot, view, lambda: view.show_asset(world["storyboard"]))
    assert (nodes, edges) == (4, 3)
    assert view.graph is not None
    assert by_name(world, view.graph.nodes) == {"storyboard", "dusk", "keeper", "night"}
    # Every node is on screen as a card, and the storyboard (the focus) is in the middle.
    assert view.canvas.item.painted_nodes == 4
    layout = view.canvas.item.layout
    assert layout is not None
    centre = view.canvas.mapFromScene(*layout.position(world["storyboard"]))
    viewport = view.canvas.viewport().rect()
    assert abs(centre.x() - viewport.center().x()) < 4 and abs(centre.y() - viewport.center().y()) < 4
    # Three keyframe parents above their child.
    assert all(
        layout.position(world[p])[1] < layout.position(world["storyboard"])[1]
        for p in ("dusk", "keeper", "night")
    )
    assert view.legend.isVisible()
    assert view.legend.entries == ["text to video (storyboard keyframes)"]
    assert "4 assets, 3 edges" in view.status.text()


def test_keyframe_and_extend_edges_show_their_frame_and_time(
    qtbot: QtBot, view: LineageView, world: dict[str, int]
) -> None:
    show(qtbot, view, lambda: view.show_asset(world["storyboard"]))
    view.canvas.set_zoom(max(LABEL_ZOOM, 0.9))
    view.canvas.centre_on(world["storyboard"])
    view.canvas.viewport().repaint()
    assert sorted(view.canvas.item.painted_labels) == [
        "keyframe #1 @ 0.5 s",
        "keyframe #2 @ 1.5 s",
        "keyframe #3 @ 2.5 s",
    ]
    show(qtbot, view, lambda: view.show_asset(world["story"]))
    view.canvas.viewport().repaint()
    assert view.canvas.item.painted_labels == ["from 2.5 s", "from 2.5 s"]
    # Zoomed far out the labels (unreadable) are not drawn, the nodes still are, as boxes.
    view.canvas.set_zoom(0.05)
    view.canvas.viewport().repaint()
    assert view.canvas.item.painted_labels == [] and view.canvas.item.painted_nodes == 0


def test_click_selects_and_double_click_opens_and_recentres(
    qtbot: QtBot, view: LineageView, world: dict[str, int]
) -> None:
    show(qtbot, view, lambda: view.show_asset(world["story"]))
    with qtbot.waitSignal(view.asset_selected, timeout=2000) as selected:
        click_node(qtbot, view, world["stay"])
    assert selected.args == [world["stay"]]
    assert view.selected_id == world["stay"]
    # The grid echoing the selection back does not reload the graph.
    view.show_asset(world["stay"])
    assert view.focus_id == world["story"]
    qtbot.wait(200)  # past the double-click interval
    with qtbot.waitSignals([view.asset_activated, view.graph_shown], timeout=10_000):
        click_node(qtbot, view, world["stay"], double=True)
    assert view.focus_id == world["stay"]
    assert view.graph is not None and world["remix"] in view.graph.nodes


def test_hops_change_the_node_count(qtbot: QtBot, view: LineageView, world: dict[str, int]) -> None:
    view.hops.setValue(1)
    nodes, _ = show(qtbot, view, lambda: view.show_asset(world["story"]))
    assert nodes == 3
    nodes, _ = show(qtbot, view, lambda: view.hops.setValue(2))
    assert nodes == 4
    assert view.graph is not None and world["remix"] in view.graph.nodes


def test_filters_hide_edges_and_the_whole_library_shows_everything_with_lineage(
    qtbot: QtBot, view: LineageView, world: dict[str, int]
) -> None:
    view.hops.setValue(3)
    show(qtbot, view, lambda: view.show_asset(world["story"]))
    assert view.graph is not None and {e.operation for e in view.graph.edges} == {"video_extend", "remix"}
    menu = view.operation_button.menu()
    assert menu is not None
    extend = next(a for a in menu.actions() if a.data() == "video_extend")
    nodes, edges = show(qtbot, view, extend.trigger)
    assert view.graph_filter == GraphFilter(operations=frozenset({"video_extend"}))
    assert (nodes, edges) == (3, 2) and world["remix"] not in view.graph.nodes
    assert view.operation_button.text() == "Operations (1)"
    view.set_filter(GraphFilter())
    nodes, edges = show(qtbot, view, lambda: view.whole_library.setChecked(True))
    assert (nodes, edges) == (13, 11)
    assert not view.hops.isEnabled()
    assert set(view.legend.entries) >= {"extend", "transition", "remix", "image to video"}
    providers = view.provider_button.menu()
    assert providers is not None
    pixverse = next(a for a in providers.actions() if a.data() == "pixverse")
    nodes, edges = show(qtbot, view, pixverse.trigger)
    assert (nodes, edges) == (2, 1)


def test_thumbnails_are_requested_for_visible_nodes_and_drawn(
    qtbot: QtBot, core: CoreLoop, library: Library, view: LineageView, tmp_path: Path
) -> None:
    store = ContentStore(tmp_path / "store")
    store.ensure_dirs()
    png = tmp_path / "still.png"
    png.write_bytes(tiny_png(5, size=(160, 90)))
    sha, _, _ = store.add_file(png, "png")

    async def build() -> ThumbnailService:
        return ThumbnailService(ThumbnailStore(tmp_path / "thumbs"))

    service = core.run(build(), timeout=10)
    try:
        parent = library.add_assets(1, media_type=MediaType.IMAGE, sha256=sha, mime_type="image/png")[0]

        async def link() -> int:
            async with library.sessions() as session, session.begin():
                made = await add_asset(session)
                await add_edge(session, parent, made.id, "image_to_video", "source")
                return made.id

        child = core.run(link(), timeout=10)
        view.set_loader(CoreThumbnails(store, service))
        show(qtbot, view, lambda: view.show_asset(child))
        qtbot.waitUntil(lambda: view.cache.get((parent, "thumb")) is not None, timeout=10_000)
        # The video has no local file: marked failed, never asked again.
        qtbot.waitUntil(lambda: view.cache.failed((child, "thumb")), timeout=10_000)
        assert view.canvas.pending_thumbnails == 0
        image = view.canvas.grab().toImage()
        layout = view.canvas.item.layout
        assert layout is not None
        spot = view.canvas.mapFromScene(*layout.position(parent))
        pixel = image.pixelColor(spot.x(), spot.y() - 10)
        assert pixel.saturation() > 40, "the node shows the picture, not the grey placeholder"
    finally:
        core.run(service.aclose(), timeout=30)
