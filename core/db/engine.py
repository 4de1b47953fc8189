"""Engines and sessions for PostgreSQL over psycopg 3, and the connection check run at start-up."""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from core.db.urls import describe_location, redact
from core.errors import DatabaseNotReady, DatabaseUnreachable

CONNECT_TIMEOUT_S = 5
_CONNECT_ARGS = {"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "pixsim"}


def make_sync_engine(url: URL, *, pooled: bool = True) -> Engine:
    if not pooled:
        return create_engine(url, poolclass=NullPool, connect_args=_CONNECT_ARGS)
    return create_engine(url, pool_size=4, max_overflow=4, pool_pre_ping=True, connect_args=_CONNECT_ARGS)


def make_async_engine(url: URL) -> AsyncEngine:
    return create_async_engine(
        url, pool_size=8, max_overflow=8, pool_pre_ping=True, connect_args=_CONNECT_ARGS
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def make_async_session_factory(engine: AsyncEngine) -> async_sessionmaker:  # type: ignore[type-arg]
    return async_sessionmaker(engine, expire_on_commit=False)


@dataclass(frozen=True)
class ServerInfo:
    version: str
    pgvector_available: bool
    pgvector_installed: str | None


def _scrub(message: str, url: URL) -> str:
    """Remove the password from a driver message, in case the driver echoed it."""
    message = message.strip().splitlines()[0] if message.strip() else "no details"
    if url.password:
        message = message.replace(str(url.password), "***")
    return re.sub(r"password=\S+", "password=***", message)


def check_server(url: URL) -> ServerInfo:
    """Connect once and read what PixSim needs to know. Raises a clear error naming the host."""
    engine = make_sync_engine(url, pooled=False)
    try:
        with engine.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar_one()
            available = conn.execute(
                text("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")
            ).scalar_one()
            installed = conn.execute(
                text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            ).scalar_one_or_none()
    except OperationalError as exc:
        reason = _scrub(str(exc.orig) if exc.orig is not None else str(exc), url)
        raise DatabaseUnreachable(
            f"Cannot connect to the PostgreSQL server at {describe_location(url)} "
            f"(database URL {redact(url)}): {reason}"
        ) from None
    except psycopg.Error as exc:  # pragma: no cover - driver errors outside OperationalError
        raise DatabaseUnreachable(
            f"The PostgreSQL server at {describe_location(url)} refused PixSim: {_scrub(str(exc), url)}"
        ) from None
    finally:
        engine.dispose()
    info = ServerInfo(version=str(version), pgvector_available=bool(available), pgvector_installed=installed)
    if not info.pgvector_available and info.pgvector_installed is None:
        raise DatabaseNotReady(
            f"The PostgreSQL server at {describe_location(url)} (version {info.version}) does not have the "
            "pgvector extension. Install pgvector on that server (https://github.com/pgvector/pgvector) "
            "or use PixSim's embedded database."
        )
    return info
