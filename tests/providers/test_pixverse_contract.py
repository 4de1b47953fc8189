"""The Pixverse adapter against a local fake that follows the documented platform API: what each operation
sends, the status lifecycle, error classification, the balance check, and the fake's own validation."""

from __future__ import annotations

import hashlib
import io
import logging
import uuid
from typing import Any

import av
import pytest

from core.db.enums import JobStatus, MediaType, OperationType, ParentRole, ProviderRefKind
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
from core.net.http import SafeHttp
from core.providers.base import (
    Credentials,
    GenerationRequest,
    JobHandle,
    ProviderReference,
    SupportsAccountCheck,
    SupportsGenerate,
    SupportsUpload,
    Uploaded,
    UploadRequest,
    find_operation,
)
from core.providers.pixverse import PixverseAdapter
from tests.fakes.http_server import FakeHttpServer, Request, Response
from tests.fakes.media import tiny_mp4, tiny_png
from tests.fakes.pixverse import (
    EXTEND_GENERATE,
    IMG_GENERATE,
    RESULT_PREFIX,
    STATUS_DELETED,
    STATUS_FAILED,
    STATUS_MODERATED,
    TEXT_GENERATE,
    TRANSITION_GENERATE,
    FakePixverse,
    envelope,
)
from tests.providers.conftest import FakeInputs

KEY = "pv-secret-key-7f3a9c"


@pytest.fixture
def pix(server: FakeHttpServer) -> FakePixverse:
    return FakePixverse(server, api_key=KEY)


@pytest.fixture
def adapter() -> PixverseAdapter:
    return PixverseAdapter()


@pytest.fixture
def creds(server: FakeHttpServer) -> Credentials:
    return Credentials(api_key=KEY, base_url=server.base_url)


def _request(
    adapter: PixverseAdapter,
    operation_id: str,
    params: dict[str, Any],
    inputs: FakeInputs,
    creds: Credentials,
    job_key: str = "job-1",
) -> GenerationRequest:
    return GenerationRequest(
        operation=find_operation(adapter, operation_id),
        params=params,
        credentials=creds,
        inputs=inputs,
        workdir=inputs.root,
        job_key=job_key,
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


async def _upload(
    adapter: PixverseAdapter,
    http: SafeHttp,
    creds: Credentials,
    inputs: FakeInputs,
    asset_id: int,
    data: bytes,
    media_type: MediaType,
    mime: str,
) -> ProviderReference:
    """Upload a file through the adapter (as the transfer engine would) and preset its reference."""
    local = inputs.add_file(asset_id, data, media_type, mime)
    done = await adapter.upload(
        http, UploadRequest(local.path, local.size, local.sha256, media_type, mime, creds)
    )
    ref = ProviderReference(
        asset_id, "pixverse", 1, done.kind, done.ref, url=done.url, details=dict(done.details)
    )
    inputs.refs[asset_id] = ref
    return ref


def _video_ref(asset_id: int, video_id: int | str) -> ProviderReference:
    return ProviderReference(asset_id, "pixverse", 1, ProviderRefKind.VIDEO_ID, str(video_id), is_origin=True)


def _generate_requests(server: FakeHttpServer) -> list[Request]:
    return [r for r in server.requests if r.method == "POST" and r.path.endswith("/generate")]


# -- the operations ------------------------------------------------------------------------------------------------


def test_adapter_offers_generation_and_account_check(adapter: PixverseAdapter) -> None:
    assert isinstance(adapter, SupportsGenerate)
    assert isinstance(adapter, SupportsAccountCheck)
    assert isinstance(adapter, SupportsUpload)
    assert [op.id for op in adapter.operations()] == [
        OperationType.TEXT_TO_VIDEO,
        OperationType.IMAGE_TO_VIDEO,
        OperationType.TRANSITION,
        OperationType.VIDEO_EXTEND,
    ]


def test_operation_inputs_record_their_roles_in_the_lineage(adapter: PixverseAdapter) -> None:
    transition = find_operation(adapter, "transition")
    values = transition.validate({"first_frame_asset_id": 3, "last_frame_asset_id": "4", "prompt": "morph"})
    assert [(e.asset_id, e.role) for e in transition.lineage_inputs(values)] == [
        (3, ParentRole.FIRST_FRAME),
        (4, ParentRole.LAST_FRAME),
    ]
    extend = find_operation(adapter, "video_extend")
    assert extend.param("video_asset_id").media_types == (MediaType.VIDEO,)
    assert find_operation(adapter, "image_to_video").param("image_asset_id").media_types == (MediaType.IMAGE,)
    # Defaults that match Pixverse, filled in for what the user left out.
    assert find_operation(adapter, "text_to_video").validate({"prompt": "a fox"}) == {
        "prompt": "a fox",
        "model": "v5",
        "quality": "540p",
        "duration": 5,
        "aspect_ratio": "16:9",
        "motion_mode": "normal",
        "water_mark": False,
    }


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({}, "'prompt' is required"),
        ({"prompt": "x" * 2049}, "2049 characters long; at most 2048"),
        ({"prompt": "a fox", "quality": "4k"}, "'4k' is not one of 360p, 540p, 720p, 1080p"),
        ({"prompt": "a fox", "model": "v2"}, "'v2' is not one of v3.5, v4, v4.5, v5, v5.5, v6"),
        ({"prompt": "a fox", "aspect_ratio": "2:1"}, "'2:1' is not one of"),
        ({"prompt": "a fox", "seed": 2_147_483_648}, "above the maximum 2147483647"),
        ({"prompt": "a fox", "negative_prompt": "n" * 2049}, "at most 2048"),
    ],
)
async def test_invalid_parameters_are_refused_before_any_request(
    adapter: PixverseAdapter,
    pix: FakePixverse,
    server: FakeHttpServer,
    http: SafeHttp,
    inputs: FakeInputs,
    creds: Credentials,
    params: dict[str, Any],
    problem: str,
) -> None:
    request = _request(adapter, "text_to_video", params, inputs, creds)
    with pytest.raises(InvalidParameter, match=problem):
        await adapter.submit(http, request)
    assert server.requests == []


