"""Small pieces every long-running CLI command shares."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Protocol, TextIO, TypeVar

from sqlalchemy.engine import URL

from app.bootstrap import open_database
from app.settings import Settings
from core.errors import PixSimError

T = TypeVar("T")


class _Stoppable(Protocol):
    @property
    def cancelled(self) -> bool: ...


Report = TypeVar("Report", bound=_Stoppable)


def run_on_database(settings: Settings, main: Callable[[URL], Coroutine[Any, Any, T]]) -> T:
    """Open the library database (embedded or server), run ``main(url)`` on a fresh asyncio loop, close."""
    handle = open_database(settings)
    try:
        return asyncio.run(main(handle.url))
    finally:
        handle.close()


def run_report_command(
    settings: Settings,
    main: Callable[[URL], Coroutine[Any, Any, Report]],
    *,
    as_json: bool,
    to_json: Callable[[Report], Any],
    print_summary: Callable[[Report, TextIO], None],
    incomplete: Callable[[Report], bool],
) -> int:
    """Run a long command that ends in a report (``run_on_database``) and print the report: as JSON or as
    a summary on stdout. The exit code: 2 for an error before any work (said on stderr), 130 when it was
    stopped, 1 when ``incomplete(report)`` (some items failed), else 0."""
    try:
        report = run_on_database(settings, main)
    except PixSimError as exc:
        print(f"pixsim: error: {exc}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(to_json(report), indent=2))
    else:
        print_summary(report, sys.stdout)
    if report.cancelled:
        return 130
    return 1 if incomplete(report) else 0


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
