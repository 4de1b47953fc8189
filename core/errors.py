"""The error tree. Every error carries a message a user can act on; none carries a secret."""

from __future__ import annotations


class PixSimError(Exception):
    """Base of every error PixSim shows to a user. ``str(err)`` is the user-facing message."""


class ConfigError(PixSimError):
    """A setting is malformed (settings file, environment variable)."""


class DatabaseError(PixSimError):
    """The database cannot be used."""


class DatabaseUrlError(DatabaseError, ConfigError):
    """The database URL is not a usable PostgreSQL URL."""


class DatabaseUnreachable(DatabaseError):
    """Connecting to the database server failed."""


class DatabaseNotReady(DatabaseError):
    """The server answers but lacks something PixSim needs (pgvector, privileges)."""


class SchemaTooNew(DatabaseError):
    """The database was migrated by a newer PixSim than this one."""


class DataDirError(DatabaseError):
    """The embedded database's data directory is locked, unwritable or damaged."""