# -- what each operation sends -------------------------------------------------------------------------------------


async def test_text_to_video_sends_the_documented_fields_and_headers(
    adapter: PixverseAdapter,
    pix: FakePixverse,
    server: FakeHttpServer,
    http: SafeHttp,
    inputs: FakeInputs,
    creds: Credentials,
) -> None:
    params = {"prompt": "a fox in snow", "seed": 42, "style": "anime", "aspect_ratio": "9:16", "duration": 8}
    submitted = await adapter.submit(http, _request(adapter, "text_to_video", params, inputs, creds))

    [generation] = pix.generations
    assert submitted.provider_job_id == str(generation.video_id)
    assert generation.path == TEXT_GENERATE
    assert generation.params == {
        "prompt": "a fox in snow",
        "model": "v5",
        "quality": "540p",
        "duration": 8,
        "aspect_ratio": "9:16",
        "motion_mode": "normal",
        "style": "anime",
        "seed": 42,
        "water_mark": False,
    }
    [sent] = _generate_requests(server)
    assert sent.header("API-KEY") == KEY
    assert sent.header("Content-Type") == "application/json"
    assert uuid.UUID(sent.header("Ai-trace-id") or "")

    # A second submit (a retry, or another job) carries a new trace id; the fake refuses a reused one.
    await adapter.submit(http, _request(adapter, "text_to_video", params, inputs, creds))
    first, second = _generate_requests(server)
    assert first.header("Ai-trace-id") != second.header("Ai-trace-id")
    assert len(pix.generations) == 2


async def test_image_to_video_sends_the_uploaded_image_id(
    adapter: PixverseAdapter, pix: FakePixverse, http: SafeHttp, inputs: FakeInputs, creds: Credentials
) -> None:
    ref = await _upload(adapter, http, creds, inputs, 7, tiny_png(1), MediaType.IMAGE, "image/png")
    assert ref.kind == ProviderRefKind.IMAGE_ID
    params = {"image_asset_id": 7, "prompt": "the lake ripples", "quality": "720p", "negative_prompt": "blur"}
    await adapter.submit(http, _request(adapter, "image_to_video", params, inputs, creds))

    [generation] = pix.generations
    assert generation.path == IMG_GENERATE
    assert generation.params == {
        "img_id": int(ref.ref),
        "prompt": "the lake ripples",
        "negative_prompt": "blur",
        "model": "v5",
        "quality": "720p",
        "duration": 5,
        "motion_mode": "normal",
        "water_mark": False,
    }
    assert inputs.calls == [("reference", 7)]


