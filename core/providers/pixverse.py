"""Pixverse platform API: uploads of images and video/audio media (generation comes with the jobs).

Contract: ../shared/design/PROVIDERS.md. Every request carries ``API-KEY`` and a new ``Ai-trace-id``;
answers are HTTP 200 envelopes ``{"ErrCode", "ErrMsg", "Resp"}`` where a non-zero ErrCode is an error.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import IO, Any

from core.db.enums import MediaType, ProviderRefKind
from core.errors import (
    AuthFailed,
    InsufficientBalance,
    InvalidParameter,
    Moderated,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    StaleReference,
)
from core.net.http import SafeHttp, error_for_status
from core.providers.base import Credentials, ProviderReference, Uploaded, UploadRequest
from core.transfer.download import DownloadSource

PROVIDER_ID = "pixverse"
DEFAULT_BASE_URL = "https://app-api.pixverse.ai"

_PERMANENT: dict[int, tuple[type[ProviderError], str]] = {
    400011: (InvalidParameter, "a required parameter is empty"),
    400017: (InvalidParameter, "a parameter is invalid"),
    400018: (InvalidParameter, "the prompt is too long"),
    400019: (InvalidParameter, "the prompt is too long"),
    400032: (StaleReference, "Pixverse no longer knows this image id"),
    500020: (AuthFailed, "this account has no permission for the operation"),
    500030: (InvalidParameter, "Pixverse cannot use this image"),
    500031: (InvalidParameter, "Pixverse cannot use this image (too large)"),
    500032: (InvalidParameter, "Pixverse cannot use this image (dimensions)"),
    500033: (InvalidParameter, "Pixverse cannot use this image (format)"),
    500043: (InsufficientBalance, "the Pixverse account has run out of credits"),
    500090: (InsufficientBalance, "the Pixverse account has run out of credits"),
    500054: (Moderated, "Pixverse's content moderation refused it"),
    500063: (Moderated, "Pixverse's content moderation refused it"),
    500064: (StaleReference, "the content was deleted on Pixverse"),
}
_RETRYABLE: dict[int, tuple[type[ProviderError], str]] = {
    500041: (ProviderUnavailable, "the upload failed on Pixverse's side"),
    500044: (RateLimited, "too many generations at once on this account"),
    500069: (ProviderUnavailable, "Pixverse is under high load"),
    500100: (ProviderUnavailable, "Pixverse had an internal error"),
}


def error_from_envelope(code: int, message: str, what: str) -> ProviderError:
    kind, meaning = _PERMANENT.get(code) or _RETRYABLE.get(code) or (ProviderError, "Pixverse refused it")
    return kind(
        f"Pixverse refused {what}: {meaning} (ErrCode {code}: {message})",
        provider_id=PROVIDER_ID,
        code=str(code),
    )


class _CountingReader:
    """A file wrapper that reports how many bytes httpx has read for the request body."""

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


class PixverseAdapter:
    provider_id = PROVIDER_ID
    display_name = "Pixverse"
    description = "Pixverse platform API: text- and image-to-video, extend, transition. Needs an API key."
    requires_account = True

    def _base(self, credentials: Credentials) -> str:
        return (credentials.base_url or DEFAULT_BASE_URL).rstrip("/")

    def _headers(self, credentials: Credentials) -> dict[str, str]:
        if not credentials.api_key:
            raise AuthFailed("This Pixverse account has no API key.", provider_id=PROVIDER_ID)
        return {"API-KEY": credentials.api_key, "Ai-trace-id": str(uuid.uuid4())}

    async def upload(self, http: SafeHttp, request: UploadRequest) -> Uploaded:
        if request.media_type == MediaType.IMAGE:
            path, field, kind, id_key, url_key = (
                "/openapi/v2/image/upload",
                "image",
                ProviderRefKind.IMAGE_ID,
                "img_id",
                "img_url",
            )
        elif request.media_type in (MediaType.VIDEO, MediaType.AUDIO):
            path, field, kind, id_key, url_key = (
                "/openapi/v2/media/upload",
                "file",
                ProviderRefKind.MEDIA_ID,
                "media_id",
                "url",
            )
        else:
            raise InvalidParameter(
                "Pixverse accepts images, videos and audio, not 3D models.", provider_id=PROVIDER_ID
            )
        url = self._base(request.credentials) + path
        with request.path.open("rb") as raw:
            body = _CountingReader(raw, request.size, request.progress)
            files = {field: (request.filename, body, request.mime_type or "application/octet-stream")}
            response = await http.request(
                "POST", url, headers=self._headers(request.credentials), files=files
            )
        resp = self._unwrap(response, f"the upload of {request.filename}")
        ref = resp.get(id_key)
        if ref is None:
            raise ProviderUnavailable(f"Pixverse's upload answer had no {id_key}", provider_id=PROVIDER_ID)
        details = {"media_type": resp["media_type"]} if "media_type" in resp else {}
        return Uploaded(kind=kind, ref=str(ref), url=resp.get(url_key), details=details)

    def _unwrap(self, response: Any, what: str) -> dict[str, Any]:
        if response.status_code != 200:
            raise error_for_status(
                response.status_code,
                response.headers,
                str(response.request.url),
                provider_id=PROVIDER_ID,
                what=what,
                reason=response.reason_phrase,
            )
        try:
            envelope = response.json()
            code = int(envelope.get("ErrCode", -1))
        except (ValueError, TypeError, AttributeError):
            raise ProviderUnavailable(
                f"Pixverse answered {what} with something that is not JSON", provider_id=PROVIDER_ID
            ) from None
        if code != 0:
            raise error_from_envelope(code, str(envelope.get("ErrMsg", "")), what)
        resp = envelope.get("Resp")
        return resp if isinstance(resp, dict) else {}

    def origin_reference(self, provider_asset_id: str, media_type: MediaType) -> Uploaded | None:
        # Videos Pixverse generated are extended by source_video_id, with no upload.
        if media_type == MediaType.VIDEO:
            return Uploaded(kind=ProviderRefKind.VIDEO_ID, ref=provider_asset_id)
        return None

    def download_source(self, ref: ProviderReference, credentials: Credentials) -> DownloadSource | None:
        # Upload and result URLs are plain CDN URLs: no API key may travel there.
        return DownloadSource(url=ref.url, provider_id=PROVIDER_ID) if ref.url else None

    def trusted_origins(self, credentials: Credentials) -> list[str]:
        return []
