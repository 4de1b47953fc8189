"""The seeds' examples end to end: generate on one provider, use the result on another by asset id.

Real database, real store, real Sandbox renders, the built-in adapters against fake Pixverse and Sora
servers on 127.0.0.1. Counts are taken on the fakes' side: what actually crossed the wire.
"""

from __future__ import annotations

import asyncio

import pytest

from core.db.enums import JobStatus, MediaType, ParentRole, ProviderRefKind
from tests.fakes.pixverse import MEDIA_UPLOAD, FakePixverse
from tests.fakes.sora import FakeSora
from tests.jobs.conftest import JobsEnv

PIXVERSE_KEY = "pv-test-key-123"
SORA_KEY = "sk-test-sora-key-0000"


@pytest.fixture
async def pixverse(jobs_env: JobsEnv) -> FakePixverse:
    fake = FakePixverse(jobs_env.server, api_key=PIXVERSE_KEY)
    await jobs_env.services.accounts.add(
        "pixverse", "main", api_key=PIXVERSE_KEY, base_url=jobs_env.server.base_url
    )
    jobs_env.services.registry.get("pixverse").poll_interval_s = 0.02  # type: ignore[attr-defined]
    return fake


@pytest.fixture
async def sora(jobs_env: JobsEnv) -> FakeSora:
    fake = FakeSora(jobs_env.server, api_key=SORA_KEY, polls_to_complete=2, poll_after_ms=20)
    await jobs_env.services.accounts.add("sora", "main", api_key=SORA_KEY, base_url=fake.base_url)
    return fake


def _cdn_gets(env: JobsEnv) -> int:
    """Downloads of Pixverse result videos (their CDN paths in the fake)."""
    return sum(1 for r in env.server.requests if r.method == "GET" and r.path.startswith("/cdn/pixverse/"))


async def test_example_1_sandbox_video_extended_on_pixverse(
    jobs_env: JobsEnv, pixverse: FakePixverse
) -> None:
    made = await jobs_env.generate(
        "sandbox", "text_to_video", {"prompt": "cat dancing", "duration": 1, "seed": 3}
    )
    (source_id,) = made.result_asset_ids
    source = await jobs_env.asset(source_id)
    assert (source.provider_id, source.media_type, source.duration_sec) == ("sandbox", MediaType.VIDEO, 1.0)

    extend = {"video_asset_id": source_id, "prompt": "cat continues dancing in rain"}
    first = await jobs_env.generate("pixverse", "video_extend", extend)
    (child_id,) = first.result_asset_ids
    # One upload of the source to Pixverse, used by the extend as an uploaded video.
    assert len(pixverse.uploads) == 1 and pixverse.uploads[0].kind == "media"
    assert pixverse.generations[-1].params["video_media_id"] == pixverse.uploads[0].id
    (edge,) = await jobs_env.lineage(child_id)
    assert (edge.parent_asset_id, edge.parent_role, edge.operation) == (source_id, "source", "video_extend")
    assert (edge.provider_id, edge.job_id) == ("pixverse", first.id)
    assert edge.transformation["prompt"] == "cat continues dancing in rain"
    child = await jobs_env.asset(child_id)
    assert child.provider_id == "pixverse" and child.sha256 and child.duration_sec
    assert _cdn_gets(jobs_env) == 1  # the result was downloaded at once, exactly once

    # The same input again: the cached Pixverse id is reused, nothing is uploaded.
    second = await jobs_env.generate("pixverse", "video_extend", extend)
    assert len(pixverse.uploads) == 1
    assert jobs_env.server.count("POST", MEDIA_UPLOAD) == 1
    assert second.result_asset_ids != first.result_asset_ids

    # Pixverse's own result is extended by source_video_id: no upload at all.
    await jobs_env.generate("pixverse", "video_extend", {"video_asset_id": child_id, "prompt": "and on"})
    assert pixverse.generations[-1].params["source_video_id"] == int(child.provider_asset_id or 0)
    assert len(pixverse.uploads) == 1
    assert _cdn_gets(jobs_env) == 3  # one per result; the inputs never needed a download


