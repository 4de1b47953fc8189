"""Start-up: find the database (embedded or external), check it, migrate it. Runs before any Qt loop."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.engine import URL

from app.settings import Settings
from core.db import migrate
from core.db.embedded import EmbeddedDatabase
from core.db.engine import check_server
from core.db.urls import describe_location, normalize_url

log = logging.getLogger(__name__)


@dataclass
class DatabaseHandle:
    url: URL
    # One line for people: the status bar, `pixsim info`, logs. Never contains a password.
    description: str
    embedded: EmbeddedDatabase | None = None

    def close(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None


def open_database(settings: Settings, *, migrate_schema: bool = True) -> DatabaseHandle:
    """Open the configured database. Raises a ``core.errors.DatabaseError`` with a clear message.

    With an external URL nothing is created locally; the URL is checked before anything else.
    """
    if settings.database_url is not None:
        url = normalize_url(settings.database_url)
        info = check_server(url)
        handle = DatabaseHandle(
            url=url,
            description=(
                f"PostgreSQL {info.version.split()[0]} at {describe_location(url)}, database "
                f"{url.database} (user {url.username or 'default'})"
            ),
        )
    else:
        embedded = EmbeddedDatabase(settings.data_dir)
        status = embedded.start()
        handle = DatabaseHandle(
            url=status.url,
            description=f"Embedded PostgreSQL {status.postgres_version} in {status.pgdata}",
            embedded=embedded,
        )
    if migrate_schema:
        try:
            if migrate.ensure_schema(handle.url):
                log.info("database schema migrated to %s", migrate.head_revision())
        except BaseException:
            handle.close()
            raise
    return handle
