"""A fake of the OpenAI Videos API (Sora 2), served by FakeHttpServer under ``/v1``.

It follows ../shared/design/PROVIDERS.md and the API reference: Bearer auth, ``{"error": {message, type,
param, code}}`` bodies, the Video object and its queued → in_progress → completed|failed lifecycle (one
step per retrieve), ``openai-poll-after-ms`` on answers, content that expires about an hour after the
video was created. Requests are JSON, or multipart/form-data when a file travels (``input_reference`` on
create, ``video`` on extensions and edits; ``video[id]`` is accepted there too, as the SDK would send it).

Controls: ``fail_next`` (the next video ends failed with a code), ``rate_limit`` (429 for the next N
requests), ``hold``/``release`` (a video stops advancing), ``advance_clock``. Wire faults come from
``FakeHttpServer.fail``; ``error_body`` builds a matching OpenAI error for a ``Status`` fault.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from PIL import Image

from tests.fakes.http_server import FakeHttpServer, MultipartPart, Request, Response
from tests.fakes.media import tiny_mp4

MODELS = frozenset(
    {"sora-2", "sora-2-pro", "sora-2-2025-10-06", "sora-2-pro-2025-10-06", "sora-2-2025-12-08"}
)
SECONDS = frozenset({"4", "8", "12", "16", "20"})
SIZES = frozenset({"720x1280", "1280x720", "1024x1792", "1792x1024", "1080x1920", "1920x1080"})
PRO_ONLY_SIZES = frozenset({"1080x1920", "1920x1080"})
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
MAX_PROMPT = 32000
CONTENT_LIFETIME_S = 3600
POLL_AFTER_HEADER = "openai-poll-after-ms"

Status = Literal["queued", "in_progress", "completed", "failed"]


def error_body(
    message: str, type: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> bytes:
    return json.dumps({"error": {"message": message, "type": type, "param": param, "code": code}}).encode()


def error_response(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    merged = {"Content-Type": "application/json", **(headers or {})}
    return Response(status=status, headers=merged, body=error_body(message, type, param, code))


@dataclass(frozen=True)
class SentFile:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass(frozen=True)
class Created:
    """One accepted request that made a video: where it went, how it was encoded, what it carried."""

    endpoint: str  # "/videos", "/videos/{id}/remix", "/videos/extensions", "/videos/edits"
    encoding: Literal["json", "multipart"]
    fields: dict[str, Any]  # JSON body, or the multipart text fields (``video[id]`` folded into video)
    files: dict[str, SentFile]
    video_id: str


@dataclass
class FakeVideo:
    id: str
    model: str
    prompt: str
    seconds: str
    size: str
    created_at: int
    status: Status = "queued"
    progress: int = 0
    completed_at: int | None = None
    expires_at: int | None = None
    error: dict[str, str] | None = None
    remixed_from_video_id: str | None = None
    polls: int = 0
    held: bool = False
    deleted: bool = False
    outcome: tuple[str, str] | None = None  # (code, message) to fail with

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "video",
            "model": self.model,
            "status": self.status,
            "progress": self.progress,
            "created_at": self.created_at,
            "completed_at": self.completed_at,
            "expires_at": self.expires_at,
            "error": self.error,
            "prompt": self.prompt,
            "remixed_from_video_id": self.remixed_from_video_id,
            "seconds": self.seconds,
            "size": self.size,
        }


class FakeSora:
    """Registers the Videos API routes on ``server`` under ``prefix``; ``base_url`` is what an account uses."""

    def __init__(
        self,
        server: FakeHttpServer,
        api_key: str = "sk-test-sora-key-0000",
        *,
        prefix: str = "/v1",
        polls_to_complete: int = 3,
        poll_after_ms: int | None = 1200,
        video_bytes: Callable[[str], bytes] | None = None,
    ) -> None:
        self.server = server
        self.api_key = api_key
        self.prefix = prefix
        self.base_url = server.url(prefix)
        # Retrieves a video takes to finish; each one before moves it along (queued → in_progress ...).
        self.polls_to_complete = polls_to_complete
        # Sent as openai-poll-after-ms on video answers; None sends no header.
        self.poll_after_ms = poll_after_ms
        self.video_bytes = video_bytes or (lambda video_id: tiny_mp4(_seed(video_id)))
        self.videos: dict[str, FakeVideo] = {}
        self.created: list[Created] = []
        self.deleted: list[str] = []
        self.clock_offset = 0.0
        self._ids = itertools.count(1)
        self._outcomes: list[tuple[str, str]] = []
        self._rate_limited = 0
        self._rate_headers: dict[str, str] = {}
        self._content: dict[str, bytes] = {}
        server.add_route("POST", f"{prefix}/videos", self._create)
        server.add_route("GET", f"{prefix}/videos", self._list)
        server.add_route("POST", f"{prefix}/videos/extensions", self._extend)
        server.add_route("POST", f"{prefix}/videos/edits", self._edit)
        server.add_prefix_route("GET", f"{prefix}/videos/", self._get)
        server.add_prefix_route("DELETE", f"{prefix}/videos/", self._delete)
        server.add_prefix_route("POST", f"{prefix}/videos/", self._remix)

    # -- controls ------------------------------------------------------------------------------------

    def fail_next(
        self,
        code: str = "moderation_blocked",
        message: str = "Your request was blocked by our moderation system.",
    ) -> None:
        """The next video created ends ``failed`` with this error instead of completing (FIFO)."""
        self._outcomes.append((code, message))

    def rate_limit(
        self, count: int = 1, *, retry_after_ms: int | None = 1500, retry_after: str | None = None
    ) -> None:
        """Answer the next ``count`` authenticated requests with 429 and these retry headers."""
        self._rate_limited = count
        self._rate_headers = {}
        if retry_after_ms is not None:
            self._rate_headers["retry-after-ms"] = str(retry_after_ms)
        if retry_after is not None:
            self._rate_headers["retry-after"] = retry_after

    def hold(self, video_id: str) -> None:
        self.videos[video_id].held = True

    def release(self, video_id: str) -> None:
        self.videos[video_id].held = False

    def advance_clock(self, seconds: float) -> None:
        self.clock_offset += seconds

    def now(self) -> int:
        return int(time.time() + self.clock_offset)

    def content_of(self, video_id: str) -> bytes:
        if video_id not in self._content:
            self._content[video_id] = self.video_bytes(video_id)
        return self._content[video_id]

    # -- shared checks -------------------------------------------------------------------------------

    def _gate(self, request: Request) -> Response | None:
        """Auth, then a queued rate limit; None means go on."""
        auth = request.header("authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return error_response(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        if token != self.api_key:
            # Like OpenAI: the key is echoed, masked but for its start and end.
            masked = token[:5] + "*" * max(0, len(token) - 9) + token[-4:]
            return error_response(
                401,
                f"Incorrect API key provided: {masked}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
        if self._rate_limited > 0:
            self._rate_limited -= 1
            return error_response(
                429,
                "Rate limit reached for videos per minute. Please try again later.",
                type="requests",
                code="rate_limit_exceeded",
                headers=self._rate_headers,
            )
        return None

    def _video_answer(self, video: FakeVideo) -> Response:
        headers = {POLL_AFTER_HEADER: str(self.poll_after_ms)} if self.poll_after_ms is not None else {}
        return Response.json(video.to_json(), headers=headers)

    def _find(self, video_id: str) -> FakeVideo | Response:
        video = self.videos.get(video_id)
        if video is None or video.deleted:
            return error_response(
                404, f"Video with id '{video_id}' not found.", param="video_id", code="not_found"
            )
        return video

    def _body(
        self, request: Request
    ) -> tuple[Literal["json", "multipart"], dict[str, Any], dict[str, MultipartPart]] | Response:
        content_type = (request.header("content-type") or "").partition(";")[0].strip().lower()
        if content_type == "application/json":
            try:
                body = request.json()
            except ValueError:
                return error_response(400, "We could not parse the JSON body of your request.")
            if not isinstance(body, dict):
                return error_response(400, "The request body must be a JSON object.")
            return "json", body, {}
        if content_type == "multipart/form-data":
            try:
                parts = request.multipart()
            except ValueError:
                return error_response(400, "Could not parse the multipart form.")
            fields: dict[str, Any] = {}
            files: dict[str, MultipartPart] = {}
            for name, part in parts.items():
                if part.filename is not None:
                    files[name] = part
                elif name.endswith("[id]"):
                    fields[name.removesuffix("[id]")] = {"id": part.data.decode()}
                else:
                    fields[name] = part.data.decode()
            return "multipart", fields, files
        return error_response(
            400, f"Unsupported content type: '{content_type}'. Use application/json or multipart/form-data."
        )

    def _check_fields(
        self, fields: dict[str, Any], files: dict[str, MultipartPart], allowed: set[str]
    ) -> Response | None:
        for name in [*fields, *files]:
            if name not in allowed:
                return error_response(
                    400, f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter"
                )
        prompt = fields.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return error_response(
                400,
                "Missing required parameter: 'prompt'.",
                param="prompt",
                code="missing_required_parameter",
            )
        if len(prompt) > MAX_PROMPT:
            return error_response(
                400,
                f"Invalid 'prompt': string too long. Expected a maximum length of {MAX_PROMPT}.",
                param="prompt",
                code="string_above_max_length",
            )
        return None

    def _choice(
        self, fields: dict[str, Any], name: str, allowed: frozenset[str], default: str
    ) -> str | Response:
        value = fields.get(name, default)
        if not isinstance(value, str) or value not in allowed:
            return error_response(
                400,
                f"Invalid value: '{value}'. Supported values are: {', '.join(repr(v) for v in sorted(allowed))}.",
                param=name,
                code="invalid_value",
            )
        return value

    def _new_video(
        self,
        endpoint: str,
        encoding: Literal["json", "multipart"],
        fields: dict[str, Any],
        files: dict[str, MultipartPart],
        **facts: Any,
    ) -> Response:
        number = next(self._ids)
        video_id = "video_" + hashlib.sha256(f"{id(self)}:{number}".encode()).hexdigest()[:32]
        video = FakeVideo(id=video_id, created_at=self.now(), **facts)
        if self._outcomes:
            video.outcome = self._outcomes.pop(0)
        self.videos[video_id] = video
        self.created.append(
            Created(
                endpoint=endpoint,
                encoding=encoding,
                fields=dict(fields),
                files={name: SentFile(name, p.filename, p.content_type, p.data) for name, p in files.items()},
                video_id=video_id,
            )
        )
        return self._video_answer(video)

    def _source_video(
        self, fields: dict[str, Any], files: dict[str, MultipartPart]
    ) -> FakeVideo | SentFile | Response:
        """The ``video`` of an extension or edit: a completed video of ours by id, or an attached file."""
        if "video" in files:
            part = files["video"]
            if not (part.content_type or "").lower().startswith("video/") or not part.data:
                return error_response(
                    400, "Invalid 'video': expected a video file.", param="video", code="invalid_type"
                )
            return SentFile("video", part.filename, part.content_type, part.data)
        ref = fields.get("video")
        if ref is None:
            return error_response(
                400, "Missing required parameter: 'video'.", param="video", code="missing_required_parameter"
            )
        if not isinstance(ref, dict) or not isinstance(ref.get("id"), str) or set(ref) != {"id"}:
            return error_response(
                400,
                "Invalid 'video': expected an object with an 'id', or a video file.",
                param="video",
                code="invalid_type",
            )
        found = self._find(ref["id"])
        if isinstance(found, Response):
            return found
        if found.status != "completed":
            return error_response(
                400, f"Video '{found.id}' is not completed.", param="video", code="invalid_value"
            )
        return found

    # -- routes --------------------------------------------------------------------------------------

    async def _create(self, request: Request) -> Response:
        if (gate := self._gate(request)) is not None:
            return gate
        parsed = self._body(request)
        if isinstance(parsed, Response):
            return parsed
        encoding, fields, files = parsed
        if (
            bad := self._check_fields(
                fields, files, {"prompt", "model", "seconds", "size", "input_reference"}
            )
        ) is not None:
            return bad
        model = self._choice(fields, "model", MODELS, "sora-2")
        seconds = self._choice(fields, "seconds", SECONDS, "4")
        size = self._choice(fields, "size", SIZES, "720x1280")
        for value in (model, seconds, size):
            if isinstance(value, Response):
                return value
        assert isinstance(model, str) and isinstance(seconds, str) and isinstance(size, str)
        if size in PRO_ONLY_SIZES and not model.startswith("sora-2-pro"):
            return error_response(
                400, f"Size '{size}' is only available with sora-2-pro.", param="size", code="invalid_value"
            )
        if "input_reference" in files:
            problem = _check_reference_image(files["input_reference"], size)
            if problem is not None:
                return problem
        elif "input_reference" in fields:
            ref = fields["input_reference"]
            if not isinstance(ref, dict) or len(set(ref) & {"file_id", "image_url"}) != 1:
                return error_response(
                    400,
                    "Invalid 'input_reference': provide exactly one of 'image_url' or 'file_id', or an image file.",
                    param="input_reference",
                    code="invalid_value",
                )
        return self._new_video(
            "/videos",
            encoding,
            fields,
            files,
            model=model,
            prompt=fields["prompt"],
            seconds=seconds,
            size=size,
        )

    async def _extend(self, request: Request) -> Response:
        if (gate := self._gate(request)) is not None:
            return gate
        parsed = self._body(request)
        if isinstance(parsed, Response):
            return parsed
        encoding, fields, files = parsed
        if (bad := self._check_fields(fields, files, {"prompt", "seconds", "video"})) is not None:
            return bad
        if "seconds" not in fields:
            return error_response(
                400,
                "Missing required parameter: 'seconds'.",
                param="seconds",
                code="missing_required_parameter",
            )
        seconds = self._choice(fields, "seconds", SECONDS, "4")
        if isinstance(seconds, Response):
            return seconds
        source = self._source_video(fields, files)
        if isinstance(source, Response):
            return source
        # The result's seconds is the stitched total when the source's length is known.
        total = str(int(source.seconds) + int(seconds)) if isinstance(source, FakeVideo) else seconds
        model = source.model if isinstance(source, FakeVideo) else "sora-2"
        size = source.size if isinstance(source, FakeVideo) else "1280x720"
        return self._new_video(
            "/videos/extensions",
            encoding,
            fields,
            files,
            model=model,
            prompt=fields["prompt"],
            seconds=total,
            size=size,
        )

    async def _edit(self, request: Request) -> Response:
        if (gate := self._gate(request)) is not None:
            return gate
        parsed = self._body(request)
        if isinstance(parsed, Response):
            return parsed
        encoding, fields, files = parsed
        if (bad := self._check_fields(fields, files, {"prompt", "video"})) is not None:
            return bad
        source = self._source_video(fields, files)
        if isinstance(source, Response):
            return source
        facts = (
            {"model": source.model, "seconds": source.seconds, "size": source.size}
            if isinstance(source, FakeVideo)
            else {"model": "sora-2", "seconds": "4", "size": "1280x720"}
        )
        return self._new_video("/videos/edits", encoding, fields, files, prompt=fields["prompt"], **facts)

    async def _remix(self, request: Request) -> Response:
        if (gate := self._gate(request)) is not None:
            return gate
        rest = request.path.removeprefix(f"{self.prefix}/videos/")
        video_id, _, action = rest.partition("/")
        if action != "remix":
            return error_response(404, f"Invalid URL (POST {request.path})", code="unknown_url")
        parsed = self._body(request)
        if isinstance(parsed, Response):
            return parsed
        encoding, fields, files = parsed
        if encoding != "json":
            return error_response(400, "Remix takes a JSON body.")
        if (bad := self._check_fields(fields, files, {"prompt"})) is not None:
            return bad
        source = self._find(video_id)
        if isinstance(source, Response):
            return source
        if source.status != "completed":
            return error_response(
                400, f"Video '{video_id}' is not completed.", param="video_id", code="invalid_value"
            )
        return self._new_video(
            f"/videos/{video_id}/remix",
            encoding,
            fields,
            files,
            model=source.model,
            prompt=fields["prompt"],
            seconds=source.seconds,
            size=source.size,
            remixed_from_video_id=video_id,
        )

    async def _get(self, request: Request) -> Response:
        if (gate := self._gate(request)) is not None:
            return gate
        rest = request.path.removeprefix(f"{self.prefix}/videos/")
        video_id, _, action = rest.partition("/")
        found = self._find(video_id)
        if isinstance(found, Response):
            return found
        if action == "content":
            return self._content_answer(found, request.query.get("variant", "video"))
        if action:
            return error_response(404, f"Invalid URL (GET {request.path})", code="unknown_url")
        self._advance(found)
        return self._video_answer(found)

    async def _list(self, request: Request) -> Response:
        if (gate := self._gate(request)) is not None:
            return gate
        order = request.query.get("order", "desc")
        if order not in ("asc", "desc"):
            return error_response(
                400,
                f"Invalid value: '{order}'. Supported values are: 'asc' and 'desc'.",
                param="order",
                code="invalid_value",
            )
        try:
            limit = int(request.query.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            return error_response(
                400,
                "Invalid 'limit': expected an integer between 1 and 100.",
                param="limit",
                code="invalid_value",
            )
        videos = [v for v in self.videos.values() if not v.deleted]  # in creation order
        if order == "desc":
            videos.reverse()
        after = request.query.get("after")
        if after:
            ids = [v.id for v in videos]
            if after not in ids:
                return error_response(
                    404, f"Video with id '{after}' not found.", param="after", code="not_found"
                )
            videos = videos[ids.index(after) + 1 :]
        page = videos[:limit]
        return Response.json(
            {
                "object": "list",
                "data": [v.to_json() for v in page],
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
                "has_more": len(videos) > limit,
            }
        )

    async def _delete(self, request: Request) -> Response:
        if (gate := self._gate(request)) is not None:
            return gate
        video_id = request.path.removeprefix(f"{self.prefix}/videos/")
        found = self._find(video_id)
        if isinstance(found, Response):
            return found
        found.deleted = True
        self.deleted.append(video_id)
        return Response.json({"id": video_id, "object": "video.deleted", "deleted": True})

    # -- lifecycle and content -----------------------------------------------------------------------

    def _advance(self, video: FakeVideo) -> None:
        if video.held or video.status in ("completed", "failed"):
            return
        video.polls += 1
        if video.polls < self.polls_to_complete:
            video.status = "in_progress"
            video.progress = max(1, min(99, math.floor(100 * video.polls / self.polls_to_complete)))
            return
        video.completed_at = self.now()
        if video.outcome is not None:
            code, message = video.outcome
            video.status = "failed"
            video.error = {"code": code, "message": message}
            return
        video.status = "completed"
        video.progress = 100
        video.expires_at = video.created_at + CONTENT_LIFETIME_S

    def _content_answer(self, video: FakeVideo, variant: str) -> Response:
        if variant not in ("video", "thumbnail", "spritesheet"):
            return error_response(
                400,
                f"Invalid value: '{variant}'. Supported values are: 'video', 'thumbnail' and 'spritesheet'.",
                param="variant",
                code="invalid_value",
            )
        if video.status != "completed":
            return error_response(
                400, f"Video '{video.id}' is not completed yet.", param="video_id", code="invalid_value"
            )
        if video.expires_at is not None and self.now() >= video.expires_at:
            return error_response(
                404, f"The content of video '{video.id}' has expired.", param="video_id", code="not_found"
            )
        if variant == "video":
            return Response(200, {"Content-Type": "video/mp4"}, self.content_of(video.id))
        fmt, mime = ("WEBP", "image/webp") if variant == "thumbnail" else ("JPEG", "image/jpeg")
        buffer = io.BytesIO()
        Image.new("RGB", (64, 36), (_seed(video.id) % 256, 80, 160)).save(buffer, format=fmt)
        return Response(200, {"Content-Type": mime}, buffer.getvalue())


def _seed(video_id: str) -> int:
    return int(hashlib.sha256(video_id.encode()).hexdigest()[:8], 16) % 100_000


def _check_reference_image(part: MultipartPart, size: str) -> Response | None:
    content_type = (part.content_type or "").partition(";")[0].strip().lower()
    if content_type not in IMAGE_TYPES:
        return error_response(
            400,
            f"Invalid file 'input_reference': unsupported mimetype ('{content_type}'). Supported file formats are "
            "'image/jpeg', 'image/png', and 'image/webp'.",
            param="input_reference",
            code="unsupported_file",
        )
    try:
        with Image.open(io.BytesIO(part.data)) as image:
            dimensions = image.size
    except OSError:
        return error_response(
            400,
            "Invalid file 'input_reference': the image could not be read.",
            param="input_reference",
            code="invalid_image",
        )
    width, height = (int(p) for p in size.split("x"))
    if dimensions != (width, height):
        return error_response(
            400,
            "Inpaint image must match the requested width and height",
            param="input_reference",
            code="invalid_value",
        )
    return None
