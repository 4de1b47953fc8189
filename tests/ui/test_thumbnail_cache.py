"""The grid's thumbnail memory stays within its byte budget, least recently used out first."""

from __future__ import annotations

from PySide6.QtGui import QImage

from ui.thumbnail_cache import ThumbnailCache


def _image(side: int) -> QImage:
    image = QImage(side, side, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(0xFF336699)
    return image


def test_budget_is_bytes_and_eviction_is_least_recently_used() -> None:
    one = _image(64).sizeInBytes()
    cache = ThumbnailCache(budget_bytes=one * 3)
    for key in "abc":
        cache.put(key, _image(64))
    assert cache.get("a") is not None  # "a" is now the most recently used
    cache.put("d", _image(64))
    assert cache.get("b") is None and cache.get("a") is not None and len(cache) == 3
    assert cache.bytes_used == one * 3 and cache.peak_bytes == one * 3


def test_an_image_larger_than_the_budget_is_not_kept_and_failures_are_remembered() -> None:
    cache = ThumbnailCache(budget_bytes=_image(64).sizeInBytes())
    cache.put("small", _image(64))
    cache.put("huge", _image(256))
    assert cache.get("huge") is None and cache.get("small") is not None
    cache.mark_failed("corrupt")
    assert cache.failed("corrupt")
    cache.put("corrupt", _image(8))
    assert not cache.failed("corrupt")
