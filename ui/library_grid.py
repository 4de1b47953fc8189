"""The library grid: uniform cards with lazy thumbnails, paged with ``fetchMore``, dragged onto providers.

``AssetGridModel`` is a thin adapter over pages of ``AssetCard`` from ``LibraryService.search``.
Thumbnails follow the pattern of lazy image grids: ``DecorationRole`` answers from a byte-bounded
memory cache or schedules one fetch (an in-flight set prevents duplicates), the image is decoded off
the GUI thread, and ``dataChanged`` repaints the card when it lands. Requests for cards scrolled far
away are cancelled before they render.
"""

from __future__ import annotations

import concurrent.futures
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import (
    QAbstractListModel,
    QMimeData,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QRectF,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QFont,
    QFontMetrics,
    QImage,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPalette,
    QPixmap,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from core.db.enums import MediaType
from core.library import AssetCard, LibraryQuery, LibraryService
from core.text import human_bytes
from ui.bridge import CoreBridge
from ui.providers_dock import asset_ids_mime
from ui.thumbnail_cache import ThumbnailCache

AnyIndex = QModelIndex | QPersistentModelIndex
CardRole = Qt.ItemDataRole.UserRole + 10
AssetIdRole = Qt.ItemDataRole.UserRole + 11
ScrubRole = Qt.ItemDataRole.UserRole + 12

CARD_WIDTH = 196
THUMB_HEIGHT = 147  # 4:3 inside the card; images keep their aspect ratio, letterboxed
CARD_HEIGHT = THUMB_HEIGHT + 58
PREFETCH_ROWS = 60
ARRIVAL_BATCH_MS = 50
SCROLL_SETTLE_MS = 120  # thumbnail requests wait until scrolling has paused this long
# Drawn cards kept for repaints (about 160 KB each at 1x): the visible ones several times over.
CARD_CACHE_ENTRIES = 240
# Thumbnails are scaled once, off the GUI thread, to the box they are shown in.
THUMB_BOX = QSize(
    CARD_WIDTH - 16, THUMB_HEIGHT - 8
)  # thumbnail requests further than this from the visible rows are cancelled


class ThumbnailLoader(Protocol):
    """Decodes thumbnails off the GUI thread (the window supplies one once the services are up)."""

    def thumbnail(self, card: AssetCard) -> Coroutine[Any, Any, QImage | None]: ...

    def scrub_strip(self, card: AssetCard) -> Coroutine[Any, Any, QImage | None]: ...


class AssetGridModel(QAbstractListModel):
    count_changed = Signal(int)  # total matching the query (after set_query)
    page_loaded = Signal(int)
    load_failed = Signal(str)

    def __init__(
        self,
        library: LibraryService,
        bridge: CoreBridge,
        cache: ThumbnailCache | None = None,
        *,
        page_size: int = 200,
    ) -> None:
        super().__init__()
        self._library = library
        self._bridge = bridge
        self.cache = cache or ThumbnailCache()
        self._loader: ThumbnailLoader | None = None
        self._page_size = page_size
        self._query = LibraryQuery()
        self._rows: list[AssetCard] = []
        self._row_of: dict[int, int] = {}
        # Find-similar results may show one video more than once (itself and scene segments).
        self._more_rows: dict[int, list[int]] = {}
        self._exhausted = True
        self._loading = False
        self._generation = 0
        self._pending: dict[tuple[int, str], concurrent.futures.Future[Any]] = {}
        self._arrived: set[int] = set()
        self._announcing = False
        self._scrolling_until = 0.0
        self._settle_pending = False
        self._deferred: set[int] = set()
        self.total: int | None = None

    # -- query and paging ---------------------------------------------------------------------

    @property
    def query(self) -> LibraryQuery:
        return self._query

    @property
    def is_loading(self) -> bool:
        return self._loading

    def set_loader(self, loader: ThumbnailLoader | None) -> None:
        self._loader = loader
        if self._rows:
            self.dataChanged.emit(
                self.index(0), self.index(len(self._rows) - 1), [Qt.ItemDataRole.DecorationRole]
            )

    def set_query(self, query: LibraryQuery) -> None:
        """Show what ``query`` matches: count it and load the first page."""
        self._query = query
        self.reload()

    def reload(self) -> None:
        self.beginResetModel()
        self._generation += 1
        self._rows = []
        self._row_of = {}
        self._more_rows = {}
        self._arrived = set()
        self._deferred = set()
        self._exhausted = False
        self._loading = False
        self._cancel_pending(keep=set())
        self.endResetModel()
        generation = self._generation
        self._bridge.call(
            self._library.count(self._query),
            lambda total: self._counted(generation, total),
            lambda error: self._failed(generation, error),
        )
        self.fetchMore()

    def _counted(self, generation: int, total: int) -> None:
        if generation == self._generation:
            self.total = total
            self.count_changed.emit(total)

    def canFetchMore(self, parent: AnyIndex = QModelIndex()) -> bool:  # noqa: B008 - Qt's signature
        return not parent.isValid() and not self._exhausted and not self._loading

    def fetchMore(self, parent: AnyIndex = QModelIndex()) -> None:  # noqa: B008
        if not self.canFetchMore(parent):
            return
        self._loading = True
        generation = self._generation
        self._bridge.call(
            self._library.search(self._query, offset=len(self._rows), limit=self._page_size),
            lambda page: self._append(generation, page),
            lambda error: self._failed(generation, error),
        )

    def _append(self, generation: int, page: list[AssetCard]) -> None:
        if generation != self._generation:
            return
        # Still "loading" while rows go in: a view (or model tester) reacting to the insertion must not
        # ask for the next page with an offset that does not count these rows yet.
        self._exhausted = len(page) < self._page_size
        if page:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(page) - 1)
            for offset, card in enumerate(page):
                if card.id in self._row_of:
                    self._more_rows.setdefault(card.id, []).append(first + offset)
                else:
                    self._row_of[card.id] = first + offset
            self._rows.extend(page)
            self.endInsertRows()
        self._loading = False
        self.page_loaded.emit(len(page))

    def _failed(self, generation: int, error: BaseException) -> None:
        if generation != self._generation:
            return
        self._loading = False
        self._exhausted = True  # no retry loop; reload() tries again
        self.load_failed.emit(f"Could not load the library: {error}")

    # -- Qt model -----------------------------------------------------------------------------

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def card(self, row: int) -> AssetCard:
        return self._rows[row]

    def row_of(self, asset_id: int) -> int | None:
        return self._row_of.get(asset_id)

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        card = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return card.display_name
        if role == CardRole:
            return card
        if role == AssetIdRole:
            return card.id
        if role == Qt.ItemDataRole.DecorationRole:
            return self._image(card, "thumb")
        if role == ScrubRole:
            return self._image(card, "scrub") if card.media_type is MediaType.VIDEO else None
        if role == Qt.ItemDataRole.ToolTipRole:
            return _tooltip(card)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{card.media_type.value} {card.display_name}"
        return None

    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        base = super().flags(index)
        return base | Qt.ItemFlag.ItemIsDragEnabled if index.isValid() else base

    def mimeTypes(self) -> list[str]:
        from ui.providers_dock import ASSET_IDS_MIME

        return [ASSET_IDS_MIME]

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:
        rows = sorted({i.row() for i in indexes if i.isValid()})
        return asset_ids_mime([self._rows[r].id for r in rows])

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction

    # -- thumbnails ---------------------------------------------------------------------------

    def picture(self, row: int, *, scrub: bool = False) -> tuple[QImage | None, bool]:
        """What a card shows, and whether it is a scrub strip: the strip under the mouse (when
        ready), else the thumbnail."""
        card = self._rows[row]
        if scrub:
            strip = self._image(card, "scrub")
            if strip is not None:
                return strip, True
        return self._image(card, "thumb"), False

    def _image(self, card: AssetCard, kind: str) -> QImage | None:
        if card.segment_id is not None:
            if kind == "scrub":
                return None  # a scene card shows its keyframe only
            kind = f"segment:{card.segment_id}"
        key = (card.id, kind)
        image = self.cache.get(key)
        if image is not None or self._loader is None or self.cache.failed(key) or key in self._pending:
            return image
        if time.monotonic() < self._scrolling_until:
            # Mid-scroll: cards fly past faster than they could be rendered. Ask once the view settles.
            row = self._row_of.get(card.id)
            if row is not None:
                self._deferred.add(row)
            return None
        loader = self._loader
        coro = loader.scrub_strip(card) if kind == "scrub" else loader.thumbnail(card)
        generation = self._generation
        self._pending[key] = self._bridge.call(
            coro,
            lambda result: self._landed(generation, key, result),
            lambda error: self._landed(generation, key, None),
        )
        return None

    def note_scrolling(self) -> None:
        """The view is scrolling: hold new thumbnail requests until it has been still for a moment."""
        self._scrolling_until = time.monotonic() + SCROLL_SETTLE_MS / 1000
        if not self._settle_pending:
            self._settle_pending = True
            QTimer.singleShot(SCROLL_SETTLE_MS, self, self._settled)

    def _settled(self) -> None:
        self._settle_pending = False
        remaining = self._scrolling_until - time.monotonic()
        if remaining > 0:
            self._settle_pending = True
            QTimer.singleShot(max(1, int(remaining * 1000)), self, self._settled)
            return
        rows, self._deferred = sorted(r for r in self._deferred if r < len(self._rows)), set()
        if rows:
            # Repainting the cards that asked makes them ask again, now that the view is still.
            self.dataChanged.emit(self.index(rows[0]), self.index(rows[-1]), [Qt.ItemDataRole.DecorationRole])

    def _landed(self, generation: int, key: tuple[int, str], image: QImage | None) -> None:
        self._pending.pop(key, None)
        if image is None or image.isNull():
            self.cache.mark_failed(key)
        else:
            self.cache.put(key, image)
        if generation != self._generation:
            return
        row = self._row_of.get(key[0])
        if row is not None:
            # Arrivals are announced together a few times a second, not one repaint per thumbnail.
            self._arrived.add(row)
            self._arrived.update(self._more_rows.get(key[0], ()))
            if not self._announcing:
                self._announcing = True
                QTimer.singleShot(ARRIVAL_BATCH_MS, self, self._announce_arrivals)

    def _announce_arrivals(self) -> None:
        self._announcing = False
        rows, self._arrived = sorted(self._arrived), set()
        start = previous = None
        for row in [*rows, None]:
            if row is not None and previous is not None and row == previous + 1:
                previous = row
                continue
            if start is not None and previous is not None and previous < len(self._rows):
                roles = [Qt.ItemDataRole.DecorationRole, ScrubRole]
                self.dataChanged.emit(self.index(start), self.index(previous), roles)
            start = previous = row

    def keep_requests_near(self, first_row: int, last_row: int) -> None:
        """Cancel thumbnail requests for cards far from the visible ones (not yet rendered: cheap)."""
        low, high = first_row - PREFETCH_ROWS, last_row + PREFETCH_ROWS
        keep = {key for key in self._pending if low <= self._row_of.get(key[0], -(10**9)) <= high}
        self._cancel_pending(keep)

    def _cancel_pending(self, keep: set[tuple[int, str]]) -> None:
        for key in [k for k in self._pending if k not in keep]:
            future = self._pending.pop(key)
            future.cancel()

    @property
    def pending_requests(self) -> int:
        return len(self._pending)


