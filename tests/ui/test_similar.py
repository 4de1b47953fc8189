"""Find similar, end to end in the main window on the real database: real files imported, scenes found
and vectors stored by the real background indexer, results in the grid in likeness order with a
removable chip, scene hits opening the story editor at their time, the story editor's frame, describe
search, and the indexer's row in Transfers and Jobs, with the GUI thread never blocked."""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import Qt, QTimer
from pytestqt.qtbot import QtBot
from sqlalchemy import func, select
from sqlalchemy.engine import URL

from app.gui import window_services
from app.services import Services, build_services
from app.settings import Settings
from core.db.enums import MediaType
from core.db.models import Embedding
from core.embeddings.base import Embedder
from core.embeddings.indexer import IndexEvent, IndexPhase
from core.embeddings.visual import VisualSignatureEmbedder
from core.library import LibraryService
from core.runtime import CoreLoop
from tests.embeddings.colour_embedder import ColourGridEmbedder
from tests.jobs.conftest import FAST
from tests.media.scene_videos import Shot, solid, write_video
from tests.memory_keyring import MemoryKeyring
from ui.activity import INDEX_KEY, ActivityModel
from ui.bridge import CoreBridge
from ui.inspector import SCENE_THUMB
from ui.main_window import MainWindow
from ui.settings_dialog import GIB, SettingsValues

WAIT = 30_000
RED, BLUE = (220, 30, 30), (30, 40, 220)


@dataclass
class SimilarApp:
    core: CoreLoop
    services: Services
    window: MainWindow
    folder: Path
    ids: dict[str, int]

    def vectors(self) -> int:
        async def count() -> int:
            async with self.services.sessions() as session:
                return int(await session.scalar(select(func.count()).select_from(Embedding)) or 0)

        return self.core.run(count(), timeout=30)

    def import_files(self, paths: list[Path]) -> dict[str, int]:
        report = self.core.run(self.services.importer.import_paths(paths), timeout=60)
        assert not report.failed, report.failed
        found = {path.stem: asset_id for path, asset_id in report.imported}
        self.ids.update(found)
        return found


