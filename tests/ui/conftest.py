"""UI fixtures: a core loop thread and a LibraryService on a fresh real database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import URL

from core.db.engine import make_async_engine, make_async_session_factory
from core.library import LibraryService
from core.runtime import CoreLoop
from tests.factories import add_asset


@pytest.fixture
def core() -> Iterator[CoreLoop]:
    loop = CoreLoop().start()
    yield loop
    loop.stop()


class Library:
    """The library service plus a way for tests to put rows in it (on the core loop)."""

    def __init__(self, core: CoreLoop, url: URL) -> None:
        self.core = core
        self.engine = make_async_engine(url)
        self.sessions = make_async_session_factory(self.engine)
        self.service = LibraryService(self.sessions)

    def add_assets(self, count: int, **fields: object) -> list[int]:
        async def add() -> list[int]:
            async with self.sessions() as session, session.begin():
                return [(await add_asset(session, **fields)).id for _ in range(count)]

        return self.core.run(add(), timeout=30)


@pytest.fixture
def library(core: CoreLoop, db_url: URL) -> Iterator[Library]:
    lib = Library(core, db_url)
    yield lib
    core.run(lib.engine.dispose(), timeout=10)
