"""OpenAI Videos API (Sora 2): text- and image-to-video, remix, extend and edit, polled to an MP4.

Contract: ../shared/design/PROVIDERS.md, checked against OpenAI's API reference, its video generation
guide and the openai-python SDK's videos resource (November 2026). Where the contract was silent:

- OpenAI announced that the Sora 2 models and the Videos API shut down on 2026-09-24. The adapter stays
  behind the provider interface for accounts that still have access, and says so in its description.
- Encoding follows the SDK: JSON when no file travels (``video`` as ``{"id": ...}``), multipart/form-data
  when one does (``input_reference`` on ``POST /videos``; ``video`` on extensions and edits is then the
  file part itself). Remix is always JSON ``{prompt}``.
- The guide added 16 and 20 second clips for both models and 1080p sizes (1920x1080, 1080x1920) for
  sora-2-pro only; the SDK's enums still list 4/8/12 and the four 720p/1024p sizes. Extensions take
  4–20 s. We offer the union and let the API refuse what a model does not do (its 400 is shown as is).
- An image ``input_reference`` must have exactly the requested size (the API answers 400 "Inpaint image
  must match the requested width and height"): other images are scaled and centre-cropped to fill it,
  into the job's workdir, before they are sent.
- Content moderation failures carry codes such as ``moderation_blocked``; a 429 with code
  ``insufficient_quota`` means the account is out of credit, not "slow down".
- A Video's ``expires_at`` (unix seconds) is when its downloadable assets expire (about an hour).

The API key only travels in the Authorization header to the API's own origin, and is scrubbed from any
message a server echoes back (OpenAI's 401 quotes a masked key).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from PIL import Image, ImageOps

from core.db.enums import JobStatus, MediaType, OperationType, ParentRole, ProviderRefKind
from core.errors import (
    AuthFailed,
    InsufficientBalance,
    InvalidParameter,
    Moderated,
    ProviderError,
    ProviderUnavailable,
    StaleReference,
)
from core.net.http import SafeHttp, error_for_status
from core.providers.base import (
    Credentials,
    GenerationRequest,
    JobHandle,
    JobUpdate,
    LocalInput,
    ProviderReference,
    ResultFile,
    Submitted,
    Uploaded,
)
from core.providers.spec import Operation, Param, ParamKind
from core.transfer.download import DownloadSource

log = logging.getLogger(__name__)

PROVIDER_ID = "sora"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
SHUTDOWN_DATE = "2026-09-24"
POLL_AFTER_HEADER = "openai-poll-after-ms"
DEFAULT_POLL_AFTER_S = 1.0

MODELS = ("sora-2", "sora-2-pro")
SECONDS = ("4", "8", "12", "16", "20")
SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024", "1080x1920", "1920x1080")
MAX_PROMPT = 32000
_IMAGE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
_MODERATION_HINTS = ("moderation", "content_policy", "content_filter", "safety")
# OpenAI secret keys (sk-..., sk-proj-...), also as echoed masked in a 401 ("sk-ab***********wxyz").
_KEYISH = re.compile(r"sk-[A-Za-z0-9_\-*]{3,}")


# -- operations ------------------------------------------------------------------------------------


def _prompt(help_text: str) -> Param:
    return Param(
        "prompt", ParamKind.PROMPT, label="Prompt", required=True, max_length=MAX_PROMPT, help=help_text
    )


_MODEL = Param(
    "model",
    ParamKind.CHOICE,
    label="Model",
    default="sora-2",
    choices=MODELS,
    help="sora-2 is quicker and cheaper for exploring; sora-2-pro renders slower at higher fidelity "
    "(and is the one for 1080p).",
)
_SECONDS = Param(
    "seconds",
    ParamKind.CHOICE,
    label="Duration (s)",
    default="4",
    choices=SECONDS,
    help="Length of the clip in seconds. Shorter clips follow the prompt more closely.",
)
_SIZE = Param(
    "size",
    ParamKind.CHOICE,
    label="Size",
    default="720x1280",
    choices=SIZES,
    help="Width x height. 720x1280, 1024x1792 and 1080x1920 are portrait, the others landscape. "
    "The 1024 and 1080p sizes need sora-2-pro.",
)


def _video_input(help_text: str) -> Param:
    return Param(
        "video_asset_id",
        ParamKind.ASSET,
        label="Video",
        required=True,
        media_types=(MediaType.VIDEO,),
        role=ParentRole.SOURCE.value,
        help=help_text,
    )


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        id=OperationType.TEXT_TO_VIDEO.value,
        label="Text to video",
        output=MediaType.VIDEO,
        description="A new clip with sound from a prompt.",
        params=(
            _prompt("What happens in the clip: subject, action, setting, camera, light, sound."),
            _MODEL,
            _SECONDS,
            _SIZE,
        ),
    ),
    Operation(
        id=OperationType.IMAGE_TO_VIDEO.value,
        label="Image to video",
        output=MediaType.VIDEO,
        description="A clip that starts from an image (sent as Sora's input reference).",
        params=(
            _prompt("What happens after the first frame."),
            Param(
                "image_asset_id",
                ParamKind.ASSET,
                label="Image",
                required=True,
                media_types=(MediaType.IMAGE,),
                # SOURCE, not REFERENCE: Sora uses the image as the first frame of the clip, so the
                # video is derived from it (REFERENCE is for loose guidance such as style or characters).
                role=ParentRole.SOURCE.value,
                help="The first frame. Sora needs it at exactly the chosen size: other images are scaled "
                "and centre-cropped to fill it. Images with real people's faces are refused.",
            ),
            _MODEL,
            _SECONDS,
            _SIZE,
        ),
    ),
    Operation(
        id=OperationType.REMIX.value,
        label="Remix",
        output=MediaType.VIDEO,
        description="A variation of a video Sora made, changed as the prompt says (same length and size).",
        params=(
            _prompt("The change to make, e.g. 'the same shot at night, in the rain'."),
            _video_input(
                "A video Sora made with this account. Remix only works on Sora's own videos, "
                "not on imported or other providers' media."
            ),
        ),
    ),
    Operation(
        id=OperationType.VIDEO_EXTEND.value,
        label="Extend",
        output=MediaType.VIDEO,
        description="Continue a video: the result is the whole clip with the new part stitched on.",
        params=(
            _prompt("What happens next."),
            _video_input(
                "The video to continue. A video Sora made is referred to by its id; any other video "
                "is sent with the request."
            ),
            Param(
                "seconds",
                ParamKind.CHOICE,
                label="Added seconds",
                default="4",
                choices=SECONDS,
                help="Length of the new part.",
            ),
        ),
    ),
    Operation(
        id=OperationType.EDIT.value,
        label="Edit",
        output=MediaType.VIDEO,
        description="Targeted changes to an existing video.",
        params=(
            _prompt("The change to make, e.g. 'make the car red'."),
            _video_input(
                "The video to edit. A video Sora made is referred to by its id; any other video "
                "is sent with the request."
            ),
        ),
    ),
)


# -- helpers ---------------------------------------------------------------------------------------


def _scrub(text: str, key: str | None) -> str:
    """``text`` without the API key or anything that looks like one."""
    if key:
        text = text.replace(key, "***")
    return _KEYISH.sub("sk-***", text)


def _is_moderation(code: str | None) -> bool:
    lowered = (code or "").lower()
    return any(hint in lowered for hint in _MODERATION_HINTS)


def _poll_after(headers: Mapping[str, str], default: float | None) -> float | None:
    raw = headers.get(POLL_AFTER_HEADER)
    if raw is None:
        return default
    try:
        return max(0.0, float(raw) / 1000)
    except ValueError:
        return default


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value, UTC)
    return None


def _openai_error(response: httpx.Response) -> tuple[str | None, str | None]:
    """(message with its param and code, OpenAI's error code) from ``{"error": {...}}``, if any."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return (text[:300] or None), None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, None
    message = str(error.get("message") or "").strip() or None
    code = str(error["code"]) if error.get("code") else None
    param = str(error["param"]) if error.get("param") else None
    extras = [f"param {param}" if param else "", f"code {code}" if code else ""]
    extra = ", ".join(part for part in extras if part)
    if message and extra:
        message = f"{message} ({extra})"
    return (message or extra or None), code


def _fit_image(local: LocalInput, size: str, workdir: Path) -> tuple[Path, str, str]:
    """(path, mime type, filename) of the image at exactly ``size``: the original when it already is."""
    width, height = (int(part) for part in size.split("x"))
    try:
        with Image.open(local.path) as opened:
            mime = _IMAGE_FORMATS.get(opened.format or "")
            if mime is not None and opened.size == (width, height):
                return local.path, mime, local.filename
            upright = ImageOps.exif_transpose(opened).convert("RGB")
    except (OSError, ValueError) as exc:
        raise InvalidParameter(
            f"Sora cannot use asset {local.asset_id} as an image: it does not open as one ({exc}).",
            provider_id=PROVIDER_ID,
            code="invalid_image",
        ) from None
    fitted = ImageOps.fit(upright, (width, height), method=Image.Resampling.LANCZOS)
    workdir.mkdir(parents=True, exist_ok=True)
    name = f"{local.sha256[:16]}-{size}.png"
    target = workdir / f"input_reference-{name}"
    partial = target.with_suffix(".part")
    fitted.save(partial, format="PNG")
    partial.replace(target)
    return target, "image/png", name


# -- the adapter -----------------------------------------------------------------------------------


class SoraAdapter:
    provider_id = PROVIDER_ID
    display_name = "OpenAI Sora"
    description = (
        "OpenAI's Sora 2 video models through the Videos API: text or image to video, remix, extend and "
        f"edit. OpenAI announced that the Sora 2 Videos API would shut down on {SHUTDOWN_DATE}, so it may "
        "no longer accept requests; kept for accounts that still have access. Needs an OpenAI API key."
    )
    requires_account = True
    repeatable_submit = False

    # -- Provider -----------------------------------------------------------------------------------

    def origin_reference(self, provider_asset_id: str, media_type: MediaType) -> Uploaded | None:
        # Sora's own videos are remixed, extended and edited by id; nothing else is reusable.
        if media_type == MediaType.VIDEO:
            return Uploaded(kind=ProviderRefKind.VIDEO_ID, ref=provider_asset_id)
        return None

    def download_source(self, ref: ProviderReference, credentials: Credentials) -> DownloadSource | None:
        # The content endpoint needs the key (no public URL): without one there is no way to fetch it.
        if ref.kind != ProviderRefKind.VIDEO_ID or not credentials.api_key:
            return None
        return DownloadSource(
            url=self._content_url(credentials, ref.ref),
            provider_id=PROVIDER_ID,
            auth_headers=self._auth(credentials),
        )

    def trusted_origins(self, credentials: Credentials) -> list[str]:
        return []

    # -- SupportsGenerate -----------------------------------------------------------------------------

    def operations(self) -> Sequence[Operation]:
        return OPERATIONS

    async def submit(self, http: SafeHttp, request: GenerationRequest) -> Submitted:
        operation = request.operation.id
        params = request.params
        credentials = request.credentials
        base = self._base(credentials)
        if operation == OperationType.TEXT_TO_VIDEO:
            body = {key: params[key] for key in ("prompt", "model", "seconds", "size")}
            await request.sending()
            response = await self._send(
                http, "POST", f"{base}/videos", credentials, "a text-to-video request", json=body
            )
        elif operation == OperationType.IMAGE_TO_VIDEO:
            local = await request.inputs.local_file(params["image_asset_id"])
            path, mime, name = await asyncio.to_thread(_fit_image, local, params["size"], request.workdir)
            fields = {key: params[key] for key in ("prompt", "model", "seconds", "size")}
            await request.sending()
            response = await self._send_file(
                http,
                f"{base}/videos",
                credentials,
                "an image-to-video request",
                fields,
                ("input_reference", name, path, mime),
            )
        elif operation == OperationType.REMIX:
            asset_id = params["video_asset_id"]
            ref = await request.inputs.existing_reference(asset_id)
            if ref is None or ref.kind != ProviderRefKind.VIDEO_ID:
                raise InvalidParameter(
                    f"Remix only works on videos Sora made itself; asset {asset_id} is not one of them. "
                    "Use Edit or Extend for other videos.",
                    provider_id=PROVIDER_ID,
                    code="not_a_sora_video",
                )
            await request.sending()
            response = await self._send(
                http,
                "POST",
                f"{base}/videos/{quote(ref.ref, safe='')}/remix",
                credentials,
                f"a remix of video {ref.ref}",
                json={"prompt": params["prompt"]},
                about_reference=True,
            )
        elif operation in (OperationType.VIDEO_EXTEND, OperationType.EDIT):
            response = await self._extend_or_edit(
                http, request, extend=operation == OperationType.VIDEO_EXTEND
            )
        else:
            raise InvalidParameter(
                f"OpenAI Sora has no operation '{operation}'.",
                provider_id=PROVIDER_ID,
                code="unknown_operation",
            )
        video = self._video(response, "its answer to the request")
        return Submitted(provider_job_id=video["id"], poll_after_s=_poll_after(response.headers, None))

    async def _extend_or_edit(
        self, http: SafeHttp, request: GenerationRequest, *, extend: bool
    ) -> httpx.Response:
        """``video`` is Sora's own id when it has one for the asset (JSON), else the file (multipart)."""
        params = request.params
        credentials = request.credentials
        base = self._base(credentials)
        url = f"{base}/videos/extensions" if extend else f"{base}/videos/edits"
        what = "an extension request" if extend else "an edit request"
        fields = {"prompt": params["prompt"], **({"seconds": params["seconds"]} if extend else {})}
        asset_id = params["video_asset_id"]
        ref = await request.inputs.existing_reference(asset_id)
        if ref is not None and ref.kind == ProviderRefKind.VIDEO_ID and not ref.is_expired():
            try:
                await request.sending()
                return await self._send(
                    http,
                    "POST",
                    url,
                    credentials,
                    what,
                    json={**fields, "video": {"id": ref.ref}},
                    about_reference=True,
                )
            except StaleReference as exc:
                # Sora no longer has that video (deleted at OpenAI): the bytes still do the job.
                log.info("Sora no longer knows video %s (%s); sending the file instead", ref.ref, exc.code)
        local = await request.inputs.local_file(asset_id)
        mime = local.mime_type or "video/mp4"
        await request.sending()
        return await self._send_file(
            http, url, credentials, what, fields, ("video", local.filename, local.path, mime)
        )

    async def poll(self, http: SafeHttp, job: JobHandle) -> JobUpdate:
        credentials = job.credentials
        video_id = job.provider_job_id
        url = f"{self._base(credentials)}/videos/{quote(video_id, safe='')}"
        response = await http.request("GET", url, headers=self._auth(credentials))
        wait = _poll_after(response.headers, DEFAULT_POLL_AFTER_S)
        if response.status_code in (404, 410):
            return JobUpdate(
                JobStatus.FAILED,
                poll_after_s=wait,
                error=ProviderError(
                    f"Sora no longer knows video {video_id}: it was deleted, or the Videos API has shut "
                    f"down (announced for {SHUTDOWN_DATE}).",
                    provider_id=PROVIDER_ID,
                    code=str(response.status_code),
                ),
            )
        if response.status_code >= 400:
            raise self._error(response, f"a status check of video {video_id}", credentials)
        video = self._video(response, f"the status of video {video_id}")
        status = video.get("status")
        progress = video.get("progress")
        fraction = (
            min(1.0, max(0.0, float(progress) / 100))
            if isinstance(progress, int | float) and not isinstance(progress, bool)
            else None
        )
        if status == "queued":
            return JobUpdate(JobStatus.SUBMITTED, progress=fraction, poll_after_s=wait)
        if status == "in_progress":
            return JobUpdate(JobStatus.RUNNING, progress=fraction, poll_after_s=wait)
        if status == "completed":
            return JobUpdate(
                JobStatus.SUCCEEDED,
                progress=1.0,
                poll_after_s=wait,
                outputs=(self._result(video, credentials),),
            )
        if status == "failed":
            return JobUpdate(JobStatus.FAILED, poll_after_s=wait, error=self._failure(video, credentials))
        return JobUpdate(
            JobStatus.FAILED,
            poll_after_s=wait,
            error=ProviderError(
                f"Sora reported an unknown status {str(status)[:40]!r} for video {video_id}.",
                provider_id=PROVIDER_ID,
                code="unknown_status",
            ),
        )

    # -- SupportsCancel ------------------------------------------------------------------------------

    async def cancel(self, http: SafeHttp, job: JobHandle) -> None:
        """DELETE the video: stops nothing already rendered, but frees it at OpenAI (best effort)."""
        credentials = job.credentials
        video_id = job.provider_job_id
        url = f"{self._base(credentials)}/videos/{quote(video_id, safe='')}"
        response = await http.request("DELETE", url, headers=self._auth(credentials))
        if response.status_code < 300 or response.status_code in (404, 410):
            return
        error = self._error(response, f"the deletion of video {video_id}", credentials)
        if response.status_code == 400:
            # e.g. a video still rendering that the API will not delete yet: nothing more to do here.
            log.info("Sora did not delete video %s: %s", video_id, error)
            return
        raise error

    # -- SupportsAccountCheck ------------------------------------------------------------------------

    async def check_account(self, http: SafeHttp, credentials: Credentials) -> str:
        response = await self._send(
            http,
            "GET",
            f"{self._base(credentials)}/videos",
            credentials,
            "an account check",
            params={"limit": "1"},
        )
        try:
            data = response.json().get("data")
        except (ValueError, AttributeError):
            data = None
        if not isinstance(data, list):
            raise ProviderUnavailable(
                "OpenAI's answer to the account check was not a list of videos.", provider_id=PROVIDER_ID
            )
        latest = (
            f"latest video {data[0].get('id')}" if data and isinstance(data[0], dict) else "no videos yet"
        )
        return f"Key accepted: the Videos API still answers for this account ({latest})."

    # -- requests ------------------------------------------------------------------------------------

    def _base(self, credentials: Credentials) -> str:
        return (credentials.base_url or DEFAULT_BASE_URL).rstrip("/")

    def _auth(self, credentials: Credentials) -> dict[str, str]:
        if not credentials.api_key:
            raise AuthFailed("This OpenAI Sora account has no API key.", provider_id=PROVIDER_ID)
        return {"Authorization": f"Bearer {credentials.api_key}"}

    def _content_url(self, credentials: Credentials, video_id: str) -> str:
        return f"{self._base(credentials)}/videos/{quote(video_id, safe='')}/content?variant=video"

    async def _send(
        self,
        http: SafeHttp,
        method: str,
        url: str,
        credentials: Credentials,
        what: str,
        *,
        about_reference: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        response = await http.request(method, url, headers=self._auth(credentials), **kwargs)
        if response.status_code >= 400:
            raise self._error(response, what, credentials, about_reference=about_reference)
        return response

    async def _send_file(
        self,
        http: SafeHttp,
        url: str,
        credentials: Credentials,
        what: str,
        fields: dict[str, Any],
        file: tuple[str, str, Path, str],
    ) -> httpx.Response:
        """POST multipart/form-data: the text ``fields`` plus one file part (name, filename, path, mime)."""
        part, filename, path, mime = file
        with path.open("rb") as handle:
            return await self._send(
                http, "POST", url, credentials, what, data=fields, files={part: (filename, handle, mime)}
            )

    def _error(
        self, response: httpx.Response, what: str, credentials: Credentials, *, about_reference: bool = True
    ) -> ProviderError:
        status = response.status_code
        detail, code = _openai_error(response)
        detail = _scrub(detail, credentials.api_key) if detail else None
        if status in (404, 410) and not about_reference:
            # Nothing of ours was named: the endpoint itself is gone.
            return ProviderError(
                f"OpenAI answered {status} to {what}: the Videos API is not available to this account "
                f"any more (OpenAI announced its shutdown for {SHUTDOWN_DATE})."
                + (f" OpenAI said: {detail}" if detail else ""),
                provider_id=PROVIDER_ID,
                code=str(status),
            )
        error = error_for_status(
            status,
            response.headers,
            str(response.request.url),
            provider_id=PROVIDER_ID,
            what=what,
            reason=response.reason_phrase,
            detail=detail,
        )
        if _is_moderation(code):
            return Moderated(
                f"{error}. OpenAI's content moderation refused it.", provider_id=PROVIDER_ID, code=code
            )
        if status == 429 and code == "insufficient_quota":
            return InsufficientBalance(
                f"{error}. The OpenAI account has run out of credit.", provider_id=PROVIDER_ID, code=code
            )
        return error

    def _video(self, response: httpx.Response, what: str) -> dict[str, Any]:
        try:
            video = response.json()
        except ValueError:
            video = None
        if not isinstance(video, dict) or not isinstance(video.get("id"), str) or not video["id"]:
            raise ProviderUnavailable(
                f"OpenAI sent something that is not a video object as {what}.", provider_id=PROVIDER_ID
            )
        return video

    # -- results -------------------------------------------------------------------------------------

    def _result(self, video: dict[str, Any], credentials: Credentials) -> ResultFile:
        video_id: str = video["id"]
        metadata = {
            key: video[key]
            for key in ("model", "seconds", "size", "remixed_from_video_id")
            if video.get(key) is not None
        }
        return ResultFile(
            media_type=MediaType.VIDEO,
            mime_type="video/mp4",
            download=DownloadSource(
                url=self._content_url(credentials, video_id),
                provider_id=PROVIDER_ID,
                auth_headers=self._auth(credentials),
            ),
            provider_asset_id=video_id,
            # The content URL needs the key: it is no URL to keep or show.
            remote_url=None,
            reference=Uploaded(
                kind=ProviderRefKind.VIDEO_ID, ref=video_id, expires_at=_timestamp(video.get("expires_at"))
            ),
            metadata=metadata,
        )

    def _failure(self, video: dict[str, Any], credentials: Credentials) -> ProviderError:
        raw = video.get("error")
        error: dict[str, Any] = raw if isinstance(raw, dict) else {}
        code = str(error["code"]) if error.get("code") else None
        said = _scrub(str(error.get("message") or "no reason given"), credentials.api_key)
        message = f"Sora could not make video {video['id']}: {said}" + (f" (code {code})" if code else "")
        if _is_moderation(code):
            return Moderated(
                f"{message}. OpenAI's content moderation refused it.", provider_id=PROVIDER_ID, code=code
            )
        return ProviderError(message, provider_id=PROVIDER_ID, code=code)