async def test_transition_sends_both_frames_and_a_seed_fixed_for_the_job(
    adapter: PixverseAdapter, pix: FakePixverse, http: SafeHttp, inputs: FakeInputs, creds: Credentials
) -> None:
    first = await _upload(adapter, http, creds, inputs, 1, tiny_png(1), MediaType.IMAGE, "image/png")
    last = await _upload(adapter, http, creds, inputs, 2, tiny_png(2), MediaType.IMAGE, "image/jpeg")
    params = {"first_frame_asset_id": 1, "last_frame_asset_id": 2, "prompt": "day turns to night"}
    for job_key in ("job-a", "job-a", "job-b"):
        await adapter.submit(http, _request(adapter, "transition", params, inputs, creds, job_key=job_key))

    a1, a2, b = pix.generations
    assert a1.path == TRANSITION_GENERATE
    assert set(a1.params) == {
        "prompt",
        "model",
        "quality",
        "duration",
        "motion_mode",
        "seed",
        "first_frame_img",
        "last_frame_img",
    }
    assert (a1.params["first_frame_img"], a1.params["last_frame_img"]) == (int(first.ref), int(last.ref))
    # Pixverse requires a seed here: one derived from the job, so a resubmitted job asks for the same video.
    assert a1.params["seed"] == a2.params["seed"] != b.params["seed"]
    assert 0 <= a1.params["seed"] <= 2_147_483_647

    await adapter.submit(http, _request(adapter, "transition", {**params, "seed": 7}, inputs, creds))
    assert pix.generations[-1].params["seed"] == 7


async def test_extend_of_a_video_pixverse_made_sends_source_video_id_without_uploading(
    adapter: PixverseAdapter, pix: FakePixverse, http: SafeHttp, inputs: FakeInputs, creds: Credentials
) -> None:
    earlier = pix.add_finished_video()
    inputs.refs[5] = _video_ref(5, earlier.video_id)
    params = {"video_asset_id": 5, "prompt": "the camera pulls back", "seed": 3}
    await adapter.submit(http, _request(adapter, "video_extend", params, inputs, creds))

    [generation] = pix.generations
    assert generation.path == EXTEND_GENERATE
    assert generation.params == {
        "source_video_id": earlier.video_id,
        "prompt": "the camera pulls back",
        "seed": 3,
        "model": "v5",
        "quality": "540p",
        "duration": 5,
        "motion_mode": "normal",
        "water_mark": False,
    }
    assert pix.uploads == []


async def test_extend_of_an_uploaded_video_sends_video_media_id(
    adapter: PixverseAdapter, pix: FakePixverse, http: SafeHttp, inputs: FakeInputs, creds: Credentials
) -> None:
    ref = await _upload(adapter, http, creds, inputs, 5, tiny_mp4(9), MediaType.VIDEO, "video/mp4")
    assert ref.kind == ProviderRefKind.MEDIA_ID
    await adapter.submit(
        http, _request(adapter, "video_extend", {"video_asset_id": 5, "prompt": "on"}, inputs, creds)
    )

    [generation] = pix.generations
    assert generation.params["video_media_id"] == int(ref.ref)
    assert "source_video_id" not in generation.params


async def test_extend_refuses_an_audio_or_image_reference_before_any_request(
    adapter: PixverseAdapter,
    pix: FakePixverse,
    server: FakeHttpServer,
    http: SafeHttp,
    inputs: FakeInputs,
    creds: Credentials,
) -> None:
    inputs.refs[5] = ProviderReference(
        5, "pixverse", 1, ProviderRefKind.MEDIA_ID, "1000", details={"media_type": "audio"}
    )
    inputs.refs[6] = ProviderReference(6, "pixverse", 1, ProviderRefKind.IMAGE_ID, "1001")
    for asset_id in (5, 6):
        request = _request(
            adapter, "video_extend", {"video_asset_id": asset_id, "prompt": "on"}, inputs, creds
        )
        with pytest.raises(InvalidParameter, match=f"Pixverse extends videos; asset {asset_id}"):
            await adapter.submit(http, request)
    assert _generate_requests(server) == []


