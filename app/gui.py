"""Launch the desktop app: open the database before any Qt loop runs, then run Qt under qasync."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from app.bootstrap import DatabaseHandle, open_database
from app.logs import add_file_log
from app.settings import Settings
from core.db.engine import make_async_engine, make_async_session_factory
from core.errors import PixSimError
from core.library import LibraryService
from core.runtime import CoreLoop

if TYPE_CHECKING:
    from app.services import Services
    from ui.context import WindowServices
    from ui.main_window import MainWindow
    from ui.settings_dialog import SettingsValues

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


async def _run_services(
    settings: Settings, handle: DatabaseHandle, stop: asyncio.Event, ready: Callable[[Services], None]
) -> None:
    """Build the core services, hand them to the window, and run this process's job runner until
    ``stop`` (all on the core loop). Queued or unfinished jobs resume where they stopped."""
    from app.services import build_services

    services = build_services(settings, handle.url)
    try:
        ready(services)
        await services.runner.run(stop)
    except Exception:
        log.exception("the job runner stopped")
    finally:
        await services.aclose()


def _services_relay(window: MainWindow, data_dir: Path) -> Callable[[Services], None]:
    """A queued signal that hands the services, built on the core thread, to the window's thread."""
    from PySide6.QtCore import QObject, Signal, Slot

    class Relay(QObject):
        ready = Signal(object)

        @Slot(object)
        def deliver(self, services: Services) -> None:
            window.attach_services(window_services(services, data_dir))

    relay = Relay(window)
    # A bound slot of an object living in the GUI thread: emission from the core thread is queued.
    relay.ready.connect(relay.deliver)
    return relay.ready.emit


def window_services(services: Services, data_dir: Path | None = None) -> WindowServices:
    """What the main window uses of the app's services (tests build their windows with it too)."""
    from ui.context import WindowServices

    return WindowServices(
        sessions=services.sessions,
        registry=services.registry,
        transfers=services.transfers,
        jobs=services.jobs,
        runner=services.runner,
        accounts=services.accounts,
        importer=services.importer,
        thumbnails=services.thumbnails,
        story=services.story,
        segments=services.segments,
        embeddings=services.embeddings,
        # The window loads the installed embedders off the GUI thread, hands them to the indexer
        # and starts its queue on the core loop; Services.aclose stops it when the app quits.
        indexer=services.indexer,
        http=services.http,
        data_dir=data_dir,
    )


def _settings_values(settings: Settings) -> SettingsValues:
    from ui.settings_dialog import SettingsValues

    return SettingsValues(
        database_url=settings.database_url,
        cache_dir=settings.cache_dir,
        default_cache_dir=settings.data_dir / "cache",
        cache_max_bytes=settings.cache_max_bytes,
        provider_concurrency=settings.provider_concurrency,
        show_age_restricted=settings.show_age_restricted,
    )


def _save_settings(settings: Settings, values: SettingsValues) -> Settings:
    from dataclasses import replace

    from app.settings import save_settings

    updated = replace(
        settings,
        database_url=values.database_url,
        cache_dir=values.cache_dir,
        cache_max_bytes=values.cache_max_bytes,
        provider_concurrency=values.provider_concurrency,
        show_age_restricted=values.show_age_restricted,
    )
    save_settings(updated)
    return updated


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
    # Ctrl-C (or a polite kill) in a terminal closes the window like File → Quit. Python only runs
    # signal handlers between bytecodes, so a timer wakes the interpreter now and then.
    import signal

    signal.signal(signal.SIGINT, lambda *_: app.quit())
    signal.signal(signal.SIGTERM, lambda *_: app.quit())
    from PySide6.QtCore import QTimer as _WakeTimer

    wake = _WakeTimer(app)
    wake.timeout.connect(lambda: None)
    wake.start(250)
    app.setApplicationName("PixSim")
    app.setOrganizationName("PixSim")
    app.setApplicationVersion(app_version())
    _install_excepthook()

    core = CoreLoop().start()
    engine = make_async_engine(handle.url)
    library = LibraryService(make_async_session_factory(engine))
    bridge = CoreBridge(core)
    window = MainWindow(
        settings=_settings_values(settings),
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
    deliver = _services_relay(window, settings.data_dir)
    runner = core.submit(_run_services(settings, handle, runner_stop, deliver))
    current = [settings]

    def save(values: SettingsValues) -> None:
        try:
            current[0] = _save_settings(current[0], values)
            window.statusBar().showMessage(
                "Settings saved. Database and folder changes apply at the next start.", 8000
            )
        except PixSimError as exc:
            window.statusBar().showMessage(f"Settings not saved: {exc}", 10_000)

    window.settings_changed.connect(save)

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
