"""Pixverse platform API: uploads of images and video/audio media, video generation, the account balance.

Contract: ../shared/design/PROVIDERS.md. Every request carries ``API-KEY`` and a new ``Ai-trace-id``;
answers are HTTP 200 envelopes ``{"ErrCode", "ErrMsg", "Resp"}`` where a non-zero ErrCode is an error.

Where PROVIDERS.md is silent, Pixverse's public platform documentation (docs.platform.pixverse.ai) says:
- transition: ``POST /openapi/v2/video/transition/generate`` with ``prompt``, ``model``, ``duration``,
  ``quality``, ``motion_mode``, ``seed`` (all marked required there) and ``first_frame_img`` /
  ``last_frame_img`` (image ids from the upload endpoint);
- balance: ``GET /openapi/v2/account/balance`` → ``Resp {account_id, credit_monthly, credit_package}``;
- text-to-video aspect ratios 16:9, 4:3, 1:1, 3:4, 9:16; ``motion_mode`` normal (the default) or fast
  (5 s only, not at 1080p); styles anime, 3d_animation, clay, comic, cyberpunk; ``water_mark`` defaults to
  false; extend also takes ``negative_prompt``, ``motion_mode``, ``style``, ``template_id``, ``water_mark``;
- the status endpoint documents 1, 5, 7 and 8 (6 "deleted" comes from PROVIDERS.md) and no field for a
  failure's reason: ``poll`` looks for one in ``Resp`` and falls back to the envelope's ``ErrMsg``.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from core.db.enums import JobStatus, MediaType, OperationType, ParentRole, ProviderRefKind
from core.errors import (
    AuthFailed,
    InsufficientBalance,
    InvalidParameter,
    Moderated,
    PixSimError,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    StaleReference,
)
from core.net.http import SafeHttp, error_for_status
from core.providers.base import (
    Credentials,
    GenerationRequest,
    JobHandle,
    JobUpdate,
    ProgressReader,
    ProviderReference,
    ResultFile,
    Submitted,
    Uploaded,
    UploadRequest,
    find_operation,
)
from core.providers.spec import Operation, Param, ParamKind
from core.transfer.download import DownloadSource

log = logging.getLogger(__name__)

PROVIDER_ID = "pixverse"
DEFAULT_BASE_URL = "https://app-api.pixverse.ai"

IMAGE_UPLOAD_PATH = "/openapi/v2/image/upload"
MEDIA_UPLOAD_PATH = "/openapi/v2/media/upload"
TEXT_TO_VIDEO_PATH = "/openapi/v2/video/text/generate"
IMAGE_TO_VIDEO_PATH = "/openapi/v2/video/img/generate"
TRANSITION_PATH = "/openapi/v2/video/transition/generate"
EXTEND_PATH = "/openapi/v2/video/extend/generate"
RESULT_PATH = "/openapi/v2/video/result/"  # + video_id
BALANCE_PATH = "/openapi/v2/account/balance"

# Video status codes of the result endpoint.
STATUS_SUCCEEDED = 1
STATUS_GENERATING = 5
STATUS_DELETED = 6
STATUS_MODERATED = 7
STATUS_FAILED = 8

MODELS = ("v3.5", "v4", "v4.5", "v5", "v5.5", "v6")
DEFAULT_MODEL = "v5"
QUALITIES = ("360p", "540p", "720p", "1080p")
ASPECT_RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16")
MOTION_MODES = ("normal", "fast")
STYLES = ("anime", "3d_animation", "clay", "comic", "cyberpunk")
MAX_PROMPT_CHARS = 2048
MAX_SEED = 2_147_483_647

_PERMANENT: dict[int, tuple[type[ProviderError], str]] = {
    # Not in Pixverse's public error list: the code the fake answers a refused key with (also as HTTP 401).
    10005: (AuthFailed, "the API key was refused"),
    400011: (InvalidParameter, "a required parameter is empty"),
    400017: (InvalidParameter, "a parameter is invalid"),
    400018: (InvalidParameter, "the prompt is too long"),
    400019: (InvalidParameter, "the prompt is too long"),
    400032: (StaleReference, "Pixverse no longer knows this id"),
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


# -- operations ------------------------------------------------------------------------------------


def _prompt() -> Param:
    return Param(
        "prompt",
        ParamKind.PROMPT,
        "Prompt",
        required=True,
        max_length=MAX_PROMPT_CHARS,
        help=f"What the video shows and how it moves (at most {MAX_PROMPT_CHARS} characters).",
    )


_NEGATIVE_PROMPT = Param(
    "negative_prompt",
    ParamKind.PROMPT,
    "Negative prompt",
    max_length=MAX_PROMPT_CHARS,
    help="What the video should avoid.",
    advanced=True,
)
_MODEL = Param(
    "model",
    ParamKind.CHOICE,
    "Model",
    default=DEFAULT_MODEL,
    choices=MODELS,
    help="Pixverse model version; newer models cost more credits per video.",
)
_QUALITY = Param(
    "quality",
    ParamKind.CHOICE,
    "Quality",
    default="540p",
    choices=QUALITIES,
    help="Output resolution. 360p is Pixverse's fast Turbo tier; 1080p costs most.",
)
_DURATION = Param(
    "duration",
    ParamKind.INT,
    "Duration (s)",
    default=5,
    minimum=1,
    maximum=15,
    help="Seconds. Most models make 5 or 8 s videos (8 s not at 1080p); v6 takes 1 to 15 s. "
    "Pixverse refuses a length the model cannot make.",
)
_ASPECT_RATIO = Param(
    "aspect_ratio",
    ParamKind.CHOICE,
    "Aspect ratio",
    default="16:9",
    choices=ASPECT_RATIOS,
    help="Width to height of the video.",
)
_MOTION_MODE = Param(
    "motion_mode",
    ParamKind.CHOICE,
    "Motion",
    default="normal",
    choices=MOTION_MODES,
    help="fast: quicker motion, only for 5 s videos below 1080p.",
    advanced=True,
)
_STYLE = Param(
    "style",
    ParamKind.CHOICE,
    "Style",
    choices=STYLES,
    help="A look to apply; leave empty for Pixverse's natural look.",
)
_SEED = Param(
    "seed",
    ParamKind.INT,
    "Seed",
    minimum=0,
    maximum=MAX_SEED,
    help=f"0 to {MAX_SEED}. The same seed and settings give a similar video; empty: a new one each time.",
)
_TEMPLATE_ID = Param(
    "template_id",
    ParamKind.INT,
    "Effect template",
    minimum=1,
    help="The id of an effect template activated in Pixverse's effects management.",
    advanced=True,
)
_WATER_MARK = Param(
    "water_mark",
    ParamKind.BOOL,
    "Watermark",
    default=False,
    help="Add Pixverse's watermark to the video.",
    advanced=True,
)


def _asset(name: str, label: str, media: MediaType, role: ParentRole, help: str) -> Param:
    return Param(
        name, ParamKind.ASSET, label, required=True, media_types=(media,), role=role.value, help=help
    )


_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        OperationType.TEXT_TO_VIDEO.value,
        "Text to video",
        MediaType.VIDEO,
        (
            _prompt(),
            _NEGATIVE_PROMPT,
            _MODEL,
            _QUALITY,
            _DURATION,
            _ASPECT_RATIO,
            _MOTION_MODE,
            _STYLE,
            _SEED,
            _TEMPLATE_ID,
            _WATER_MARK,
        ),
        "A video from a text prompt.",
    ),
    Operation(
        OperationType.IMAGE_TO_VIDEO.value,
        "Image to video",
        MediaType.VIDEO,
        (
            _asset(
                "image_asset_id",
                "Image",
                MediaType.IMAGE,
                ParentRole.SOURCE,
                "The picture the video starts from (PNG, JPEG or WebP, at most 4000×4000 px).",
            ),
            _prompt(),
            _NEGATIVE_PROMPT,
            _MODEL,
            _QUALITY,
            _DURATION,
            _MOTION_MODE,
            _STYLE,
            _SEED,
            _TEMPLATE_ID,
            _WATER_MARK,
        ),
        "Brings a picture to life; the video keeps the picture's aspect ratio.",
    ),
    Operation(
        OperationType.TRANSITION.value,
        "Transition",
        MediaType.VIDEO,
        (
            _asset(
                "first_frame_asset_id",
                "First frame",
                MediaType.IMAGE,
                ParentRole.FIRST_FRAME,
                "The picture the video starts with.",
            ),
            _asset(
                "last_frame_asset_id",
                "Last frame",
                MediaType.IMAGE,
                ParentRole.LAST_FRAME,
                "The picture the video ends with.",
            ),
            _prompt(),
            _MODEL,
            _QUALITY,
            _DURATION,
            _MOTION_MODE,
            _SEED,
        ),
        "A video that moves from a first picture to a last one.",
    ),
    Operation(
        OperationType.VIDEO_EXTEND.value,
        "Extend video",
        MediaType.VIDEO,
        (
            _asset(
                "video_asset_id",
                "Video",
                MediaType.VIDEO,
                ParentRole.SOURCE,
                "The video to continue: one Pixverse made is used as is, any other is uploaded first.",
            ),
            _prompt(),
            _NEGATIVE_PROMPT,
            _MODEL,
            _QUALITY,
            _DURATION,
            _MOTION_MODE,
            _STYLE,
            _SEED,
            _TEMPLATE_ID,
            _WATER_MARK,
        ),
        "Continues a video from its last frames.",
    ),
)

_PATHS = {
    OperationType.TEXT_TO_VIDEO.value: TEXT_TO_VIDEO_PATH,
    OperationType.IMAGE_TO_VIDEO.value: IMAGE_TO_VIDEO_PATH,
    OperationType.TRANSITION.value: TRANSITION_PATH,
    OperationType.VIDEO_EXTEND.value: EXTEND_PATH,
}


def _job_seed(job_key: str) -> int:
    """A seed fixed for the job (transition requires one): a resubmitted job asks for the same video."""
    return int.from_bytes(hashlib.sha256(job_key.encode()).digest()[:4], "big") & MAX_SEED


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _scrub(exc: PixSimError, secret: str | None) -> None:
    """Take the API key out of an error's message, should a server ever echo it back."""
    if secret and secret in str(exc):
        exc.args = (str(exc).replace(secret, "[API key]"),)


