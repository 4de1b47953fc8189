"""A few autocommit connections for hot, tiny statements (the cache-hit path).

An ORM session costs a pool pre-ping, BEGIN and COMMIT around each statement: four round trips and
about a millisecond of client CPU. A hit needs one statement, so it gets a raw psycopg connection in
autocommit mode. These connections also set ``synchronous_commit = off``: they only write access
stamps, and losing the last few of those in an OS crash is harmless, while waiting for a WAL flush on
every hit is not.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy.engine import URL

from core.db.engine import CONNECT_TIMEOUT_S


class QuickStatements:
    def __init__(self, url: URL, size: int = 4) -> None:
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._slots = asyncio.Semaphore(size)

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(
            self._conninfo,
            autocommit=True,
            row_factory=namedtuple_row,
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name="pixsim",
        )
        await conn.execute("SET synchronous_commit = off")
        return conn

    async def fetchone(self, query: str, params: dict[str, Any]) -> Any:
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                cursor = await conn.execute(query, params, prepare=True)
                row = await cursor.fetchone()
            except psycopg.OperationalError:
                # A connection the server dropped while idle: one retry on a fresh one.
                await conn.close()
                conn = await self._connect()
                cursor = await conn.execute(query, params, prepare=True)
                row = await cursor.fetchone()
            except BaseException:
                await conn.close()
                raise
            self._idle.append(conn)
            return row

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()
