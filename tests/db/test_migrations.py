"""Alembic is tested by running it on the real embedded PostgreSQL."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import URL

from core.db import migrate
from core.db.engine import make_sync_engine
from core.db.models import Base
from core.errors import SchemaTooNew
from tests.conftest import libpq


def _tables(url: URL) -> set[str]:
    with psycopg.connect(libpq(url)) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows}


def _extensions(url: URL) -> set[str]:
    with psycopg.connect(libpq(url)) as conn:
        return {r[0] for r in conn.execute("SELECT extname FROM pg_extension").fetchall()}


def test_empty_to_head_to_base_to_head(empty_db_url: URL) -> None:
    model_tables = set(Base.metadata.tables)
    assert migrate.current_revision(empty_db_url) is None

    migrate.upgrade(empty_db_url, "head")
    assert migrate.current_revision(empty_db_url) == migrate.head_revision()
    assert _tables(empty_db_url) == model_tables | {"alembic_version"}
    assert "vector" in _extensions(empty_db_url)

    migrate.downgrade(empty_db_url, "base")
    assert migrate.current_revision(empty_db_url) is None
    assert _tables(empty_db_url) == {"alembic_version"}
    assert "vector" not in _extensions(empty_db_url)

    migrate.upgrade(empty_db_url, "head")
    assert _tables(empty_db_url) == model_tables | {"alembic_version"}


def test_first_revision_creates_the_vector_extension(empty_db_url: URL) -> None:
    first = migrate.history()[-1][0]
    migrate.upgrade(empty_db_url, first)
    assert "vector" in _extensions(empty_db_url)
    assert _tables(empty_db_url) == {"alembic_version"}


def test_autogenerate_finds_no_difference_between_models_and_migrations(db_url: URL) -> None:
    engine = make_sync_engine(db_url, pooled=False)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "include_object": migrate.include_object,
                    "target_metadata": Base.metadata,
                },
            )
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_autogenerate_would_notice_a_model_change(db_url: URL) -> None:
    """The comparison above can fail: a column missing from the database is reported."""
    with psycopg.connect(libpq(db_url), autocommit=True) as conn:
        conn.execute("ALTER TABLE assets DROP COLUMN fps")
    engine = make_sync_engine(db_url, pooled=False)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_object": migrate.include_object})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert [(d[0], d[3].name) for d in diff if d[0] == "add_column"] == [("add_column", "fps")]


def test_ensure_schema_migrates_once_then_is_a_no_op(empty_db_url: URL) -> None:
    assert migrate.ensure_schema(empty_db_url) is True
    assert migrate.ensure_schema(empty_db_url) is False
    assert migrate.current_revision(empty_db_url) == migrate.head_revision()


def test_a_database_from_a_newer_pixsim_is_refused(db_url: URL) -> None:
    with psycopg.connect(libpq(db_url), autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    with pytest.raises(SchemaTooNew, match="newer PixSim"):
        migrate.ensure_schema(db_url)
    assert migrate.current_revision(db_url) == "9999_from_the_future"


def test_concurrent_start_ups_migrate_exactly_once(empty_db_url: URL) -> None:
    """Three processes opening one fresh database at once: the advisory lock serializes them."""
    script = (
        "import sys\n"
        "from sqlalchemy.engine import make_url\n"
        "from core.db import migrate\n"
        "migrate.ensure_schema(make_url(sys.argv[1]))\n"
    )
    url = empty_db_url.render_as_string(hide_password=False)
    procs = [
        subprocess.Popen([sys.executable, "-c", script, url], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert migrate.current_revision(empty_db_url) == migrate.head_revision()
    with psycopg.connect(libpq(empty_db_url)) as conn:
        users = conn.execute("SELECT count(*) FROM users").fetchone()
    assert users == (1,), "the seed data of the initial revision was applied once"
