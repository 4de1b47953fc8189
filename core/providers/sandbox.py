"""The offline Sandbox provider: no account, no network. It reads inputs straight from the local store,
so "uploading" only records a reference to the content hash, and it renders real media files on this
computer (``core.media.render``), deterministic for their inputs and seed.

``submit`` renders in a worker thread into the job's workdir, under a name derived from the job key,
before it returns; ``poll`` then finds the file. Because the renders are deterministic, a job submitted
again after a crash writes the same bytes, and a render already on disk is not redone.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
import threading
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from PIL import Image

from core.db.enums import JobStatus, MediaType, OperationType, ParentRole, ProviderRefKind
from core.errors import InvalidParameter, MediaError, ProviderError
from core.media import render
from core.media.probe import frame_at, last_frame, probe, read_image
from core.net.http import SafeHttp
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
    UploadRequest,
)
from core.providers.spec import Operation, Param, ParamKind
from core.transfer.download import DownloadSource

PROVIDER_ID = "sandbox"
FPS = 24
# The short side of the frame for each quality, and the frame's shape for each aspect ratio.
QUALITIES = {"360p": 360, "540p": 540, "720p": 720}
ASPECT_RATIOS = {"16:9": (16, 9), "9:16": (9, 16), "1:1": (1, 1)}
# Continuations keep their source's size, up to this short side (renders stay quick).
MAX_SHORT_SIDE = 720
# Pictures of more extreme shape than this are cropped to it.
_WIDEST = 21 / 9

_OUTPUTS = {MediaType.VIDEO: (".mp4", "video/mp4"), MediaType.IMAGE: (".png", "image/png")}

RenderJob = Callable[[Path, Callable[[], bool]], None]


def _prompt(required: bool) -> Param:
    return Param(
        "prompt",
        ParamKind.PROMPT,
        "Prompt",
        required=required,
        max_length=2000,
        help="What to make. The Sandbox shows it as a caption and derives the look from it and the seed.",
    )


_SEED = Param(
    "seed",
    ParamKind.INT,
    "Seed",
    default=0,
    minimum=0,
    maximum=2147483647,
    help="The same seed and inputs give exactly the same file; another seed gives other colours and motion.",
)
_DURATION = Param(
    "duration",
    ParamKind.INT,
    "Duration (s)",
    default=3,
    minimum=1,
    maximum=10,
    help="Length of the video in seconds.",
)
_ASPECT = Param(
    "aspect_ratio",
    ParamKind.CHOICE,
    "Aspect ratio",
    default="16:9",
    choices=tuple(ASPECT_RATIOS),
    help="Landscape, portrait or square.",
)
_QUALITY = Param(
    "quality",
    ParamKind.CHOICE,
    "Quality",
    default="360p",
    choices=tuple(QUALITIES),
    help="Height of a landscape frame (width of a portrait one). Higher takes longer to render.",
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        OperationType.TEXT_TO_VIDEO.value,
        "Text to video",
        MediaType.VIDEO,
        (
            _prompt(required=True),
            _SEED,
            _DURATION,
            _ASPECT,
            _QUALITY,
            Param(
                "keyframes",
                ParamKind.KEYFRAMES,
                "Storyboard keyframes",
                media_types=(MediaType.IMAGE,),
                role=ParentRole.KEYFRAME.value,
                help=(
                    f"Optional images, each shown exactly at its frame ({FPS} frames per second), crossfading "
                    "from one to the next. Action: " + ", ".join(render.ACTIONS) + " (others drift gently)."
                ),
            ),
        ),
        "An animation coloured from the seed with the prompt as a caption; with keyframes, a storyboard.",
    ),
    Operation(
        OperationType.IMAGE_TO_VIDEO.value,
        "Image to video",
        MediaType.VIDEO,
        (
            Param(
                "image_asset_id",
                ParamKind.ASSET,
                "Image",
                required=True,
                media_types=(MediaType.IMAGE,),
                role=ParentRole.SOURCE.value,
                help="The still to animate; the video keeps its shape.",
            ),
            _prompt(required=False),
            _SEED,
            _DURATION,
            _QUALITY,
        ),
        "Brings a still to life with a slow zoom and pan under drifting light.",
    ),
    Operation(
        OperationType.VIDEO_EXTEND.value,
        "Extend video",
        MediaType.VIDEO,
        (
            Param(
                "video_asset_id",
                ParamKind.ASSET,
                "Video",
                required=True,
                media_types=(MediaType.VIDEO,),
                role=ParentRole.SOURCE.value,
                start_param="start_sec",
                help="The video to continue. The continuation keeps its size and frame rate.",
            ),
            Param(
                "start_sec",
                ParamKind.FLOAT,
                "Start at (s)",
                minimum=0,
                help="Continue from the frame shown at this time. Empty: from the end of the video.",
            ),
            _prompt(required=False),
            _SEED,
            _DURATION,
        ),
        "Continues a video from one of its frames (the last by default).",
    ),
    Operation(
        OperationType.TRANSITION.value,
        "Transition",
        MediaType.VIDEO,
        (
            Param(
                "first_frame_asset_id",
                ParamKind.ASSET,
                "First frame",
                required=True,
                media_types=(MediaType.IMAGE,),
                role=ParentRole.FIRST_FRAME.value,
                help="The video starts on this image; it also sets the video's shape.",
            ),
            Param(
                "last_frame_asset_id",
                ParamKind.ASSET,
                "Last frame",
                required=True,
                media_types=(MediaType.IMAGE,),
                role=ParentRole.LAST_FRAME.value,
                help="The video ends on this image.",
            ),
            _prompt(required=False),
            _SEED,
            _DURATION,
            _QUALITY,
        ),
        "Moves from one image to another: a crossfade with camera motion.",
    ),
    Operation(
        OperationType.TEXT_TO_IMAGE.value,
        "Text to image",
        MediaType.IMAGE,
        (_prompt(required=True), _SEED, _ASPECT, _QUALITY),
        "A PNG coloured from the seed with the prompt as a caption.",
    ),
)


class SandboxAdapter:
    provider_id = PROVIDER_ID
    display_name = "Sandbox"
    description = "Built in and offline: renders real media files on this computer, deterministic for a seed. No account needed; try every feature with it."
    requires_account = False
    repeatable_submit = True

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

    async def check_account(self, http: SafeHttp, credentials: Credentials) -> str:
        return "Sandbox works offline; no key needed."

    # -- generation --------------------------------------------------------------------------------

    def operations(self) -> Sequence[Operation]:
        return OPERATIONS

    async def submit(self, http: SafeHttp, request: GenerationRequest) -> Submitted:
        """Render the job's file (unless an earlier submission already did) and return once it is written."""
        planners = {
            OperationType.TEXT_TO_VIDEO.value: self._plan_text_to_video,
            OperationType.IMAGE_TO_VIDEO.value: self._plan_image_to_video,
            OperationType.VIDEO_EXTEND.value: self._plan_extend,
            OperationType.TRANSITION.value: self._plan_transition,
            OperationType.TEXT_TO_IMAGE.value: self._plan_text_to_image,
        }
        planner = planners.get(request.operation.id)
        if planner is None:
            raise InvalidParameter(
                f"Sandbox has no operation '{request.operation.id}' (it offers: {', '.join(planners)}).",
                provider_id=PROVIDER_ID,
                code="unknown_operation",
            )
        job = await planner(request)
        output = output_path(request.workdir, request.job_key, request.operation.output)
        if not output.is_file():
            stop = threading.Event()
            try:
                await asyncio.to_thread(job, output, stop.is_set)
            except asyncio.CancelledError:
                stop.set()  # the thread stops before its next frame and removes its partial file
                raise
        return Submitted(provider_job_id=request.job_key, poll_after_s=0.0)  # the render is already done

    async def poll(self, http: SafeHttp, job: JobHandle) -> JobUpdate:
        output = output_path(job.workdir, job.job_key, job.operation.output)
        if not output.is_file():
            return JobUpdate(
                status=JobStatus.FAILED,
                error=ProviderError(
                    f"The Sandbox render for this job is missing (expected {output}): it was removed, or the "
                    "app stopped while rendering. Run the job again; Sandbox renders are deterministic, so it "
                    "gives the same file.",
                    provider_id=PROVIDER_ID,
                    code="render_missing",
                ),
            )
        media_type = job.operation.output
        result = ResultFile(
            media_type,
            local_path=output,
            mime_type=_OUTPUTS[media_type][1],
            provider_asset_id=f"{job.job_key}-0",
            metadata={"seed": job.params.get("seed", _SEED.default)},
        )
        return JobUpdate(status=JobStatus.SUCCEEDED, progress=1.0, outputs=(result,))

    # -- one plan per operation: gather and check inputs here, render in the returned function ------

    async def _plan_text_to_video(self, request: GenerationRequest) -> RenderJob:
        params = request.params
        prompt, seed, duration = _common(params)
        size = frame_size(params.get("aspect_ratio", "16:9"), params.get("quality", "360p"))
        keyframes: list[dict[str, Any]] = params.get("keyframes") or []
        if not keyframes:

            def animate(out: Path, cancelled: Callable[[], bool]) -> None:
                render.text_to_video(
                    out, prompt, seed, duration_sec=duration, size=size, fps=FPS, cancelled=cancelled
                )

            return animate
        _check_keyframes(request.operation, keyframes, duration)
        inputs = [await _input(request, "keyframes", kf["asset_id"], MediaType.IMAGE) for kf in keyframes]

        def run(out: Path, cancelled: Callable[[], bool]) -> None:
            frames = [
                render.Keyframe(kf["frame"], _image(request.operation, local), kf.get("action"))
                for kf, local in zip(keyframes, inputs, strict=True)
            ]
            render.storyboard(
                out, frames, prompt, seed, duration_sec=duration, size=size, fps=FPS, cancelled=cancelled
            )

        return run

    async def _plan_image_to_video(self, request: GenerationRequest) -> RenderJob:
        params = request.params
        prompt, seed, duration = _common(params)
        local = await _input(request, "image_asset_id", params["image_asset_id"], MediaType.IMAGE)
        quality = params.get("quality", "360p")

        def run(out: Path, cancelled: Callable[[], bool]) -> None:
            image = _image(request.operation, local)
            size = fitted_size(image.size, QUALITIES[quality])
            render.image_to_video(
                out, image, prompt, seed, duration_sec=duration, size=size, fps=FPS, cancelled=cancelled
            )

        return run

    async def _plan_extend(self, request: GenerationRequest) -> RenderJob:
        params = request.params
        prompt, seed, duration = _common(params)
        local = await _input(request, "video_asset_id", params["video_asset_id"], MediaType.VIDEO)
        start: float | None = params.get("start_sec")
        label = request.operation.label

        def run(out: Path, cancelled: Callable[[], bool]) -> None:
            try:
                facts = probe(local.path)
                length = facts.duration_sec
                if start is not None and length is not None and start > length + 1e-6:
                    raise InvalidParameter(
                        f"{label}: start_sec {start:g} s is beyond the end of video asset {local.asset_id}, "
                        f"which is {length:.3f} s long. Choose a start between 0 and {length:.3f} s, or leave "
                        "it empty to continue from the end.",
                        provider_id=PROVIDER_ID,
                        code="start_beyond_end",
                    )
                frame = frame_at(local.path, start) if start is not None else last_frame(local.path)
            except MediaError as exc:
                raise _unreadable(label, local, exc) from None
            render.extend(
                out,
                frame,
                prompt,
                seed,
                duration_sec=duration,
                fps=_frame_rate(facts.fps),
                size=fitted_size(frame.size, min(MAX_SHORT_SIDE, min(frame.size))),
                cancelled=cancelled,
            )

        return run

    async def _plan_transition(self, request: GenerationRequest) -> RenderJob:
        params = request.params
        prompt, seed, duration = _common(params)
        first = await _input(request, "first_frame_asset_id", params["first_frame_asset_id"], MediaType.IMAGE)
        last = await _input(request, "last_frame_asset_id", params["last_frame_asset_id"], MediaType.IMAGE)
        quality = params.get("quality", "360p")

        def run(out: Path, cancelled: Callable[[], bool]) -> None:
            start, end = _image(request.operation, first), _image(request.operation, last)
            size = fitted_size(start.size, QUALITIES[quality])
            render.transition(
                out, start, end, prompt, seed, duration_sec=duration, size=size, fps=FPS, cancelled=cancelled
            )

        return run

    async def _plan_text_to_image(self, request: GenerationRequest) -> RenderJob:
        params = request.params
        prompt, seed, _ = _common(params)
        size = frame_size(params.get("aspect_ratio", "16:9"), params.get("quality", "360p"))

        def run(out: Path, cancelled: Callable[[], bool]) -> None:
            render.text_to_image(out, prompt, seed, size=size)

        return run


