"""The Sora adapter against a fake of the OpenAI Videos API: encodings, inputs, lifecycle, errors."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
import pytest
from PIL import Image

from core.db.enums import JobStatus, MediaType, ProviderRefKind
from core.errors import (
    AuthFailed,
    InsufficientBalance,
    InvalidParameter,
    Moderated,
    ProviderError,
    RateLimited,
    StaleReference,
)
from core.net.http import SafeHttp, with_retries
from core.net.retry import RetryPolicy
from core.providers.base import (
    Credentials,
    GenerationRequest,
    JobHandle,
    JobUpdate,
    ProviderReference,
    SupportsAccountCheck,
    SupportsCancel,
    SupportsGenerate,
    SupportsUpload,
    find_operation,
)
from core.providers.sora import SoraAdapter
from tests.fakes.http_server import FakeHttpServer, Status
from tests.fakes.media import tiny_mp4, tiny_png
from tests.fakes.sora import FakeSora, error_body
from tests.providers.conftest import FakeInputs

KEY = "sk-test-sora-key-0000"
WRONG_KEY = "sk-wrong-key-for-tests-9876"
SORA_VIDEO = "video_0123456789abcdef0123456789abcdef"


@pytest.fixture
def sora(server: FakeHttpServer) -> FakeSora:
    return FakeSora(server, api_key=KEY)


@pytest.fixture
def adapter() -> SoraAdapter:
    return SoraAdapter()


def creds(sora: FakeSora, key: str | None = KEY) -> Credentials:
    return Credentials(api_key=key, base_url=sora.base_url)


def gen_request(
    adapter: SoraAdapter,
    sora: FakeSora,
    inputs: FakeInputs,
    operation: str,
    params: dict[str, Any],
    key: str | None = KEY,
) -> GenerationRequest:
    op = find_operation(adapter, operation)
    workdir = inputs.root.parent / "job"
    return GenerationRequest(op, op.validate(params, "sora"), creds(sora, key), inputs, workdir, "job-1")


def handle(request: GenerationRequest, video_id: str) -> JobHandle:
    return JobHandle(
        video_id, request.operation, request.params, request.credentials, request.workdir, request.job_key
    )


def sora_ref(asset_id: int, video_id: str, expires_at: datetime | None = None) -> ProviderReference:
    return ProviderReference(
        asset_id, "sora", None, ProviderRefKind.VIDEO_ID, video_id, expires_at=expires_at, is_origin=True
    )


async def make_video(
    adapter: SoraAdapter, sora: FakeSora, http: SafeHttp, inputs: FakeInputs, prompt: str = "a fox"
) -> tuple[GenerationRequest, str, JobUpdate]:
    """A finished Sora video: submit text-to-video and poll until it stops."""
    request = gen_request(adapter, sora, inputs, "text_to_video", {"prompt": prompt})
    submitted = await adapter.submit(http, request)
    update = JobUpdate(JobStatus.SUBMITTED)
    for _ in range(sora.polls_to_complete + 1):
        update = await adapter.poll(http, handle(request, submitted.provider_job_id))
        if update.status.is_terminal:
            break
    return request, submitted.provider_job_id, update


# -- identity --------------------------------------------------------------------------------------


def test_capabilities_and_shutdown_notice(adapter: SoraAdapter) -> None:
    assert isinstance(adapter, SupportsGenerate)
    assert isinstance(adapter, SupportsCancel)
    assert isinstance(adapter, SupportsAccountCheck)
    # The Videos API keeps no foreign media under an id: nothing to upload ahead of a job.
    assert not isinstance(adapter, SupportsUpload)
    assert adapter.provider_id == "sora" and adapter.requires_account
    assert "2026-09-24" in adapter.description and "shut down" in adapter.description
    assert {op.id for op in adapter.operations()} == {
        "text_to_video",
        "image_to_video",
        "remix",
        "video_extend",
        "edit",
    }
    assert adapter.origin_reference("video_x", MediaType.VIDEO) is not None
    assert adapter.origin_reference("img", MediaType.IMAGE) is None
    assert adapter.trusted_origins(Credentials(api_key=KEY)) == []


def test_defaults_and_choices_follow_the_api(adapter: SoraAdapter) -> None:
    op = find_operation(adapter, "text_to_video")
    assert op.validate({"prompt": "x"}) == {
        "prompt": "x",
        "model": "sora-2",
        "seconds": "4",
        "size": "720x1280",
    }
    with pytest.raises(InvalidParameter, match="seconds"):
        op.validate({"prompt": "x", "seconds": "5"})
    with pytest.raises(InvalidParameter, match="model"):
        op.validate({"prompt": "x", "model": "sora-1"})


def test_download_source_needs_the_key(adapter: SoraAdapter) -> None:
    ref = sora_ref(1, SORA_VIDEO)
    source = adapter.download_source(ref, Credentials(api_key=KEY))
    assert source is not None
    assert source.url == f"https://api.openai.com/v1/videos/{SORA_VIDEO}/content?variant=video"
    assert source.auth_headers == {"Authorization": f"Bearer {KEY}"}
    assert adapter.download_source(ref, Credentials()) is None


# -- requests --------------------------------------------------------------------------------------


async def test_text_to_video_sends_json_with_the_documented_fields(
    adapter: SoraAdapter, sora: FakeSora, http: SafeHttp, inputs: FakeInputs, server: FakeHttpServer
) -> None:
    request = gen_request(
        adapter,
        sora,
        inputs,
        "text_to_video",
        {"prompt": "a fox in snow", "model": "sora-2-pro", "seconds": "8", "size": "1792x1024"},
    )
    submitted = await adapter.submit(http, request)

    [created] = sora.created
    assert created.endpoint == "/videos" and created.encoding == "json"
    assert created.fields == {
        "prompt": "a fox in snow",
        "model": "sora-2-pro",
        "seconds": "8",
        "size": "1792x1024",
    }
    assert submitted.provider_job_id == created.video_id
    assert submitted.poll_after_s == pytest.approx(1.2)
    assert server.requests[0].header("authorization") == f"Bearer {KEY}"


async def test_image_to_video_sends_the_image_as_multipart_input_reference(
    adapter: SoraAdapter, sora: FakeSora, http: SafeHttp, inputs: FakeInputs
) -> None:
    exact = tiny_png(1, size=(1280, 720))
    inputs.add_file(3, exact, MediaType.IMAGE, "image/png", width=1280, height=720)
    request = gen_request(
        adapter, sora, inputs, "image_to_video", {"prompt": "waves", "image_asset_id": 3, "size": "1280x720"}
    )
    await adapter.submit(http, request)

    [created] = sora.created
    assert created.encoding == "multipart"
    assert created.fields == {"prompt": "waves", "model": "sora-2", "seconds": "4", "size": "1280x720"}
    sent = created.files["input_reference"]
    assert sent.content_type == "image/png"
    assert sent.data == exact  # already the right size: sent untouched
    assert inputs.calls == [("local_file", 3)]


async def test_image_of_another_size_is_fitted_to_the_video_size(
    adapter: SoraAdapter, sora: FakeSora, http: SafeHttp, inputs: FakeInputs
) -> None:
    # The API refuses an input_reference whose dimensions differ from `size` (the fake does too).
    inputs.add_file(3, tiny_png(2, size=(64, 48)), MediaType.IMAGE, "image/png", width=64, height=48)
    request = gen_request(
        adapter, sora, inputs, "image_to_video", {"prompt": "waves", "image_asset_id": 3, "size": "720x1280"}
    )
    submitted = await adapter.submit(http, request)

    [created] = sora.created
    assert submitted.provider_job_id == created.video_id
    with Image.open(io.BytesIO(created.files["input_reference"].data)) as image:
        assert image.size == (720, 1280)


async def test_remix_of_a_sora_video_posts_only_the_prompt(
    adapter: SoraAdapter, sora: FakeSora, http: SafeHttp, inputs: FakeInputs
) -> None:
    _, source_id, _ = await make_video(adapter, sora, http, inputs)
    inputs.refs[5] = sora_ref(5, source_id)
    request = gen_request(adapter, sora, inputs, "remix", {"prompt": "at night", "video_asset_id": 5})
    submitted = await adapter.submit(http, request)

    remix = sora.created[-1]
    assert remix.endpoint == f"/videos/{source_id}/remix"
    assert remix.encoding == "json" and remix.fields == {"prompt": "at night"}
    assert inputs.calls == [("existing_reference", 5)]
    sora.polls_to_complete = 1
    update = await adapter.poll(http, handle(request, submitted.provider_job_id))
    assert update.status is JobStatus.SUCCEEDED
    assert update.outputs[0].metadata["remixed_from_video_id"] == source_id


async def test_remix_of_a_foreign_video_is_refused_before_any_request(
    adapter: SoraAdapter, sora: FakeSora, http: SafeHttp, inputs: FakeInputs, server: FakeHttpServer
) -> None:
    inputs.add_file(6, tiny_mp4(3), MediaType.VIDEO, "video/mp4")
    request = gen_request(adapter, sora, inputs, "remix", {"prompt": "at night", "video_asset_id": 6})
    with pytest.raises(InvalidParameter, match="only works on videos Sora made") as caught:
        await adapter.submit(http, request)
    assert not caught.value.retryable
    assert server.requests == []
    assert inputs.calls == [("existing_reference", 6)]  # the file was not even fetched


@pytest.mark.parametrize(
    ("operation", "endpoint", "extra"),
    [
        ("video_extend", "/videos/extensions", {"seconds": "8"}),
        ("edit", "/videos/edits", {}),
    ],
)
async def test_extend_and_edit_use_sora_s_id_for_its_own_video(
    adapter: SoraAdapter,
    sora: FakeSora,
    http: SafeHttp,
    inputs: FakeInputs,
    operation: str,
    endpoint: str,
    extra: dict[str, str],
) -> None:
    _, source_id, _ = await make_video(adapter, sora, http, inputs)
    inputs.refs[7] = sora_ref(7, source_id)
    request = gen_request(
        adapter, sora, inputs, operation, {"prompt": "then it rains", "video_asset_id": 7, **extra}
    )
    await adapter.submit(http, request)

    sent = sora.created[-1]
    assert sent.endpoint == endpoint and sent.encoding == "json"
    assert sent.fields == {"prompt": "then it rains", "video": {"id": source_id}, **extra}
    assert sent.files == {}
    assert inputs.calls == [("existing_reference", 7)]


@pytest.mark.parametrize(
    ("operation", "endpoint", "extra"),
    [
        ("video_extend", "/videos/extensions", {"seconds": "12"}),
        ("edit", "/videos/edits", {}),
    ],
)
async def test_extend_and_edit_send_the_file_of_a_foreign_video(
    adapter: SoraAdapter,
    sora: FakeSora,
    http: SafeHttp,
    inputs: FakeInputs,
    operation: str,
    endpoint: str,
    extra: dict[str, str],
) -> None:
    clip = tiny_mp4(4)
    inputs.add_file(8, clip, MediaType.VIDEO, "video/mp4")
    request = gen_request(
        adapter, sora, inputs, operation, {"prompt": "then it rains", "video_asset_id": 8, **extra}
    )
    await adapter.submit(http, request)

    [sent] = sora.created
    assert sent.endpoint == endpoint and sent.encoding == "multipart"
    assert sent.fields == {"prompt": "then it rains", **extra}
    assert sent.files["video"].data == clip
    assert sent.files["video"].content_type == "video/mp4"
    assert inputs.calls == [("existing_reference", 8), ("local_file", 8)]


async def test_extend_falls_back_to_the_file_when_sora_s_reference_expired(
    adapter: SoraAdapter, sora: FakeSora, http: SafeHttp, inputs: FakeInputs
) -> None:
    inputs.refs[9] = sora_ref(9, SORA_VIDEO, expires_at=datetime.now(UTC) - timedelta(minutes=1))
    inputs.add_file(9, tiny_mp4(5), MediaType.VIDEO, "video/mp4")
    request = gen_request(adapter, sora, inputs, "video_extend", {"prompt": "more", "video_asset_id": 9})
    await adapter.submit(http, request)

    assert sora.created[0].encoding == "multipart"
    assert inputs.calls == [("existing_reference", 9), ("local_file", 9)]


async def test_extend_sends_the_file_when_sora_no_longer_has_its_video(
    adapter: SoraAdapter, sora: FakeSora, http: SafeHttp, inputs: FakeInputs
) -> None:
    inputs.refs[9] = sora_ref(9, SORA_VIDEO)  # an id the fake never made: answered 404
    inputs.add_file(9, tiny_mp4(5), MediaType.VIDEO, "video/mp4")
    request = gen_request(adapter, sora, inputs, "video_extend", {"prompt": "more", "video_asset_id": 9})
    await adapter.submit(http, request)

    [sent] = sora.created
    assert sent.encoding == "multipart" and "video" in sent.files
    assert inputs.calls == [("existing_reference", 9), ("local_file", 9)]


async def test_remixing_a_video_sora_no_longer_has_is_a_stale_reference(
    adapter: SoraAdapter, sora: FakeSora, http: SafeHttp, inputs: FakeInputs
) -> None:
    inputs.refs[9] = sora_ref(9, SORA_VIDEO)
    request = gen_request(adapter, sora, inputs, "remix", {"prompt": "more", "video_asset_id": 9})
    with pytest.raises(StaleReference, match="not found"):
        await adapter.submit(http, request)
    assert inputs.calls == [("existing_reference", 9)]


# -- lifecycle -------------------------------------------------------------------------------------


async def test_lifecycle_to_a_downloadable_video(
    adapter: SoraAdapter, sora: FakeSora, http: SafeHttp, inputs: FakeInputs
) -> None:
    request = gen_request(
        adapter, sora, inputs, "text_to_video", {"prompt": "a fox", "seconds": "8", "size": "1280x720"}
    )
    submitted = await adapter.submit(http, request)
    job = handle(request, submitted.provider_job_id)

    sora.hold(job.provider_job_id)
    queued = await adapter.poll(http, job)
    assert (queued.status, queued.progress) == (JobStatus.SUBMITTED, 0.0)
    sora.release(job.provider_job_id)

    first, second = await adapter.poll(http, job), await adapter.poll(http, job)
    assert first.status is JobStatus.RUNNING and second.status is JobStatus.RUNNING
    assert first.progress is not None and second.progress is not None
    assert 0 < first.progress < second.progress < 1

    done = await adapter.poll(http, job)
    assert done.status is JobStatus.SUCCEEDED and done.error is None
    [result] = done.outputs
    video = sora.videos[job.provider_job_id]
    assert result.media_type is MediaType.VIDEO and result.mime_type == "video/mp4"
    assert result.provider_asset_id == job.provider_job_id
    assert result.remote_url is None
    assert result.metadata == {"model": "sora-2", "seconds": "8", "size": "1280x720"}
    assert result.reference is not None
    assert result.reference.kind is ProviderRefKind.VIDEO_ID and result.reference.ref == job.provider_job_id
    assert result.reference.expires_at == datetime.fromtimestamp(video.created_at + 3600, UTC)

    assert result.download is not None
    assert result.download.url == f"{sora.base_url}/videos/{job.provider_job_id}/content?variant=video"
    async with http.stream(result.download.url, auth_headers=result.download.auth_headers) as response:
        assert response.status == 200
        body = b"".join([chunk async for chunk in response.iter_chunks()])
    with av.open(io.BytesIO(body), mode="r") as container:
        frames = list(container.decode(video=0))
    assert frames and (frames[0].width, frames[0].height) == (64, 48)

    # The key is what makes the content answer: without it the same URL is refused.
    async with http.stream(result.download.url) as response:
        assert response.status == 401


async def test_content_expires_about_an_hour_after_creation(
    adapter: SoraAdapter, sora: FakeSora, http: SafeHttp, inputs: FakeInputs
) -> None:
    _, _, update = await make_video(adapter, sora, http, inputs)
    source = update.outputs[0].download
    assert source is not None
    sora.advance_clock(3601)
    async with http.stream(source.url, auth_headers=source.auth_headers) as response:
        assert response.status == 404


async def test_poll_honours_openai_poll_after_ms(
    adapter: SoraAdapter, sora: FakeSora, http: SafeHttp, inputs: FakeInputs
) -> None:
    sora.poll_after_ms = 2500
    request = gen_request(adapter, sora, inputs, "text_to_video", {"prompt": "a fox"})
    submitted = await adapter.submit(http, request)
    assert submitted.poll_after_s == pytest.approx(2.5)
    assert (
        await adapter.poll(http, handle(request, submitted.provider_job_id))
    ).poll_after_s == pytest.approx(2.5)

    sora.poll_after_ms = None  # no header: about a second, as the docs advise
    assert (await adapter.poll(http, handle(request, submitted.provider_job_id))).poll_after_s == 1.0


async def test_a_moderated_video_fails_as_moderated(
    adapter: SoraAdapter, sora: FakeSora, http: SafeHttp, inputs: FakeInputs
) -> None:
    sora.fail_next("moderation_blocked", "Your request was blocked by our moderation system.")
    _, _, update = await make_video(adapter, sora, http, inputs)

    assert update.status is JobStatus.FAILED and update.outputs == ()
    assert isinstance(update.error, Moderated)
    assert not update.error.retryable
    assert "blocked by our moderation system" in str(update.error)


async def test_other_failures_carry_openai_s_message(
    adapter: SoraAdapter, sora: FakeSora, http: SafeHttp, inputs: FakeInputs
) -> None:
    sora.fail_next("video_generation_failed", "The render did not finish.")
    _, _, update = await make_video(adapter, sora, http, inputs)

    assert update.status is JobStatus.FAILED
    assert isinstance(update.error, ProviderError) and not isinstance(update.error, Moderated)
    assert "The render did not finish." in str(update.error)
    assert update.error.code == "video_generation_failed"


async def test_a_deleted_video_fails_the_poll_instead_of_raising(
    adapter: SoraAdapter, sora: FakeSora, http: SafeHttp, inputs: FakeInputs
) -> None:
    request = gen_request(adapter, sora, inputs, "text_to_video", {"prompt": "a fox"})
    submitted = await adapter.submit(http, request)
    sora.videos[submitted.provider_job_id].deleted = True
    update = await adapter.poll(http, handle(request, submitted.provider_job_id))
    assert update.status is JobStatus.FAILED
    assert update.error is not None and "no longer knows" in str(update.error)


# -- errors ----------------------------------------------------------------------------------------


async def test_429_with_retry_after_ms_is_rate_limited_in_seconds(
    adapter: SoraAdapter, sora: FakeSora, http: SafeHttp, inputs: FakeInputs
) -> None:
    sora.rate_limit(1, retry_after_ms=1500, retry_after="2")
    request = gen_request(adapter, sora, inputs, "text_to_video", {"prompt": "a fox"})
    with pytest.raises(RateLimited) as caught:
        await adapter.submit(http, request)
    assert caught.value.retryable
    assert caught.value.retry_after == 1.5  # retry-after-ms wins over retry-after
    assert "Rate limit reached" in str(caught.value)
    assert (await adapter.submit(http, request)).provider_job_id  # the limit has passed


async def test_a_long_retry_after_is_not_waited_for_now(
    adapter: SoraAdapter, sora: FakeSora, http: SafeHttp, inputs: FakeInputs
) -> None:
    sora.rate_limit(1, retry_after_ms=None, retry_after="300")
    request = gen_request(adapter, sora, inputs, "text_to_video", {"prompt": "a fox"})
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    with pytest.raises(RateLimited, match="try again later") as caught:
        await with_retries(lambda _: adapter.submit(http, request), RetryPolicy(), sleep=sleep)
    assert caught.value.retry_after == 300 and not caught.value.retryable
    assert slept == [] and len(sora.created) == 0


async def test_insufficient_quota_is_not_a_rate_limit(
    adapter: SoraAdapter, sora: FakeSora, http: SafeHttp, inputs: FakeInputs, server: FakeHttpServer
) -> None:
    body = error_body("You exceeded your current quota.", "insufficient_quota", None, "insufficient_quota")
    server.fail("POST", "/v1/videos", Status(429, {"Content-Type": "application/json"}, body))
    request = gen_request(adapter, sora, inputs, "text_to_video", {"prompt": "a fox"})
    with pytest.raises(InsufficientBalance, match="exceeded your current quota") as caught:
        await adapter.submit(http, request)
    assert not caught.value.retryable


async def test_401_is_auth_failed_without_the_key(
    adapter: SoraAdapter, sora: FakeSora, http: SafeHttp, inputs: FakeInputs
) -> None:
    request = gen_request(adapter, sora, inputs, "text_to_video", {"prompt": "a fox"}, key=WRONG_KEY)
    with pytest.raises(AuthFailed, match="Incorrect API key") as caught:
        await adapter.submit(http, request)
    message = str(caught.value)
    assert WRONG_KEY not in message and KEY not in message
    assert "sk-wrong" not in message and "9876" not in message  # not even OpenAI's masked echo
    assert not caught.value.retryable


async def test_an_invalid_combination_is_refused_with_openai_s_explanation(
    adapter: SoraAdapter, sora: FakeSora, http: SafeHttp, inputs: FakeInputs
) -> None:
    request = gen_request(adapter, sora, inputs, "text_to_video", {"prompt": "a fox", "size": "1920x1080"})
    with pytest.raises(InvalidParameter, match=r"only available with sora-2-pro\. \(param size") as caught:
        await adapter.submit(http, request)
    assert not caught.value.retryable and sora.created == []


async def test_server_errors_are_retryable(
    adapter: SoraAdapter, sora: FakeSora, http: SafeHttp, inputs: FakeInputs, server: FakeHttpServer
) -> None:
    body = error_body("The server had an error while processing your request.", "server_error")
    server.fail("POST", "/v1/videos", Status(503, {"Content-Type": "application/json"}, body))
    request = gen_request(adapter, sora, inputs, "text_to_video", {"prompt": "a fox"})
    with pytest.raises(ProviderError, match="server had an error") as caught:
        await adapter.submit(http, request)
    assert caught.value.retryable


# -- cancel and account ----------------------------------------------------------------------------


async def test_cancel_deletes_the_video(
    adapter: SoraAdapter, sora: FakeSora, http: SafeHttp, inputs: FakeInputs
) -> None:
    request = gen_request(adapter, sora, inputs, "text_to_video", {"prompt": "a fox"})
    submitted = await adapter.submit(http, request)
    job = handle(request, submitted.provider_job_id)

    await adapter.cancel(http, job)
    assert sora.deleted == [submitted.provider_job_id]
    await adapter.cancel(http, job)  # already gone: nothing to complain about
    assert sora.deleted == [submitted.provider_job_id]


async def test_check_account(
    adapter: SoraAdapter, sora: FakeSora, http: SafeHttp, server: FakeHttpServer
) -> None:
    message = await adapter.check_account(http, creds(sora))
    assert "Key accepted" in message and "no videos yet" in message
    assert server.requests[-1].query == {"limit": "1"}

    with pytest.raises(AuthFailed) as caught:
        await adapter.check_account(http, creds(sora, WRONG_KEY))
    assert WRONG_KEY not in str(caught.value)

    with pytest.raises(AuthFailed, match="no API key"):
        await adapter.check_account(http, creds(sora, None))


async def test_check_account_when_the_api_is_gone(
    adapter: SoraAdapter, http: SafeHttp, server: FakeHttpServer, tmp_path: Path
) -> None:
    # No fake mounted: every route answers a plain 404, as a shut-down API might.
    with pytest.raises(ProviderError, match="2026-09-24") as caught:
        await adapter.check_account(http, Credentials(api_key=KEY, base_url=server.url("/v1")))
    assert not isinstance(caught.value, StaleReference)
