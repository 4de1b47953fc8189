"""The lineage graph view: assets as thumbnail cards in layers (parents above children), typed edges
coloured by operation, centred on the selected asset's N-hop neighbourhood or showing the whole library.

One ``GraphItem`` paints the whole graph, only what is exposed: zoomed out, nodes and edges are drawn
from per-tile batches (rectangles and paths built once per layout, one call per colour and tile);
zoomed in, the few visible nodes are drawn as cards with thumbnails, names, arrowheads and the
frame / time labels of keyframe, extend and transition edges. Thumbnails come from the grid's cache
and loader (same keys) and are requested only for visible nodes at a zoom where they are readable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QBrush,
    QColor,
    QFont,
    QFontMetrics,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPalette,
    QPen,
    QPolygonF,
    QShowEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QGraphicsItem,
    QGraphicsScene,
    QGraphicsView,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMenu,
    QSpinBox,
    QStyleOptionGraphicsItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.db.enums import MediaType
from core.lineage_graph import (
    MAX_HOPS,
    GraphEdge,
    GraphFilter,
    GraphLayout,
    GraphNode,
    LineageGraph,
    LineageGraphService,
    layout_graph,
)
from ui.bridge import CoreBridge
from ui.library_grid import ThumbnailLoader, badge_colour
from ui.thumbnail_cache import ThumbnailCache

# Zoom (scene → screen scale) at and above which nodes are drawn as cards with names and thumbnails.
DETAIL_ZOOM = 0.38
LABEL_ZOOM = 0.5  # edge labels and arrowheads
MIN_ZOOM, MAX_ZOOM = 0.01, 4.0
DEFAULT_ZOOM = 0.8
TILE = 2400.0  # scene units per side of a batch tile
THUMB_REQUESTS_IN_FLIGHT = 32
SETTLE_MS = 90
SCENE_PADDING = 3000.0

_OPERATION_COLOURS = {
    "text_to_video": "#4e79a7",
    "image_to_video": "#59a14f",
    "video_extend": "#f28e2b",
    "transition": "#b07aa1",
    "remix": "#e15759",
    "edit": "#76b7b2",
    "image_edit": "#76b7b2",
    "text_to_image": "#edc948",
    "import": "#9c9c9c",
}
_OPERATION_NAMES = {
    "text_to_video": "text to video (storyboard keyframes)",
    "image_to_video": "image to video",
    "video_extend": "extend",
    "transition": "transition",
    "remix": "remix",
    "edit": "edit",
    "image_edit": "image edit",
    "text_to_image": "text to image",
    "import": "import",
}
_TYPE_LABEL = {
    MediaType.VIDEO: "VIDEO",
    MediaType.IMAGE: "IMAGE",
    MediaType.AUDIO: "AUDIO",
    MediaType.MODEL_3D: "3D",
}


def operation_colour(operation: str) -> QColor:
    known = _OPERATION_COLOURS.get(operation)
    if known:
        return QColor(known)
    # Plugins' own operations: a stable colour per name (not Python's salted hash).
    return QColor.fromHsv(sum(map(ord, operation)) * 47 % 360, 150, 210)


def operation_name(operation: str) -> str:
    return _OPERATION_NAMES.get(operation, operation.replace("_", " "))


# -- what the item draws --------------------------------------------------------------------------------


@dataclass
class _Tile:
    bounds: QRectF
    node_rects: dict[str, list[QRectF]]  # fill colour name → boxes
    edge_paths: dict[str, QPainterPath]  # operation → polylines


class GraphItem(QGraphicsItem):
    """The whole graph as one item: it paints the exposed part only, at the detail the zoom allows."""

    def __init__(self, view: LineageCanvas) -> None:
        super().__init__()
        self._view = view
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.graph: LineageGraph | None = None
        self.layout: GraphLayout | None = None
        self.nodes: list[GraphNode] = []
        self.edges: tuple[GraphEdge, ...] = ()
        self.selected_id: int | None = None
        self.detail_enabled = True  # the benchmark's baseline turns level of detail off
        self._bounds = QRectF()
        self._tiles: list[_Tile] = []
        self._edge_box = np.zeros((0, 4))
        self._labels: list[str | None] = []
        self._label_at: list[float] = []
        self._incident: dict[int, list[int]] = {}
        self._name_cache: dict[tuple[int, int], str] = {}
        # What the last paint drew in detail (tests and the benchmark read them).
        self.painted_nodes = 0
        self.painted_labels: list[str] = []

    # -- data ---------------------------------------------------------------------------------

    def set_graph(self, graph: LineageGraph, layout: GraphLayout) -> None:
        self.prepareGeometryChange()
        self.graph, self.layout = graph, layout
        self.nodes = [graph.nodes[int(i)] for i in layout.node_ids]
        self.edges = graph.edges
        s = layout.spacing
        margin = max(s.node_width, s.node_height)
        self._bounds = QRectF(-margin, -margin, layout.width + 2 * margin, layout.height + 2 * margin)
        self._name_cache.clear()
        fps = {n.id: n.fps for n in self.nodes}
        self._labels = [e.label(fps.get(e.child_id)) for e in self.edges]
        self._incident = {}
        boxes = np.zeros((len(self.edges), 4))
        for i, route in enumerate(layout.routes):
            edge = self.edges[i]
            self._incident.setdefault(edge.parent_id, []).append(i)
            self._incident.setdefault(edge.child_id, []).append(i)
            if len(route):
                boxes[i] = (route[:, 0].min(), route[:, 1].min(), route[:, 0].max(), route[:, 1].max())
        self._edge_box = boxes
        self._label_at = self._label_positions()
        self._build_tiles()
        self.update()

    def _label_positions(self) -> list[float]:
        """Where along its last segment each edge's label sits (0 = parent end, 1 = child end).

        The parents of a storyboard or transition converge on one point, so their labels are spread
        from 0.2 to 0.8 in the order of the parents' x: each at its own height, none on another.
        """
        layout = self.layout
        assert layout is not None
        into: dict[int, list[int]] = {}
        for i, edge in enumerate(self.edges):
            if self._labels[i]:
                into.setdefault(edge.child_id, []).append(i)
        at = [0.55] * len(self.edges)
        for labelled in into.values():
            if len(labelled) < 2:
                continue
            labelled.sort(key=lambda i: (layout.position(self.edges[i].parent_id)[0], i))
            for k, i in enumerate(labelled):
                at[i] = 0.2 + 0.6 * k / (len(labelled) - 1)
        return at

    def _build_tiles(self) -> None:
        """Group node boxes (by fill colour) and edge polylines (by operation) into tiles, once."""
        layout = self.layout
        assert layout is not None
        s = layout.spacing
        hw, hh = s.node_width / 2, s.node_height / 2
        tiles: dict[tuple[int, int], _Tile] = {}

        def tile_at(x: float, y: float) -> _Tile:
            key = (int(x // TILE), int(y // TILE))
            tile = tiles.get(key)
            if tile is None:
                tile = tiles[key] = _Tile(QRectF(), {}, {})
            return tile

        for i, node in enumerate(self.nodes):
            x, y = float(layout.x[i]), float(layout.y[i])
            tile = tile_at(x, y)
            box = QRectF(x - hw, y - hh, s.node_width, s.node_height)
            tile.node_rects.setdefault(_fill_name(node), []).append(box)
            tile.bounds = tile.bounds.united(box) if not tile.bounds.isNull() else box
        for i, edge in enumerate(self.edges):
            route = layout.routes[i]
            if len(route) < 2:
                continue
            x0, y0, x1, y1 = self._edge_box[i]
            tile = tile_at((x0 + x1) / 2, (y0 + y1) / 2)
            path = tile.edge_paths.setdefault(edge.operation, QPainterPath())
            path.moveTo(float(route[0, 0]), float(route[0, 1]))
            for px, py in route[1:].tolist():
                path.lineTo(px, py)
            box = QRectF(x0, y0, max(1.0, x1 - x0), max(1.0, y1 - y0))
            tile.bounds = tile.bounds.united(box) if not tile.bounds.isNull() else box
        self._tiles = list(tiles.values())

    def image_of(self, node: GraphNode) -> QImage | None:
        return self._view.cache.get(node.thumbnail_key)

    # -- QGraphicsItem --------------------------------------------------------------------------

    def boundingRect(self) -> QRectF:
        return self._bounds

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        layout = self.layout
        if layout is None or not self.nodes:
            return
        exposed: QRectF = option.exposedRect
        zoom = QStyleOptionGraphicsItem.levelOfDetailFromTransform(painter.worldTransform())
        visible = self._visible_nodes(exposed)
        self.painted_nodes = 0
        self.painted_labels = []
        if zoom >= DETAIL_ZOOM or not self.detail_enabled:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            self._paint_edges_detailed(painter, exposed, zoom)
            self._paint_cards(painter, visible, zoom)
        else:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
            self._paint_batches(painter, exposed, zoom)
        self._paint_selection(painter, zoom)

    def _visible_nodes(self, rect: QRectF) -> np.ndarray:
        layout = self.layout
        assert layout is not None
        hw, hh = layout.spacing.node_width / 2, layout.spacing.node_height / 2
        x, y = layout.x, layout.y
        mask = (
            (x + hw >= rect.left())
            & (x - hw <= rect.right())
            & (y + hh >= rect.top())
            & (y - hh <= rect.bottom())
        )
        return np.nonzero(mask)[0]

    def _visible_edges(self, rect: QRectF) -> np.ndarray:
        b = self._edge_box
        mask = (
            (b[:, 2] >= rect.left())
            & (b[:, 0] <= rect.right())
            & (b[:, 3] >= rect.top())
            & (b[:, 1] <= rect.bottom())
        )
        return np.nonzero(mask)[0]

    def _paint_batches(self, painter: QPainter, exposed: QRectF, zoom: float) -> None:
        """Zoomed out: each tile's edges as one path per operation, its nodes as rectangles per colour."""
        tiles = [t for t in self._tiles if t.bounds.intersects(exposed)]
        painter.setBrush(Qt.BrushStyle.NoBrush)
        pens: dict[str, QPen] = {}
        for tile in tiles:
            for operation, path in tile.edge_paths.items():
                pen = pens.get(operation)
                if pen is None:
                    # Cosmetic: one device pixel at any zoom, the cheapest line to draw.
                    pen = pens[operation] = QPen(operation_colour(operation), 1.0)
                    pen.setCosmetic(True)
                painter.setPen(pen)
                painter.drawPath(path)
        painter.setPen(Qt.PenStyle.NoPen)
        for tile in tiles:
            for fill, rects in tile.node_rects.items():
                painter.setBrush(QColor(fill))
                painter.drawRects(rects)

    def _paint_edges_detailed(self, painter: QPainter, exposed: QRectF, zoom: float) -> None:
        layout = self.layout
        assert layout is not None
        width = max(1.5, 1.5 / zoom)
        arrows = zoom >= LABEL_ZOOM or not self.detail_enabled
        font = QFont(painter.font())
        font.setPointSizeF(8.0)
        metrics = QFontMetrics(font)
        labels: list[tuple[QPointF, str, QColor]] = []
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for i in self._visible_edges(exposed).tolist():
            route = layout.routes[i]
            if len(route) < 2:
                continue
            edge = self.edges[i]
            colour = operation_colour(edge.operation)
            pen = QPen(colour, width)
            if edge.role == "keyframe":
                pen.setStyle(Qt.PenStyle.DashLine)
            painter.setPen(pen)
            points = [QPointF(px, py) for px, py in route.tolist()]
            painter.drawPolyline(points)
            if arrows:
                _arrowhead(painter, points[-2], points[-1], colour, 9.0)
                label = self._labels[i]
                if label:
                    a, b = points[-2], points[-1]
                    labels.append((a + (b - a) * self._label_at[i], label, colour))
        painter.setFont(font)
        self.painted_labels = [label for _, label, _ in labels]
        for point, label, colour in labels:
            w = metrics.horizontalAdvance(label) + 10
            box = QRectF(point.x() - w / 2, point.y() - 9, w, 18)
            painter.setPen(QPen(colour, 1.2))
            painter.setBrush(QColor(30, 32, 38, 225))
            painter.drawRoundedRect(box, 9, 9)
            painter.setPen(QColor(235, 235, 240))
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, label)

    def _paint_cards(self, painter: QPainter, visible: np.ndarray, zoom: float) -> None:
        layout = self.layout
        assert layout is not None
        s = layout.spacing
        hw, hh = s.node_width / 2, s.node_height / 2
        palette: QPalette = self._view.palette()
        base = palette.color(QPalette.ColorRole.Base)
        text_colour = palette.color(QPalette.ColorRole.Text)
        name_font = QFont(painter.font())
        name_font.setPointSizeF(9.0)
        name_font.setWeight(QFont.Weight.DemiBold)
        metrics = QFontMetrics(name_font)
        type_font = QFont(name_font)
        type_font.setPointSizeF(11.0)
        badge_font = QFont(name_font)
        badge_font.setPointSizeF(7.0)
        badge_font.setWeight(QFont.Weight.Bold)
        focus_id = self.graph.focus_id if self.graph else None
        thumbs = zoom >= DETAIL_ZOOM
        wanted: list[GraphNode] = []
        for i in visible.tolist():
            node = self.nodes[i]
            x, y = float(layout.x[i]) - hw, float(layout.y[i]) - hh
            card = QRectF(x, y, s.node_width, s.node_height)
            painter.setPen(QPen(QColor(90, 96, 110), 1.0))
            painter.setBrush(base)
            painter.drawRoundedRect(card, 7, 7)
            thumb = QRectF(x + 5, y + 5, s.node_width - 10, s.node_height - 32)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(38, 40, 46))
            painter.drawRoundedRect(thumb, 4, 4)
            image = self.image_of(node) if thumbs else None
            if image is not None and not image.isNull():
                painter.drawImage(_fit(image.size(), thumb), image)
            else:
                if thumbs and not self._view.cache.failed(node.thumbnail_key):
                    wanted.append(node)
                painter.setPen(QColor(150, 156, 168))
                painter.setFont(type_font)
                painter.drawText(thumb, Qt.AlignmentFlag.AlignCenter, _TYPE_LABEL.get(node.media_type, "?"))
            # Provider badge, top right, as on the grid's cards.
            painter.setFont(badge_font)
            tag = node.provider_id[:2].upper()
            badge = QRectF(thumb.right() - 26, thumb.top() + 4, 22, 14)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(badge_colour(node.provider_id))
            painter.drawRoundedRect(badge, 7, 7)
            painter.setPen(QColor("white"))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, tag)
            painter.setFont(name_font)
            painter.setPen(text_colour)
            name_rect = QRectF(x + 7, thumb.bottom() + 3, s.node_width - 14, 22)
            key = (node.id, int(name_rect.width()))
            name = self._name_cache.get(key)
            if name is None:
                name = self._name_cache[key] = metrics.elidedText(
                    node.name, Qt.TextElideMode.ElideRight, int(name_rect.width())
                )
            painter.drawText(name_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, name)
            if node.id == focus_id:
                painter.setPen(QPen(QColor(240, 200, 80), 2.5))
                painter.setBrush(Qt.BrushStyle.NoBrush)
                painter.drawRoundedRect(card.adjusted(-3, -3, 3, 3), 9, 9)
            self.painted_nodes += 1
        if wanted:
            self._view.want_thumbnails(wanted)

    def _paint_selection(self, painter: QPainter, zoom: float) -> None:
        """The selected node's edges on top, thick, and a ring around it."""
        layout = self.layout
        if layout is None or self.selected_id is None or self.selected_id not in layout.index_of:
            return
        highlight = self._view.palette().color(QPalette.ColorRole.Highlight)
        width = max(3.0, 3.0 / zoom)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for i in self._incident.get(self.selected_id, []):
            route = layout.routes[i]
            if len(route) < 2:
                continue
            colour = operation_colour(self.edges[i].operation).lighter(130)
            painter.setPen(QPen(colour, width))
            points = [QPointF(px, py) for px, py in route.tolist()]
            painter.drawPolyline(points)
            _arrowhead(painter, points[-2], points[-1], colour, max(10.0, 10.0 / zoom))
        x, y = layout.position(self.selected_id)
        s = layout.spacing
        ring = QRectF(x - s.node_width / 2, y - s.node_height / 2, s.node_width, s.node_height)
        painter.setPen(QPen(highlight, max(3.0, 3.0 / zoom)))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(ring.adjusted(-4, -4, 4, 4), 10, 10)

    def node_at(self, point: QPointF) -> int | None:
        layout = self.layout
        if layout is None or not len(layout.x):
            return None
        hw, hh = layout.spacing.node_width / 2, layout.spacing.node_height / 2
        hit = np.nonzero((np.abs(layout.x - point.x()) <= hw) & (np.abs(layout.y - point.y()) <= hh))[0]
        return int(layout.node_ids[hit[0]]) if len(hit) else None

    def node_rect(self, node_id: int) -> QRectF:
        layout = self.layout
        assert layout is not None
        x, y = layout.position(node_id)
        s = layout.spacing
        return QRectF(
            x - s.node_width / 2 - 6, y - s.node_height / 2 - 6, s.node_width + 12, s.node_height + 12
        )

    def edge_labels(self) -> list[str]:
        """Every edge label of the graph (what cards show when zoomed in), for tests and tooltips."""
        return [label for label in self._labels if label]


