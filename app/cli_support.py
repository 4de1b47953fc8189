"""Small pieces every long-running CLI command shares."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

from sqlalchemy.engine import URL

from app.bootstrap import open_database
from app.settings import Settings

T = TypeVar("T")


def run_on_database(settings: Settings, main: Callable[[URL], Coroutine[Any, Any, T]]) -> T:
    """Open the library database (embedded or server), run ``main(url)`` on a fresh asyncio loop, close."""
    handle = open_database(settings)
    try:
        return asyncio.run(main(handle.url))
    finally:
        handle.close()


@contextlib.contextmanager
def stop_on_signals() -> Iterator[asyncio.Event]:
    """An event that Ctrl-C or SIGTERM sets while the block runs, so work can stop cleanly.

    On Windows the loop takes no signal handlers; Ctrl-C arrives as KeyboardInterrupt instead.
    """
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, event.set)
            handled.append(sig)
    try:
        yield event
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
