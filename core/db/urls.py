"""Database URL parsing and redaction."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from core.errors import DatabaseUrlError

_ACCEPTED_SCHEMES = {"postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg_async"}


def normalize_url(raw: str) -> URL:
    """Parse a user-supplied PostgreSQL URL into a SQLAlchemy URL for psycopg 3.

    Accepts ``postgresql://``, ``postgres://`` and ``postgresql+psycopg://``. Anything else is a
    :class:`DatabaseUrlError` whose message never contains the password.
    """
    text = raw.strip()
    if not text:
        raise DatabaseUrlError("The database URL is empty. Expected postgresql://user:password@host:5432/db")
    try:
        url = make_url(text)
    except ArgumentError:
        raise DatabaseUrlError(
            "The database URL is not a valid URL. Expected postgresql://user:password@host:5432/db"
        ) from None
    if url.drivername not in _ACCEPTED_SCHEMES:
        raise DatabaseUrlError(
            f"PixSim needs PostgreSQL, but the database URL starts with '{url.drivername}://'. "
            "Expected postgresql://user:password@host:5432/db"
        )
    if not url.database:
        raise DatabaseUrlError(
            f"The database URL {redact(url)} names no database. Add one after the host: .../pixsim"
        )
    return url.set(drivername="postgresql+psycopg")


def redact(url: URL | str) -> str:
    """The URL with its password replaced by ***, safe for logs, errors and the status bar."""
    if isinstance(url, str):
        try:
            url = make_url(url)
        except ArgumentError:
            return "<invalid database URL>"
    return url.render_as_string(hide_password=True)


def describe_location(url: URL) -> str:
    """Where the server is, for humans: ``host:port`` or the Unix socket directory."""
    if url.host:
        return f"{url.host}:{url.port or 5432}"
    socket_dir = url.query.get("host")
    if isinstance(socket_dir, tuple):
        socket_dir = socket_dir[0]
    return f"Unix socket in {socket_dir}" if socket_dir else "the local default socket"
