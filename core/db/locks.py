"""Cross-process mutual exclusion with PostgreSQL advisory locks.

Each lock holds its own autocommit connection: no transaction stays open while the holder does network
I/O, and if the process dies the server drops the connection and the lock with it.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from sqlalchemy.engine import URL


def lock_key(*parts: object) -> int:
    """A stable signed 64-bit key for a tuple of names and ids."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class AdvisoryLocks:
    def __init__(self, url: URL) -> None:
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)

    @asynccontextmanager
    async def hold(self, *parts: object) -> AsyncIterator[None]:
        conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        try:
            await conn.execute("SELECT pg_advisory_lock(%s)", (lock_key(*parts),))
            yield
        finally:
            await conn.close()  # closing the session releases its advisory locks
