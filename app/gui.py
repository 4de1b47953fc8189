"""Launch the desktop app: open the database before any Qt loop runs, then run Qt under qasync."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import traceback
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType

from app.bootstrap import DatabaseHandle, open_database
from app.logs import add_file_log
from app.settings import Settings
from core.db.engine import make_async_engine, make_async_session_factory
from core.errors import PixSimError
from core.library import LibraryService
from core.runtime import CoreLoop

log = logging.getLogger(__name__)


def app_version() -> str:
    try:
        return version("pixsim")
    except PackageNotFoundError:  # running from a source tree without installation
        return "dev"


def _interactive_display() -> bool:
    return os.environ.get("QT_QPA_PLATFORM", "") not in ("offscreen", "minimal") and not os.environ.get(
        "PIXSIM_NO_ERROR_DIALOG"
    )


def _fatal(message: str) -> int:
    """Report a start-up failure: on stderr always, and in a dialog when there is a screen to show it."""
    print(f"pixsim: error: {message}", file=sys.stderr)
    if _interactive_display():
        from PySide6.QtWidgets import QApplication, QMessageBox

        _app = QApplication.instance() or QApplication(sys.argv)
        QMessageBox.critical(None, "PixSim cannot start", message)  # no event loop runs yet
    return 2


def _install_excepthook() -> None:
    """Errors raised in Qt slots and qasync tasks end up here: log them instead of aborting."""

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        log.error("unhandled error:\n%s", "".join(traceback.format_exception(kind, value, tb)))

    sys.excepthook = hook


def run_gui(settings: Settings, *, quit_after_shown: bool = False, started_at: float | None = None) -> int:
    started_at = started_at if started_at is not None else time.perf_counter()
    try:
        handle = open_database(settings)
    except PixSimError as exc:
        return _fatal(str(exc))
    database_ready = time.perf_counter() - started_at
    try:
        add_file_log(settings.data_dir)
        log.info("database ready after %.2f s: %s", database_ready, handle.description)
        return _run_window(settings, handle, quit_after_shown=quit_after_shown, started_at=started_at)
    finally:
        handle.close()


async def _run_jobs(settings: Settings, handle: DatabaseHandle, stop: asyncio.Event) -> None:
    """The job runner of this app process, until ``stop`` (runs on the core loop)."""
    from app.services import build_services

    services = build_services(settings, handle.url)
    try:
        await services.runner.run(stop)
    except Exception:
        log.exception("the job runner stopped")
    finally:
        await services.aclose()


def _run_window(
    settings: Settings, handle: DatabaseHandle, *, quit_after_shown: bool, started_at: float
) -> int:
    import qasync
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from ui.bridge import CoreBridge
    from ui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv)
    assert isinstance(app, QApplication)
    app.setApplicationName("PixSim")
    app.setOrganizationName("PixSim")
    app.setApplicationVersion(app_version())
    _install_excepthook()

    core = CoreLoop().start()
    engine = make_async_engine(handle.url)
    library = LibraryService(make_async_session_factory(engine))
    bridge = CoreBridge(core)
    window = MainWindow(
        library=library,
        bridge=bridge,
        database_description=handle.description,
        state_file=settings.config_dir / "window.ini",
        version=app_version(),
    )
    window.show()
    # Generation jobs run in the app too: queued or unfinished ones resume where they stopped. The
    # providers and the runner are built on the core loop after the window is up (start-up stays fast).
    runner_stop = asyncio.Event()
    runner = core.submit(_run_jobs(settings, handle, runner_stop))

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    closed = asyncio.Event()
    app.aboutToQuit.connect(closed.set)
    if quit_after_shown:

        def report_and_quit() -> None:
            print(f"PIXSIM_SHOWN {time.perf_counter() - started_at:.4f}", flush=True)
            window.close()
            app.quit()

        QTimer.singleShot(0, report_and_quit)
    try:
        with loop:
            loop.run_until_complete(closed.wait())
    finally:

        async def shutdown() -> None:
            runner_stop.set()
            await asyncio.wrap_future(runner)
            await engine.dispose()

        core.run(shutdown(), timeout=15)
        core.stop()
    return 0
