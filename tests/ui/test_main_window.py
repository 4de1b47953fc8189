"""The first window, offscreen: empty state, library list, status bar, menus and saved window state."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QModelIndex, Qt
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from core.db.enums import MediaType
from ui.bridge import CoreBridge
from ui.empty_state import HEADING
from ui.main_window import MainWindow
from ui.models.asset_list import AssetIdRole, AssetListModel, MediaTypeRole

from .conftest import Library

DB_TEXT = "Embedded PostgreSQL 18.4 in /somewhere/pgdata"


def make_window(qtbot: QtBot, library: Library, state_file: Path | None = None) -> MainWindow:
    window = MainWindow(
        library=library.service,
        bridge=CoreBridge(library.core),
        database_description=DB_TEXT,
        state_file=state_file,
        version="test",
    )
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.asset_count is not None, timeout=10_000)
    return window


def test_an_empty_library_explains_how_to_import_or_generate(qtbot: QtBot, library: Library) -> None:
    window = make_window(qtbot, library)
    assert window.asset_count == 0
    assert window.stack.currentWidget() is window.empty_view
    assert window.empty_view.isVisible()
    assert window.empty_view.heading.text() == HEADING
    body = window.empty_view.body
    assert "Import" in body.text() and "Generate" in body.text()
    assert body.height() >= body.heightForWidth(body.width()), "the explanation is not clipped"
    assert window.database_label.text() == f"Database: {DB_TEXT}"
    assert window.count_label.text() == "No assets"
    menus = [a.text() for a in window.menuBar().actions()]
    assert menus == ["&File", "&View", "&Help"]


def test_a_library_with_assets_lists_them_newest_first(qtbot: QtBot, library: Library) -> None:
    ids = library.add_assets(3, title=None, description=None)
    image_id = library.add_assets(1, media_type=MediaType.IMAGE, title="Cat portrait")[0]
    window = make_window(qtbot, library)
    assert window.count_label.text() == "4 assets"
    assert window.stack.currentWidget() is window.asset_view
    model = window.asset_model
    qtbot.waitUntil(lambda: model.rowCount() == 4, timeout=10_000)
    shown = [model.data(model.index(r, 0), AssetIdRole) for r in range(4)]
    assert sorted(shown) == sorted([*ids, image_id])
    row = shown.index(image_id)
    assert model.data(model.index(row, 0)) == "Cat portrait"
    assert model.data(model.index(row, 0), MediaTypeRole) == "image"
    untitled = shown.index(ids[0])
    assert model.data(model.index(untitled, 0)) == f"video #{ids[0]}"


def test_refresh_switches_from_empty_state_to_the_list(qtbot: QtBot, library: Library) -> None:
    window = make_window(qtbot, library)
    assert window.stack.currentWidget() is window.empty_view
    library.add_assets(2)
    window.refresh_action.trigger()
    qtbot.waitUntil(lambda: window.asset_model.rowCount() == 2, timeout=10_000)
    assert window.stack.currentWidget() is window.asset_view
    assert window.count_label.text() == "2 assets"


def test_the_asset_model_pages_and_passes_the_model_tester(qtbot: QtBot, library: Library) -> None:
    ids = library.add_assets(5)
    model = AssetListModel(library.service, CoreBridge(library.core), page_size=2)
    pages: list[int] = []
    model.page_loaded.connect(pages.append)
    # The tester stays connected and re-checks the model on every insertion; it also fetches a page.
    ModelTester(None).check(model, force_py=True)
    while True:
        qtbot.waitUntil(lambda: not model.is_loading, timeout=10_000)
        if not model.canFetchMore(QModelIndex()):
            break
        model.fetchMore(QModelIndex())
    assert pages == [2, 2, 1]
    assert [model.data(model.index(r, 0), AssetIdRole) for r in range(5)] == sorted(ids, reverse=True)
    ModelTester(None).check(model, force_py=True)
    assert model.data(model.index(5, 0)) is None
    assert model.data(model.index(0, 0), Qt.ItemDataRole.ToolTipRole).endswith("1280×720")


def test_window_geometry_is_restored_on_the_next_launch(
    qtbot: QtBot, library: Library, tmp_path: Path
) -> None:
    state = tmp_path / "window.ini"
    first = make_window(qtbot, library, state_file=state)
    first.resize(640, 480)  # within the 800×600 offscreen screen
    first.close()
    assert state.exists()
    second = make_window(qtbot, library, state_file=state)
    assert (second.width(), second.height()) == (640, 480)