# -- sizes and names -------------------------------------------------------------------------------


def frame_size(aspect_ratio: str, quality: str) -> render.Size:
    """The frame for an aspect ratio and quality: 16:9 at 360p is 640x360."""
    across, down = ASPECT_RATIOS[aspect_ratio]
    return _even_size(across / down, QUALITIES[quality])


def fitted_size(picture: tuple[int, int], short_side: int) -> render.Size:
    """A frame of the picture's shape (within 21:9 either way) whose short side is ``short_side``."""
    width, height = picture
    aspect = min(_WIDEST, max(1 / _WIDEST, width / height))
    return _even_size(aspect, short_side)


def _even_size(aspect: float, short_side: int) -> render.Size:
    short = max(16, short_side - short_side % 2)
    long = max(16, round(short * max(aspect, 1 / aspect) / 2) * 2)
    return (long, short) if aspect >= 1 else (short, long)


def output_path(workdir: Path, job_key: str, media_type: MediaType) -> Path:
    """Where the job's file goes: ``{job_key}-0.mp4`` (or ``.png``); unusual keys are hashed."""
    stem = job_key if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", job_key) else _digest(job_key)
    return workdir / f"{stem}-0{_OUTPUTS[media_type][0]}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# -- parameters and inputs -------------------------------------------------------------------------