def picture(folder: Path, name: str, rgb: tuple[int, int, int], size: tuple[int, int] = (96, 72)) -> Path:
    path = folder / f"{name}.png"
    image = Image.new("RGB", size, rgb)
    # A corner mark, so pictures of one colour are alike but not identical.
    image.paste((rgb[0] // 2, rgb[1] // 2, rgb[2] // 2), (0, 0, size[0] // 4, size[1] // 4))
    image.save(path)
    return path


def grid(window: MainWindow) -> list[tuple[int, int | None]]:
    model = window.asset_model
    return [(model.card(r).id, model.card(r).segment_id) for r in range(model.rowCount())]


def make_app(qtbot: QtBot, core: CoreLoop, db_url: URL, tmp_path: Path) -> Iterator[SimilarApp]:
    settings = Settings(data_dir=tmp_path / "data", config_dir=tmp_path / "config")
    stop = asyncio.Event()

    async def start() -> Services:
        return build_services(settings, db_url, job_policy=FAST)

    services = core.run(start(), timeout=30)
    runner = core.submit(services.runner.run(stop))
    window = MainWindow(
        library=LibraryService(services.sessions),
        bridge=CoreBridge(core),
        database_description="test database",
        version="test",
        settings=SettingsValues(None, None, tmp_path / "cache", 20 * GIB, 4, False),
    )
    qtbot.addWidget(window)
    window.show()
    folder = tmp_path / "files"
    folder.mkdir()
    app = SimilarApp(core, services, window, folder, {})
    # Files first, then the services: the indexer's first pass finds them all.
    paths = [
        picture(folder, "poppy", RED),
        picture(folder, "poppy crop", (230, 40, 35), (120, 90)),
        picture(folder, "tomato", (200, 50, 40)),
        picture(folder, "sea", BLUE),
        picture(folder, "lagoon", (40, 60, 230)),
        picture(folder, "moss", (40, 160, 50)),
    ]
    write_video(
        folder / "two shots.mp4",
        [Shot(1.5, solid((160, 90), RED)), Shot(1.5, solid((160, 90), BLUE))],
        size=(160, 90),
    )
    app.import_files([*paths, folder / "two shots.mp4"])
    window.attach_services(window_services(services, settings.data_dir))
    window.refresh()
    yield app
    window.close()

    async def stop_all() -> None:
        stop.set()
        await asyncio.wrap_future(runner)
        await services.aclose()

    core.run(stop_all(), timeout=30)


@pytest.fixture
def similar_app(
    qtbot: QtBot, core: CoreLoop, db_url: URL, tmp_path: Path, memory_keyring: MemoryKeyring
) -> Iterator[SimilarApp]:
    yield from make_app(qtbot, core, db_url, tmp_path)


def wait_indexed(qtbot: QtBot, app: SimilarApp, vectors: int = 7 + 2) -> None:
    """Seven assets and the video's two scenes have their visual signatures."""
    qtbot.waitUntil(lambda: app.vectors() >= vectors, timeout=WAIT)
    qtbot.waitUntil(
        lambda: (r := app.window.activity_model.find(INDEX_KEY)) is not None and r.finished, timeout=WAIT
    )


def select_asset(qtbot: QtBot, window: MainWindow, asset_id: int) -> None:
    qtbot.waitUntil(lambda: window.asset_model.row_of(asset_id) is not None, timeout=WAIT)
    row = window.asset_model.row_of(asset_id)
    assert row is not None
    window.asset_view.setCurrentIndex(window.asset_model.index(row))


def test_find_similar_shows_likeness_order_with_the_filters_and_a_removable_chip(
    qtbot: QtBot, similar_app: SimilarApp
) -> None:
    app, window = similar_app, similar_app.window
    wait_indexed(qtbot, app)
    index_row = window.activity_model.find(INDEX_KEY)
    assert index_row is not None and index_row.state == "Done" and not index_row.failed
    assert "Indexing for similarity" in index_row.title
    # The pass stacked the red pictures (near-duplicates by their signatures): unstack them here so
    # every picture has its own card and its own place in the likeness order.
    window.filter_bar.stack_check.setChecked(False)
    qtbot.waitUntil(lambda: window.asset_model.rowCount() == 7, timeout=WAIT)

    select_asset(qtbot, window, app.ids["poppy"])
    assert window.find_similar_action.isEnabled()
    window.find_similar_action.trigger()
    chip = window.filter_bar.similar_chip
    qtbot.waitUntil(
        lambda: chip.isVisible() and not window.asset_model.is_loading and window.asset_model.rowCount() > 0,
        timeout=WAIT,
    )
    assert chip.text() == "Similar to: poppy  ✕" and "visual signature" in chip.toolTip()
    hits = grid(window)
    assert app.ids["poppy"] not in [a for a, s in hits if s is None], "the source itself is left out"
    top = [a for a, _ in hits[:3]]
    assert set(top) == {app.ids["poppy crop"], app.ids["tomato"], app.ids["two shots"]}, hits
    red_scene = next(
        c for c in (window.asset_model.card(r) for r in range(len(hits))) if c.segment_id is not None
    )
    assert red_scene.id == app.ids["two shots"] and red_scene.segment_start_sec == pytest.approx(0.0)
    distances = [window.asset_model.card(r).distance or 0.0 for r in range(len(hits))]
    assert distances == sorted(distances), "nearest first"
    assert not window.filter_bar.sort_box.isEnabled()

    # Combined with the filters: images only, still in likeness order, the chip stays.
    window.filter_bar.media_buttons[MediaType.IMAGE].click()
    qtbot.waitUntil(
        lambda: (
            not window.asset_model.is_loading
            and {window.asset_model.card(r).media_type for r in range(window.asset_model.rowCount())}
            == {MediaType.IMAGE}
        ),
        timeout=WAIT,
    )
    images = [a for a, _ in grid(window)]
    assert set(images[:2]) == {app.ids["poppy crop"], app.ids["tomato"]} and len(images) == 5
    assert chip.isVisible() and window.count_label.text() == "5 similar (assets and scenes)"

    chip.click()  # back to the library: the image filter stays
    qtbot.waitUntil(lambda: not chip.isVisible() and window.asset_model.rowCount() == 6, timeout=WAIT)
    assert window.filter_bar.query().similar_to is None and window.filter_bar.sort_box.isEnabled()


def test_a_scene_hit_opens_the_video_at_its_time(qtbot: QtBot, similar_app: SimilarApp) -> None:
    from ui.story_editor import StoryEditor

    app, window = similar_app, similar_app.window
    wait_indexed(qtbot, app)
    select_asset(qtbot, window, app.ids["sea"])
    window.inspector_dock.show()
    qtbot.waitUntil(
        lambda: window.inspector.detail is not None and window.inspector.detail.id == app.ids["sea"],
        timeout=WAIT,
    )
    assert window.inspector.similar_button.isVisible()
    window.inspector.similar_button.click()  # the inspector's Find Similar, like the menu
    qtbot.waitUntil(
        lambda: window.filter_bar.similar_chip.isVisible() and window.asset_model.rowCount() > 0, timeout=WAIT
    )
    model = window.asset_model
    row = next(r for r in range(model.rowCount()) if model.card(r).segment_id is not None)
    card = model.card(row)
    assert card.id == app.ids["two shots"] and card.segment_start_sec == pytest.approx(1.5, abs=0.1)
    # A scene card shows its keyframe (the blue shot), loaded off the GUI thread.
    key = (card.id, f"segment:{card.segment_id}")
    qtbot.waitUntil(lambda: model.cache.get(key) is not None or model.cache.failed(key), timeout=WAIT)
    keyframe = model.cache.get(key)
    assert (
        keyframe is not None
        and keyframe.pixelColor(keyframe.width() // 2, keyframe.height() // 2).blue() > 180
    )
    assert "Scene at 0:02 — double-click to open it there" in model.data(
        model.index(row), Qt.ItemDataRole.ToolTipRole
    )

    window.asset_view.doubleClicked.emit(model.index(row))
    editors = [e for e in window.findChildren(StoryEditor) if not e.closed]
    assert len(editors) == 1 and editors[0].video_id == app.ids["two shots"]
    start = card.segment_start_sec or 0.0
    qtbot.waitUntil(
        lambda: editors[0].player.meta is not None and abs(editors[0].player.current_sec - start) < 0.1,
        timeout=WAIT,
    )
    editors[0].close()


@pytest.mark.qt_log_ignore("does not support raise")  # the main window comes forward with the results
def test_find_similar_from_the_frame_at_the_story_editors_playhead(
    qtbot: QtBot, similar_app: SimilarApp
) -> None:
    from ui.story_editor import StoryEditor

    app, window = similar_app, similar_app.window
    wait_indexed(qtbot, app)
    editor = window.open_story_editor_for(app.ids["two shots"], 2.2)
    assert isinstance(editor, StoryEditor)
    qtbot.waitUntil(
        lambda: (
            editor.player.meta is not None and editor.story is not None and editor.player.current_sec > 2.0
        ),
        timeout=WAIT,
    )
    editor.similar_frame_action.trigger()
    chip = window.filter_bar.similar_chip
    qtbot.waitUntil(lambda: chip.isVisible() and window.asset_model.rowCount() > 0, timeout=WAIT)
    assert chip.text().startswith("Similar to: frame at 0:02 of two shots")
    model = window.asset_model
    top = [model.card(r) for r in range(3)]
    assert app.ids["sea"] in {c.id for c in top}, "the blue picture looks like the blue shot"
    assert any(c.segment_start_sec == pytest.approx(1.5, abs=0.1) for c in top), "and so does the shot itself"
    assert all(c.id != app.ids["poppy"] for c in top)
    editor.close()


def test_describe_search_is_offered_only_with_a_text_model(qtbot: QtBot, similar_app: SimilarApp) -> None:
    app, window = similar_app, similar_app.window
    bar = window.filter_bar
    wait_indexed(qtbot, app)
    assert not bar.describe_action.isEnabled()
    assert "Settings → Models → Install" in bar.describe_action.toolTip()
    assert "pixsim models install clip" in bar.mode_button.toolTip()

    # A real text-capable embedder (colour names → colours) stands in for CLIP.
    colour = ColourGridEmbedder()
    embedders: list[Embedder] = [VisualSignatureEmbedder(), colour]
    app.core.run(app.services.indexer.set_embedders(embedders), timeout=30)
    qtbot.waitUntil(lambda: app.vectors() >= 2 * 9, timeout=WAIT)
    window.set_embedders(embedders)
    assert bar.describe_action.isEnabled() and window.similarity_model == colour.model_id

    bar.describe_action.trigger()
    assert bar.describing and bar.mode_button.text() == "Describe"
    qtbot.keyClicks(bar.search, "blue")
    qtbot.waitUntil(
        lambda: (
            (q := window.asset_model.query).similar_to is not None
            and q.similar_to.text == "blue"
            and window.asset_model.rowCount() > 0
            and not window.asset_model.is_loading
        ),
        timeout=WAIT,
    )
    top = [a for a, _ in grid(window)[:3]]
    assert set(top) <= {app.ids["sea"], app.ids["lagoon"], app.ids["two shots"]}, top
    assert window.asset_model.query.text == "", "described, not searched as words"
    # The bar settles once its typing pause is over (which, on a loaded machine, can come after the
    # results): no chip, and no sort order while results are in order of likeness.
    qtbot.waitUntil(lambda: not bar.similar_chip.isVisible() and not bar.sort_box.isEnabled(), timeout=WAIT)
    bar.words_action.trigger()
    qtbot.waitUntil(lambda: window.asset_model.query.similar_to is None, timeout=WAIT)
    assert window.asset_model.query.text == "blue"


def test_the_indexers_row_follows_its_events() -> None:
    """Phase, done of total and Cancel while it runs; settles as Done; a pass with nothing to do
    leaves no row; failures stay, in red, with the message."""
    model = ActivityModel()
    model.on_index(IndexEvent(IndexPhase.EMBEDDING, 0, 0, "", "pixsim/visual-signature@1"))
    assert model.rowCount() == 0, "nothing to index: no row"
    model.on_index(IndexEvent(IndexPhase.ANALYSING, 1, 4, "Finding scenes: 1 of 4"))
    row = model.find(INDEX_KEY)
    assert row is not None and row.state == "Analysing" and row.progress == 0.25 and row.can_cancel
    model.on_index(IndexEvent(IndexPhase.EMBEDDING, 30, 120, "", "pixsim/visual-signature@1"))
    row = model.find(INDEX_KEY)
    assert row is not None and row.title == "Indexing for similarity (visual signature)"
    assert row.detail == "30 of 120" and row.progress == 0.25 and model.rowCount() == 1
    model.on_index(IndexEvent(IndexPhase.CANCELLED, 0, 0, "Indexing cancelled"))
    row = model.find(INDEX_KEY)
    assert row is not None and row.state == "Cancelled" and row.finished and row.can_retry
    model.on_index(IndexEvent(IndexPhase.EMBEDDING, 0, 10, "", "pixsim/clip-vit-b32@1"))
    model.on_index(IndexEvent(IndexPhase.FAILED, 0, 0, "Indexing failed", message="disk full"))
    row = model.find(INDEX_KEY)
    assert row is not None and row.failed and row.detail == "disk full" and row.state == "Failed"
    model.on_index(IndexEvent(IndexPhase.EMBEDDING, 10, 10, "", "pixsim/clip-vit-b32@1"))
    model.on_index(IndexEvent(IndexPhase.DONE, 10, 10, "Indexed 10 items"))
    row = model.find(INDEX_KEY)
    assert row is not None and row.state == "Done" and row.progress == 1.0 and not row.failed
    assert model.rowCount() == 1


def test_indexing_never_blocks_the_gui_thread(
    qtbot: QtBot, core: CoreLoop, db_url: URL, tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    """Sixty large pictures indexed while a 10 ms timer ticks on the GUI thread: the longest gap
    between ticks stays far below what a user would notice as a stall."""
    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    collections: list[tuple[int, float]] = []  # (generation, seconds) of each garbage collection
    started = [0.0]

    def collecting(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            collections.append((info["generation"], time.perf_counter() - started[0]))

    apps = make_app(qtbot, core, db_url, tmp_path)
    app = next(apps)
    try:
        wait_indexed(qtbot, app)
        before = app.vectors()
        paths = [
            picture(app.folder, f"big {i}", (i * 4 % 256, 90, 200 - i * 3), (1600, 1200)) for i in range(60)
        ]
        app.import_files(paths)
        # What the suite's earlier tests left in memory is not this test's business. Late in a full
        # run this test once saw a 437 ms gap (30-40 ms alone); a full collection over all of that is
        # the likely cause, so it is frozen out of the collector's sight, and collections during the
        # measurement are reported with a failure.
        gc.collect()
        gc.freeze()
        gc.callbacks.append(collecting)
        timer = QTimer()
        timer.setInterval(10)
        timer.timeout.connect(tick)
        last[0] = time.perf_counter()
        timer.start()
        app.window.notify_indexer()
        qtbot.waitUntil(lambda: app.vectors() >= before + 60, timeout=120_000)
        timer.stop()
        worst = max(gaps)
        pause = max((seconds for _, seconds in collections), default=0.0)
        sys.stderr.write(
            f"GUI ticks during indexing: {len(gaps)}, worst gap {worst * 1000:.0f} ms, "
            f"longest garbage collection {pause * 1000:.0f} ms\n"
        )
        assert worst < 0.25, (
            f"the GUI thread stalled for {worst * 1000:.0f} ms "
            f"(longest garbage collection meanwhile: {pause * 1000:.0f} ms)"
        )
    finally:
        gc.callbacks[:] = [c for c in gc.callbacks if c is not collecting]
        gc.unfreeze()
        next(apps, None)


def test_the_inspector_lists_a_videos_scenes_and_opens_one(qtbot: QtBot, similar_app: SimilarApp) -> None:
    from ui.story_editor import StoryEditor

    app, window = similar_app, similar_app.window
    wait_indexed(qtbot, app)
    inspector = window.inspector
    select_asset(qtbot, window, app.ids["two shots"])
    qtbot.waitUntil(lambda: inspector.scenes_list.count() == 2, timeout=WAIT)
    assert inspector.scenes_heading.isVisibleTo(inspector) and not inspector.scenes_none.isVisibleTo(
        inspector
    )
    items = [inspector.scenes_list.item(i) for i in range(2)]
    assert [i.text() for i in items] == ["0:00.0", "0:01.5"]
    # The keyframes arrive off the GUI thread: the red scene's icon turns red.
    qtbot.waitUntil(
        lambda: items[0].icon().pixmap(SCENE_THUMB).toImage().pixelColor(56, 31).red() > 180, timeout=WAIT
    )
    inspector.scenes_list.itemClicked.emit(items[1])
    editors = [e for e in window.findChildren(StoryEditor) if not e.closed]
    assert len(editors) == 1 and editors[0].video_id == app.ids["two shots"]
    qtbot.waitUntil(
        lambda: editors[0].player.meta is not None and abs(editors[0].player.current_sec - 1.5) < 0.1,
        timeout=WAIT,
    )
    editors[0].close()

    select_asset(qtbot, window, app.ids["sea"])
    qtbot.waitUntil(
        lambda: inspector.detail is not None and inspector.detail.id == app.ids["sea"], timeout=WAIT
    )
    assert not inspector.scenes_heading.isVisibleTo(inspector), "pictures have no scenes"
