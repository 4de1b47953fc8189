"""A fake of the Pixverse platform API upload endpoints (image and media), served by FakeHttpServer.

Wire faults come from FakeHttpServer.fail("POST", path, ...); API-level errors from FakePixverse.fail_envelope().
"""

from __future__ import annotations

import itertools
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from tests.fakes.http_server import FakeHttpServer, MultipartPart, Request, Response

IMAGE_UPLOAD = "/openapi/v2/image/upload"
MEDIA_UPLOAD = "/openapi/v2/media/upload"

ERR_INVALID_KEY = 10005
ERR_PARAM_EMPTY = 400011
ERR_PARAM_INVALID = 400017
ERR_BAD_IMAGE = 500030
ERR_IMAGE_TOO_LARGE = 500031

IMAGE_TYPES = frozenset({"image/png", "image/webp", "image/jpeg"})


@dataclass(frozen=True)
class UploadedItem:
    kind: Literal["image", "media"]
    id: int
    filename: str | None
    content_type: str
    data: bytes
    url: str


def envelope(resp: dict[str, Any]) -> Response:
    return Response.json({"ErrCode": 0, "ErrMsg": "success", "Resp": resp})


def error_envelope(err_code: int, err_msg: str) -> Response:
    # Pixverse reports API errors as HTTP 200 with a non-zero ErrCode.
    return Response.json({"ErrCode": err_code, "ErrMsg": err_msg, "Resp": {}})


class FakePixverse:
    """Registers the upload routes on server; uploaded bytes become downloadable at the returned URLs."""

    # An instance attribute may lower it so tests need not build 20 MB payloads.
    max_image_bytes = 20 * 1024 * 1024

    def __init__(self, server: FakeHttpServer, api_key: str = "test-pixverse-key") -> None:
        self.server = server
        self.api_key = api_key
        self.uploads: list[UploadedItem] = []
        self.known_ids: set[int] = set()
        self.trace_ids: list[str] = []  # every Ai-trace-id that reached a handler, in order
        self._ids = itertools.count(1000)
        self._envelope_faults: dict[str, deque[tuple[int, str]]] = {}
        self._paths: dict[int, str] = {}
        server.add_route("POST", IMAGE_UPLOAD, self._upload_image)
        server.add_route("POST", MEDIA_UPLOAD, self._upload_media)

    def fail_envelope(self, path: str, err_code: int, err_msg: str = "error") -> None:
        """Queue (FIFO) an HTTP 200 reply with this non-zero ErrCode for the next authenticated POST to path."""
        if err_code == 0:
            raise ValueError("an error envelope needs a non-zero ErrCode")
        self._envelope_faults.setdefault(path, deque()).append((err_code, err_msg))

    def forget(self, id: int) -> None:
        """Simulate the provider deleting an upload: its id is unknown and its URL answers 404."""
        self.known_ids.discard(id)
        path = self._paths.pop(id, None)
        if path is not None:
            self.server.remove_file(path)

    # -- handlers ------------------------------------------------------------------------------------------------------

    def _check(self, request: Request) -> Response | None:
        """Auth, trace id and queued envelope errors shared by both endpoints; None means go on."""
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
            if r.path in (IMAGE_UPLOAD, MEDIA_UPLOAD) and r.header("Ai-trace-id") == trace_id
        )
        self.trace_ids.append(trace_id)
        if uses > 1:
            return error_envelope(ERR_PARAM_INVALID, "duplicate Ai-trace-id")
        queue = self._envelope_faults.get(request.path)
        if queue:
            return error_envelope(*queue.popleft())
        return None

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


def _media_type(content_type: str | None) -> str:
    """'image/PNG; x=y' -> 'image/png'."""
    return (content_type or "").partition(";")[0].strip().lower()
