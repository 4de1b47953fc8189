"""A paged list model of library assets, filled page by page from ``LibraryService`` via the bridge."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtWidgets import QApplication, QStyle

from core.db.enums import MediaType
from core.library import AssetSummary, LibraryService
from ui.bridge import CoreBridge

AssetIdRole = Qt.ItemDataRole.UserRole + 1
MediaTypeRole = Qt.ItemDataRole.UserRole + 2

_ICONS = {
    MediaType.VIDEO: QStyle.StandardPixmap.SP_MediaPlay,
    MediaType.IMAGE: QStyle.StandardPixmap.SP_FileIcon,
    MediaType.AUDIO: QStyle.StandardPixmap.SP_MediaVolume,
    MediaType.MODEL_3D: QStyle.StandardPixmap.SP_DriveHDIcon,
}

AnyIndex = QModelIndex | QPersistentModelIndex


class AssetListModel(QAbstractListModel):
    page_loaded = Signal(int)  # rows added by the page that just arrived

    def __init__(self, library: LibraryService, bridge: CoreBridge, page_size: int = 200) -> None:
        super().__init__()
        self._library = library
        self._bridge = bridge
        self._page_size = page_size
        self._rows: list[AssetSummary] = []
        self._exhausted = False
        self._loading = False
        self._generation = 0  # results of a page requested before reset() are dropped

    @property
    def is_loading(self) -> bool:
        return self._loading

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        asset = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return asset.display_name
        if role == Qt.ItemDataRole.ToolTipRole:
            size = f"{asset.width}×{asset.height}" if asset.width and asset.height else "size unknown"
            return f"{asset.display_name}\n{asset.media_type.value} · {asset.provider_id} · {size}"
        if role == Qt.ItemDataRole.DecorationRole:
            style = QApplication.style()
            return style.standardIcon(_ICONS[asset.media_type]) if style is not None else None
        if role == AssetIdRole:
            return asset.id
        if role == MediaTypeRole:
            return asset.media_type.value
        return None

    def canFetchMore(self, parent: AnyIndex = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and not self._exhausted and not self._loading

    def fetchMore(self, parent: AnyIndex = QModelIndex()) -> None:  # noqa: B008
        if not self.canFetchMore(parent):
            return
        self._loading = True
        generation = self._generation
        self._bridge.call(
            self._library.list_assets(offset=len(self._rows), limit=self._page_size),
            lambda page: self._append(generation, page),
            lambda error: self._failed(generation, error),
        )

    def reset(self) -> None:
        self.beginResetModel()
        self._generation += 1
        self._rows = []
        self._exhausted = False
        self._loading = False
        self.endResetModel()

    def _append(self, generation: int, page: list[AssetSummary]) -> None:
        if generation != self._generation:
            return
        self._loading = False
        self._exhausted = len(page) < self._page_size
        if page:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(page) - 1)
            self._rows.extend(page)
            self.endInsertRows()
        self.page_loaded.emit(len(page))

    def _failed(self, generation: int, error: BaseException) -> None:
        if generation != self._generation:
            return
        self._loading = False
        self._exhausted = True  # stop retrying in a loop; reset() tries again
        self._bridge.operation_failed.emit(f"Could not load the library: {error}")
