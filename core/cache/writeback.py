"""Steady writeback while a large file is written, so its final fsync has almost nothing left to do.

Writing hundreds of megabytes and then calling ``fsync`` makes the disk start only at the end: the
write phase runs at memory speed, then everything waits for the disk. ``Writeback`` keeps the disk
busy from the first megabytes instead. On Linux every ``step`` bytes it starts writeback of the new
range (``sync_file_range(SYNC_FILE_RANGE_WRITE)``, which does not wait) and waits for the range
before it, which by then is usually on disk already, then drops those clean pages from the page
cache (a 4 GB download does not push the user's working set out of memory). At most two steps
are in flight.

Measured on the project's 2-core machine, 512 MiB from loopback with sha256 on the way: 1.15 s
median, against 1.58 s with ``posix_fadvise(DONTNEED)`` alone (which starts writeback but then
blocks on pages already under it) and 1.49 s with one fsync at the end.

Elsewhere (no ``sync_file_range``) it falls back to ``posix_fadvise(DONTNEED)`` where that exists,
and to nothing at all: the final fsync then does the work. Either way durability comes from the
caller's ``fsync``; this class only spreads the work out.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Callable

STEP = 32 << 20

# <linux/fs.h>
_WAIT_BEFORE = 1
_WRITE = 2
_WAIT_AFTER = 4

SyncFileRange = Callable[[int, int, int, int], None]


def _load_sync_file_range() -> SyncFileRange | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    function.restype = ctypes.c_int

    def sync_file_range(fd: int, offset: int, length: int, flags: int) -> None:
        # ctypes releases the GIL for the call: waiting on the disk does not stall other threads.
        if function(fd, offset, length, flags) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))

    return sync_file_range


_sync_file_range = _load_sync_file_range()
_fadvise = getattr(os, "posix_fadvise", None) if sys.platform.startswith("linux") else None


class Writeback:
    """Spreads the writeback of one file being written sequentially from ``start``.

    Call ``advance(position)`` after each write (with the file's buffer flushed) and ``fsync`` at the
    end as usual. Any failure of the hints switches them off for this file: they are an
    optimisation, never a reason for a download to fail.
    """

    def __init__(self, fd: int, start: int = 0, *, step: int = STEP) -> None:
        self._fd = fd
        self._step = step
        self._started = start  # [_settled, _started) is being written back
        self._settled = start  # before _settled: on disk, dropped from the page cache
        self._enabled = _sync_file_range is not None or _fadvise is not None

    def advance(self, position: int) -> None:
        if not self._enabled or position - self._started < self._step:
            return
        try:
            if _sync_file_range is not None:
                _sync_file_range(self._fd, self._started, position - self._started, _WRITE)
                if self._started > self._settled:
                    length = self._started - self._settled
                    _sync_file_range(self._fd, self._settled, length, _WAIT_BEFORE | _WRITE | _WAIT_AFTER)
                    if _fadvise is not None:
                        _fadvise(self._fd, self._settled, length, os.POSIX_FADV_DONTNEED)
                    self._settled = self._started
            elif _fadvise is not None:
                _fadvise(self._fd, self._started, position - self._started, os.POSIX_FADV_DONTNEED)
        except OSError:
            self._enabled = False
            return
        self._started = position