def _tooltip(card: AssetCard) -> str:
    facts = [card.media_type.value.replace("_", " "), f"made by {card.provider_id}"]
    if card.width and card.height:
        facts.append(f"{card.width}×{card.height}")
    if card.duration_sec:
        facts.append(_duration(card.duration_sec))
    lines = [card.display_name, " · ".join(facts)]
    if card.segment_start_sec is not None:
        lines.append(f"Scene at {_duration(card.segment_start_sec)} — double-click to open it there")
    if card.distance is not None:
        lines.append(f"{similarity_percent(card.distance)} % alike")
    if card.stack_size > 1:
        lines.append(f"{card.stack_size} near-duplicates stacked (right-click: Show Duplicates)")
    if card.providers:
        lines.append("on " + ", ".join(card.providers))
    if card.tags:
        lines.append("#" + " #".join(card.tags[:8]))
    return "\n".join(lines)


def similarity_percent(distance: float) -> int:
    """A cosine distance as the "alike" percentage a card shows (0 % for orthogonal or opposite)."""
    return max(0, min(100, round((1.0 - distance) * 100)))


def _duration(seconds: float) -> str:
    whole = math.floor(seconds + 0.5)
    return f"{whole // 60}:{whole % 60:02d}"


# -- painting ------------------------------------------------------------------------------------------

