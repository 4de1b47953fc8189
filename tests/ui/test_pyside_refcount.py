"""Regression guard for the PySide6 6.12.0 bug on CPython 3.11 that drops None's reference count on
every call of a wrapped method returning nothing, until the process aborts (notes/PLATFORM.md)."""

from __future__ import annotations

import sys

from PySide6.QtCore import QPointF
from PySide6.QtWidgets import QGraphicsRectItem
from pytestqt.qtbot import QtBot


def test_calls_returning_none_do_not_leak_none(qtbot: QtBot) -> None:
    item = QGraphicsRectItem(0, 0, 10, 10)
    point = QPointF(1.0, 2.0)
    for _ in range(1000):  # warm up caches
        item.setPos(point)
    before = sys.getrefcount(None)
    for _ in range(100_000):
        item.setPos(point)
    # Immortal None (3.12+) reports a huge constant; on 3.11 a leak shows as a drop of ~100k.
    assert abs(sys.getrefcount(None) - before) < 1000