async def test_a_reference_that_is_not_a_pixverse_id_is_stale_before_any_request(
    adapter: PixverseAdapter,
    pix: FakePixverse,
    server: FakeHttpServer,
    http: SafeHttp,
    inputs: FakeInputs,
    creds: Credentials,
) -> None:
    inputs.refs[7] = ProviderReference(
        7, "pixverse", 1, ProviderRefKind.IMAGE_ID, "https://cdn.example/a.png"
    )
    request = _request(adapter, "image_to_video", {"image_asset_id": 7, "prompt": "go"}, inputs, creds)
    with pytest.raises(StaleReference):
        await adapter.submit(http, request)
    assert _generate_requests(server) == []


# -- the lifecycle -------------------------------------------------------------------------------------------------


async def test_a_video_runs_then_succeeds_with_a_result_that_downloads_and_decodes(
    adapter: PixverseAdapter,
    pix: FakePixverse,
    server: FakeHttpServer,
    http: SafeHttp,
    inputs: FakeInputs,
    creds: Credentials,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="core.providers.pixverse")
    pix.polls_until_done = 2
    request = _request(
        adapter, "text_to_video", {"prompt": "a fox", "seed": 11, "quality": "720p"}, inputs, creds
    )
    job = _handle(request, (await adapter.submit(http, request)).provider_job_id)

    for _ in range(2):
        update = await adapter.poll(http, job)
        assert update.status == JobStatus.RUNNING
        assert update.poll_after_s is not None and 1 <= update.poll_after_s <= 30
        assert update.outputs == ()
    # "generating" is a documented status: nothing to report.
    assert [r for r in caplog.records if r.name == "core.providers.pixverse"] == []
    update = await adapter.poll(http, job)
    assert update.status == JobStatus.SUCCEEDED
    [result] = update.outputs
    video = pix.video(int(job.provider_job_id))
    assert result.media_type == MediaType.VIDEO
    assert result.mime_type == "video/mp4"
    assert result.provider_asset_id == job.provider_job_id
    assert result.remote_url == video.url
    assert result.download is not None
    assert (result.download.url, result.download.provider_id, result.download.auth_headers) == (
        video.url,
        "pixverse",
        None,
    )
    assert result.reference == Uploaded(kind=ProviderRefKind.VIDEO_ID, ref=job.provider_job_id, url=video.url)
    assert result.metadata == {"seed": 11, "size": video.size, "outputWidth": 1280, "outputHeight": 720}

    async with http.stream(result.download.url, auth_headers=result.download.auth_headers) as response:
        assert response.status == 200
        body = b"".join([chunk async for chunk in response.iter_chunks()])
    assert len(body) == video.size
    with av.open(io.BytesIO(body), mode="r") as container:
        frames = list(container.decode(video=0))
    assert frames and (frames[0].width, frames[0].height) == (64, 48)
    # The key never travels to the CDN.
    [cdn] = [r for r in server.requests if r.path.startswith("/cdn/")]
    assert cdn.header("API-KEY") is None


async def test_the_result_can_be_extended_by_its_reference(
    adapter: PixverseAdapter, pix: FakePixverse, http: SafeHttp, inputs: FakeInputs, creds: Credentials
) -> None:
    pix.polls_until_done = 0
    request = _request(adapter, "text_to_video", {"prompt": "a fox"}, inputs, creds)
    job = _handle(request, (await adapter.submit(http, request)).provider_job_id)
    [result] = (await adapter.poll(http, job)).outputs
    assert result.reference is not None
    assert adapter.origin_reference(job.provider_job_id, MediaType.VIDEO) == Uploaded(
        ProviderRefKind.VIDEO_ID, job.provider_job_id
    )
    inputs.refs[9] = _video_ref(9, result.reference.ref)
    await adapter.submit(
        http, _request(adapter, "video_extend", {"video_asset_id": 9, "prompt": "on"}, inputs, creds)
    )
    assert pix.generations[-1].params["source_video_id"] == int(job.provider_job_id)


