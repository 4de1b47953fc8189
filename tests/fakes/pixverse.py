"""A fake of the Pixverse platform API, served by FakeHttpServer: uploads (image and media), video
generation (text, image, transition, extend), the status lifecycle, and the account balance.

It validates requests as Pixverse documents them (required fields, choices, image and video ids), and is
stricter in one way: a field the endpoint does not document is refused (400017), so adapters send
exactly the documented fields.

Wire faults come from FakeHttpServer.fail(method, path, ...); API-level errors from
FakePixverse.fail_envelope(); generation outcomes from next_outcome(), hold()/release() and delete_video().
"""

from __future__ import annotations

import itertools
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from tests.fakes.http_server import FakeHttpServer, MultipartPart, Request, Response
from tests.fakes.media import tiny_mp4

IMAGE_UPLOAD = "/openapi/v2/image/upload"
MEDIA_UPLOAD = "/openapi/v2/media/upload"
TEXT_GENERATE = "/openapi/v2/video/text/generate"
IMG_GENERATE = "/openapi/v2/video/img/generate"
TRANSITION_GENERATE = "/openapi/v2/video/transition/generate"
EXTEND_GENERATE = "/openapi/v2/video/extend/generate"
RESULT_PREFIX = "/openapi/v2/video/result/"
BALANCE = "/openapi/v2/account/balance"
API_PREFIX = "/openapi/"

ERR_INVALID_KEY = 10005
ERR_PARAM_EMPTY = 400011
ERR_PARAM_INVALID = 400017
ERR_PROMPT_TOO_LONG = 400018
ERR_NEGATIVE_PROMPT_TOO_LONG = 400019
ERR_INVALID_ID = 400032
ERR_BAD_IMAGE = 500030
ERR_IMAGE_TOO_LARGE = 500031
ERR_CONTENT_DELETED = 500064

STATUS_SUCCEEDED = 1
STATUS_GENERATING = 5
STATUS_DELETED = 6
STATUS_MODERATED = 7
STATUS_FAILED = 8
FINAL_STATUSES = frozenset({STATUS_SUCCEEDED, STATUS_DELETED, STATUS_MODERATED, STATUS_FAILED})

IMAGE_TYPES = frozenset({"image/png", "image/webp", "image/jpeg"})
MODELS = frozenset({"v3.5", "v4", "v4.5", "v5", "v5.5", "v6"})
QUALITIES = frozenset({"360p", "540p", "720p", "1080p"})
ASPECT_RATIOS = frozenset({"16:9", "4:3", "1:1", "3:4", "9:16"})
MOTION_MODES = frozenset({"normal", "fast"})
STYLES = frozenset({"anime", "3d_animation", "clay", "comic", "cyberpunk"})
MAX_PROMPT = 2048
MAX_SEED = 2_147_483_647

_OPTIONAL = frozenset({"negative_prompt", "motion_mode", "seed", "style", "template_id", "water_mark"})
# endpoint -> (required fields, optional fields), as Pixverse documents them.
FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    TEXT_GENERATE: (frozenset({"aspect_ratio", "duration", "model", "prompt", "quality"}), _OPTIONAL),
    IMG_GENERATE: (frozenset({"duration", "img_id", "model", "prompt", "quality"}), _OPTIONAL),
    TRANSITION_GENERATE: (
        frozenset(
            {
                "prompt",
                "model",
                "duration",
                "quality",
                "motion_mode",
                "seed",
                "first_frame_img",
                "last_frame_img",
            }
        ),
        frozenset(),
    ),
    # Plus exactly one of source_video_id / video_media_id.
    EXTEND_GENERATE: (
        frozenset({"prompt", "model", "duration", "quality"}),
        _OPTIONAL | {"source_video_id", "video_media_id"},
    ),
}


@dataclass(frozen=True)
class UploadedItem:
    kind: Literal["image", "media"]
    id: int
    filename: str | None
    content_type: str
    data: bytes
    url: str


@dataclass
class Generation:
    """One accepted generation request and where its video stands."""

    video_id: int
    path: str  # the generate endpoint it came through
    params: dict[str, Any]  # the JSON body as parsed
    trace_id: str
    outcome: int = STATUS_SUCCEEDED  # the status it ends in
    message: str = ""  # Pixverse's words when it ends in failure
    polls: int = 0
    status: int = STATUS_GENERATING
    url: str | None = None
    size: int = 0

    @property
    def done(self) -> bool:
        return self.status in FINAL_STATUSES


