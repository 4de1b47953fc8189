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


class CacheError(PixSimError):
    """The local cache or library storage cannot hold or find a file."""


class MediaError(PixSimError):
    """A media file cannot be read or written (corrupt, truncated, unsupported format)."""


class JobError(PixSimError):
    """A generation job cannot be created or continued (unknown job, wrong state)."""


class TransferError(PixSimError):
    """Moving bytes to or from a provider failed. ``retryable`` says whether trying again may help."""

    retryable: bool = False


class TransferCancelled(TransferError):
    """The user (or shutdown) cancelled the transfer; nothing partial is left visible."""


class UnsafeUrl(TransferError):
    """A URL or redirect PixSim refuses to follow (not https, or a private/link-local address)."""


class ContentMismatch(TransferError):
    """The bytes received are not the bytes expected (size or sha256)."""


class NetworkError(TransferError):
    """The connection failed, was reset, cut short or stalled."""

    retryable = True
    # False when the request certainly never reached the server (no connection was made), so sending
    # it again cannot do anything twice; True when it may have arrived before the connection broke.
    maybe_delivered = True

    def __init__(self, message: str, *, maybe_delivered: bool = True) -> None:
        super().__init__(message)
        self.maybe_delivered = maybe_delivered


class ProviderError(TransferError):
    """A provider answered with an error. Subclasses say what kind, so callers know what to do."""

    def __init__(
        self,
        message: str,
        *,
        provider_id: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.provider_id = provider_id
        self.code = code
        # Seconds the provider asked us to wait before trying again, when it said.
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    """5xx, overload, internal error: retry with backoff."""

    retryable = True


class RateLimited(ProviderError):
    """429 or the provider's equivalent. ``retry_after`` is in seconds when the provider said."""

    retryable = True


class AuthFailed(ProviderError):
    """The API key was refused: fix the account, retrying will not help."""


class InsufficientBalance(ProviderError):
    """The account has no credits left."""


class Moderated(ProviderError):
    """The provider's content moderation refused the input or output."""


class InvalidParameter(ProviderError):
    """The request was malformed for this provider (bad parameter, unsupported file)."""


class StaleReference(ProviderError):
    """The provider no longer knows an id or URL we had cached: drop it and upload again."""