def _common(params: dict[str, Any]) -> tuple[str, int, int]:
    return (
        str(params.get("prompt") or ""),
        int(params.get("seed", _SEED.default)),
        int(params.get("duration", _DURATION.default)),
    )


def _check_keyframes(operation: Operation, keyframes: list[dict[str, Any]], duration: int) -> None:
    count = render.frame_count(duration, FPS)
    for order, keyframe in enumerate(keyframes, start=1):
        frame = keyframe["frame"]
        if frame >= count:
            needed = frame // FPS + 1
            raise InvalidParameter(
                f"{operation.label}: keyframe {order} is at frame {frame}, but a {duration} s video at {FPS} "
                f"frames per second has frames 0 to {count - 1}. Make the video at least {needed} s long "
                "or move the keyframe earlier.",
                provider_id=PROVIDER_ID,
                code="keyframe_beyond_end",
            )
    frames = [kf["frame"] for kf in keyframes]
    for order, (earlier, later) in enumerate(itertools.pairwise(frames), start=1):
        if earlier == later:
            raise InvalidParameter(
                f"{operation.label}: keyframes {order} and {order + 1} are both at frame {later}; "
                "give each keyframe its own frame.",
                provider_id=PROVIDER_ID,
                code="duplicate_keyframe",
            )


