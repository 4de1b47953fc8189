"""The core loop runs coroutines off the calling thread and shuts down cleanly."""

from __future__ import annotations

import asyncio
import threading

import pytest

from core.runtime import CoreLoop


def test_coroutines_run_on_the_core_thread_and_return_results() -> None:
    core = CoreLoop().start()
    try:

        async def where() -> str:
            await asyncio.sleep(0)
            return threading.current_thread().name

        assert core.run(where(), timeout=5) == "pixsim-core"
        assert threading.current_thread().name != "pixsim-core"
    finally:
        core.stop()


def test_errors_propagate_to_the_caller() -> None:
    core = CoreLoop().start()
    try:

        async def boom() -> None:
            raise ValueError("bad input")

        with pytest.raises(ValueError, match="bad input"):
            core.run(boom(), timeout=5)
    finally:
        core.stop()


def test_stop_cancels_pending_work() -> None:
    core = CoreLoop().start()
    future = core.submit(asyncio.sleep(3600))
    core.stop()
    assert future.cancelled()
    with pytest.raises(RuntimeError, match="not running"):
        core.submit(asyncio.sleep(0))
