"""The main window, offscreen, on a real database: empty state, grid, docks, saved layout; and, with
the core services attached, import by drop, push by drop, generate, filter and search."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import QMessageBox, QPlainTextEdit
from pytestqt.qtbot import QtBot

from app.services import Services, build_services
from app.settings import Settings
from core.db.enums import MediaType
from core.library import LibraryQuery
from core.net.http import SafeHttp
from core.net.policy import UrlPolicy
from core.runtime import CoreLoop
from tests.fakes.http_server import FakeHttpServer
from tests.fakes.media import tiny_mp4, tiny_png
from tests.fakes.pixverse import FakePixverse
from tests.jobs.conftest import FAST
from tests.memory_keyring import MemoryKeyring
from tests.transfer.conftest import TEST_RETRY, TEST_TIMEOUT
from ui.bridge import CoreBridge
from ui.context import WindowServices
from ui.empty_state import HEADING
from ui.library_grid import CardRole
from ui.main_window import MainWindow
from ui.providers_dock import asset_ids_mime
from ui.settings_dialog import GIB, SettingsValues

from .conftest import Library

DB_TEXT = "Embedded PostgreSQL 18.4 in /somewhere/pgdata"
PIXVERSE_KEY = "pv-ui-test-key"


def make_window(qtbot: QtBot, library: Library, state_file: Path | None = None) -> MainWindow:
    window = MainWindow(
        library=library.service,
        bridge=CoreBridge(library.core),
        database_description=DB_TEXT,
        state_file=state_file,
        version="test",
        settings=SettingsValues(None, None, Path("/tmp/cache"), 20 * GIB, 4, False),
    )
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.asset_count is not None, timeout=10_000)
    return window


def grid_ids(window: MainWindow) -> list[int]:
    model = window.asset_model
    return [model.card(r).id for r in range(model.rowCount())]


def test_an_empty_library_explains_how_to_import_or_generate(qtbot: QtBot, library: Library) -> None:
    window = make_window(qtbot, library)
    assert window.asset_count == 0
    assert window.stack.currentWidget() is window.empty_page and window.empty_view.isVisible()
    assert window.empty_view.heading.text() == HEADING
    body = window.empty_view.body
    assert "Import" in body.text() and "Generate" in body.text() and "demo library" in body.text()
    assert body.height() >= body.heightForWidth(body.width()), "the explanation is not clipped"
    # Until the core services are up, the buttons that need them wait.
    assert window.demo_button.isVisible() and not window.demo_button.isEnabled()
    assert window.database_label.text() == f"Database: {DB_TEXT}"
    assert window.count_label.text() == "No assets"
    assert [a.text() for a in window.menuBar().actions()] == ["&File", "&Create", "&Asset", "&View", "&Help"]
    assert {d.objectName() for d in (window.providers_dock, window.inspector_dock, window.activity_dock)} == {
        "providersDock",
        "inspectorDock",
        "activityDock",
    }


def test_a_library_with_assets_shows_cards_newest_first(qtbot: QtBot, library: Library) -> None:
    ids = library.add_assets(3, title=None, description=None)
    image_id = library.add_assets(1, media_type=MediaType.IMAGE, title="Cat portrait")[0]
    window = make_window(qtbot, library)
    assert window.count_label.text() == "4 assets"
    assert window.stack.currentWidget() is window.asset_view
    qtbot.waitUntil(lambda: window.asset_model.rowCount() == 4, timeout=10_000)
    assert grid_ids(window) == [image_id, *reversed(ids)]
    card = window.asset_model.index(0).data(CardRole)
    assert card.display_name == "Cat portrait" and card.media_type is MediaType.IMAGE


def test_selecting_a_card_shows_it_in_the_inspector(qtbot: QtBot, library: Library) -> None:
    library.add_assets(1, title="Storm over the bay")
    window = make_window(qtbot, library)
    qtbot.waitUntil(lambda: window.asset_model.rowCount() == 1, timeout=10_000)
    window.asset_view.setCurrentIndex(window.asset_model.index(0))
    qtbot.waitUntil(lambda: "Storm over the bay" in _inspector_text(window), timeout=10_000)


def _inspector_text(window: MainWindow) -> str:
    from PySide6.QtWidgets import QLabel, QLineEdit

    texts = [w.text() for w in window.inspector.findChildren(QLabel)]
    texts += [w.text() for w in window.inspector.findChildren(QLineEdit)]
    return "\n".join(texts)


def test_refresh_switches_from_empty_state_to_the_grid(qtbot: QtBot, library: Library) -> None:
    window = make_window(qtbot, library)
    assert window.stack.currentWidget() is window.empty_page
    library.add_assets(2)
    window.refresh_action.trigger()
    qtbot.waitUntil(lambda: window.asset_model.rowCount() == 2, timeout=10_000)
    assert window.stack.currentWidget() is window.asset_view
    assert window.count_label.text() == "2 assets"


def test_window_geometry_and_docks_are_restored_on_the_next_launch(
    qtbot: QtBot, library: Library, tmp_path: Path
) -> None:
    state = tmp_path / "window.ini"
    first = make_window(qtbot, library, state_file=state)
    first.resize(700, 500)  # within the 800×600 offscreen screen
    first.activity_dock.hide()
    first.close()
    assert state.exists()
    second = make_window(qtbot, library, state_file=state)
    assert (second.width(), second.height()) == (700, 500)
    assert second.activity_dock.isHidden() and not second.inspector_dock.isHidden()


# -- with the core services --------------------------------------------------------------------------


@dataclass
class App:
    window: MainWindow
    services: Services
    server: FakeHttpServer
    pixverse: FakePixverse


@pytest.fixture
def app(
    qtbot: QtBot,
    core: CoreLoop,
    library: Library,
    tmp_path: Path,
    db_url: object,
    memory_keyring: MemoryKeyring,
) -> Iterator[App]:
    from sqlalchemy.engine import URL

    assert isinstance(db_url, URL)
    settings = Settings(data_dir=tmp_path / "data", config_dir=tmp_path / "config")
    stop = asyncio.Event()

    async def start() -> tuple[Services, FakeHttpServer, FakePixverse]:
        server = await FakeHttpServer().__aenter__()
        pixverse = FakePixverse(server, api_key=PIXVERSE_KEY)
        http = SafeHttp(UrlPolicy.trusting([server.base_url]), timeout=TEST_TIMEOUT)
        services = build_services(settings, db_url, http=http, job_policy=FAST, retry=TEST_RETRY)
        services.registry.get("pixverse").poll_interval_s = 0.02  # type: ignore[attr-defined]
        await services.accounts.add("pixverse", "studio", api_key=PIXVERSE_KEY, base_url=server.base_url)
        return services, server, pixverse

    services, server, pixverse = core.run(start(), timeout=30)
    runner = core.submit(services.runner.run(stop))
    window = make_window(qtbot, library)
    window.attach_services(
        WindowServices(
            sessions=services.sessions,
            registry=services.registry,
            transfers=services.transfers,
            jobs=services.jobs,
            runner=services.runner,
            accounts=services.accounts,
            importer=services.importer,
            thumbnails=services.thumbnails,
            story=services.story,
        )
    )
    qtbot.waitUntil(lambda: window.targets_model.rowCount() >= 3, timeout=10_000)
    yield App(window, services, server, pixverse)
    window.close()

    async def stop_all() -> None:
        stop.set()
        await asyncio.wrap_future(runner)
        await services.aclose()
        await server.close()

    core.run(stop_all(), timeout=30)


def test_dropping_files_imports_them_and_lists_what_was_skipped(
    qtbot: QtBot, app: App, tmp_path: Path
) -> None:
    window = app.window
    files = tmp_path / "drop"
    files.mkdir()
    (files / "castle.png").write_bytes(tiny_png(1, size=(80, 40)))
    (files / "storm.mp4").write_bytes(tiny_mp4(2))
    (files / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"x" * 40)
    window.asset_view.files_dropped.emit([files])
    qtbot.waitUntil(lambda: window.asset_model.rowCount() == 2, timeout=20_000)
    names = {window.asset_model.card(r).display_name for r in range(2)}
    assert names == {"castle", "storm"}
    report = window.findChild(QMessageBox, "importReport")
    assert report is not None and "broken.mp4" in report.detailedText()
    row = window.activity_model.row(0)
    assert row.finished and "2 imported" in row.detail and "1 skipped" in row.detail
    # Thumbnails come from the real files, off the GUI thread.
    qtbot.waitUntil(
        lambda: window.asset_model.pending_requests == 0 and len(window.asset_model.cache) >= 2,
        timeout=20_000,
    )


def test_dragging_assets_onto_a_provider_pushes_them_once(qtbot: QtBot, app: App, tmp_path: Path) -> None:
    window = app.window
    (tmp_path / "fox.png").write_bytes(tiny_png(3))
    window.import_paths([tmp_path / "fox.png"])
    qtbot.waitUntil(lambda: window.asset_model.rowCount() == 1, timeout=20_000)
    asset_id = window.asset_model.card(0).id
    targets = window.targets_model
    pixverse_row = next(r for r in range(targets.rowCount()) if targets.target(r).provider_id == "pixverse")
    dropped = targets.dropMimeData(
        asset_ids_mime([asset_id]), Qt.DropAction.CopyAction, -1, -1, targets.index(pixverse_row, 0)
    )
    assert dropped
    model = window.asset_model
    qtbot.waitUntil(lambda: model.rowCount() == 1 and "pixverse" in model.card(0).providers, timeout=20_000)
    assert len(app.pixverse.uploads) == 1
    assert any(r.title == f"Push asset {asset_id} → pixverse" and r.state == "Done" for r in _rows(window))
    # The offline Sandbox is a drop target too; dropping again on Pixverse uploads nothing more.
    sandbox_row = next(r for r in range(targets.rowCount()) if targets.target(r).provider_id == "sandbox")
    targets.dropMimeData(
        asset_ids_mime([asset_id]), Qt.DropAction.CopyAction, -1, -1, targets.index(sandbox_row, 0)
    )
    targets.dropMimeData(
        asset_ids_mime([asset_id]), Qt.DropAction.CopyAction, -1, -1, targets.index(pixverse_row, 0)
    )
    qtbot.waitUntil(lambda: model.rowCount() == 1 and "sandbox" in model.card(0).providers, timeout=20_000)
    assert len(app.pixverse.uploads) == 1


def _rows(window: MainWindow) -> list:  # type: ignore[type-arg]
    return [window.activity_model.row(r) for r in range(window.activity_model.rowCount())]


def test_the_generate_dialog_makes_a_new_asset_that_appears_in_the_grid(qtbot: QtBot, app: App) -> None:
    window = app.window
    dialog = window.open_generate_dialog("sandbox")
    assert dialog is not None
    dialog.select_operation("text_to_image")
    prompt = dialog.field("prompt")
    assert isinstance(prompt, QPlainTextEdit)
    prompt.setPlainText("a lighthouse at dusk")
    dialog.generate_button.click()
    qtbot.waitUntil(lambda: window.asset_model.rowCount() == 1, timeout=30_000)
    card = window.asset_model.card(0)
    assert card.provider_id == "sandbox" and card.media_type is MediaType.IMAGE
    job_row = next(r for r in _rows(window) if r.job_id is not None)
    assert job_row.state == "Done" and job_row.result_asset_ids == (card.id,)


def test_search_and_filters_narrow_the_grid(qtbot: QtBot, app: App, library: Library) -> None:
    library.add_assets(2, title="Harbour at night", prompt="boats in the harbour")
    library.add_assets(1, media_type=MediaType.IMAGE, title="Lighthouse keeper", prompt="portrait")
    window = app.window
    window.refresh()
    qtbot.waitUntil(lambda: window.asset_model.rowCount() == 3, timeout=10_000)
    window.filter_bar.set_query(LibraryQuery(text="harb"))
    qtbot.waitUntil(lambda: window.asset_model.rowCount() == 2, timeout=10_000)
    assert window.count_label.text() == "2 of 3 assets"
    window.filter_bar.set_query(LibraryQuery(media_types=frozenset({MediaType.IMAGE})))
    qtbot.waitUntil(lambda: window.asset_model.rowCount() == 1, timeout=10_000)
    assert window.asset_model.card(0).display_name == "Lighthouse keeper"
    assert not window.asset_model.canFetchMore(QModelIndex())


def test_a_failed_push_is_shown_and_retried_from_the_panel(qtbot: QtBot, app: App, tmp_path: Path) -> None:
    from tests.fakes.pixverse import IMAGE_UPLOAD

    window = app.window
    (tmp_path / "owl.png").write_bytes(tiny_png(8))
    window.import_paths([tmp_path / "owl.png"])
    qtbot.waitUntil(lambda: window.asset_model.rowCount() == 1, timeout=20_000)
    asset_id = window.asset_model.card(0).id
    app.pixverse.fail_envelope(IMAGE_UPLOAD, 500030, "image cannot be used")  # permanent: no retry by itself
    target = next(t for t in window._current_targets() if t.provider_id == "pixverse")
    window.push_assets([asset_id], target)
    qtbot.waitUntil(lambda: any(r.failed and r.asset_id == asset_id for r in _rows(window)), timeout=20_000)
    failed = next(r for r in _rows(window) if r.failed and r.asset_id == asset_id)
    assert "Pixverse cannot use this image" in failed.detail
    window.activity_panel.view.selectRow(window.activity_model._index[failed.key])
    assert window.activity_panel.retry_button.isEnabled()
    window.activity_panel.retry_button.click()
    model = window.asset_model
    qtbot.waitUntil(lambda: model.rowCount() == 1 and "pixverse" in model.card(0).providers, timeout=20_000)
    assert len(app.pixverse.uploads) == 1


def test_load_demo_library_from_the_empty_state(qtbot: QtBot, app: App) -> None:
    window = app.window
    qtbot.waitUntil(lambda: window.demo_button.isEnabled(), timeout=10_000)
    window.demo_scale = 0.0  # the essential items only: every kind of lineage, the branch and clips
    window.demo_button.click()
    qtbot.waitUntil(lambda: window.demo_button.isHidden(), timeout=120_000)
    qtbot.waitUntil(lambda: window.asset_model.rowCount() >= 10, timeout=20_000)
    assert window.stack.currentWidget() is window.asset_view
    demo_row = window.activity_model.find("demo")
    assert demo_row is not None and demo_row.state == "Done"


def test_hovering_a_video_card_scrubs_through_its_frames(qtbot: QtBot, app: App, tmp_path: Path) -> None:
    from PySide6.QtCore import QPoint

    window = app.window
    (tmp_path / "waves.mp4").write_bytes(tiny_mp4(9, seconds=2.0, size=(96, 64)))
    window.import_paths([tmp_path / "waves.mp4"])
    qtbot.waitUntil(lambda: window.asset_model.rowCount() == 1, timeout=20_000)
    view = window.asset_view
    rect = view.visualRect(window.asset_model.index(0))
    view._hover(QPoint(rect.left() + rect.width() * 3 // 4, rect.top() + 40))
    delegate = view.card_delegate
    assert delegate.hover_row == 0 and 0.6 < delegate.hover_fraction < 0.9
    from ui.library_grid import ScrubRole

    window.asset_model.index(0).data(ScrubRole)  # the paint asks; the strip is rendered off the GUI thread
    card_id = window.asset_model.card(0).id
    qtbot.waitUntil(lambda: window.asset_model.cache.get((card_id, "scrub")) is not None, timeout=20_000)
    strip = window.asset_model.cache.get((card_id, "scrub"))
    assert strip is not None and strip.width() >= 8 * strip.height() // 2  # eight frames side by side


def test_a_video_opens_in_the_story_editor_and_an_image_does_not(
    qtbot: QtBot, app: App, tmp_path: Path
) -> None:
    from ui.story_editor import StoryEditor

    window = app.window
    (tmp_path / "harbour.mp4").write_bytes(tiny_mp4(4, seconds=2.0))
    (tmp_path / "gull.png").write_bytes(tiny_png(5))
    window.import_paths([tmp_path / "harbour.mp4", tmp_path / "gull.png"])
    qtbot.waitUntil(lambda: window.asset_model.rowCount() == 2, timeout=20_000)
    rows = {window.asset_model.card(r).media_type: r for r in range(2)}

    window.asset_view.setCurrentIndex(window.asset_model.index(rows[MediaType.IMAGE]))
    qtbot.waitUntil(lambda: window.inspector.detail is not None, timeout=10_000)
    assert not window.story_action.isEnabled()
    assert window.inspector.story_button.isHidden()

    video_row = rows[MediaType.VIDEO]
    video_id = window.asset_model.card(video_row).id
    window.asset_view.setCurrentIndex(window.asset_model.index(video_row))
    qtbot.waitUntil(
        lambda: window.inspector.detail is not None and window.inspector.detail.id == video_id,
        timeout=10_000,
    )
    assert window.story_action.isEnabled()
    assert not window.inspector.story_button.isHidden()

    window.inspector.story_button.click()  # the inspector's button, like Ctrl+E and a double-click
    editors = window.findChildren(StoryEditor)
    assert len(editors) == 1 and editors[0].video_id == video_id
    qtbot.waitUntil(lambda: editors[0].story is not None, timeout=20_000)
    assert editors[0].story is not None and editors[0].story.video.asset_id == video_id
    editors[0].close()

    window.asset_view.doubleClicked.emit(window.asset_model.index(video_row))
    qtbot.waitUntil(lambda: len([e for e in window.findChildren(StoryEditor) if not e.closed]) == 1)


def test_the_lineage_tab_builds_its_graph_when_first_shown_and_follows_the_selection(
    qtbot: QtBot, app: App, tmp_path: Path
) -> None:
    window = app.window
    (tmp_path / "cliff.png").write_bytes(tiny_png(6))
    window.import_paths([tmp_path / "cliff.png"])
    qtbot.waitUntil(lambda: window.asset_model.rowCount() == 1, timeout=20_000)
    window.asset_view.setCurrentIndex(window.asset_model.index(0))
    # Hidden behind Transfers and Jobs: nothing of the graph is built at start-up.
    assert window.lineage_view is None

    window.lineage_dock.raise_()
    qtbot.waitUntil(lambda: window.lineage_view is not None, timeout=5_000)
    view = window.lineage_view
    assert view is not None and window.lineage_dock.widget() is view
    asset_id = window.asset_model.card(0).id
    qtbot.waitUntil(lambda: view.graph is not None and view.graph.focus_id == asset_id, timeout=20_000)
    assert asset_id in view.graph.nodes
