"""Near-duplicates in the main window on the real database: Find Duplicates in the background with its
row in Transfers and Jobs, stacked cards with a count badge, Show Duplicates, the Stack toggle; nothing
is ever deleted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtGui import QAction, QColor
from PySide6.QtWidgets import QMenu
from pytestqt.qtbot import QtBot
from sqlalchemy.engine import URL

from core.runtime import CoreLoop
from tests.memory_keyring import MemoryKeyring
from tests.ui.test_similar import BLUE, WAIT, SimilarApp, make_app, picture, wait_indexed
from ui.library_grid import THUMB_HEIGHT
from ui.main_window import DUPLICATES_KEY, MainWindow


@pytest.fixture
def dup_app(
    qtbot: QtBot, core: CoreLoop, db_url: URL, tmp_path: Path, memory_keyring: MemoryKeyring
) -> Iterator[SimilarApp]:
    yield from make_app(qtbot, core, db_url, tmp_path)


def cards(window: MainWindow) -> list[tuple[int, int]]:
    model = window.asset_model
    return [(model.card(r).id, model.card(r).stack_size) for r in range(model.rowCount())]


# The offscreen platform cannot raise a popup menu or let it grab the keyboard; it says so.
@pytest.mark.qt_log_ignore("does not support raise", "does not support grabbing the keyboard")
def test_find_duplicates_stacks_versions_of_a_picture_and_deletes_nothing(
    qtbot: QtBot, dup_app: SimilarApp
) -> None:
    app, window = dup_app, dup_app.window
    wait_indexed(qtbot, app)
    copy = app.import_files([picture(app.folder, "sea copy", BLUE, (192, 144))])["sea copy"]
    window.notify_indexer()
    qtbot.waitUntil(lambda: app.vectors() >= 10, timeout=WAIT)
    # The indexing pass stacks the copy with the sea by itself, and the grid reloads on its own.
    sea_group = {app.ids["sea"], copy}
    qtbot.waitUntil(lambda: any(c in sea_group and n > 1 for c, n in cards(window)), timeout=WAIT)
    assert window.filter_bar.stack_check.isChecked(), "stacking is on by default"

    assert window.find_duplicates_action.isEnabled()
    window.find_duplicates_action.trigger()
    qtbot.waitUntil(
        lambda: (r := window.activity_model.find(DUPLICATES_KEY)) is not None and r.finished, timeout=WAIT
    )
    row = window.activity_model.find(DUPLICATES_KEY)
    assert row is not None and row.state == "Done" and "nothing was deleted" in row.detail
    qtbot.waitUntil(lambda: any(size > 1 for _, size in cards(window)), timeout=WAIT)
    stacks = [size for _, size in cards(window) if size > 1]
    assert len(cards(window)) == 8 - sum(size - 1 for size in stacks), "one card per group"
    assert len(sea_group & {c for c, _ in cards(window)}) == 1, "the picture and its copy share one card"
    assert window.asset_count == 8, "nothing deleted"

    # The count badge is drawn on the card: an orange pile at the thumbnail's lower left.
    model = window.asset_model
    stacked_row = next(r for r in range(model.rowCount()) if model.card(r).id in sea_group)
    stacked = model.card(stacked_row)
    window.asset_view.scrollTo(model.index(stacked_row))
    rect = window.asset_view.visualRect(model.index(stacked_row))
    image = window.asset_view.viewport().grab().toImage()
    badge = QColor(image.pixel(rect.left() + 15, rect.top() + THUMB_HEIGHT - 22 + 3))
    assert badge.red() > 200 and 100 < badge.green() < 180 and badge.blue() < 90, badge.name()
    size = stacked.stack_size
    assert size >= 2 and f"{size} near-duplicates stacked" in str(model.data(model.index(stacked_row), 3))

    # Right-click → Show Duplicates: only that group, with a chip to leave it.
    window.asset_view.setCurrentIndex(model.index(stacked_row))
    window._grid_menu(rect.center())
    show = next(
        a for m in window.findChildren(QMenu) for a in m.actions() if a.objectName() == "showDuplicates"
    )
    assert isinstance(show, QAction) and show.text() == f"Show Duplicates ({size})"
    show.trigger()
    for menu in window.findChildren(QMenu):
        menu.close()
    chip = window.filter_bar.similar_chip
    qtbot.waitUntil(lambda: chip.isVisible() and len(cards(window)) == size, timeout=WAIT)
    assert sea_group <= {c for c, _ in cards(window)}
    assert all(size == 1 for _, size in cards(window)), "a stack's members are shown one by one"
    assert chip.text() == f"Duplicates of: {stacked.display_name}  ✕"
    chip.click()
    qtbot.waitUntil(lambda: len(cards(window)) == 8 - sum(size - 1 for size in stacks), timeout=WAIT)

    # Unstacked, every version has its own card again.
    window.filter_bar.stack_check.setChecked(False)
    qtbot.waitUntil(
        lambda: len(cards(window)) == 8 and sea_group <= {c for c, _ in cards(window)}, timeout=WAIT
    )
    assert all(size == 1 for _, size in cards(window))
