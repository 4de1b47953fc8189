"""What a provider adapter offers the transfer engine: upload a file, and say which references can be
downloaded again. Adapters translate to one provider's HTTP API and raise the shared error tree."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from core.db.enums import MediaType, ProviderRefKind
from core.errors import ConfigError
from core.net.http import SafeHttp
from core.transfer.download import DownloadSource

# A reference this close to its expiry is treated as expired: it might lapse before the provider uses it.
EXPIRY_MARGIN = timedelta(minutes=2)


@dataclass(frozen=True)
class Credentials:
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None


@dataclass(frozen=True)
class ProviderReference:
    """A provider's handle for an asset (the row of ``asset_provider_refs``, as plain data)."""

    asset_id: int
    provider_id: str
    account_id: int | None
    kind: ProviderRefKind
    ref: str
    url: str | None = None
    expires_at: datetime | None = None
    is_origin: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    def is_expired(self, now: datetime | None = None) -> bool:
        if self.expires_at is None:
            return False
        return self.expires_at <= (now or datetime.now(UTC)) + EXPIRY_MARGIN


@dataclass(frozen=True)
class Uploaded:
    kind: ProviderRefKind
    ref: str
    url: str | None = None
    expires_at: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UploadRequest:
    path: Path
    size: int
    sha256: str
    media_type: MediaType
    mime_type: str | None
    credentials: Credentials
    progress: Callable[[int, int], None] | None = None

    @property
    def filename(self) -> str:
        """Our own name for the file (never a server-supplied one): hash prefix + extension."""
        return f"{self.sha256[:16]}{_EXTENSIONS.get(self.mime_type or '', '')}"


_EXTENSIONS = {
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/webm": ".webm",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "audio/mpeg": ".mp3",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "model/gltf-binary": ".glb",
}


@runtime_checkable
class SupportsUpload(Protocol):
    provider_id: str
    # False for providers that work without an account (the offline Sandbox, a keyless local ComfyUI).
    requires_account: bool

    async def upload(self, http: SafeHttp, request: UploadRequest) -> Uploaded:
        """Upload the file; raise ``core.errors`` provider errors classified as retryable or not."""
        ...

    def origin_reference(self, provider_asset_id: str, media_type: MediaType) -> Uploaded | None:
        """The reference for an asset this provider made itself (no upload needed), if it can reuse it."""
        ...

    def download_source(self, ref: ProviderReference, credentials: Credentials) -> DownloadSource | None:
        """How to fetch the bytes behind ``ref`` again, if the provider allows it."""
        ...

    def trusted_origins(self, credentials: Credentials) -> list[str]:
        """Loopback servers this provider uses that the user configured (ComfyUI): allowed over http."""
        ...


class ProviderRegistry:
    def __init__(self) -> None:
        self._adapters: dict[str, SupportsUpload] = {}

    def register(self, adapter: SupportsUpload) -> None:
        self._adapters[adapter.provider_id] = adapter

    def get(self, provider_id: str) -> SupportsUpload:
        try:
            return self._adapters[provider_id]
        except KeyError:
            known = ", ".join(sorted(self._adapters)) or "none"
            raise ConfigError(f"Unknown provider '{provider_id}' (known: {known}).") from None

    def ids(self) -> list[str]:
        return sorted(self._adapters)
