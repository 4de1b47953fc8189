"""Run alembic programmatically: upgrade, downgrade, current, and the start-up schema check."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL

from core.db.engine import make_sync_engine
from core.db.models.embedding import DYNAMIC_INDEX_PREFIX
from core.errors import SchemaTooNew

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key that serializes migrations across processes ("pixsim-m" as bytes).
MIGRATION_LOCK_KEY = 0x70697873696D2D6D


def migrations_dir() -> Path:
    import migrations

    return Path(migrations.__file__).resolve().parent


def alembic_config(url: URL | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("version_locations", str(migrations_dir() / "versions"))
    cfg.set_main_option("path_separator", "os")
    if url is not None:
        cfg.attributes["url"] = url.render_as_string(hide_password=False)
    return cfg


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Per-model vector indexes are created at run time, not by migrations: autogenerate ignores them."""
    return not (type_ == "index" and name is not None and name.startswith(DYNAMIC_INDEX_PREFIX))


def head_revision() -> str:
    head = _script().get_current_head()
    assert head is not None, "the migration history is empty"
    return head


def history() -> list[tuple[str, str]]:
    """(revision, description) pairs, newest first."""
    return [(rev.revision, rev.doc) for rev in _script().walk_revisions()]


def current_revision(url: URL) -> str | None:
    engine = make_sync_engine(url, pooled=False)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def upgrade(url: URL, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: URL, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def ensure_schema(url: URL) -> bool:
    """Bring the database to the head revision. Returns True if migrations ran.

    Refuses (``SchemaTooNew``) a database stamped with a revision this PixSim does not know, which
    means a newer PixSim migrated it; running on would risk damaging the library.
    """
    cfg = alembic_config(url)
    script = _script()
    head = script.get_current_head()
    current = current_revision(url)
    if current == head:
        return False
    if current is not None:
        known = {rev.revision for rev in script.walk_revisions()}
        if current not in known:
            raise SchemaTooNew(
                f"The library database is at schema revision {current}, which this version of PixSim "
                "does not know: it was opened by a newer PixSim. Update PixSim to open this library."
            )
    log.info("migrating database schema from %s to %s", current or "empty", head)
    command.upgrade(cfg, "head")
    return True