def envelope(resp: dict[str, Any], message: str = "success") -> Response:
    return Response.json({"ErrCode": 0, "ErrMsg": message, "Resp": resp})


def error_envelope(err_code: int, err_msg: str) -> Response:
    # Pixverse reports API errors as HTTP 200 with a non-zero ErrCode.
    return Response.json({"ErrCode": err_code, "ErrMsg": err_msg, "Resp": {}})


class _Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _default_result_body(video_id: int) -> bytes:
    return tiny_mp4(seed=video_id)


class FakePixverse:
    """Registers the Pixverse routes on server; uploads and finished videos are downloadable at their URLs."""

    # An instance attribute may lower it so tests need not build 20 MB payloads.
    max_image_bytes = 20 * 1024 * 1024

    def __init__(self, server: FakeHttpServer, api_key: str = "test-pixverse-key") -> None:
        self.server = server
        self.api_key = api_key
        self.uploads: list[UploadedItem] = []
        self.known_ids: set[int] = set()
        self.trace_ids: list[str] = []  # every Ai-trace-id that reached a handler, in order
        # Every accepted generation request, in order; ``params`` is what the client sent.
        self.generations: list[Generation] = []
        # How many status checks a video answers "generating" (5) before it ends.
        self.polls_until_done = 1
        # The bytes of a finished video, by video id: a real, decodable MP4 by default.
        self.result_body: Callable[[int], bytes] = _default_result_body
        # The balance endpoint's answer.
        self.account_id = 4242
        self.credit_monthly = 1000
        self.credit_package = 250
        self._ids = itertools.count(1000)
        self._video_ids = itertools.count(300_000_000_001)
        self._envelope_faults: dict[str, deque[tuple[int, str]]] = {}
        self._outcomes: deque[tuple[int, str]] = deque()
        self._held: set[int] = set()
        self._videos: dict[int, Generation] = {}
        self._paths: dict[int, str] = {}
        server.add_route("POST", IMAGE_UPLOAD, self._upload_image)
        server.add_route("POST", MEDIA_UPLOAD, self._upload_media)
        for path in FIELDS:
            server.add_route("POST", path, self._generate)
        server.add_prefix_route("GET", RESULT_PREFIX, self._result)
        server.add_route("GET", BALANCE, self._balance)

    # -- controls ------------------------------------------------------------------------------------------------------

    def fail_envelope(self, path: str, err_code: int, err_msg: str = "error") -> None:
        """Queue (FIFO) an HTTP 200 reply with this non-zero ErrCode for the next authenticated request to path
        (a status check's path is RESULT_PREFIX + video id)."""
        if err_code == 0:
            raise ValueError("an error envelope needs a non-zero ErrCode")
        self._envelope_faults.setdefault(path, deque()).append((err_code, err_msg))

    def forget(self, id: int) -> None:
        """Simulate the provider deleting an upload: its id is unknown and its URL answers 404."""
        self.known_ids.discard(id)
        path = self._paths.pop(id, None)
        if path is not None:
            self.server.remove_file(path)

    def next_outcome(self, status: int, message: str = "") -> None:
        """Queue (FIFO) how the next accepted generation ends: STATUS_MODERATED, STATUS_FAILED (with Pixverse's
        message), STATUS_DELETED or STATUS_SUCCEEDED."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"{status} is not a final status")
        self._outcomes.append((status, message))

    def hold(self, video_id: int) -> None:
        """Keep this video generating (5) whatever the number of polls, until release()."""
        self._held.add(video_id)

    def release(self, video_id: int) -> None:
        self._held.discard(video_id)

    def delete_video(self, video_id: int) -> None:
        """Simulate Pixverse deleting a video: status 6, its URL answers 404, extending it is refused."""
        video = self._videos[video_id]
        video.status = STATUS_DELETED
        if video.url is not None:
            self.server.remove_file(_video_path(video_id))
            video.url = None

    def add_finished_video(self, prompt: str = "an earlier video") -> Generation:
        """A video this account generated earlier and that is finished (e.g. to extend by source_video_id)."""
        video = self._new_video(
            TEXT_GENERATE, {"prompt": prompt}, trace_id="", outcome=(STATUS_SUCCEEDED, "")
        )
        self._finish(video)
        return video

    def video(self, video_id: int) -> Generation:
        return self._videos[video_id]

    # -- checks shared by every endpoint -------------------------------------------------------------------------------

    def _check(self, request: Request) -> Response | None:
        """Auth, trace id and queued envelope errors; None means go on."""
        if request.header("API-KEY") != self.api_key:
            return Response.json({"ErrCode": ERR_INVALID_KEY, "ErrMsg": "invalid API key"}, status=401)
        trace_id = request.header("Ai-trace-id")
        try:
            uuid.UUID(trace_id or "")
        except ValueError:
            return error_envelope(ERR_PARAM_EMPTY, "required parameter is empty")
        assert trace_id is not None
        # Count every request the server received, also those a wire fault answered: a retry must use a fresh id.
        uses = sum(
            1
            for r in self.server.requests
            if r.path.startswith(API_PREFIX) and r.header("Ai-trace-id") == trace_id
        )
        self.trace_ids.append(trace_id)
        if uses > 1:
            return error_envelope(ERR_PARAM_INVALID, "duplicate Ai-trace-id")
        queue = self._envelope_faults.get(request.path)
        if queue:
            return error_envelope(*queue.popleft())
        return None

    # -- uploads -------------------------------------------------------------------------------------------------------

    def _field(self, request: Request, name: str) -> MultipartPart | Response:
        try:
            fields = request.multipart()
        except ValueError:
            return error_envelope(ERR_PARAM_INVALID, "invalid parameter: expected multipart/form-data")
        part = fields.get(name)
        if part is None:
            return error_envelope(ERR_PARAM_EMPTY, "required parameter is empty")
        return part

    def _store(self, kind: Literal["image", "media"], part: MultipartPart, content_type: str) -> UploadedItem:
        item_id = next(self._ids)
        path = f"/media/image/{item_id}" if kind == "image" else f"/media/file/{item_id}"
        self.server.add_file(path, part.data, content_type=content_type)
        item = UploadedItem(kind, item_id, part.filename, content_type, part.data, self.server.url(path))
        self.uploads.append(item)
        self.known_ids.add(item_id)
        self._paths[item_id] = path
        return item

    async def _upload_image(self, request: Request) -> Response:
        if (failure := self._check(request)) is not None:
            return failure
        part = self._field(request, "image")
        if isinstance(part, Response):
            return part
        content_type = _media_type(part.content_type)
        if content_type not in IMAGE_TYPES:
            return error_envelope(ERR_PARAM_INVALID, f"invalid parameter: image type {part.content_type!r}")
        if not part.data:
            return error_envelope(ERR_BAD_IMAGE, "bad image")
        if len(part.data) > self.max_image_bytes:
            return error_envelope(ERR_IMAGE_TOO_LARGE, "image too large")
        item = self._store("image", part, content_type)
        return envelope({"img_id": item.id, "img_url": item.url})

    async def _upload_media(self, request: Request) -> Response:
        if (failure := self._check(request)) is not None:
            return failure
        part = self._field(request, "file")
        if isinstance(part, Response):
            return part
        content_type = _media_type(part.content_type)
        major = content_type.partition("/")[0]
        if major not in ("video", "audio") or not part.data:
            return error_envelope(ERR_PARAM_INVALID, f"invalid parameter: media type {part.content_type!r}")
        item = self._store("media", part, content_type)
        return envelope({"media_id": item.id, "media_type": major, "url": item.url})

    # -- generation ----------------------------------------------------------------------------------------------------

    async def _generate(self, request: Request) -> Response:
        if (failure := self._check(request)) is not None:
            return failure
        try:
            body = request.json()
        except ValueError:
            return error_envelope(ERR_PARAM_INVALID, "invalid parameter: expected a JSON body")
        try:
            self._validate(request.path, body)
        except _Refused as refused:
            return error_envelope(refused.code, refused.message)
        outcome = self._outcomes.popleft() if self._outcomes else (STATUS_SUCCEEDED, "")
        video = self._new_video(request.path, body, request.header("Ai-trace-id") or "", outcome)
        self.generations.append(video)
        return envelope({"video_id": video.video_id})

    def _new_video(
        self, path: str, params: dict[str, Any], trace_id: str, outcome: tuple[int, str]
    ) -> Generation:
        video = Generation(
            next(self._video_ids), path, params, trace_id, outcome=outcome[0], message=outcome[1]
        )
        self._videos[video.video_id] = video
        return video

    def _validate(self, path: str, body: Any) -> None:
        if not isinstance(body, dict):
            raise _Refused(ERR_PARAM_INVALID, "invalid parameter: expected a JSON object")
        required, optional = FIELDS[path]
        for name in body:
            if name not in required and name not in optional:
                raise _Refused(ERR_PARAM_INVALID, f"invalid parameter: unknown field {name}")
        for name in sorted(required):
            if body.get(name) in (None, ""):
                raise _Refused(ERR_PARAM_EMPTY, f"required parameter is empty: {name}")

        prompt = body["prompt"]
        if not isinstance(prompt, str):
            raise _Refused(ERR_PARAM_INVALID, "invalid parameter: prompt")
        if len(prompt) > MAX_PROMPT:
            raise _Refused(ERR_PROMPT_TOO_LONG, "prompt too long")
        if "negative_prompt" in body:
            negative = body["negative_prompt"]
            if not isinstance(negative, str):
                raise _Refused(ERR_PARAM_INVALID, "invalid parameter: negative_prompt")
            if len(negative) > MAX_PROMPT:
                raise _Refused(ERR_NEGATIVE_PROMPT_TOO_LONG, "negative prompt too long")
        for name, allowed in (
            ("model", MODELS),
            ("quality", QUALITIES),
            ("aspect_ratio", ASPECT_RATIOS),
            ("motion_mode", MOTION_MODES),
            ("style", STYLES),
        ):
            if name in body and body[name] not in allowed:
                raise _Refused(ERR_PARAM_INVALID, f"invalid parameter: {name} {body[name]!r}")
        duration = body["duration"]
        if not _is_int(duration) or not 1 <= duration <= 15:
            raise _Refused(ERR_PARAM_INVALID, f"invalid parameter: duration {duration!r}")
        if body["model"] != "v6":
            # Documented for the 5/8 s models: no 8 s at 1080p; fast motion only for 5 s below 1080p.
            if body["quality"] == "1080p" and duration == 8:
                raise _Refused(ERR_PARAM_INVALID, "invalid parameter: 1080p does not support 8s")
            if body.get("motion_mode") == "fast" and (duration != 5 or body["quality"] == "1080p"):
                raise _Refused(ERR_PARAM_INVALID, "invalid parameter: fast motion needs 5s below 1080p")
        if "seed" in body and (not _is_int(body["seed"]) or not 0 <= body["seed"] <= MAX_SEED):
            raise _Refused(ERR_PARAM_INVALID, f"invalid parameter: seed {body['seed']!r}")
        if "template_id" in body and (not _is_int(body["template_id"]) or body["template_id"] <= 0):
            raise _Refused(ERR_PARAM_INVALID, f"invalid parameter: template_id {body['template_id']!r}")
        if "water_mark" in body and not isinstance(body["water_mark"], bool):
            raise _Refused(ERR_PARAM_INVALID, "invalid parameter: water_mark")

        for name in ("img_id", "first_frame_img", "last_frame_img"):
            if name in body:
                self._check_image_id(name, body[name])
        if path == EXTEND_GENERATE:
            self._check_source_video(body)

    def _check_image_id(self, name: str, value: Any) -> None:
        if not _is_int(value):
            # e.g. the image's URL where its id is expected.
            raise _Refused(ERR_PARAM_INVALID, f"invalid parameter: {name} must be an image id")
        if not any(u.kind == "image" and u.id == value for u in self.uploads) or value not in self.known_ids:
            raise _Refused(ERR_INVALID_ID, f"invalid image id: {value}")

    def _check_source_video(self, body: dict[str, Any]) -> None:
        given = [name for name in ("source_video_id", "video_media_id") if body.get(name) is not None]
        if len(given) != 1:
            raise _Refused(
                ERR_PARAM_INVALID, "invalid parameter: give either source_video_id or video_media_id"
            )
        value = body[given[0]]
        if not _is_int(value):
            raise _Refused(ERR_PARAM_INVALID, f"invalid parameter: {given[0]} must be an id")
        if given[0] == "source_video_id":
            video = self._videos.get(value)
            if video is None:
                raise _Refused(ERR_INVALID_ID, f"invalid video id: {value}")
            if video.status == STATUS_DELETED:
                raise _Refused(ERR_CONTENT_DELETED, "content deleted")
            if video.status != STATUS_SUCCEEDED:
                raise _Refused(ERR_PARAM_INVALID, f"invalid parameter: video {value} is not a finished video")
            return
        item = next((u for u in self.uploads if u.kind == "media" and u.id == value), None)
        if item is None or value not in self.known_ids:
            raise _Refused(ERR_INVALID_ID, f"invalid media id: {value}")
        if not item.content_type.startswith("video/"):
            raise _Refused(ERR_PARAM_INVALID, f"invalid parameter: media {value} is not a video")

    # -- status --------------------------------------------------------------------------------------------------------

    async def _result(self, request: Request) -> Response:
        if (failure := self._check(request)) is not None:
            return failure
        text = request.path.removeprefix(RESULT_PREFIX)
        if not text.isdigit():
            return error_envelope(ERR_PARAM_INVALID, f"invalid parameter: id {text!r}")
        video = self._videos.get(int(text))
        if video is None:
            return error_envelope(ERR_PARAM_INVALID, f"invalid parameter: no video {text}")
        video.polls += 1
        if not video.done and video.video_id not in self._held and video.polls > self.polls_until_done:
            self._finish(video)
        return envelope(self._describe(video), video.message if video.status == STATUS_FAILED else "success")

    def _finish(self, video: Generation) -> None:
        video.status = video.outcome
        if video.status == STATUS_SUCCEEDED:
            body = self.result_body(video.video_id)
            self.server.add_file(_video_path(video.video_id), body, content_type="video/mp4")
            video.url = self.server.url(_video_path(video.video_id))
            video.size = len(body)
        if video.status == STATUS_FAILED and not video.message:
            video.message = "generation failed"

    def _describe(self, video: Generation) -> dict[str, Any]:
        params = video.params
        succeeded = video.status == STATUS_SUCCEEDED
        width, height = _output_size(params.get("quality", "540p"), params.get("aspect_ratio", "16:9"))
        return {
            "id": video.video_id,
            "status": video.status,
            "url": video.url or "",
            "prompt": params.get("prompt", ""),
            "negative_prompt": params.get("negative_prompt", ""),
            "style": params.get("style", ""),
            "seed": params.get("seed", video.video_id % (MAX_SEED + 1)),
            "size": video.size if succeeded else 0,
            "outputWidth": width if succeeded else 0,
            "outputHeight": height if succeeded else 0,
            "resolution_ratio": height if succeeded else 0,
            "create_time": "2025-01-01T00:00:00Z",
            "modify_time": "2025-01-01T00:01:00Z",
        }

    # -- account -------------------------------------------------------------------------------------------------------

    async def _balance(self, request: Request) -> Response:
        if (failure := self._check(request)) is not None:
            return failure
        return envelope(
            {
                "account_id": self.account_id,
                "credit_monthly": self.credit_monthly,
                "credit_package": self.credit_package,
            }
        )


def _video_path(video_id: int) -> str:
    return f"/cdn/pixverse/video/{video_id}.mp4"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _output_size(quality: str, aspect_ratio: str) -> tuple[int, int]:
    """Pixels of a video: the short side is the quality's height, rounded to even numbers."""
    short = int(quality.removesuffix("p")) if quality.removesuffix("p").isdigit() else 540
    w, _, h = aspect_ratio.partition(":")
    ratio_w, ratio_h = (int(w), int(h)) if w.isdigit() and h.isdigit() else (16, 9)
    if ratio_w >= ratio_h:
        return 2 * round(short * ratio_w / ratio_h / 2), short
    return short, 2 * round(short * ratio_h / ratio_w / 2)


def _media_type(content_type: str | None) -> str:
    """'image/PNG; x=y' -> 'image/png'."""
    return (content_type or "").partition(";")[0].strip().lower()
