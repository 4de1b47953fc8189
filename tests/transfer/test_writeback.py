"""Writeback while a large file is written: the disk works from the start, and a multi-GB download
does not fill the page cache (pushing the user's other programs out of memory) on its way to disk."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

from core.cache.store import ContentStore
from core.cache.writeback import Writeback

STEP = 1 << 20
STEPS = 8

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page-cache hints are Linux's")


def _cached(path: Path, offset: int) -> bool:
    """Whether the page at ``offset`` is in the page cache (a read that may not touch the disk)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.preadv(fd, [bytearray(4096)], offset, os.RWF_NOWAIT) > 0
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def _write(path: Path, *, writeback: bool) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as f:
        hints = Writeback(f.fileno(), step=STEP) if writeback else None
        for i in range(STEPS):
            block = hashlib.sha256(str(i).encode()).digest() * (STEP // 32)
            digest.update(block)
            f.write(block)
            f.flush()
            if hints is not None:
                hints.advance((i + 1) * STEP)
        os.fsync(f.fileno())
    return digest.hexdigest()


@linux_only
def test_written_ranges_leave_the_page_cache_and_the_file_is_intact(tmp_path: Path) -> None:
    plain, spread = tmp_path / "plain.bin", tmp_path / "spread.bin"

    assert _write(plain, writeback=False) == _write(spread, writeback=True)

    # Without the hints every page stays cached after the fsync (this is what the check can see)...
    assert all(_cached(plain, i * STEP) for i in range(STEPS))
    # ...with them, everything but the range still in flight has gone to disk and left memory.
    assert [_cached(spread, i * STEP) for i in range(STEPS)] == [False] * (STEPS - 1) + [True]
    assert hashlib.sha256(spread.read_bytes()).hexdigest() == hashlib.sha256(plain.read_bytes()).hexdigest()


def test_a_file_that_refuses_the_hints_is_still_written(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()  # sync_file_range and fadvise refuse pipes (ESPIPE)
    try:
        hints = Writeback(write_end, step=16)
        for n in (16, 32, 48):
            os.write(write_end, b"x" * 16)
            hints.advance(n)  # no error: the hints switch themselves off
        assert os.read(read_end, 100) == b"x" * 48
    finally:
        os.close(read_end)
        os.close(write_end)


def test_files_copied_into_the_store_keep_their_bytes(tmp_path: Path) -> None:
    source = tmp_path / "clip.mp4"
    body = os.urandom(3 * 1024 * 1024 + 17)
    source.write_bytes(body)
    store = ContentStore(tmp_path / "cache")

    sha256, size, path = store.add_file(source, "import-1")

    assert (sha256, size) == (hashlib.sha256(body).hexdigest(), len(body))
    assert path.read_bytes() == body
    assert not any(store.partials.iterdir())
