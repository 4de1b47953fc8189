"""Run core coroutines on the core loop and get their results back on the GUI thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Qt, Signal

from core.runtime import CoreLoop

log = logging.getLogger(__name__)
T = TypeVar("T")


class CoreBridge(QObject):
    """``call`` takes callbacks (works under any Qt loop); ``run`` is awaitable from qasync coroutines."""

    _delivered = Signal(object)  # a zero-argument callable to run on the GUI thread
    operation_failed = Signal(str)  # a user-facing message for errors nobody else handled

    def __init__(self, core: CoreLoop, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._core = core
        self._delivered.connect(self._run_on_gui_thread, Qt.ConnectionType.QueuedConnection)

    def call(
        self,
        coro: Coroutine[Any, Any, T],
        on_done: Callable[[T], None],
        on_error: Callable[[BaseException], None] | None = None,
    ) -> concurrent.futures.Future[T]:
        future = self._core.submit(coro)

        def finished(f: concurrent.futures.Future[T]) -> None:
            # Runs on the core thread: hand the outcome to the GUI thread through a queued signal.
            if f.cancelled():
                return
            error = f.exception()
            if error is None:
                result = f.result()
                self._delivered.emit(lambda: on_done(result))
            elif on_error is not None:
                self._delivered.emit(lambda: on_error(error))
            else:
                self._delivered.emit(lambda: self._report(error))

        future.add_done_callback(finished)
        return future

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(self._core.submit(coro))

    def _run_on_gui_thread(self, thunk: Callable[[], None]) -> None:
        thunk()

    def _report(self, error: BaseException) -> None:
        log.error("background operation failed", exc_info=error)
        self.operation_failed.emit(str(error) or type(error).__name__)