async def _input(request: GenerationRequest, param: str, asset_id: int, expected: MediaType) -> LocalInput:
    local = await request.inputs.local_file(asset_id)
    if local.media_type != expected:
        raise InvalidParameter(
            f"{request.operation.label}: asset {asset_id} is {_a(local.media_type)}, but '{param}' takes "
            f"{_a(expected)}.",
            provider_id=PROVIDER_ID,
            code="wrong_media_type",
        )
    return local


_A_MEDIA = {
    MediaType.IMAGE: "an image",
    MediaType.VIDEO: "a video",
    MediaType.AUDIO: "an audio file",
    MediaType.MODEL_3D: "a 3D model",
}


def _a(media_type: MediaType) -> str:
    return _A_MEDIA.get(media_type, f"a {media_type.value}")


def _image(operation: Operation, local: LocalInput) -> Image.Image:
    try:
        return read_image(local.path)
    except MediaError as exc:
        raise _unreadable(operation.label, local, exc) from None


def _unreadable(label: str, local: LocalInput, exc: MediaError) -> InvalidParameter:
    return InvalidParameter(
        f"{label}: asset {local.asset_id} cannot be used. {exc}",
        provider_id=PROVIDER_ID,
        code="unreadable_input",
    )


def _frame_rate(fps: float | None) -> Fraction:
    """The source's frame rate as the encoder wants it (29.97 is 30000/1001); 24 when unknown or odd."""
    if fps is None or not 1 <= fps <= 120:
        return Fraction(FPS)
    return Fraction(fps).limit_denominator(1001)
