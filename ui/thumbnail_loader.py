"""Thumbnails for the grid, decoded off the GUI thread: core renders and caches the file, this turns it
into a QImage (safe to build on the core thread) for the model's memory cache."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage

from core.cache.store import ContentStore
from core.library import AssetCard

if TYPE_CHECKING:
    from core.thumbnails import ThumbnailService


class CoreThumbnails:
    """The grid's ``ThumbnailLoader``: only files in the local store get thumbnails (no downloads)."""

    def __init__(self, store: ContentStore, service: ThumbnailService, box: QSize | None = None) -> None:
        self._store = store
        self._service = service
        # Scaled here, once, to the size the card shows: the GUI thread then copies pixels 1:1.
        self._box = box or QSize(180, 139)

    async def thumbnail(self, card: AssetCard) -> QImage | None:
        source = self._local(card)
        if source is None or card.sha256 is None:
            return None
        path = await self._service.thumbnail(source, card.sha256, card.media_type)
        return _decode(path, self._box)

    async def scrub_strip(self, card: AssetCard) -> QImage | None:
        source = self._local(card)
        if source is None or card.sha256 is None:
            return None
        path = await self._service.scrub_strip(source, card.sha256)
        return _decode(path, QSize(self._box.width() * 64, self._box.height()))

    def _local(self, card: AssetCard) -> Path | None:
        if not card.sha256 or not self._store.has(card.sha256):
            return None
        return self._store.object_path(card.sha256)


def _decode(path: Path | None, box: QSize) -> QImage | None:
    if path is None:
        return None
    image = QImage(str(path))
    if image.isNull():
        return None
    if image.width() > box.width() or image.height() > box.height():
        image = image.scaled(
            box, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
        )
    # Premultiplied ARGB paints fastest; converting here keeps that work off the GUI thread.
    return image.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
