"""The offline Sandbox provider: no account, no network. It reads inputs straight from the local store,
so "uploading" only records a reference to the content hash."""

from __future__ import annotations

from core.db.enums import MediaType, ProviderRefKind
from core.net.http import SafeHttp
from core.providers.base import Credentials, ProviderReference, Uploaded, UploadRequest
from core.transfer.download import DownloadSource

PROVIDER_ID = "sandbox"


class SandboxAdapter:
    provider_id = PROVIDER_ID
    display_name = "Sandbox"
    description = "Built in and offline: renders real media files on this computer, deterministic for a seed. No account needed; try every feature with it."
    requires_account = False

    async def upload(self, http: SafeHttp, request: UploadRequest) -> Uploaded:
        if request.progress is not None:
            request.progress(request.size, request.size)
        return Uploaded(kind=ProviderRefKind.FILE_ID, ref=f"sha256:{request.sha256}")

    def origin_reference(self, provider_asset_id: str, media_type: MediaType) -> Uploaded | None:
        return Uploaded(kind=ProviderRefKind.FILE_ID, ref=provider_asset_id)

    def download_source(self, ref: ProviderReference, credentials: Credentials) -> DownloadSource | None:
        return None

    def trusted_origins(self, credentials: Credentials) -> list[str]:
        return []
