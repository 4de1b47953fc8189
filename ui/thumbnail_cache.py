"""A byte-bounded LRU of decoded thumbnails (QImage) for the library grid.

Images are decoded off the GUI thread (QImage is safe to build in any thread) and arrive here through
the bridge; the grid paints whatever is cached and shows a placeholder for the rest. The budget is in
bytes of decoded pixels, not in entries: 256 px cards and 2048 px scrub strips cost what they weigh.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from PySide6.QtGui import QImage

DEFAULT_BUDGET_BYTES = 192 * 1024 * 1024


class ThumbnailCache:
    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self.budget_bytes = budget_bytes
        self._images: OrderedDict[Hashable, QImage] = OrderedDict()
        self._bytes = 0
        self.peak_bytes = 0
        self._failed: set[Hashable] = set()

    def __len__(self) -> int:
        return len(self._images)

    @property
    def bytes_used(self) -> int:
        return self._bytes

    def get(self, key: Hashable) -> QImage | None:
        image = self._images.get(key)
        if image is not None:
            self._images.move_to_end(key)
        return image

    def put(self, key: Hashable, image: QImage) -> None:
        cost = image.sizeInBytes()
        if cost > self.budget_bytes:
            return  # never worth evicting everything else for
        old = self._images.pop(key, None)
        if old is not None:
            self._bytes -= old.sizeInBytes()
        self._images[key] = image
        self._bytes += cost
        self._failed.discard(key)
        while self._bytes > self.budget_bytes:
            _, evicted = self._images.popitem(last=False)
            self._bytes -= evicted.sizeInBytes()
        self.peak_bytes = max(self.peak_bytes, self._bytes)

    def mark_failed(self, key: Hashable) -> None:
        """No thumbnail can be made for this key: paint the type icon, do not ask again."""
        self._failed.add(key)

    def failed(self, key: Hashable) -> bool:
        return key in self._failed

    def clear(self) -> None:
        self._images.clear()
        self._failed.clear()
        self._bytes = 0
