"""Run core coroutines on the core loop and get their results back on the GUI thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Qt, Signal

from core.runtime import CoreLoop

log = logging.getLogger(__name__)
T = TypeVar("T")


class CoreBridge(QObject):
    """``call`` takes callbacks (works under any Qt loop); ``run`` is awaitable from qasync coroutines.

    Callbacks stay on the GUI side, in a table keyed by a token: the core thread only ever holds the
    token. Otherwise the last reference to a widget or model could be dropped on the core thread
    (when its future is freed there) and Qt would destroy the object on the wrong thread.
    """

    _outcome = Signal(int, object, object, bool)  # token, result, error, cancelled
    operation_failed = Signal(str)  # a user-facing message for errors nobody else handled

    def __init__(self, core: CoreLoop, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._core = core
        self._tokens = itertools.count(1)
        self._callbacks: dict[int, tuple[Callable[[Any], None], Callable[[BaseException], None] | None]] = {}
        self._outcome.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    def call(
        self,
        coro: Coroutine[Any, Any, T],
        on_done: Callable[[T], None],
        on_error: Callable[[BaseException], None] | None = None,
    ) -> concurrent.futures.Future[T]:
        token = next(self._tokens)
        try:
            future = self._core.submit(coro)
        except RuntimeError:
            # The core loop has stopped (the app is closing): late Qt events ask for nothing more.
            coro.close()
            stopped: concurrent.futures.Future[T] = concurrent.futures.Future()
            stopped.cancel()
            return stopped
        self._callbacks[token] = (on_done, on_error)
        bridge = weakref.ref(self)

        def finished(f: concurrent.futures.Future[T]) -> None:
            # Runs on the core thread: hand the outcome to the GUI thread through a queued signal.
            target = bridge()
            if target is None:
                return
            if f.cancelled():
                target._outcome.emit(token, None, None, True)
                return
            error = f.exception()
            target._outcome.emit(token, f.result() if error is None else None, error, False)

        future.add_done_callback(finished)
        return future

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(self._core.submit(coro))

    def _deliver(self, token: int, result: Any, error: BaseException | None, cancelled: bool) -> None:
        callbacks = self._callbacks.pop(token, None)
        if callbacks is None or cancelled:
            return
        on_done, on_error = callbacks
        if error is None:
            on_done(result)
        elif on_error is not None:
            on_error(error)
        else:
            self._report(error)

    def _report(self, error: BaseException) -> None:
        log.error("background operation failed", exc_info=error)
        self.operation_failed.emit(str(error) or type(error).__name__)