_TYPE_LABEL = {
    MediaType.VIDEO: "VIDEO",
    MediaType.IMAGE: "IMAGE",
    MediaType.AUDIO: "AUDIO",
    MediaType.MODEL_3D: "3D",
}
_BADGE_COLOURS = {
    "sandbox": "#6c8ebf",
    "pixverse": "#9b59b6",
    "sora": "#2e9e6a",
    "comfyui": "#d98c2b",
    "local": "#7f8c8d",
}


def badge_colour(provider_id: str) -> QColor:
    known = _BADGE_COLOURS.get(provider_id)
    if known:
        return QColor(known)
    return QColor.fromHsv(hash(provider_id) % 360, 120, 190)


class AssetCardDelegate(QStyledItemDelegate):
    """Paints a card: letterboxed thumbnail (or a scrub frame under the mouse), badges, name, facts."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hover_row: int | None = None
        self.hover_fraction = 0.0
        self.scrub_frames = 8
        self._cards: OrderedDict[tuple[object, ...], QPixmap] = OrderedDict()
        self.grid_model: AssetGridModel | None = None

    def sizeHint(self, option: QStyleOptionViewItem, index: AnyIndex) -> QSize:
        return QSize(CARD_WIDTH, CARD_HEIGHT)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: AnyIndex) -> None:
        """Copy the card's cached picture; draw it only when something it shows has changed.

        A card takes some sixty Qt calls to draw from Python; scrolling repaints every visible card
        each frame, so each is drawn once per look (thumbnail, scrub frame, selection, hover).
        """
        model = self.grid_model
        row = index.row()
        if model is not None and 0 <= row < model.rowCount():
            # Straight to the Python model: each trip through Qt's data() costs more than the copy.
            card = model.card(row)
            image, is_strip = model.picture(
                row, scrub=self.hover_row == row and card.media_type is MediaType.VIDEO
            )
        else:
            data = index.data(CardRole)
            if not isinstance(data, AssetCard):
                return
            card, image = data, self._picture(index, data)
            is_strip = image is not None and image is index.data(ScrubRole)
        rect: QRect = option.rect
        palette: QPalette = option.palette
        state = option.state
        selected = bool(state & QStyle.StateFlag.State_Selected)
        hovered = bool(state & QStyle.StateFlag.State_MouseOver)
        source = self._source_rect(image, is_strip) if image is not None else None
        ratio = painter.device().devicePixelRatioF() if painter.device() is not None else 1.0
        key = (
            card,
            image.cacheKey() if image is not None else 0,
            source.x() if source is not None else -1,
            selected,
            hovered,
            rect.width(),
            rect.height(),
            ratio,
            palette.cacheKey(),
        )
        picture = self._cards.get(key)
        if picture is None:
            picture = self._draw_card(card, option, rect.size(), ratio, selected, hovered, image, source)
            self._cards[key] = picture
            while len(self._cards) > CARD_CACHE_ENTRIES:
                self._cards.popitem(last=False)
        else:
            self._cards.move_to_end(key)
        painter.drawPixmap(rect.topLeft(), picture)

    def _draw_card(
        self,
        card: AssetCard,
        option: QStyleOptionViewItem,
        size: QSize,
        ratio: float,
        selected: bool,
        hovered: bool,
        image: QImage | None,
        source: QRect | None,
    ) -> QPixmap:
        palette: QPalette = option.palette
        # A pixmap in the screen's own format copies fastest. It lives in the delegate, which only GUI
        # code references (the bridge keeps no GUI object on the core thread), so it dies on this thread.
        picture = QPixmap(round(size.width() * ratio), round(size.height() * ratio))
        picture.setDevicePixelRatio(ratio)
        # Opaque (the view's background around the rounded card): copying it needs no blending.
        picture.fill(palette.color(QPalette.ColorRole.Base))
        rect = QRect(QPoint(0, 0), size)
        painter = QPainter(picture)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        outer = QRectF(rect).adjusted(3, 3, -3, -3)
        path = QPainterPath()
        path.addRoundedRect(outer, 8, 8)
        base = palette.color(QPalette.ColorRole.AlternateBase if hovered else QPalette.ColorRole.Base)
        painter.fillPath(path, base)
        if selected:
            painter.setPen(palette.color(QPalette.ColorRole.Highlight))
            painter.drawPath(path)
            painter.drawRoundedRect(outer.adjusted(1, 1, -1, -1), 7, 7)

        thumb_rect = QRect(8, 8, rect.width() - 16, THUMB_HEIGHT - 8)
        clip = QPainterPath()
        clip.addRoundedRect(QRectF(thumb_rect), 5, 5)
        painter.fillPath(clip, QColor(38, 40, 46))
        if image is not None and source is not None:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            painter.setClipPath(clip)
            painter.drawImage(_fit(source.size(), thumb_rect), image, source)
            painter.setClipping(False)
        else:
            self._placeholder(painter, thumb_rect, card, palette)
        self._badges(painter, thumb_rect, card)

        text_rect = QRect(10, thumb_rect.bottom() + 6, rect.width() - 20, 18)
        name_font = QFont(option.font)
        name_font.setWeight(QFont.Weight.DemiBold)
        painter.setFont(name_font)
        painter.setPen(palette.color(QPalette.ColorRole.Text))
        name = QFontMetrics(name_font).elidedText(
            card.display_name, Qt.TextElideMode.ElideRight, text_rect.width()
        )
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, name)
        facts_font = QFont(option.font)
        facts_font.setPointSizeF(max(7.0, facts_font.pointSizeF() * 0.85))
        painter.setFont(facts_font)
        painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
        facts_rect = text_rect.translated(0, 18)
        painter.drawText(facts_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, _facts(card))
        painter.end()
        return picture

    def _picture(self, index: AnyIndex, card: AssetCard) -> QImage | None:
        if card.media_type is MediaType.VIDEO and self.hover_row == index.row():
            strip = index.data(ScrubRole)
            if isinstance(strip, QImage) and not strip.isNull():
                return strip
        image = index.data(Qt.ItemDataRole.DecorationRole)
        return image if isinstance(image, QImage) and not image.isNull() else None

    def _source_rect(self, image: QImage, is_strip: bool) -> QRect:
        """The whole image, or the cell of a scrub strip under the mouse."""
        if is_strip and self.scrub_frames > 1:
            cell = image.width() // self.scrub_frames
            column = min(self.scrub_frames - 1, int(self.hover_fraction * self.scrub_frames))
            return QRect(column * cell, 0, cell, image.height())
        return image.rect()

    def _placeholder(self, painter: QPainter, rect: QRect, card: AssetCard, palette: QPalette) -> None:
        painter.setPen(QColor(150, 156, 168))
        font = painter.font()
        font.setPointSizeF(font.pointSizeF() * 1.1)
        font.setWeight(QFont.Weight.Bold)
        painter.setFont(font)
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, _TYPE_LABEL[card.media_type])

    def _badges(self, painter: QPainter, rect: QRect, card: AssetCard) -> None:
        font = QFont(painter.font())
        font.setPointSizeF(7.5)
        font.setWeight(QFont.Weight.Bold)
        painter.setFont(font)
        metrics = QFontMetrics(font)
        x = rect.right() - 6
        for provider in reversed((card.provider_id, *[p for p in card.providers if p != card.provider_id])):
            label = provider[:2].upper()
            width = metrics.horizontalAdvance(label) + 10
            badge = QRectF(x - width, rect.top() + 6, width, 16)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(badge_colour(provider))
            painter.drawRoundedRect(badge, 8, 8)
            painter.setPen(QColor("white"))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, label)
            x -= width + 4
        if card.duration_sec and card.segment_start_sec is None:
            self._pill(
                painter,
                metrics,
                _duration(card.duration_sec),
                rect.right() - 6,
                rect.bottom() - 22,
                right=True,
            )
        left = rect.left() + 6
        if card.segment_start_sec is not None:
            # A scene of a video found by similarity: its keyframe, and where it starts.
            left = (
                self._pill(
                    painter,
                    metrics,
                    f"▶ {_duration(card.segment_start_sec)}",
                    left,
                    rect.bottom() - 22,
                    colour=QColor(42, 130, 218, 220),
                )
                + 4
            )
        if card.stack_size > 1:
            self._stack_badge(painter, metrics, card.stack_size, left, rect.bottom() - 22)
        if card.distance is not None:
            self._pill(
                painter,
                metrics,
                f"{similarity_percent(card.distance)} %",
                rect.left() + 6,
                rect.top() + 6,
                colour=QColor(20, 20, 24, 190),
            )

    @staticmethod
    def _pill(
        painter: QPainter,
        metrics: QFontMetrics,
        text: str,
        x: int,
        y: int,
        *,
        right: bool = False,
        colour: QColor | None = None,
    ) -> int:
        """A small rounded label at (x, y), or ending at x when ``right``; returns its far edge."""
        width = metrics.horizontalAdvance(text) + 10
        left = x - width if right else x
        badge = QRectF(left, y, width, 16)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour or QColor(0, 0, 0, 160))
        painter.drawRoundedRect(badge, 4, 4)
        painter.setPen(QColor("white"))
        painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, text)
        return left if right else left + width

    @staticmethod
    def _stack_badge(painter: QPainter, metrics: QFontMetrics, size: int, x: int, y: int) -> None:
        """Stacked near-duplicates: two offset sheets behind the count, like a pile of prints."""
        text = f"{size}"
        width = metrics.horizontalAdvance(text) + 12
        painter.setPen(QColor(255, 255, 255, 200))
        for step in (4, 2):
            painter.setBrush(QColor(70, 74, 84, 230))
            painter.drawRoundedRect(QRectF(x + step, y - step, width, 16), 3, 3)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(225, 140, 40, 240))
        badge = QRectF(x, y, width, 16)
        painter.drawRoundedRect(badge, 3, 3)
        painter.setPen(QColor("white"))
        painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, text)


def _fit(size: QSize, box: QRect) -> QRect:
    if size.isEmpty():
        return box
    scale = min(box.width() / size.width(), box.height() / size.height())
    width, height = round(size.width() * scale), round(size.height() * scale)
    return QRect(
        box.left() + (box.width() - width) // 2, box.top() + (box.height() - height) // 2, width, height
    )


def _facts(card: AssetCard) -> str:
    if card.segment_start_sec is not None:
        return f"scene at {_duration(card.segment_start_sec)} of this video"
    parts = [card.media_type.value.replace("model_3d", "3D").replace("_", " ")]
    if card.width and card.height:
        parts.append(f"{card.width}×{card.height}")
    if card.file_size_bytes:
        parts.append(human_bytes(card.file_size_bytes, si=True))
    return " · ".join(parts)


class AssetGridView(QListView):
    """Icon-mode grid: uniform cards, extended selection, drags asset ids, accepts dropped files."""

    files_dropped = Signal(list)  # list[Path]
    visible_rows_changed = Signal(int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("assetGrid")
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(400)
        self.setSpacing(6)
        self.setGridSize(QSize(CARD_WIDTH + 6, CARD_HEIGHT + 6))
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setDragEnabled(True)
        self.setAcceptDrops(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop)
        self.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.setMouseTracking(True)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.verticalScrollBar().setSingleStep(24)
        self.card_delegate = AssetCardDelegate(self)
        self.setItemDelegate(self.card_delegate)
        self._visible_timer = QTimer(self)
        self._visible_timer.setSingleShot(True)
        self._visible_timer.setInterval(120)
        self._visible_timer.timeout.connect(self._report_visible)
        self.verticalScrollBar().valueChanged.connect(self._scrolled)

    # -- hover scrubbing ------------------------------------------------------------------------

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        super().mouseMoveEvent(event)
        self._hover(event.position().toPoint())

    def leaveEvent(self, event: Any) -> None:
        super().leaveEvent(event)
        self._set_hover(None, 0.0)

    def _hover(self, point: QPoint) -> None:
        index = self.indexAt(point)
        if not index.isValid():
            self._set_hover(None, 0.0)
            return
        rect = self.visualRect(index)
        fraction = min(0.999, max(0.0, (point.x() - rect.left() - 8) / max(1, rect.width() - 16)))
        self._set_hover(index.row(), fraction)

    def _set_hover(self, row: int | None, fraction: float) -> None:
        delegate = self.card_delegate
        previous = delegate.hover_row
        frame_before = int(delegate.hover_fraction * delegate.scrub_frames)
        delegate.hover_row, delegate.hover_fraction = row, fraction
        model = self.model()
        for changed in {previous, row}:
            if changed is None or model is None:
                continue
            if changed != previous or changed != row or int(fraction * delegate.scrub_frames) != frame_before:
                self.update(model.index(changed, 0))

    # -- files from the desktop -------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
            return
        super().dragEnterEvent(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
            return
        super().dragMoveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        paths = dropped_paths(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.files_dropped.emit(paths)
            return
        event.ignore()  # our own cards dropped on the grid: nothing to do

    def _scrolled(self, _value: int) -> None:
        self._visible_timer.start()
        model = self.model()
        if isinstance(model, AssetGridModel):
            model.note_scrolling()

    def setModel(self, model: Any) -> None:
        super().setModel(model)
        self.card_delegate.grid_model = model if isinstance(model, AssetGridModel) else None

    def _report_visible(self) -> None:
        model = self.model()
        if model is None or model.rowCount() == 0:
            return
        viewport = self.viewport().rect()
        first = self.indexAt(viewport.topLeft() + QPoint(4, 4))
        last = self.indexAt(viewport.bottomRight() - QPoint(4, 4))
        first_row = first.row() if first.isValid() else 0
        last_row = last.row() if last.isValid() else model.rowCount() - 1
        self.visible_rows_changed.emit(first_row, last_row)


def dropped_paths(mime: QMimeData) -> list[Path]:
    """Local files and folders from a desktop drop (URLs that are not local files are ignored)."""
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]


KeyframeFile = Callable[[int], Awaitable[Path]]


class GridThumbnails:
    """The grid's ``ThumbnailLoader``: the asset thumbnails of ``assets``, and for a scene card
    (a find-similar segment hit) its stored keyframe (``keyframe_file``), decoded off the GUI thread."""

    def __init__(self, assets: ThumbnailLoader, keyframe_file: KeyframeFile | None, box: QSize) -> None:
        self._assets = assets
        self._keyframe_file = keyframe_file
        self._box = box

    async def thumbnail(self, card: AssetCard) -> QImage | None:
        if card.segment_id is None:
            return await self._assets.thumbnail(card)
        if self._keyframe_file is None:
            return None
        path = await self._keyframe_file(card.segment_id)
        image = QImage(str(path))
        if image.isNull():
            return None
        image = image.scaled(
            self._box, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
        )
        return image.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)

    async def scrub_strip(self, card: AssetCard) -> QImage | None:
        return None if card.segment_id is not None else await self._assets.scrub_strip(card)