async def test_a_held_video_keeps_running_until_released(
    adapter: PixverseAdapter, pix: FakePixverse, http: SafeHttp, inputs: FakeInputs, creds: Credentials
) -> None:
    request = _request(adapter, "text_to_video", {"prompt": "a fox"}, inputs, creds)
    job = _handle(request, (await adapter.submit(http, request)).provider_job_id)
    pix.hold(int(job.provider_job_id))
    for _ in range(4):
        assert (await adapter.poll(http, job)).status == JobStatus.RUNNING
    pix.release(int(job.provider_job_id))
    assert (await adapter.poll(http, job)).status == JobStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("outcome", "message", "error", "shown"),
    [
        (STATUS_MODERATED, "", Moderated, "content moderation refused video"),
        (STATUS_FAILED, "the model ran out of memory", ProviderError, "the model ran out of memory"),
        (STATUS_DELETED, "", StaleReference, "deleted"),
    ],
)
async def test_a_video_pixverse_gives_up_on_fails_the_job_for_good(
    adapter: PixverseAdapter,
    pix: FakePixverse,
    http: SafeHttp,
    inputs: FakeInputs,
    creds: Credentials,
    outcome: int,
    message: str,
    error: type[ProviderError],
    shown: str,
) -> None:
    pix.next_outcome(outcome, message)
    request = _request(adapter, "text_to_video", {"prompt": "a fox"}, inputs, creds)
    job = _handle(request, (await adapter.submit(http, request)).provider_job_id)
    assert (await adapter.poll(http, job)).status == JobStatus.RUNNING
    update = await adapter.poll(http, job)
    assert update.status == JobStatus.FAILED
    assert update.outputs == ()
    assert type(update.error) is error
    assert shown in str(update.error)
    assert not update.error.retryable


async def test_an_undocumented_status_keeps_the_job_running_and_is_logged(
    adapter: PixverseAdapter,
    pix: FakePixverse,
    server: FakeHttpServer,
    http: SafeHttp,
    inputs: FakeInputs,
    creds: Credentials,
    caplog: pytest.LogCaptureFixture,
) -> None:
    request = _request(adapter, "text_to_video", {"prompt": "a fox"}, inputs, creds)
    job = _handle(request, (await adapter.submit(http, request)).provider_job_id)

    async def queued(_: Request) -> Response:
        return envelope({"id": int(job.provider_job_id), "status": 3, "url": ""})

    server.add_route("GET", RESULT_PREFIX + job.provider_job_id, queued)
    with caplog.at_level(logging.WARNING, logger="core.providers.pixverse"):
        update = await adapter.poll(http, job)
    assert update.status == JobStatus.RUNNING and update.poll_after_s
    assert f"video {job.provider_job_id}: status 3" in caplog.text


# -- errors --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error", "retryable"),
    [
        (500044, RateLimited, True),
        (500069, ProviderUnavailable, True),
        (500100, ProviderUnavailable, True),
        (500043, InsufficientBalance, False),
        (500090, InsufficientBalance, False),
        (500054, Moderated, False),
        (400017, InvalidParameter, False),
    ],
)
async def test_refusals_of_a_generation_are_classified(
    adapter: PixverseAdapter,
    pix: FakePixverse,
    server: FakeHttpServer,
    http: SafeHttp,
    inputs: FakeInputs,
    creds: Credentials,
    code: int,
    error: type[ProviderError],
    retryable: bool,
) -> None:
    pix.fail_envelope(TEXT_GENERATE, code, "refused for a reason")
    request = _request(adapter, "text_to_video", {"prompt": "a fox"}, inputs, creds)
    with pytest.raises(error, match=f"ErrCode {code}: refused for a reason") as caught:
        await adapter.submit(http, request)
    assert caught.value.retryable is retryable
    assert pix.generations == []
    # Trying again (as the runner does for retryable ones) is a new request with a new trace id.
    await adapter.submit(http, request)
    assert len(pix.generations) == 1
    first, second = _generate_requests(server)
    assert first.header("Ai-trace-id") != second.header("Ai-trace-id")


async def test_an_image_id_pixverse_no_longer_knows_is_a_stale_reference(
    adapter: PixverseAdapter, pix: FakePixverse, http: SafeHttp, inputs: FakeInputs, creds: Credentials
) -> None:
    ref = await _upload(adapter, http, creds, inputs, 7, tiny_png(1), MediaType.IMAGE, "image/png")
    pix.forget(int(ref.ref))
    request = _request(adapter, "image_to_video", {"image_asset_id": 7, "prompt": "go"}, inputs, creds)
    with pytest.raises(StaleReference, match="ErrCode 400032"):
        await adapter.submit(http, request)


