"""Alembic environment: synchronous psycopg, one transaction, serialized by an advisory lock.

Synchronous on purpose: migrations run before the Qt loop starts (or in a CLI), and an async env
would call ``asyncio.run()``, which fails inside a running loop.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import text

from core.db.engine import make_sync_engine
from core.db.migrate import MIGRATION_LOCK_KEY, include_object
from core.db.models import Base
from core.db.urls import normalize_url

config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: run migrations through 'pixsim db ...'")
    engine = make_sync_engine(normalize_url(str(url)), pooled=False)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


def _run(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        include_object=include_object,
        compare_type=True,
        compare_server_default=False,
    )
    with context.begin_transaction():
        # Two processes starting at once (or two desktops on one team server) must not both migrate.
        context.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"))
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
