"""The provider plugin API: what an adapter is, and the small capability protocols it may implement.

Every adapter is a ``Provider`` (identity, accounts, which of its references can be downloaded again).
On top it implements what the provider can do: ``SupportsUpload`` (keep foreign media under an id),
``SupportsGenerate`` (operations with a parameter specification, submit and poll), ``SupportsCancel``
and ``SupportsAccountCheck``. Adapters translate to one provider's HTTP API, never touch the database,
and raise the shared error tree (``core.errors``), which is their error classification: retryable
(``TransferError.retryable``), permanent, or ``StaleReference``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

from core.db.enums import JobStatus, MediaType, ProviderRefKind
from core.errors import InvalidParameter, ProviderError
from core.net.http import SafeHttp
from core.providers.spec import Operation
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


class ProgressReader:
    """Wraps an upload's file so the bytes httpx reads for the request body are reported as progress."""

    def __init__(self, raw: IO[bytes], total: int, progress: Callable[[int, int], None] | None) -> None:
        self._raw = raw
        self._total = total
        self._progress = progress
        self._done = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._raw.read(size)
        self._done += len(chunk)
        if self._progress is not None:
            self._progress(self._done, self._total)
        return chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


@runtime_checkable
class Provider(Protocol):
    provider_id: str
    display_name: str
    # One or two sentences for the providers list; a provider facing shutdown says so here.
    description: str
    # False for providers that work without an account (the offline Sandbox, a keyless local ComfyUI).
    requires_account: bool

    def origin_reference(self, provider_asset_id: str, media_type: MediaType) -> Uploaded | None:
        """The reference for an asset this provider made itself (no upload needed), if it can reuse it."""
        ...

    def download_source(self, ref: ProviderReference, credentials: Credentials) -> DownloadSource | None:
        """How to fetch the bytes behind ``ref`` again, if the provider allows it."""
        ...

    def trusted_origins(self, credentials: Credentials) -> list[str]:
        """Loopback servers this provider uses that the user configured (ComfyUI): allowed over http."""
        ...


@runtime_checkable
class SupportsUpload(Provider, Protocol):
    async def upload(self, http: SafeHttp, request: UploadRequest) -> Uploaded:
        """Upload the file; raise ``core.errors`` provider errors classified as retryable or not."""
        ...


# -- generation ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalInput:
    """An input asset's bytes on disk (leased: not evicted while the job uses it) and its media facts."""

    asset_id: int
    path: Path
    sha256: str
    size: int
    media_type: MediaType
    mime_type: str | None
    width: int | None = None
    height: int | None = None
    duration_sec: float | None = None
    fps: float | None = None

    @property
    def filename(self) -> str:
        return f"{self.sha256[:16]}{_EXTENSIONS.get(self.mime_type or '', '')}"


class InputResolver(Protocol):
    """How an adapter obtains the inputs of a job (asset ids) in the form its provider needs."""

    async def reference(self, asset_id: int) -> ProviderReference:
        """This provider's reference for the asset: cached, its own, or uploaded now (once)."""
        ...

    async def existing_reference(self, asset_id: int) -> ProviderReference | None:
        """This provider's reference if it already has one (no upload): e.g. Sora's own video id."""
        ...

    async def local_file(self, asset_id: int) -> LocalInput:
        """The asset's bytes on disk (downloaded once into the cache if needed), for providers that take
        the file with each request (Sora) or that render locally (Sandbox)."""
        ...


async def _nothing() -> None:
    return None


@dataclass(frozen=True)
class GenerationRequest:
    operation: Operation
    # Validated against ``operation`` (defaults filled in); input params hold asset ids.
    params: dict[str, Any]
    credentials: Credentials
    inputs: InputResolver
    # A directory that belongs to this job and survives restarts (local renders, request bodies).
    workdir: Path
    # Stable for the job (idempotency keys, deterministic names).
    job_key: str
    # Awaited by the adapter right before the request that makes the provider start the generation
    # (after its uploads): from then on a broken connection leaves the outcome unknown.
    sending: Callable[[], Awaitable[None]] = _nothing


@dataclass(frozen=True)
class JobHandle:
    """What polling needs: the provider's id for the job, and the job's own context."""

    provider_job_id: str
    operation: Operation
    params: dict[str, Any]
    credentials: Credentials
    workdir: Path
    job_key: str


@dataclass(frozen=True)
class Submitted:
    provider_job_id: str
    # When to ask first, if the provider said (seconds).
    poll_after_s: float | None = None


@dataclass(frozen=True)
class ResultFile:
    """One output of a finished job: where its bytes are, and what the provider calls it."""

    media_type: MediaType
    # Exactly one of: a remote source (downloaded at once, URLs expire) or a file the adapter wrote.
    download: DownloadSource | None = None
    local_path: Path | None = None
    mime_type: str | None = None
    # The provider's own id of this output (a video id); makes the import idempotent.
    provider_asset_id: str | None = None
    remote_url: str | None = None
    remote_url_expires_at: datetime | None = None
    # A reference the provider can reuse for this output (Pixverse's video id for extend, Sora's id).
    reference: Uploaded | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobUpdate:
    status: JobStatus  # SUBMITTED, RUNNING, SUCCEEDED, FAILED or CANCELLED
    progress: float | None = None  # 0..1
    poll_after_s: float | None = None
    outputs: tuple[ResultFile, ...] = ()
    # On FAILED: the provider's reason, classified (Moderated, InvalidParameter, ...).
    error: ProviderError | None = None


@runtime_checkable
class SupportsGenerate(Provider, Protocol):
    # True when sending a submission twice costs nothing (a local renderer, the user's own ComfyUI):
    # a submit whose answer was lost is then simply sent again. False for paid providers without an
    # idempotency key, where a second request could make and charge a second generation.
    repeatable_submit: bool

    def operations(self) -> Sequence[Operation]:
        """What this provider can make, each with its parameter specification."""
        ...

    async def submit(self, http: SafeHttp, request: GenerationRequest) -> Submitted:
        """Start the job at the provider. Raise the error tree on refusal. Await ``request.sending()``
        right before the request that starts the generation."""
        ...

    async def poll(self, http: SafeHttp, job: JobHandle) -> JobUpdate:
        """Where the job stands. Raise only for failures to ask (network, auth); a job the provider
        reports as failed is a ``JobUpdate`` with status FAILED and its reason."""
        ...


@runtime_checkable
class SupportsCancel(Provider, Protocol):
    async def cancel(self, http: SafeHttp, job: JobHandle) -> None:
        """Ask the provider to stop the job (best effort)."""
        ...


@runtime_checkable
class SupportsAccountCheck(Provider, Protocol):
    async def check_account(self, http: SafeHttp, credentials: Credentials) -> str:
        """Check that the key works with one cheap request; a short human message (e.g. the balance).
        Raise AuthFailed (or another error of the tree) when it does not."""
        ...


def find_operation(adapter: SupportsGenerate, operation_id: str) -> Operation:
    for operation in adapter.operations():
        if operation.id == operation_id:
            return operation
    known = ", ".join(op.id for op in adapter.operations()) or "none"
    raise InvalidParameter(
        f"{adapter.display_name} has no operation '{operation_id}' (it offers: {known}).",
        provider_id=adapter.provider_id,
        code="unknown_operation",
    )