class PixverseAdapter:
    provider_id = PROVIDER_ID
    display_name = "Pixverse"
    description = "Pixverse platform API: text- and image-to-video, extend, transition. Needs an API key."
    requires_account = True
    repeatable_submit = False
    # Seconds between status checks of a generating video (Pixverse takes about a minute per video).
    poll_interval_s = 5.0

    def _base(self, credentials: Credentials) -> str:
        return (credentials.base_url or DEFAULT_BASE_URL).rstrip("/")

    def _headers(self, credentials: Credentials) -> dict[str, str]:
        if not credentials.api_key:
            raise AuthFailed("This Pixverse account has no API key.", provider_id=PROVIDER_ID)
        # A new trace id for every request, retries included: Pixverse refuses a reused one.
        return {"API-KEY": credentials.api_key, "Ai-trace-id": str(uuid.uuid4())}

    async def _call(
        self, http: SafeHttp, method: str, path: str, credentials: Credentials, what: str, **kwargs: Any
    ) -> tuple[dict[str, Any], str]:
        """One API request: its ``Resp`` and ``ErrMsg``, or the classified error (never showing the key)."""
        try:
            response = await http.request(
                method, self._base(credentials) + path, headers=self._headers(credentials), **kwargs
            )
            return self._envelope(response, what)
        except PixSimError as exc:
            _scrub(exc, credentials.api_key)
            raise

    # -- uploads -----------------------------------------------------------------------------------

    async def upload(self, http: SafeHttp, request: UploadRequest) -> Uploaded:
        if request.media_type == MediaType.IMAGE:
            path, field, kind, id_key, url_key = (
                IMAGE_UPLOAD_PATH,
                "image",
                ProviderRefKind.IMAGE_ID,
                "img_id",
                "img_url",
            )
        elif request.media_type in (MediaType.VIDEO, MediaType.AUDIO):
            path, field, kind, id_key, url_key = (
                MEDIA_UPLOAD_PATH,
                "file",
                ProviderRefKind.MEDIA_ID,
                "media_id",
                "url",
            )
        else:
            raise InvalidParameter(
                "Pixverse accepts images, videos and audio, not 3D models.", provider_id=PROVIDER_ID
            )
        with request.path.open("rb") as raw:
            body = ProgressReader(raw, request.size, request.progress)
            files = {field: (request.filename, body, request.mime_type or "application/octet-stream")}
            resp, _ = await self._call(
                http, "POST", path, request.credentials, f"the upload of {request.filename}", files=files
            )
        ref = resp.get(id_key)
        if ref is None:
            raise ProviderUnavailable(f"Pixverse's upload answer had no {id_key}", provider_id=PROVIDER_ID)
        details = {"media_type": resp["media_type"]} if "media_type" in resp else {}
        return Uploaded(kind=kind, ref=str(ref), url=resp.get(url_key), details=details)

    def _envelope(self, response: Any, what: str) -> tuple[dict[str, Any], str]:
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
        message = str(envelope.get("ErrMsg") or "")
        if code != 0:
            raise error_from_envelope(code, message, what)
        resp = envelope.get("Resp")
        return (resp if isinstance(resp, dict) else {}), message

    # -- generation --------------------------------------------------------------------------------

    def operations(self) -> Sequence[Operation]:
        return _OPERATIONS

    async def submit(self, http: SafeHttp, request: GenerationRequest) -> Submitted:
        operation = find_operation(self, request.operation.id)
        params = operation.validate(request.params, PROVIDER_ID)
        inputs = {p.name for p in operation.input_params}
        # Only the fields Pixverse documents for the endpoint: optional ones only when set.
        body: dict[str, Any] = {
            name: value for name, value in params.items() if name not in inputs and value is not None
        }
        if operation.id == OperationType.IMAGE_TO_VIDEO.value:
            body["img_id"] = await self._image_id(request, operation, params, "image_asset_id")
        elif operation.id == OperationType.TRANSITION.value:
            body["first_frame_img"] = await self._image_id(request, operation, params, "first_frame_asset_id")
            body["last_frame_img"] = await self._image_id(request, operation, params, "last_frame_asset_id")
            body.setdefault("seed", _job_seed(request.job_key))
        elif operation.id == OperationType.VIDEO_EXTEND.value:
            body.update(await self._source_video(request, params["video_asset_id"]))
        await request.sending()
        resp, _ = await self._call(
            http,
            "POST",
            _PATHS[operation.id],
            request.credentials,
            f"the {operation.label.lower()} request",
            json=body,
        )
        video_id = _as_int(resp.get("video_id"))
        if video_id is None:
            raise ProviderUnavailable(
                "Pixverse accepted the request but its answer had no video_id", provider_id=PROVIDER_ID
            )
        return Submitted(provider_job_id=str(video_id))

    async def _image_id(
        self, request: GenerationRequest, operation: Operation, params: dict[str, Any], name: str
    ) -> int:
        asset_id = params[name]
        ref = await request.inputs.reference(asset_id)
        if ref.kind != ProviderRefKind.IMAGE_ID:
            raise InvalidParameter(
                f"{operation.label}: '{operation.param(name).title}' must be an image "
                f"(asset {asset_id} is known to Pixverse as a {ref.kind.value}).",
                provider_id=PROVIDER_ID,
                code="invalid_parameter",
            )
        return self._ref_number(ref)

    async def _source_video(self, request: GenerationRequest, asset_id: int) -> dict[str, int]:
        ref = await request.inputs.reference(asset_id)
        if ref.kind == ProviderRefKind.VIDEO_ID:
            # A video Pixverse generated: extended in place, no upload.
            return {"source_video_id": self._ref_number(ref)}
        if ref.kind == ProviderRefKind.MEDIA_ID:
            if ref.details.get("media_type", "video") != "video":
                raise InvalidParameter(
                    f"Pixverse extends videos; asset {asset_id} was uploaded as {ref.details['media_type']}.",
                    provider_id=PROVIDER_ID,
                    code="invalid_parameter",
                )
            return {"video_media_id": self._ref_number(ref)}
        raise InvalidParameter(
            f"Pixverse extends videos; asset {asset_id} is known to Pixverse as a {ref.kind.value}.",
            provider_id=PROVIDER_ID,
            code="invalid_parameter",
        )

    def _ref_number(self, ref: ProviderReference) -> int:
        number = _as_int(ref.ref)
        if number is None:
            # Not an id Pixverse gave: drop it and upload again.
            raise StaleReference(
                f"The Pixverse reference kept for asset {ref.asset_id} is not a Pixverse id.",
                provider_id=PROVIDER_ID,
                code="bad_reference",
            )
        return number

    async def poll(self, http: SafeHttp, job: JobHandle) -> JobUpdate:
        video_id = _as_int(job.provider_job_id)
        if video_id is None:
            raise InvalidParameter(
                f"'{job.provider_job_id}' is not a Pixverse video id.", provider_id=PROVIDER_ID
            )
        resp, message = await self._call(
            http, "GET", f"{RESULT_PATH}{video_id}", job.credentials, f"the status check of video {video_id}"
        )
        status = _as_int(resp.get("status"))
        url = resp.get("url") or None
        if status == STATUS_GENERATING:
            return JobUpdate(JobStatus.RUNNING, poll_after_s=self.poll_interval_s)
        if status == STATUS_SUCCEEDED and isinstance(url, str):
            return JobUpdate(JobStatus.SUCCEEDED, progress=1.0, outputs=(self._result(video_id, url, resp),))
        reason = _reason(resp, message)
        if status == STATUS_MODERATED:
            error: ProviderError = Moderated(
                f"Pixverse's content moderation refused video {video_id}{reason}. "
                "Change the prompt or the input pictures.",
                provider_id=PROVIDER_ID,
                code="moderated",
            )
            return JobUpdate(JobStatus.FAILED, error=error)
        if status == STATUS_FAILED:
            error = ProviderError(
                f"Pixverse could not make video {video_id}{reason or ' (it gave no reason)'}.",
                provider_id=PROVIDER_ID,
                code="failed",
            )
            return JobUpdate(JobStatus.FAILED, error=error)
        if status == STATUS_DELETED:
            error = StaleReference(
                f"Pixverse deleted video {video_id} before it could be downloaded.",
                provider_id=PROVIDER_ID,
                code="deleted",
            )
            return JobUpdate(JobStatus.FAILED, error=error)
        # Succeeded without a URL yet, or a status Pixverse has not documented: ask again later.
        log.warning("Pixverse video %s: status %r, url %r; asking again later", video_id, status, url)
        return JobUpdate(JobStatus.RUNNING, poll_after_s=self.poll_interval_s)

    def _result(self, video_id: int, url: str, resp: dict[str, Any]) -> ResultFile:
        metadata: dict[str, Any] = {
            k: resp[k] for k in ("seed", "size", "outputWidth", "outputHeight") if k in resp
        }
        return ResultFile(
            media_type=MediaType.VIDEO,
            # A plain CDN URL: the API key never travels there.
            download=DownloadSource(url=url, provider_id=PROVIDER_ID),
            mime_type="video/mp4",
            provider_asset_id=str(video_id),
            remote_url=url,
            reference=Uploaded(kind=ProviderRefKind.VIDEO_ID, ref=str(video_id), url=url),
            metadata=metadata,
        )

    # -- account -----------------------------------------------------------------------------------

    async def check_account(self, http: SafeHttp, credentials: Credentials) -> str:
        resp, _ = await self._call(http, "GET", BALANCE_PATH, credentials, "the balance check")
        monthly = _as_int(resp.get("credit_monthly"))
        package = _as_int(resp.get("credit_package"))
        if monthly is None and package is None:
            raise ProviderUnavailable(
                "Pixverse's balance answer had no credit figures", provider_id=PROVIDER_ID
            )
        total = (monthly or 0) + (package or 0)
        return f"Pixverse: {total:,} credits left ({monthly or 0:,} monthly, {package or 0:,} purchased)."

    # -- references --------------------------------------------------------------------------------

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


def _reason(resp: dict[str, Any], message: str) -> str:
    """Pixverse's words for a failed video, as ': <reason>' or ''."""
    for key in ("fail_reason", "failed_reason", "err_msg", "error_msg", "message", "reason"):
        value = resp.get(key)
        if isinstance(value, str) and value.strip():
            return f": {value.strip()}"
    if message and message.lower() != "success":
        return f": {message}"
    return ""
