"""The providers dock: every configured account (and the keyless providers) as a drop target.

Dropping assets from the library grid on an entry asks for them on that provider: the window runs
``get_asset_for_provider`` for each, with per-asset progress in the activity panel.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractListModel, QMimeData, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QLabel, QListView, QVBoxLayout, QWidget

ASSET_IDS_MIME = "application/x-pixsim-asset-ids"
AnyIndex = QModelIndex | QPersistentModelIndex
TargetRole = Qt.ItemDataRole.UserRole + 1


def asset_ids_mime(asset_ids: Sequence[int]) -> QMimeData:
    """The drag payload the library grid produces."""
    mime = QMimeData()
    mime.setData(ASSET_IDS_MIME, json.dumps([int(a) for a in asset_ids]).encode())
    mime.setText(", ".join(f"asset {a}" for a in asset_ids))
    return mime


def asset_ids_from(mime: QMimeData) -> list[int]:
    if not mime.hasFormat(ASSET_IDS_MIME):
        return []
    try:
        data = json.loads(bytes(mime.data(ASSET_IDS_MIME).data()).decode())
    except (ValueError, UnicodeDecodeError):
        return []
    return [int(a) for a in data if isinstance(a, int) and a > 0]


@dataclass(frozen=True)
class ProviderTarget:
    provider_id: str
    display_name: str
    account_id: int | None
    account_label: str | None
    can_upload: bool
    detail: str = ""

    @property
    def label(self) -> str:
        return f"{self.display_name} · {self.account_label}" if self.account_label else self.display_name


class ProviderTargetsModel(QAbstractListModel):
    push_requested = Signal(object, object)  # list[int] asset ids, ProviderTarget

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._targets: list[ProviderTarget] = []

    def set_targets(self, targets: Sequence[ProviderTarget]) -> None:
        self.beginResetModel()
        self._targets = list(targets)
        self.endResetModel()

    def target(self, row: int) -> ProviderTarget:
        return self._targets[row]

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._targets)

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._targets):
            return None
        target = self._targets[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return target.label
        if role == Qt.ItemDataRole.ToolTipRole:
            hint = (
                "Drop assets here to make them available on this provider."
                if target.can_upload
                else ("This provider takes files with each request: drop is not needed.")
            )
            return f"{target.label}\n{target.detail}\n{hint}".strip()
        if role == TargetRole:
            return target
        return None

    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        base = super().flags(index)
        if index.isValid() and self._targets[index.row()].can_upload:
            return base | Qt.ItemFlag.ItemIsDropEnabled
        return base

    def mimeTypes(self) -> list[str]:
        return [ASSET_IDS_MIME]

    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction

    def canDropMimeData(
        self, data: QMimeData, action: Qt.DropAction, row: int, column: int, parent: AnyIndex
    ) -> bool:
        return parent.isValid() and self._targets[parent.row()].can_upload and bool(asset_ids_from(data))

    def dropMimeData(
        self, data: QMimeData, action: Qt.DropAction, row: int, column: int, parent: AnyIndex
    ) -> bool:
        if not self.canDropMimeData(data, action, row, column, parent):
            return False
        self.push_requested.emit(asset_ids_from(data), self._targets[parent.row()])
        return True


class ProvidersPanel(QWidget):
    def __init__(self, model: ProviderTargetsModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("providersPanel")
        self.model = model
        self.view = QListView()
        self.view.setObjectName("providerTargets")
        self.view.setModel(model)
        self.view.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)
        self.view.setAcceptDrops(True)
        self.view.setDropIndicatorShown(True)
        self.view.setSpacing(2)
        hint = QLabel("Drag assets onto a provider to upload them once; its id is remembered.")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: palette(placeholder-text);")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.view, 1)
        layout.addWidget(hint)