def _fill_name(node: GraphNode) -> str:
    return badge_colour(node.provider_id).darker(115).name()


def _arrowhead(painter: QPainter, a: QPointF, b: QPointF, colour: QColor, size: float) -> None:
    dx, dy = b.x() - a.x(), b.y() - a.y()
    length = math.hypot(dx, dy) or 1.0
    ux, uy = dx / length, dy / length
    left = QPointF(b.x() - ux * size - uy * size * 0.5, b.y() - uy * size + ux * size * 0.5)
    right = QPointF(b.x() - ux * size + uy * size * 0.5, b.y() - uy * size - ux * size * 0.5)
    painter.save()
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(colour)
    painter.drawPolygon(QPolygonF([b, left, right]))
    painter.restore()


def _fit(size: QSize, box: QRectF) -> QRectF:
    if size.isEmpty():
        return box
    scale = min(box.width() / size.width(), box.height() / size.height())
    w, h = size.width() * scale, size.height() * scale
    return QRectF(box.left() + (box.width() - w) / 2, box.top() + (box.height() - h) / 2, w, h)


# -- the canvas ------------------------------------------------------------------------------------------


class LineageCanvas(QGraphicsView):
    """Zoom (wheel, +/-), pan (drag), click to select, double-click to open; thumbnails on demand."""

    node_clicked = Signal(int)
    node_double_clicked = Signal(int)
    zoom_changed = Signal(float)

    def __init__(self, cache: ThumbnailCache, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lineageCanvas")
        self.cache = cache
        self.loader: ThumbnailLoader | None = None
        self.bridge: CoreBridge | None = None
        self.graph_scene = QGraphicsScene(self)
        # One item: the scene's BSP index has nothing to do.
        self.graph_scene.setItemIndexMethod(QGraphicsScene.ItemIndexMethod.NoIndex)
        self.item = GraphItem(self)
        self.graph_scene.addItem(self.item)
        self.setScene(self.graph_scene)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setOptimizationFlag(QGraphicsView.OptimizationFlag.DontAdjustForAntialiasing, True)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.MinimalViewportUpdate)
        self.setBackgroundBrush(QBrush(QColor(28, 30, 35)))
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        self._press: QPointF | None = None
        self._pending: dict[tuple[int, str], concurrent.futures.Future[Any]] = {}
        self._wanted: dict[tuple[int, str], GraphNode] = {}
        self._request_timer = QTimer(self)
        self._request_timer.setSingleShot(True)
        self._request_timer.setInterval(SETTLE_MS)
        self._request_timer.timeout.connect(self._request_wanted)
        self.horizontalScrollBar().valueChanged.connect(self._moved)
        self.verticalScrollBar().valueChanged.connect(self._moved)

    # -- zoom ------------------------------------------------------------------------------------

    @property
    def zoom(self) -> float:
        return float(self.transform().m11())

    def set_zoom(self, zoom: float, anchor: QPointF | None = None) -> None:
        zoom = min(MAX_ZOOM, max(MIN_ZOOM, zoom))
        factor = zoom / self.zoom
        if abs(factor - 1) < 1e-9:
            return
        if anchor is None:
            previous = self.transformationAnchor()
            self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
            self.scale(factor, factor)
            self.setTransformationAnchor(previous)
        else:
            self.scale(factor, factor)
        self.zoom_changed.emit(self.zoom)

    def zoom_in(self) -> None:
        self.set_zoom(self.zoom * 1.25)

    def zoom_out(self) -> None:
        self.set_zoom(self.zoom / 1.25)

    def fit(self) -> None:
        bounds = self.item.boundingRect()
        if bounds.isEmpty():
            return
        self.fitInView(bounds, Qt.AspectRatioMode.KeepAspectRatio)
        if self.zoom > DEFAULT_ZOOM:
            self.set_zoom(DEFAULT_ZOOM)
        self.centerOn(bounds.center())
        self.zoom_changed.emit(self.zoom)

    def wheelEvent(self, event: QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120
        if steps:
            self.set_zoom(self.zoom * 1.15**steps, event.position())
            event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_in()
        elif key == Qt.Key.Key_Minus:
            self.zoom_out()
        elif key == Qt.Key.Key_0:
            self.fit()
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    # -- selection -------------------------------------------------------------------------------

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._press = event.position()
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        super().mouseReleaseEvent(event)
        press, self._press = self._press, None
        if event.button() != Qt.MouseButton.LeftButton or press is None:
            return
        if (event.position() - press).manhattanLength() > 4:
            return  # a drag that panned
        node = self.item.node_at(self.mapToScene(event.position().toPoint()))
        if node is not None:
            self.node_clicked.emit(node)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        node = self.item.node_at(self.mapToScene(event.position().toPoint()))
        if event.button() == Qt.MouseButton.LeftButton and node is not None:
            self.node_double_clicked.emit(node)
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def select(self, node_id: int | None) -> None:
        item = self.item
        previous, item.selected_id = item.selected_id, node_id
        if previous != node_id:
            item.update()  # its edges may cross the whole view

    def centre_on(self, node_id: int) -> None:
        if self.item.layout is not None and node_id in self.item.layout.index_of:
            x, y = self.item.layout.position(node_id)
            self.centerOn(x, y)

    # -- thumbnails ------------------------------------------------------------------------------

    def want_thumbnails(self, nodes: Iterable[GraphNode]) -> None:
        """Called while painting: these visible nodes lack thumbnails. Asked for once the view is still."""
        if self.loader is None or self.bridge is None:
            return
        for node in nodes:
            key = node.thumbnail_key
            if key not in self._pending:
                self._wanted[key] = node
        if self._wanted and not self._request_timer.isActive():
            self._request_timer.start()

    def _moved(self, _value: int) -> None:
        # Scrolling: hold requests until the view pauses (nodes fly past faster than they render).
        if self._wanted:
            self._request_timer.start()

    def _request_wanted(self) -> None:
        loader, bridge = self.loader, self.bridge
        if loader is None or bridge is None:
            return
        visible = self.mapToScene(self.viewport().rect()).boundingRect()
        shown = {self.item.nodes[i].thumbnail_key for i in self.item._visible_nodes(visible).tolist()}
        # Requests for nodes scrolled away are cancelled (not rendered yet: cheap).
        for key in [k for k in self._pending if k not in shown]:
            self._pending.pop(key).cancel()
        wanted, self._wanted = self._wanted, {}
        for key, node in wanted.items():
            if key not in shown or key in self._pending or self.cache.get(key) is not None:
                continue
            if len(self._pending) >= THUMB_REQUESTS_IN_FLIGHT:
                self._wanted[key] = node  # next round
                continue
            self._pending[key] = bridge.call(
                loader.thumbnail(node.card),
                functools.partial(self._landed, key, node.id),
                functools.partial(self._not_landed, key, node.id),
            )
        if self._wanted:
            self._request_timer.start()

    def _landed(self, key: tuple[int, str], node_id: int, image: QImage | None) -> None:
        self._pending.pop(key, None)
        if image is None or image.isNull():
            self.cache.mark_failed(key)
        else:
            self.cache.put(key, image)
        layout = self.item.layout
        if layout is not None and node_id in layout.index_of:
            self.item.update(self.item.node_rect(node_id))

    def _not_landed(self, key: tuple[int, str], node_id: int, _error: BaseException) -> None:
        self._landed(key, node_id, None)

    def cancel_thumbnails(self) -> None:
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        self._wanted.clear()

    @property
    def pending_thumbnails(self) -> int:
        return len(self._pending)


# -- the legend ------------------------------------------------------------------------------------------


class LineageLegend(QFrame):
    """Which colour is which operation (for the edges shown), and what the marks mean."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lineageLegend")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self._column = QVBoxLayout(self)
        self._column.setContentsMargins(8, 6, 8, 6)
        self._column.setSpacing(2)
        self.entries: list[str] = []

    def set_operations(self, operations: Iterable[str]) -> None:
        while self._column.count():
            child = self._column.takeAt(0)
            widget = child.widget() if child is not None else None
            if widget is not None:
                widget.deleteLater()
        self.entries = []
        title = QLabel("<b>Edges</b>")
        self._column.addWidget(title)
        for operation in operations:
            colour = operation_colour(operation).name()
            name = operation_name(operation)
            label = QLabel(f'<span style="color:{colour}">━━</span> {name}')
            label.setObjectName(f"legend_{operation}")
            self._column.addWidget(label)
            self.entries.append(name)
        for text in (
            "┅┅ keyframe (frame @ time)",
            "▭ gold ring: centre asset",
            "▭ blue ring: selected",
            "boxes zoomed out: provider colour",
        ):
            note = QLabel(text)
            note.setStyleSheet("color: #9aa0ac")
            self._column.addWidget(note)
        self.adjustSize()


# -- the panel ---------------------------------------------------------------------------------------------


class LineageView(QWidget):
    """The lineage panel: controls (hops, whole library, filters, zoom) over the graph canvas."""

    asset_selected = Signal(int)
    asset_activated = Signal(int)
    graph_shown = Signal(int, int)  # nodes, edges: a graph was laid out and shown
    load_failed = Signal(str)

    def __init__(
        self,
        bridge: CoreBridge,
        service: LineageGraphService | None = None,
        cache: ThumbnailCache | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("lineageView")
        self._bridge = bridge
        self._service = service
        self._filter = GraphFilter()
        self._focus_id: int | None = None
        self._generation = 0
        self._dirty = False
        self.include_age_restricted = False
        self.graph: LineageGraph | None = None

        self.hops = QSpinBox()
        self.hops.setObjectName("lineageHops")
        self.hops.setRange(1, MAX_HOPS)
        self.hops.setValue(2)
        self.hops.setPrefix("Hops: ")
        self.hops.setToolTip("How many generations above and below the selected asset to show")
        self.whole_library = QCheckBox("Whole library")
        self.whole_library.setObjectName("lineageWholeLibrary")
        self.provider_button = _filter_button("Providers")
        self.operation_button = _filter_button("Operations")
        self.zoom_out_button = _tool_button("−", "Zoom out (−)")
        self.zoom_in_button = _tool_button("+", "Zoom in (+)")
        self.fit_button = _tool_button("Fit", "Show the whole graph (0)")
        self.status = QLabel("Select an asset to see its lineage.")
        self.status.setObjectName("lineageStatus")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        for widget in (
            self.hops,
            self.whole_library,
            self.provider_button,
            self.operation_button,
        ):
            bar.addWidget(widget)
        bar.addWidget(self.status, 1)
        for widget in (self.zoom_out_button, self.zoom_in_button, self.fit_button):
            bar.addWidget(widget)

        self.cache = cache or ThumbnailCache()
        self.canvas = LineageCanvas(self.cache)
        self.canvas.bridge = bridge
        self.legend = LineageLegend()
        stack = QGridLayout()
        stack.setContentsMargins(0, 0, 0, 0)
        stack.addWidget(self.canvas, 0, 0)
        stack.addWidget(self.legend, 0, 0, Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignRight)
        self.legend.setContentsMargins(0, 0, 0, 0)
        column = QVBoxLayout(self)
        column.setContentsMargins(4, 4, 4, 4)
        column.setSpacing(4)
        column.addLayout(bar)
        column.addLayout(stack, 1)

        self.hops.valueChanged.connect(lambda _: self.reload())
        self.whole_library.toggled.connect(self._whole_library_toggled)
        self.zoom_in_button.clicked.connect(self.canvas.zoom_in)
        self.zoom_out_button.clicked.connect(self.canvas.zoom_out)
        self.fit_button.clicked.connect(self.canvas.fit)
        self.canvas.node_clicked.connect(self._clicked)
        self.canvas.node_double_clicked.connect(self._activated)

    # -- inputs ----------------------------------------------------------------------------------

    def set_service(self, service: LineageGraphService) -> None:
        self._service = service
        self.reload()

    def set_loader(self, loader: ThumbnailLoader | None) -> None:
        self.canvas.loader = loader
        self.canvas.item.update()

    def set_include_age_restricted(self, include: bool) -> None:
        if include != self.include_age_restricted:
            self.include_age_restricted = include
            self.reload()

    @property
    def focus_id(self) -> int | None:
        return self._focus_id

    @property
    def selected_id(self) -> int | None:
        return self.canvas.item.selected_id

    def show_asset(self, asset_id: int) -> None:
        """Follow the library's selection: select it here; centre the neighbourhood on it unless it
        is the node just chosen in this view (the grid echoing our own click)."""
        if asset_id == self.selected_id and self.graph is not None and asset_id in self.graph.nodes:
            return
        self.canvas.select(asset_id)
        if self.whole_library.isChecked() and self.graph is not None and asset_id in self.graph.nodes:
            self.canvas.centre_on(asset_id)
            return
        self._focus_id = asset_id
        self.reload()

    def set_filter(self, graph_filter: GraphFilter) -> None:
        if graph_filter != self._filter:
            self._filter = graph_filter
            self.reload()

    @property
    def graph_filter(self) -> GraphFilter:
        return self._filter

    # -- loading ---------------------------------------------------------------------------------

    def reload(self) -> None:
        """Load and lay out the graph again (on the core loop and a worker thread; the GUI stays free)."""
        service = self._service
        whole = self.whole_library.isChecked()
        if service is None or (not whole and self._focus_id is None):
            return
        if not self.isVisible():
            self._dirty = True  # a hidden dock loads when it is shown
            return
        self._dirty = False
        self._generation += 1
        generation = self._generation
        focus, hops, graph_filter, gated = (
            self._focus_id,
            self.hops.value(),
            self._filter,
            self.include_age_restricted,
        )
        self.status.setText("Loading lineage…")

        async def load() -> tuple[LineageGraph, GraphLayout]:
            if whole:
                graph = await service.whole_library(graph_filter=graph_filter, include_age_restricted=gated)
            else:
                assert focus is not None
                graph = await service.neighbourhood(
                    focus, hops, graph_filter=graph_filter, include_age_restricted=gated
                )
            pairs = [(e.parent_id, e.child_id) for e in graph.edges]
            # Laid out on a worker thread: the core loop keeps serving the grid meanwhile.
            layout = await asyncio.to_thread(
                layout_graph, list(graph.nodes), pairs, first_component_of=graph.focus_id or focus
            )
            return graph, layout

        self._bridge.call(
            load(),
            lambda result: self._loaded(generation, *result),
            lambda error: self._failed(generation, error),
        )

    def _loaded(self, generation: int, graph: LineageGraph, layout: GraphLayout) -> None:
        if generation == self._generation:
            self.show_graph(graph, layout)

    def show_graph(self, graph: LineageGraph, layout: GraphLayout) -> None:
        """Show a loaded, laid-out graph (``reload`` ends here; the benchmark calls it directly)."""
        self.graph = graph
        self.canvas.cancel_thumbnails()
        self.canvas.item.set_graph(graph, layout)
        # Room around the graph, so any node (even of a small graph) can be centred.
        pad = SCENE_PADDING
        self.canvas.setSceneRect(self.canvas.item.boundingRect().adjusted(-pad, -pad, pad, pad))
        self.legend.set_operations(sorted({e.operation for e in graph.edges}))
        self.legend.setVisible(bool(graph.edges))
        self._fill_menu(self.provider_button, graph.providers, self._filter.providers, "providers")
        self._fill_menu(self.operation_button, graph.operations, self._filter.operations, "operations")
        centre = self.selected_id if self.selected_id in graph.nodes else graph.focus_id
        if self.whole_library.isChecked() and centre is None:
            self.canvas.fit()
        else:
            if self.canvas.zoom < DETAIL_ZOOM:
                self.canvas.set_zoom(DEFAULT_ZOOM)
            if centre is not None:
                self.canvas.centre_on(centre)
        self._show_status(graph)
        self.graph_shown.emit(len(graph.nodes), len(graph.edges))

    def _show_status(self, graph: LineageGraph) -> None:
        n, e = len(graph.nodes), len(graph.edges)
        text = f"{n:,} asset{'s' if n != 1 else ''}, {e:,} edge{'s' if e != 1 else ''}"
        if graph.truncated:
            text += " (the first ones only: narrow the filters)"
        if not graph.edges and graph.focus_id is not None:
            if self._filter.providers or self._filter.operations:
                text = "No lineage with these filters (uncheck some to see more)."
            else:
                text = "No lineage: this asset was neither made from nor used for another."
        self.status.setText(text)

    def _failed(self, generation: int, error: BaseException) -> None:
        if generation != self._generation:
            return
        message = f"Could not load the lineage: {error}"
        self.status.setText(message)
        self.load_failed.emit(message)

    def _whole_library_toggled(self, on: bool) -> None:
        self.hops.setEnabled(not on)
        self.reload()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._dirty:
            QTimer.singleShot(0, self, self.reload)

    # -- filters ---------------------------------------------------------------------------------

    def _fill_menu(
        self, button: QToolButton, values: Iterable[str], chosen: frozenset[str], kind: str
    ) -> None:
        menu = button.menu()
        assert menu is not None
        menu.clear()
        for value in sorted(set(values) | chosen):
            label = operation_name(value) if kind == "operations" else value
            action = QAction(label, menu, checkable=True, checked=value in chosen)
            action.setData(value)
            action.toggled.connect(lambda _checked, k=kind: self._menu_changed(k))
            menu.addAction(action)
        if not menu.actions():
            menu.addAction(QAction("(nothing to filter)", menu, enabled=False))
        count = len(chosen)
        base = "Providers" if kind == "providers" else "Operations"
        button.setText(f"{base} ({count})" if count else base)

    def _menu_changed(self, kind: str) -> None:
        button = self.provider_button if kind == "providers" else self.operation_button
        menu = button.menu()
        assert menu is not None
        chosen = frozenset(str(a.data()) for a in menu.actions() if a.isCheckable() and a.isChecked())
        if kind == "providers":
            self.set_filter(GraphFilter(providers=chosen, operations=self._filter.operations))
        else:
            self.set_filter(GraphFilter(providers=self._filter.providers, operations=chosen))

    # -- from the canvas -------------------------------------------------------------------------

    def _clicked(self, node_id: int) -> None:
        self.canvas.select(node_id)
        self.asset_selected.emit(node_id)

    def _activated(self, node_id: int) -> None:
        self.canvas.select(node_id)
        if not self.whole_library.isChecked():
            self._focus_id = node_id
            self.reload()
        self.asset_activated.emit(node_id)


def _filter_button(text: str) -> QToolButton:
    button = QToolButton()
    button.setText(text)
    button.setObjectName(f"lineage{text}Filter")
    button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
    button.setMenu(QMenu(button))
    button.setToolTip(f"Show only edges of the checked {text.lower()} (none checked: all)")
    return button


def _tool_button(text: str, tip: str) -> QToolButton:
    button = QToolButton()
    button.setText(text)
    button.setToolTip(tip)
    return button
