"""Shared fixtures: one real embedded PostgreSQL+pgvector server per test session, a database per test."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import keyring
import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import migrate
from core.db.embedded import EmbeddedDatabase
from core.db.engine import make_async_engine, make_async_session_factory
from tests.memory_keyring import MemoryKeyring

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PIXSIM_NO_ERROR_DIALOG", "1")

TEMPLATE_DB = "pixsim_template"
_counter = itertools.count()


def libpq(url: URL) -> str:
    """A psycopg (libpq) connection string for a SQLAlchemy URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    """The real ``keyring`` API on an in-memory backend: tests never touch the OS keyring."""
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedDatabase]:
    server = EmbeddedDatabase(tmp_path_factory.mktemp("pg"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def admin_url(pg_server: EmbeddedDatabase) -> URL:
    return pg_server.status.url.set(database="postgres")


def _create_database(admin: URL, name: str, template: str | None = None) -> URL:
    with psycopg.connect(libpq(admin), autocommit=True) as conn:
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        conn.execute(query)
    return admin.set(database=name)


def _drop_database(admin: URL, name: str) -> None:
    with psycopg.connect(libpq(admin), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def template_url(admin_url: URL) -> URL:
    """A database migrated to head once; per-test databases are cheap copies of it."""
    url = _create_database(admin_url, TEMPLATE_DB)
    migrate.upgrade(url, "head")
    return url


@pytest.fixture
def empty_db_url(admin_url: URL) -> Iterator[URL]:
    name = f"test_empty_{os.getpid()}_{next(_counter)}"
    url = _create_database(admin_url, name)
    yield url
    _drop_database(admin_url, name)


@pytest.fixture
def db_url(admin_url: URL, template_url: URL) -> Iterator[URL]:
    """A fresh database at the head revision, dropped after the test."""
    name = f"test_{os.getpid()}_{next(_counter)}"
    url = _create_database(admin_url, name, template=TEMPLATE_DB)
    yield url
    _drop_database(admin_url, name)


@pytest.fixture
async def sessions(db_url: URL) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_async_engine(db_url)
    yield make_async_session_factory(engine)
    await engine.dispose()


@pytest.fixture
def pixsim_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for running PixSim against throwaway data and config directories."""
    env = {
        "PIXSIM_DATA_DIR": str(tmp_path / "data"),
        "PIXSIM_CONFIG_DIR": str(tmp_path / "config"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PIXSIM_DATABASE_URL", raising=False)
    return env