async def test_extending_a_deleted_pixverse_video_is_a_stale_reference(
    adapter: PixverseAdapter, pix: FakePixverse, http: SafeHttp, inputs: FakeInputs, creds: Credentials
) -> None:
    earlier = pix.add_finished_video()
    pix.delete_video(earlier.video_id)
    inputs.refs[5] = _video_ref(5, earlier.video_id)
    inputs.refs[6] = _video_ref(6, 12345)  # never a Pixverse video
    for asset_id, code in ((5, 500064), (6, 400032)):
        request = _request(
            adapter, "video_extend", {"video_asset_id": asset_id, "prompt": "on"}, inputs, creds
        )
        with pytest.raises(StaleReference, match=f"ErrCode {code}"):
            await adapter.submit(http, request)


async def test_a_combination_the_model_cannot_make_shows_pixverses_reason(
    adapter: PixverseAdapter, pix: FakePixverse, http: SafeHttp, inputs: FakeInputs, creds: Credentials
) -> None:
    params = {"prompt": "a fox", "quality": "1080p", "duration": 8, "model": "v4.5"}
    with pytest.raises(InvalidParameter, match="1080p does not support 8s"):
        await adapter.submit(http, _request(adapter, "text_to_video", params, inputs, creds))


async def test_a_wrong_key_is_auth_failed_and_never_shown(
    adapter: PixverseAdapter, pix: FakePixverse, server: FakeHttpServer, http: SafeHttp, inputs: FakeInputs
) -> None:
    wrong = Credentials(api_key="pv-wrong-key-0000", base_url=server.base_url)
    request = _request(adapter, "text_to_video", {"prompt": "a fox"}, inputs, wrong)
    with pytest.raises(AuthFailed) as on_submit:
        await adapter.submit(http, request)
    with pytest.raises(AuthFailed) as on_poll:
        await adapter.poll(http, _handle(request, "300000000001"))
    with pytest.raises(AuthFailed) as on_check:
        await adapter.check_account(http, wrong)
    for caught in (on_submit, on_poll, on_check):
        assert "pv-wrong-key-0000" not in str(caught.value)
        assert "API key" in str(caught.value)
    assert pix.generations == []

    with pytest.raises(AuthFailed, match="no API key"):
        await adapter.check_account(http, Credentials(api_key=None, base_url=server.base_url))


async def test_an_error_that_echoes_the_key_does_not_show_it(
    adapter: PixverseAdapter, pix: FakePixverse, http: SafeHttp, inputs: FakeInputs, creds: Credentials
) -> None:
    pix.fail_envelope(TEXT_GENERATE, 400017, f"invalid parameter for key {KEY}")
    with pytest.raises(InvalidParameter) as caught:
        await adapter.submit(http, _request(adapter, "text_to_video", {"prompt": "a fox"}, inputs, creds))
    assert KEY not in str(caught.value)
    assert "invalid parameter for key [API key]" in str(caught.value)


async def test_check_account_reports_the_credits(
    adapter: PixverseAdapter, pix: FakePixverse, server: FakeHttpServer, http: SafeHttp, creds: Credentials
) -> None:
    pix.credit_monthly, pix.credit_package = 1_069_020, 3630
    message = await adapter.check_account(http, creds)
    assert message == "Pixverse: 1,072,650 credits left (1,069,020 monthly, 3,630 purchased)."
    [sent] = server.requests
    assert (sent.method, sent.path, sent.header("API-KEY")) == ("GET", "/openapi/v2/account/balance", KEY)
    assert uuid.UUID(sent.header("Ai-trace-id") or "")


async def test_a_status_check_that_fails_to_ask_raises(
    adapter: PixverseAdapter, pix: FakePixverse, http: SafeHttp, inputs: FakeInputs, creds: Credentials
) -> None:
    request = _request(adapter, "text_to_video", {"prompt": "a fox"}, inputs, creds)
    job = _handle(request, (await adapter.submit(http, request)).provider_job_id)
    pix.fail_envelope(RESULT_PREFIX + job.provider_job_id, 500069, "busy")
    with pytest.raises(ProviderUnavailable) as caught:
        await adapter.poll(http, job)
    assert caught.value.retryable
    assert (await adapter.poll(http, job)).status == JobStatus.RUNNING


# -- the fake validates as Pixverse does ---------------------------------------------------------------------------


