"""The library grid: a model that passes Qt's checks, pages, filters, drags asset ids, takes dropped
files, and shows real thumbnails rendered off the GUI thread."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QModelIndex, QPoint, Qt, QUrl
from PySide6.QtGui import QDropEvent, QImage
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from core.cache.store import ContentStore
from core.db.enums import MediaType
from core.library import LibraryQuery
from core.runtime import CoreLoop
from core.thumbnails import ThumbnailService, ThumbnailStore
from tests.fakes.media import tiny_mp4, tiny_png
from tests.ui.conftest import Library
from ui.bridge import CoreBridge
from ui.library_grid import AssetGridModel, AssetGridView, CardRole
from ui.providers_dock import asset_ids_from
from ui.thumbnail_loader import CoreThumbnails


@pytest.fixture
def bridge(core: CoreLoop) -> CoreBridge:
    return CoreBridge(core)


@pytest.fixture
def thumbnails(core: CoreLoop, tmp_path: Path) -> Iterator[tuple[ContentStore, CoreThumbnails]]:
    store = ContentStore(tmp_path / "store")
    store.ensure_dirs()

    async def build() -> ThumbnailService:
        return ThumbnailService(ThumbnailStore(tmp_path / "thumbs"))

    service = core.run(build(), timeout=10)
    yield store, CoreThumbnails(store, service)
    core.run(service.aclose(), timeout=30)


def _load_all(qtbot: QtBot, model: AssetGridModel) -> None:
    def done() -> bool:
        if model.canFetchMore(QModelIndex()):
            model.fetchMore(QModelIndex())
        return not model.is_loading and not model.canFetchMore(QModelIndex())

    qtbot.waitUntil(done, timeout=10_000)


def _wait_rows(qtbot: QtBot, model: AssetGridModel, rows: int) -> None:
    qtbot.waitUntil(lambda: model.rowCount() == rows and not model.is_loading, timeout=10_000)


def test_the_model_pages_and_passes_the_model_tester(
    qtbot: QtBot, qtmodeltester: ModelTester, library: Library, bridge: CoreBridge
) -> None:
    library.add_assets(5, media_type=MediaType.IMAGE, mime_type="image/png")
    library.add_assets(7)
    model = AssetGridModel(library.service, bridge, page_size=4)
    totals: list[int] = []
    model.count_changed.connect(totals.append)
    model.set_query(LibraryQuery())
    _wait_rows(qtbot, model, 4)
    qtmodeltester.check(model)
    _load_all(qtbot, model)
    assert model.rowCount() == 12 and totals == [12]
    qtmodeltester.check(model)

    model.set_query(LibraryQuery(media_types=frozenset({MediaType.IMAGE})))
    _wait_rows(qtbot, model, 4)
    _load_all(qtbot, model)
    assert model.rowCount() == 5 and totals[-1] == 5
    assert {model.index(r).data(CardRole).media_type for r in range(5)} == {MediaType.IMAGE}


def test_dragging_cards_carries_their_asset_ids(qtbot: QtBot, library: Library, bridge: CoreBridge) -> None:
    ids = library.add_assets(3)
    model = AssetGridModel(library.service, bridge)
    model.set_query(LibraryQuery())
    _wait_rows(qtbot, model, 3)
    mime = model.mimeData([model.index(0), model.index(2)])
    assert sorted(asset_ids_from(mime)) == sorted([ids[2], ids[0]])  # newest first in the grid


def test_thumbnails_arrive_off_the_gui_thread_and_are_cached(
    qtbot: QtBot,
    library: Library,
    bridge: CoreBridge,
    thumbnails: tuple[ContentStore, CoreThumbnails],
    tmp_path: Path,
) -> None:
    store, loader = thumbnails
    png, mp4 = tmp_path / "still.png", tmp_path / "clip.mp4"
    png.write_bytes(tiny_png(4, size=(120, 60)))
    mp4.write_bytes(tiny_mp4(5, seconds=1.0, size=(96, 64)))
    png_sha, _, _ = store.add_file(png, "a")
    mp4_sha, _, _ = store.add_file(mp4, "b")
    library.add_assets(1, media_type=MediaType.IMAGE, sha256=png_sha, mime_type="image/png")
    library.add_assets(1, media_type=MediaType.VIDEO, sha256=mp4_sha)
    library.add_assets(1, sha256=hashlib.sha256(b"not here").hexdigest())  # remote only: no thumbnail
    model = AssetGridModel(library.service, bridge)
    model.set_loader(loader)
    model.set_query(LibraryQuery())
    _wait_rows(qtbot, model, 3)
    assert all(model.index(r).data(Qt.ItemDataRole.DecorationRole) is None for r in range(3))  # placeholders
    qtbot.waitUntil(lambda: model.pending_requests == 0, timeout=20_000)
    images = [model.index(r).data(Qt.ItemDataRole.DecorationRole) for r in range(3)]
    remote, video, still = images  # newest first
    assert remote is None and model.cache.failed((model.card(0).id, "thumb"))
    assert isinstance(still, QImage) and still.width() == 2 * still.height()  # aspect ratio kept
    assert isinstance(video, QImage) and not video.isNull()
    assert model.cache.bytes_used >= still.sizeInBytes() + video.sizeInBytes()


def test_requests_for_cards_far_away_are_cancelled(
    qtbot: QtBot, library: Library, bridge: CoreBridge, thumbnails: tuple[ContentStore, CoreThumbnails]
) -> None:
    library.add_assets(300, media_type=MediaType.IMAGE)
    model = AssetGridModel(library.service, bridge, page_size=300)
    model.set_loader(thumbnails[1])
    model.set_query(LibraryQuery())
    _wait_rows(qtbot, model, 300)
    for row in range(300):
        model.index(row).data(Qt.ItemDataRole.DecorationRole)
    model.keep_requests_near(0, 20)
    assert model.pending_requests <= 20 + 60 + 1


def test_files_dropped_from_the_desktop_are_offered_for_import(qtbot: QtBot, tmp_path: Path) -> None:
    view = AssetGridView()
    qtbot.addWidget(view)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / "a.mp4")), QUrl("https://example.test/b.mp4")])
    event = QDropEvent(
        QPoint(5, 5),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(view.files_dropped) as dropped:
        view.dropEvent(event)
    assert dropped.args == [[tmp_path / "a.mp4"]]


def test_thumbnails_wait_while_the_grid_scrolls_and_load_when_it_pauses(
    qtbot: QtBot,
    library: Library,
    bridge: CoreBridge,
    thumbnails: tuple[ContentStore, CoreThumbnails],
    tmp_path: Path,
) -> None:
    store, loader = thumbnails
    png = tmp_path / "still.png"
    png.write_bytes(tiny_png(6, size=(64, 64)))
    sha, _, _ = store.add_file(png, "s")
    library.add_assets(3, media_type=MediaType.IMAGE, sha256=sha, mime_type="image/png")
    model = AssetGridModel(library.service, bridge)
    model.set_loader(loader)
    model.set_query(LibraryQuery())
    _wait_rows(qtbot, model, 3)
    model.note_scrolling()  # a fling is in progress: cards fly past
    assert all(model.index(r).data(Qt.ItemDataRole.DecorationRole) is None for r in range(3))
    assert model.pending_requests == 0  # nothing asked yet
    # Once the view has been still for a moment, the cards that asked are repainted and load.
    with qtbot.waitSignal(model.dataChanged, timeout=2_000):
        pass
    for r in range(3):
        model.index(r).data(Qt.ItemDataRole.DecorationRole)
    qtbot.waitUntil(
        lambda: all(model.cache.get((model.card(r).id, "thumb")) is not None for r in range(3)),
        timeout=20_000,
    )
