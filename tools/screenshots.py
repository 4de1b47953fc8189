"""Take the README's screenshots of the real app on a throwaway embedded database.

    xvfb-run -a -s "-screen 0 1600x1000x24" python tools/screenshots.py [--out docs/screenshots]

Needs a real display (Xvfb is fine); offscreen rendering has no fonts or styles worth showing. It
builds the demo library with the offline Sandbox, then shows a push in progress against a local fake
Pixverse (tests/fakes) that serves a source video slowly.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEventLoop, Qt, QTimer
from PySide6.QtWidgets import QApplication, QPlainTextEdit

from app.bootstrap import open_database
from app.gui import _settings_values, window_services
from app.services import build_services
from app.settings import load_settings
from core.db.engine import make_async_engine, make_async_session_factory
from core.db.enums import MediaType, UploadMethod
from core.db.models import LOCAL_USERNAME, Asset, User
from core.library import LibraryService
from core.net.http import SafeHttp
from core.net.policy import UrlPolicy
from core.runtime import CoreLoop
from tests.fakes.http_server import FakeHttpServer, Slow
from tests.fakes.media import tiny_mp4
from tests.fakes.pixverse import FakePixverse
from tests.memory_keyring import MemoryKeyring
from ui.bridge import CoreBridge
from ui.main_window import MainWindow


def wait(ms: int) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def wait_until(condition: Callable[[], bool], limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the app did not get there in time")
        wait(100)


def story_shots(window: MainWindow, services: object, core: CoreLoop, out: Path) -> None:
    """The lineage graph of the demo's branching video, its story editor at the branch point, and
    a playthrough stopped there."""
    from sqlalchemy import select

    from app.services import Services
    from core.db.models import AssetBranch

    assert isinstance(services, Services)

    async def branch_source() -> tuple[int, float]:
        async with services.sessions() as session:
            row = (
                await session.execute(select(AssetBranch.source_asset_id, AssetBranch.branch_time_sec))
            ).first()
            assert row is not None
            return int(row[0]), float(row[1])

    video_id, at_sec = core.run(branch_source(), timeout=30)
    window.lineage_dock.show()
    window.lineage_dock.raise_()
    window.resizeDocks([window.lineage_dock], [520], Qt.Orientation.Vertical)
    window.reveal_asset(video_id)
    wait(3000)
    window.grab().save(str(out / "lineage-graph.png"))

    editor = window.open_story_editor_for(video_id, at_sec)
    assert editor is not None
    editor.resize(1400, 860)
    wait_until(lambda: getattr(editor, "story", None) is not None, 60)
    from ui.story_editor import StoryEditor as Editor

    assert isinstance(editor, Editor) and editor.story is not None
    editor.select_branch(editor.story.branches[0].id)
    wait(2500)
    editor.grab().save(str(out / "story-editor.png"))

    from ui.playthrough import PlaythroughWindow
    from ui.story_editor import StoryEditor

    assert isinstance(editor, StoryEditor)
    # The demo's branch point is conditional (picked by game state); a manual one shows the choice.
    from core.db.enums import BranchType

    branch_id = editor.story.branches[0].id
    core.run(services.story.update_branch(branch_id, branch_type=BranchType.MANUAL), timeout=30)
    play = editor.open_playthrough()
    play.resize(1000, 700)
    assert isinstance(play, PlaythroughWindow)
    wait_until(lambda: bool(play.choice_buttons), 60)  # stopped at the branch point
    wait(800)
    play.grab().save(str(out / "playthrough.png"))
    play.close()
    editor.close()
    wait(300)


def similar_shot(window: MainWindow, out: Path) -> None:
    """Find Similar from the demo's branching video, once the background indexer has embedded the
    library and its scenes: results in likeness order, scene hits, the chip in the filter bar."""
    from ui.activity import INDEX_KEY

    window.lineage_dock.hide()
    window.activity_dock.show()
    window.activity_dock.raise_()
    window.resizeDocks([window.activity_dock], [190], Qt.Orientation.Vertical)

    def indexed() -> bool:
        row = window.activity_model.find(INDEX_KEY)
        return row is not None and row.finished

    wait_until(indexed, 300)
    source = next(
        r
        for r in range(window.asset_model.rowCount())
        if window.asset_model.card(r).display_name == "The long night"
    )
    window.asset_view.setCurrentIndex(window.asset_model.index(source))
    window.find_similar_action.trigger()
    wait_until(lambda: window.filter_bar.similar_chip.isVisible() and window.asset_model.rowCount() > 0, 60)
    wait_until(lambda: window.asset_model.pending_requests == 0, 60)
    window.asset_view.setCurrentIndex(window.asset_model.index(0))
    wait(1500)
    window.grab().save(str(out / "find-similar.png"))
    window.filter_bar.leave_similar()
    wait(800)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    app = QApplication(sys.argv)
    app.setApplicationName("PixSim")
    import keyring

    keyring.set_keyring(MemoryKeyring())  # the fake Pixverse key never touches the real keyring

    with tempfile.TemporaryDirectory(prefix="pixsim-shots-") as tmp:
        settings = load_settings({"PIXSIM_DATA_DIR": f"{tmp}/data", "PIXSIM_CONFIG_DIR": f"{tmp}/cfg"})
        handle = open_database(settings)
        core = CoreLoop().start()
        engine = make_async_engine(handle.url)
        library = LibraryService(make_async_session_factory(engine))
        description = handle.description.replace(tmp, "~/.local/share")
        stop = asyncio.Event()

        async def start() -> tuple[object, FakeHttpServer, FakePixverse]:
            server = await FakeHttpServer().__aenter__()
            pixverse = FakePixverse(server, api_key="screenshot-key")
            http = SafeHttp(UrlPolicy.trusting([server.base_url]))
            services = build_services(settings, handle.url, http=http)
            await services.accounts.add(
                "pixverse", "studio", api_key="screenshot-key", base_url=server.base_url
            )
            return services, server, pixverse

        services_any, server, pixverse = core.run(start(), timeout=60)
        from app.services import Services

        assert isinstance(services_any, Services)
        services = services_any
        runner = core.submit(services.runner.run(stop))
        try:
            window = MainWindow(
                library=library,
                bridge=CoreBridge(core),
                database_description=description,
                settings=_settings_values(settings),
            )
            window.resize(1480, 900)
            window.show()
            window.attach_services(window_services(services, settings.data_dir))
            wait(1200)
            window.grab().save(str(args.out / "main-window-empty.png"))

            window.load_demo_library()
            wait_until(lambda: window.demo_button.isHidden() and window.asset_model.rowCount() >= 29, 180)
            wait_until(lambda: window.asset_model.pending_requests == 0, 60)
            wait(1500)
            window.grab().save(str(args.out / "main-window-library.png"))

            story = next(
                r
                for r in range(window.asset_model.rowCount())
                if window.asset_model.card(r).display_name == "The long night"
            )
            window.asset_view.setCurrentIndex(window.asset_model.index(story))
            wait(1500)
            window.grab().save(str(args.out / "inspector-lineage.png"))
            story_shots(window, services, core, args.out)
            similar_shot(window, args.out)

            # A push in progress: a 24 MB source video that the fake CDN serves slowly.
            body = tiny_mp4(7, seconds=6.0, size=(1280, 720)) * 1
            body += bytes(24 * 1024 * 1024 - len(body)) if len(body) < 24 * 1024 * 1024 else b""

            async def remote_asset() -> int:
                from sqlalchemy import select

                server.add_file("/cdn/big.mp4", body, content_type="video/mp4")
                server.fail("GET", "/cdn/big.mp4", Slow(chunk_size=256 * 1024, interval_s=0.05))
                async with services.sessions() as session, session.begin():
                    user_id = await session.scalar(select(User.id).where(User.username == LOCAL_USERNAME))
                    asset = Asset(
                        user_id=user_id,
                        media_type=MediaType.VIDEO,
                        provider_id="sora",
                        provider_asset_id="video_screenshot",
                        title="Storm over the bay (Sora)",
                        remote_url=server.url("/cdn/big.mp4"),
                        mime_type="video/mp4",
                        width=1280,
                        height=720,
                        duration_sec=6.0,
                        upload_method=UploadMethod.GENERATED,
                    )
                    session.add(asset)
                    await session.flush()
                    return asset.id

            asset_id = core.run(remote_asset(), timeout=30)
            window.refresh()
            wait(1000)
            target = next(
                window.targets_model.target(r)
                for r in range(window.targets_model.rowCount())
                if window.targets_model.target(r).provider_id == "pixverse"
            )
            window.push_assets([asset_id], target)
            wait_until(
                lambda: any(
                    window.activity_model.row(r).state == "Downloading"
                    and (window.activity_model.row(r).progress or 0) > 0.3
                    for r in range(window.activity_model.rowCount())
                ),
                60,
            )
            wait(300)
            window.grab().save(str(args.out / "push-in-progress.png"))
            wait_until(lambda: len(pixverse.uploads) == 1, 120)

            story_row = next(
                r
                for r in range(window.asset_model.rowCount())
                if window.asset_model.card(r).display_name == "The long night"
            )
            window.asset_view.setCurrentIndex(window.asset_model.index(story_row))
            dialog = window.open_generate_dialog("sandbox")
            assert dialog is not None
            dialog.select_operation("video_extend")
            prompt = dialog.field("prompt")
            if isinstance(prompt, QPlainTextEdit):
                prompt.setPlainText("The keeper climbs the stairs as the storm breaks")
            wait(800)
            dialog.grab().save(str(args.out / "generate-dialog.png"))
            dialog.reject()
            window.close()
        finally:

            async def shutdown() -> None:
                stop.set()
                await asyncio.wrap_future(runner)
                await services.aclose()
                await server.close()
                await engine.dispose()

            core.run(shutdown(), timeout=60)
            core.stop()
            handle.close()
    print(f"screenshots written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