def _text_body(**changes: Any) -> dict[str, Any]:
    body = {"prompt": "a fox", "model": "v5", "quality": "540p", "duration": 5, "aspect_ratio": "16:9"}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        (TEXT_GENERATE, _text_body(prompt=None), 400011),
        (TEXT_GENERATE, _text_body(prompt=""), 400011),
        (TEXT_GENERATE, _text_body(prompt="p" * 2049), 400018),
        (TEXT_GENERATE, _text_body(negative_prompt="n" * 2049), 400019),
        (TEXT_GENERATE, _text_body(quality="4k"), 400017),
        (TEXT_GENERATE, _text_body(seed=-1), 400017),
        (TEXT_GENERATE, _text_body(img_id=1000), 400017),  # a field the endpoint does not take
        (IMG_GENERATE, _text_body(aspect_ratio=None), 400011),  # no img_id
        (IMG_GENERATE, _text_body(aspect_ratio=None, img_id="https://x.test/a.png"), 400017),
        (IMG_GENERATE, _text_body(aspect_ratio=None, img_id=999_999), 400032),
        (IMG_GENERATE, _text_body(aspect_ratio=None, img_id="MEDIA"), 400032),  # a video's media id
        (EXTEND_GENERATE, _text_body(aspect_ratio=None), 400017),  # neither source
        (
            EXTEND_GENERATE,
            _text_body(aspect_ratio=None, source_video_id="VIDEO", video_media_id="MEDIA"),
            400017,
        ),
        (EXTEND_GENERATE, _text_body(aspect_ratio=None, source_video_id="IMAGE"), 400032),
        (EXTEND_GENERATE, _text_body(aspect_ratio=None, source_video_id="RUNNING"), 400017),
        (EXTEND_GENERATE, _text_body(aspect_ratio=None, video_media_id="AUDIO"), 400017),
        (EXTEND_GENERATE, _text_body(aspect_ratio=None, video_media_id="IMAGE"), 400032),
        (
            TRANSITION_GENERATE,
            _text_body(aspect_ratio=None, first_frame_img="IMAGE", last_frame_img="IMAGE"),
            400011,
        ),
    ],
)
async def test_the_fake_refuses_what_pixverse_refuses(
    adapter: PixverseAdapter,
    pix: FakePixverse,
    server: FakeHttpServer,
    http: SafeHttp,
    inputs: FakeInputs,
    creds: Credentials,
    path: str,
    body: dict[str, Any],
    code: int,
) -> None:
    ids: dict[str, str | int] = {
        "IMAGE": (
            await _upload(adapter, http, creds, inputs, 1, tiny_png(), MediaType.IMAGE, "image/png")
        ).ref,
        "MEDIA": (
            await _upload(adapter, http, creds, inputs, 2, tiny_mp4(), MediaType.VIDEO, "video/mp4")
        ).ref,
        "AUDIO": (
            await _upload(adapter, http, creds, inputs, 3, b"ID3 mp3", MediaType.AUDIO, "audio/mpeg")
        ).ref,
        "VIDEO": pix.add_finished_video().video_id,
    }
    running = _request(adapter, "text_to_video", {"prompt": "still going"}, inputs, creds)
    ids["RUNNING"] = (await adapter.submit(http, running)).provider_job_id
    body = {k: int(ids[v]) if isinstance(v, str) and v in ids else v for k, v in body.items()}
    headers = {"API-KEY": KEY, "Ai-trace-id": str(uuid.uuid4())}
    response = await http.request("POST", server.url(path), headers=headers, json=body)
    assert (response.status_code, response.json()["ErrCode"]) == (200, code), response.json()
    assert len(pix.generations) == 1  # only the running one


async def test_the_fake_serves_each_result_as_a_real_mp4_seeded_by_the_video(
    adapter: PixverseAdapter, pix: FakePixverse, http: SafeHttp, inputs: FakeInputs, creds: Credentials
) -> None:
    pix.polls_until_done = 0
    request = _request(adapter, "text_to_video", {"prompt": "a fox"}, inputs, creds)
    urls = []
    for _ in range(2):
        job = _handle(request, (await adapter.submit(http, request)).provider_job_id)
        [result] = (await adapter.poll(http, job)).outputs
        assert result.remote_url is not None
        urls.append(result.remote_url)
    bodies = [(await http.request("GET", url)).content for url in urls]
    assert bodies[0] != bodies[1]
    assert bodies[0] == tiny_mp4(seed=pix.generations[0].video_id)

    pix.result_body = lambda video_id: hashlib.sha256(str(video_id).encode()).digest()
    job = _handle(request, (await adapter.submit(http, request)).provider_job_id)
    [result] = (await adapter.poll(http, job)).outputs
    assert result.metadata["size"] == 32
