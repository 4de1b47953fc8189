"""The offline Sandbox: every operation renders a real file that probes as asked, deterministically; the
continuation, transition and storyboard frames land where the user put them; bad inputs are explained."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from core.db.enums import JobStatus, MediaType, OperationType, ParentRole
from core.errors import InvalidParameter, ProviderError, TransferCancelled
from core.media import frame_at, last_frame, probe, render
from core.net.http import SafeHttp
from core.providers.base import (
    Credentials,
    GenerationRequest,
    JobHandle,
    JobUpdate,
    SupportsAccountCheck,
    SupportsGenerate,
    find_operation,
)
from core.providers.sandbox import SandboxAdapter
from tests.fakes.media import tiny_mp4
from tests.media import mean_difference, numbered_frame, numbered_video

from .conftest import FakeInputs

PNG = "image/png"


@pytest.fixture
async def offline() -> AsyncIterator[SafeHttp]:
    """An HTTP client the Sandbox is handed and never uses."""
    client = SafeHttp()
    yield client
    await client.aclose()


@pytest.fixture
def sandbox() -> SandboxAdapter:
    return SandboxAdapter()


def _picture(seed: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A still with structure (bands and a block), so frames are told apart by more than a colour."""
    image = Image.new("RGB", size, ((seed * 70) % 256, 90, 200 - (seed * 40) % 200))
    draw = ImageDraw.Draw(image)
    width, height = size
    for band in range(0, width, 8):
        draw.rectangle((band, 0, band + 3, height), fill=((seed * 50 + band * 3) % 256, 40, 120))
    draw.rectangle((width // 4, height // 4, width // 2, height // 2 + seed % 7), fill="white")
    return image


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _request(
    sandbox: SandboxAdapter, operation_id: str, params: dict[str, Any], inputs: FakeInputs, workdir: Path
) -> GenerationRequest:
    operation = find_operation(sandbox, operation_id)
    return GenerationRequest(
        operation=operation,
        params=operation.validate(params, sandbox.provider_id),
        credentials=Credentials(),
        inputs=inputs,
        workdir=workdir,
        job_key=f"job-{operation_id}",
    )


def _handle(request: GenerationRequest, provider_job_id: str) -> JobHandle:
    return JobHandle(
        provider_job_id=provider_job_id,
        operation=request.operation,
        params=request.params,
        credentials=request.credentials,
        workdir=request.workdir,
        job_key=request.job_key,
    )


async def _run(
    sandbox: SandboxAdapter,
    http: SafeHttp,
    operation_id: str,
    params: dict[str, Any],
    inputs: FakeInputs,
    workdir: Path,
) -> Path:
    """Submit and poll as the job runner does; the rendered file."""
    request = _request(sandbox, operation_id, params, inputs, workdir)
    submitted = await sandbox.submit(http, request)
    update = await sandbox.poll(http, _handle(request, submitted.provider_job_id))
    assert update.status is JobStatus.SUCCEEDED, update.error
    (output,) = update.outputs
    assert output.local_path is not None
    return output.local_path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the provider's face -----------------------------------------------------------------------------


async def test_it_generates_offline_with_no_account(sandbox: SandboxAdapter, offline: SafeHttp) -> None:
    assert isinstance(sandbox, SupportsGenerate) and isinstance(sandbox, SupportsAccountCheck)
    assert sandbox.requires_account is False
    assert await sandbox.check_account(offline, Credentials()) == "Sandbox works offline; no key needed."
    assert [op.id for op in sandbox.operations()] == [
        OperationType.TEXT_TO_VIDEO,
        OperationType.IMAGE_TO_VIDEO,
        OperationType.VIDEO_EXTEND,
        OperationType.TRANSITION,
        OperationType.TEXT_TO_IMAGE,
    ]
    roles = {(op.id, p.name): (p.role, p.media_types) for op in sandbox.operations() for p in op.input_params}
    assert roles == {
        ("text_to_video", "keyframes"): (ParentRole.KEYFRAME, (MediaType.IMAGE,)),
        ("image_to_video", "image_asset_id"): (ParentRole.SOURCE, (MediaType.IMAGE,)),
        ("video_extend", "video_asset_id"): (ParentRole.SOURCE, (MediaType.VIDEO,)),
        ("transition", "first_frame_asset_id"): (ParentRole.FIRST_FRAME, (MediaType.IMAGE,)),
        ("transition", "last_frame_asset_id"): (ParentRole.LAST_FRAME, (MediaType.IMAGE,)),
    }
    seed = find_operation(sandbox, "text_to_video").param("seed")
    assert (seed.minimum, seed.maximum, seed.default) == (0, 2147483647, 0)
    assert all(op.to_json()["params"] for op in sandbox.operations())


def test_validation_names_unknown_and_out_of_range_parameters(sandbox: SandboxAdapter) -> None:
    text_to_video = find_operation(sandbox, "text_to_video")

    with pytest.raises(InvalidParameter) as caught:
        text_to_video.validate({"prompt": "a cat", "duration": 11, "quality": "1080p", "colour": "red"})

    message = str(caught.value)
    assert "unknown parameter 'colour'" in message
    assert "'duration': 11 is above the maximum 10" in message
    assert "'1080p' is not one of 360p, 540p, 720p" in message
    assert text_to_video.validate({"prompt": "a cat"}) == {
        "prompt": "a cat",
        "seed": 0,
        "duration": 3,
        "aspect_ratio": "16:9",
        "quality": "360p",
    }
    with pytest.raises(InvalidParameter, match=r"'start_sec': -1\.0 is below the minimum 0"):
        find_operation(sandbox, "video_extend").validate({"video_asset_id": 3, "start_sec": -1})


def test_a_storyboard_records_one_keyframe_edge_per_keyframe(sandbox: SandboxAdapter) -> None:
    text_to_video = find_operation(sandbox, "text_to_video")
    values = text_to_video.validate(
        {
            "prompt": "a chase",
            "duration": 6,
            "keyframes": [
                {"frame": 48, "asset_id": 5, "action": "zoom_in"},
                {"frame": 132, "asset_id": 6, "action": "pan_left"},
            ],
        }
    )

    edges = text_to_video.lineage_inputs(values)

    assert [(e.asset_id, e.role, e.parent_frame, e.sequence_order) for e in edges] == [
        (5, ParentRole.KEYFRAME, 48, 0),
        (6, ParentRole.KEYFRAME, 132, 1),
    ]
    assert [(e.transformation["action"], e.transformation["frame_position"]) for e in edges] == [
        ("zoom_in", 48),
        ("pan_left", 132),
    ]


# -- each operation's file -----------------------------------------------------------------------------


async def test_text_to_video_has_the_requested_length_size_and_rate(
    sandbox: SandboxAdapter, offline: SafeHttp, inputs: FakeInputs, tmp_path: Path
) -> None:
    params = {"prompt": "a cat dancing", "duration": 2, "aspect_ratio": "9:16", "quality": "360p"}
    path = await _run(sandbox, offline, "text_to_video", params, inputs, tmp_path / "work")

    facts = probe(path)

    assert (facts.media_type, facts.mime_type, facts.video_codec) == (MediaType.VIDEO, "video/mp4", "h264")
    assert (facts.width, facts.height, facts.duration_sec, facts.fps, facts.frame_count) == (
        360,
        640,
        2.0,
        24.0,
        48,
    )
    assert mean_difference(frame_at(path, 0), frame_at(path, 0.9)) > 2, "the picture moves"


async def test_poll_reports_the_file_with_its_seed_and_an_idempotent_id(
    sandbox: SandboxAdapter, offline: SafeHttp, inputs: FakeInputs, tmp_path: Path
) -> None:
    request = _request(sandbox, "text_to_image", {"prompt": "a castle", "seed": 9}, inputs, tmp_path / "work")

    submitted = await sandbox.submit(offline, request)
    update = await sandbox.poll(offline, _handle(request, submitted.provider_job_id))

    assert submitted.provider_job_id == request.job_key
    (result,) = update.outputs
    assert (update.status, update.progress) == (JobStatus.SUCCEEDED, 1.0)
    assert result.local_path == tmp_path / "work" / "job-text_to_image-0.png"
    assert (result.media_type, result.mime_type) == (MediaType.IMAGE, PNG)
    assert (result.provider_asset_id, result.metadata) == ("job-text_to_image-0", {"seed": 9})
    assert [p.name for p in (tmp_path / "work").iterdir()] == ["job-text_to_image-0.png"], "no partial files"


async def test_text_to_image_is_a_png_of_the_requested_size(
    sandbox: SandboxAdapter, offline: SafeHttp, inputs: FakeInputs, tmp_path: Path
) -> None:
    params = {"prompt": "a castle", "aspect_ratio": "1:1", "quality": "540p"}
    path = await _run(sandbox, offline, "text_to_image", params, inputs, tmp_path)

    facts = probe(path)

    assert (facts.media_type, facts.mime_type, facts.width, facts.height) == (MediaType.IMAGE, PNG, 540, 540)


async def test_the_same_seed_and_prompt_give_the_same_bytes(
    sandbox: SandboxAdapter, offline: SafeHttp, inputs: FakeInputs, tmp_path: Path
) -> None:
    async def render_image(folder: str, prompt: str, seed: int) -> str:
        params = {"prompt": prompt, "seed": seed}
        return _sha(await _run(sandbox, offline, "text_to_image", params, inputs, tmp_path / folder))

    first = await render_image("a", "a castle", 1)

    assert await render_image("b", "a castle", 1) == first
    assert await render_image("c", "a castle", 2) != first
    assert await render_image("d", "a dragon", 1) != first


def test_videos_are_byte_identical_and_carry_no_wall_clock_time(tmp_path: Path) -> None:
    def video(name: str, prompt: str, seed: int) -> Path:
        return render.text_to_video(tmp_path / name, prompt, seed, duration_sec=1, size=(64, 48), fps=12)

    first = video("a.mp4", "waves", 5)

    assert _sha(video("b.mp4", "waves", 5)) == _sha(first)
    assert _sha(video("c.mp4", "waves", 6)) != _sha(first)
    assert _sha(video("d.mp4", "wind", 5)) != _sha(first)
    # The movie header's creation and modification times (seconds since 1904) are left at zero.
    data = first.read_bytes()
    mvhd = data.index(b"mvhd") + 4
    version, width = data[mvhd], 8 if data[mvhd] == 1 else 4
    times = data[mvhd + 4 : mvhd + 4 + 2 * width]
    assert version in (0, 1) and times == bytes(2 * width)
    assert b"Lavf" not in data, "no encoder version stamped into the file"


async def test_image_to_video_keeps_the_images_shape(
    sandbox: SandboxAdapter, offline: SafeHttp, inputs: FakeInputs, tmp_path: Path
) -> None:
    inputs.add_file(7, _png(_picture(1, (64, 48))), MediaType.IMAGE, PNG)
    params = {"image_asset_id": 7, "prompt": "it wakes", "duration": 1}

    path = await _run(sandbox, offline, "image_to_video", params, inputs, tmp_path)

    facts = probe(path)
    assert (facts.width, facts.height, facts.duration_sec, facts.fps) == (480, 360, 1.0, 24.0)
    assert inputs.calls == [("local_file", 7)]


# -- continuations, transitions, storyboards ------------------------------------------------------------

SOURCE_FRAMES, SOURCE_FPS = 24, 12  # a 2 s source video


def _source_frame_like(image: Image.Image) -> int:
    """The index of the source video's frame that ``image`` looks most like."""
    return min(range(SOURCE_FRAMES), key=lambda i: mean_difference(image, numbered_frame(i, SOURCE_FRAMES)))


@pytest.fixture
def source_video(inputs: FakeInputs, tmp_path: Path) -> Path:
    path = numbered_video(tmp_path / "source.mp4", SOURCE_FRAMES, SOURCE_FPS)
    inputs.add_path(3, path, MediaType.VIDEO, "video/mp4")
    return path


async def test_extend_starts_on_the_sources_frame_at_start_sec(
    sandbox: SandboxAdapter, offline: SafeHttp, inputs: FakeInputs, tmp_path: Path, source_video: Path
) -> None:
    params = {"video_asset_id": 3, "start_sec": 0.75, "prompt": "and then", "duration": 1}

    path = await _run(sandbox, offline, "video_extend", params, inputs, tmp_path / "work")

    facts = probe(path)
    assert (facts.width, facts.height, facts.fps, facts.duration_sec) == (64, 48, 12.0, 1.0)
    first = frame_at(path, 0)
    assert mean_difference(first, frame_at(source_video, 0.75)) < 3
    assert _source_frame_like(first) == 9  # 0.75 s at 12 fps
    assert mean_difference(first, last_frame(path)) > 5, "the continuation evolves"


async def test_extend_continues_from_the_last_frame_by_default(
    sandbox: SandboxAdapter, offline: SafeHttp, inputs: FakeInputs, tmp_path: Path, source_video: Path
) -> None:
    path = await _run(
        sandbox, offline, "video_extend", {"video_asset_id": 3, "duration": 1}, inputs, tmp_path
    )

    first = frame_at(path, 0)
    assert mean_difference(first, last_frame(source_video)) < 3
    assert _source_frame_like(first) == SOURCE_FRAMES - 1


async def test_extend_refuses_a_start_beyond_the_end(
    sandbox: SandboxAdapter, offline: SafeHttp, inputs: FakeInputs, tmp_path: Path, source_video: Path
) -> None:
    params = {"video_asset_id": 3, "start_sec": 2.5}

    with pytest.raises(
        InvalidParameter, match=r"start_sec 2.5 s is beyond the end of video asset 3, which is 2.000 s"
    ):
        await _run(sandbox, offline, "video_extend", params, inputs, tmp_path / "work")
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())


async def test_a_transition_starts_on_the_first_image_and_ends_on_the_last(
    sandbox: SandboxAdapter, offline: SafeHttp, inputs: FakeInputs, tmp_path: Path
) -> None:
    first, last = _picture(1), _picture(4)
    inputs.add_file(1, _png(first), MediaType.IMAGE, PNG)
    inputs.add_file(2, _png(last), MediaType.IMAGE, PNG)
    params = {"first_frame_asset_id": 1, "last_frame_asset_id": 2, "duration": 1}

    path = await _run(sandbox, offline, "transition", params, inputs, tmp_path)

    facts = probe(path)
    assert (facts.width, facts.height, facts.frame_count) == (480, 360, 24)
    size = (480, 360)
    opening, closing, middle = frame_at(path, 0), last_frame(path), frame_at(path, 0.5)
    assert mean_difference(opening, first.resize(size)) < 4
    assert mean_difference(closing, last.resize(size)) < 4
    assert mean_difference(opening, last.resize(size)) > 20
    assert min(mean_difference(middle, image.resize(size)) for image in (first, last)) > 8


async def test_storyboard_keyframes_appear_at_their_frames(
    sandbox: SandboxAdapter, offline: SafeHttp, inputs: FakeInputs, tmp_path: Path
) -> None:
    pictures = {11: _picture(2, (640, 360)), 12: _picture(5, (640, 360))}
    for asset_id, picture in pictures.items():
        inputs.add_file(asset_id, _png(picture), MediaType.IMAGE, PNG)
    keyframes = [{"asset_id": 11, "frame": 6, "action": "zoom_in"}, {"asset_id": 12, "frame": 20}]
    params = {"prompt": "a chase", "duration": 1, "keyframes": keyframes}

    path = await _run(sandbox, offline, "text_to_video", params, inputs, tmp_path)

    def at(frame: int) -> Image.Image:
        return frame_at(path, frame / 24)

    assert mean_difference(at(6), pictures[11]) < 4
    assert mean_difference(at(20), pictures[12]) < 4
    assert mean_difference(at(0), pictures[11]) > 10, "the scene leads into the first keyframe"
    assert min(mean_difference(at(13), p) for p in pictures.values()) > 5, "crossfading between them"
    assert probe(path).frame_count == 24


# -- refusals, cancellation, restarts --------------------------------------------------------------


async def test_a_keyframe_beyond_the_video_is_explained(
    sandbox: SandboxAdapter, offline: SafeHttp, inputs: FakeInputs, tmp_path: Path
) -> None:
    keyframes = [{"asset_id": 5, "frame": 48}, {"asset_id": 6, "frame": 132}]

    with pytest.raises(InvalidParameter) as caught:
        await _run(
            sandbox, offline, "text_to_video", {"prompt": "x", "keyframes": keyframes}, inputs, tmp_path
        )

    assert str(caught.value) == (
        "Text to video: keyframe 2 is at frame 132, but a 3 s video at 24 frames per second has frames 0 "
        "to 71. Make the video at least 6 s long or move the keyframe earlier."
    )
    assert inputs.calls == [], "refused before any input was fetched"


@pytest.mark.parametrize(
    ("operation_id", "params", "message"),
    [
        (
            "image_to_video",
            {"image_asset_id": 3},
            "Image to video: asset 3 is a video, but 'image_asset_id' takes an image.",
        ),
        (
            "transition",
            {"first_frame_asset_id": 1, "last_frame_asset_id": 3},
            "Transition: asset 3 is a video, but 'last_frame_asset_id' takes an image.",
        ),
        (
            "video_extend",
            {"video_asset_id": 1},
            "Extend video: asset 1 is an image, but 'video_asset_id' takes a video.",
        ),
        (
            "text_to_video",
            {"prompt": "x", "keyframes": [{"asset_id": 3, "frame": 0}]},
            "Text to video: asset 3 is a video, but 'keyframes' takes an image.",
        ),
    ],
)
async def test_an_input_of_the_wrong_media_type_is_named(
    sandbox: SandboxAdapter,
    offline: SafeHttp,
    inputs: FakeInputs,
    tmp_path: Path,
    operation_id: str,
    params: dict[str, Any],
    message: str,
) -> None:
    inputs.add_file(1, _png(_picture(1)), MediaType.IMAGE, PNG)
    inputs.add_file(3, tiny_mp4(), MediaType.VIDEO, "video/mp4")

    with pytest.raises(InvalidParameter) as caught:
        await _run(sandbox, offline, operation_id, params, inputs, tmp_path)

    assert str(caught.value) == message


async def test_an_unreadable_input_is_named(
    sandbox: SandboxAdapter, offline: SafeHttp, inputs: FakeInputs, tmp_path: Path
) -> None:
    inputs.add_file(4, b"not really a png", MediaType.IMAGE, PNG)

    with pytest.raises(InvalidParameter, match=r"^Image to video: asset 4 cannot be used\. Cannot read .*"):
        await _run(sandbox, offline, "image_to_video", {"image_asset_id": 4}, inputs, tmp_path)


async def test_a_missing_render_fails_with_advice_and_a_resubmission_gives_the_same_bytes(
    sandbox: SandboxAdapter, offline: SafeHttp, inputs: FakeInputs, tmp_path: Path
) -> None:
    request = _request(sandbox, "text_to_video", {"prompt": "again", "duration": 1}, inputs, tmp_path)
    handle = _handle(request, (await sandbox.submit(offline, request)).provider_job_id)
    (result,) = (await sandbox.poll(offline, handle)).outputs
    assert result.local_path is not None
    before = _sha(result.local_path)
    result.local_path.unlink()  # lost, e.g. the app stopped mid-render or the folder was cleaned

    update: JobUpdate = await sandbox.poll(offline, handle)

    assert update.status is JobStatus.FAILED and isinstance(update.error, ProviderError)
    assert update.error.code == "render_missing" and "Run the job again" in str(update.error)
    await sandbox.submit(offline, request)
    assert _sha(result.local_path) == before


async def test_rendering_leaves_the_event_loop_free(
    sandbox: SandboxAdapter, offline: SafeHttp, inputs: FakeInputs, tmp_path: Path
) -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        await _run(sandbox, offline, "text_to_video", {"prompt": "busy", "duration": 1}, inputs, tmp_path)
    finally:
        ticker.cancel()
    assert ticks >= 5


def test_a_cancelled_render_stops_and_leaves_no_file(tmp_path: Path) -> None:
    frames_drawn = 0

    def cancelled() -> bool:
        nonlocal frames_drawn
        frames_drawn += 1
        return frames_drawn > 3

    with pytest.raises(TransferCancelled, match="cancelled"):
        render.text_to_video(tmp_path / "out.mp4", "stop", 1, size=(64, 48), cancelled=cancelled)

    assert list(tmp_path.iterdir()) == []


async def test_cancelling_a_submission_stops_the_render_and_leaves_nothing(
    sandbox: SandboxAdapter, offline: SafeHttp, inputs: FakeInputs, tmp_path: Path
) -> None:
    params = {"prompt": "long", "duration": 10, "quality": "720p"}  # several seconds of work
    workdir = tmp_path / "work"
    submission = asyncio.create_task(
        sandbox.submit(offline, _request(sandbox, "text_to_video", params, inputs, workdir))
    )
    for _ in range(500):  # until the render has begun
        if workdir.exists() and any(workdir.iterdir()):
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the render never started")

    submission.cancel()
    with pytest.raises(asyncio.CancelledError):
        await submission

    for _ in range(100):  # the worker thread notices before its next frame and removes its partial file
        if not any(workdir.iterdir()):
            break
        await asyncio.sleep(0.02)
    assert list(workdir.iterdir()) == []