async def test_example_1_pixverse_video_extended_on_sora(
    jobs_env: JobsEnv, pixverse: FakePixverse, sora: FakeSora
) -> None:
    made = await jobs_env.generate("pixverse", "text_to_video", {"prompt": "cat dancing"})
    (source_id,) = made.result_asset_ids
    assert _cdn_gets(jobs_env) == 1

    extend = {"video_asset_id": source_id, "prompt": "cat continues dancing in rain"}
    first = await jobs_env.generate("sora", "video_extend", extend)
    # Sora keeps no foreign uploads: the file travels with the request, from the local cache.
    created = sora.created[-1]
    assert created.endpoint == "/videos/extensions" and "video" in created.files
    source = await jobs_env.asset(source_id)
    assert (
        created.files["video"].data
        == (jobs_env.services.transfers.store.object_path(source.sha256 or "")).read_bytes()
    )
    (child_id,) = first.result_asset_ids
    (edge,) = await jobs_env.lineage(child_id)
    assert (edge.parent_asset_id, edge.parent_role, edge.provider_id) == (source_id, "source", "sora")

    # A second job with the same input: a cache hit, no second download from Pixverse's CDN.
    await jobs_env.generate("sora", "video_extend", extend)
    assert _cdn_gets(jobs_env) == 1  # the result, downloaded once when the Pixverse job finished
    assert sora.created[-1].files["video"].data == created.files["video"].data

    # Sora's own result is extended by its id: no file travels.
    await jobs_env.generate("sora", "video_extend", {"video_asset_id": child_id, "prompt": "more rain"})
    assert sora.created[-1].files == {} and sora.created[-1].fields["video"] == {
        "id": (await jobs_env.asset(child_id)).provider_asset_id
    }
    refs = await jobs_env.refs(child_id)
    assert [(r.provider_id, r.ref_kind, r.is_origin) for r in refs] == [
        ("sora", ProviderRefKind.VIDEO_ID, True)
    ]


async def test_example_4_storyboard_records_one_edge_per_keyframe(jobs_env: JobsEnv) -> None:
    first = await jobs_env.generate("sandbox", "text_to_image", {"prompt": "a castle", "seed": 1})
    second = await jobs_env.generate("sandbox", "text_to_image", {"prompt": "a dragon", "seed": 2})
    (image_a,), (image_b,) = first.result_asset_ids, second.result_asset_ids
    keyframes = [
        {"asset_id": image_a, "frame": 0, "action": "zoom_in"},
        {"asset_id": image_b, "frame": 20, "action": "pan_left"},
    ]
    job = await jobs_env.generate(
        "sandbox", "text_to_video", {"prompt": "storyboard", "duration": 1, "keyframes": keyframes}
    )
    (video_id,) = job.result_asset_ids
    edges = await jobs_env.lineage(video_id)
    assert [(e.parent_asset_id, e.parent_role, e.parent_frame, e.sequence_order) for e in edges] == [
        (image_a, ParentRole.KEYFRAME.value, 0, 0),
        (image_b, ParentRole.KEYFRAME.value, 20, 1),
    ]
    assert [e.transformation["action"] for e in edges] == ["zoom_in", "pan_left"]
    assert all(e.job_id == job.id and e.operation == "text_to_video" for e in edges)


async def test_inputs_are_checked_before_anything_is_queued(jobs_env: JobsEnv) -> None:
    image = (await jobs_env.generate("sandbox", "text_to_image", {"prompt": "x"})).result_asset_ids[0]
    from core.errors import InvalidParameter

    with pytest.raises(InvalidParameter, match=f"needs a video, but asset {image} is an image"):
        await jobs_env.services.jobs.create("sandbox", "video_extend", {"video_asset_id": image})
    with pytest.raises(InvalidParameter, match=r"Asset 999999 \(video_asset_id\) is not in the library"):
        await jobs_env.services.jobs.create("sandbox", "video_extend", {"video_asset_id": 999999})
    assert [j.status for j in await jobs_env.services.jobs.list()] == [JobStatus.SUCCEEDED]


async def test_a_stale_pixverse_image_id_is_uploaded_again_once(
    jobs_env: JobsEnv, pixverse: FakePixverse
) -> None:
    image = (await jobs_env.generate("sandbox", "text_to_image", {"prompt": "a fox"})).result_asset_ids[0]
    await jobs_env.generate("pixverse", "image_to_video", {"image_asset_id": image, "prompt": "it runs"})
    assert len(pixverse.uploads) == 1
    pixverse.forget(pixverse.uploads[0].id)  # Pixverse deleted the upload
    await jobs_env.generate("pixverse", "image_to_video", {"image_asset_id": image, "prompt": "it jumps"})
    assert len(pixverse.uploads) == 2
    assert pixverse.generations[-1].params["img_id"] == pixverse.uploads[1].id


async def test_cancelling_a_sora_job_asks_sora_to_stop_it(jobs_env: JobsEnv, sora: FakeSora) -> None:
    sora.polls_to_complete = 10_000  # it stays in progress until cancelled
    job = await jobs_env.services.jobs.create("sora", "text_to_video", {"prompt": "never mind"})
    stop = asyncio.Event()
    runner = asyncio.ensure_future(jobs_env.services.runner.run(stop))
    try:
        async with asyncio.timeout(20):
            while (await jobs_env.services.jobs.get(job.id)).status is not JobStatus.RUNNING:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            (video_id,) = sora.videos
            await jobs_env.services.jobs.cancel(job.id)
            while video_id not in sora.deleted:  # noqa: ASYNC110 (the fake's state)
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await runner
    assert (await jobs_env.services.jobs.get(job.id)).status is JobStatus.CANCELLED
    assert await jobs_env.count_assets() == 0
