"""ComfyUI jobs through the runner, with a client that trusts no plain-http server by default: the
user's configured ComfyUI address alone opens the way (uploads, prompts, result downloads)."""

from __future__ import annotations

from core.db.enums import JobStatus, MediaType, ProviderRefKind
from tests.fakes.comfyui import FakeComfyUI
from tests.fakes.http_server import FakeHttpServer, Reset
from tests.jobs.conftest import JobsEnv

IMAGE_TO_VIDEO = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "{{input_image}}"}},
    "2": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 12}},
    "3": {"class_type": "SaveVideo", "inputs": {"video": ["2", 0], "filename_prefix": "pixsim"}},
}


async def test_comfyui_text_to_image_then_image_to_video_on_the_configured_server(
    comfy_env: JobsEnv, server: FakeHttpServer
) -> None:
    comfy = FakeComfyUI(server)
    await comfy_env.services.accounts.add("comfyui", "workstation", base_url=server.base_url)

    image_job = await comfy_env.generate("comfyui", "text_to_image", {"prompt": "a lighthouse", "seed": 5})
    (image_id,) = image_job.result_asset_ids
    image = await comfy_env.asset(image_id)
    assert (image.media_type, image.mime_type, image.width) == (MediaType.IMAGE, "image/png", 64)
    assert comfy.graphs[0]["3"]["inputs"]["seed"] == 5  # placeholders filled in the bundled workflow

    video_job = await comfy_env.generate(
        "comfyui", "image_to_video", {"image_asset_id": image_id, "workflow": IMAGE_TO_VIDEO}
    )
    (video_id,) = video_job.result_asset_ids
    video = await comfy_env.asset(video_id)
    assert video.media_type is MediaType.VIDEO and video.duration_sec
    # ComfyUI's own output was reused as the input: no upload was needed.
    assert comfy.uploads == []
    refs = await comfy_env.refs(image_id)
    assert [(r.provider_id, r.ref_kind) for r in refs] == [("comfyui", ProviderRefKind.FILE_NAME)]
    (edge,) = await comfy_env.lineage(video_id)
    assert (edge.parent_asset_id, edge.parent_role) == (image_id, "source")


async def test_a_sandbox_image_is_uploaded_to_comfyui_once(
    comfy_env: JobsEnv, server: FakeHttpServer
) -> None:
    comfy = FakeComfyUI(server)
    await comfy_env.services.accounts.add("comfyui", "workstation", base_url=server.base_url)
    image_id = (await comfy_env.generate("sandbox", "text_to_image", {"prompt": "a fox"})).result_asset_ids[0]
    for _ in range(2):
        await comfy_env.generate(
            "comfyui", "image_to_video", {"image_asset_id": image_id, "workflow": IMAGE_TO_VIDEO}
        )
    assert len(comfy.uploads) == 1
    sent = comfy.graphs[-1]["1"]["inputs"]["image"]
    assert sent.startswith("pixsim/") and comfy.graphs[-2]["1"]["inputs"]["image"] == sent


async def test_an_execution_error_fails_the_job_with_comfyuis_message(
    comfy_env: JobsEnv, server: FakeHttpServer
) -> None:
    comfy = FakeComfyUI(server)
    await comfy_env.services.accounts.add("comfyui", "workstation", base_url=server.base_url)
    comfy.fail_next_execution("CUDA out of memory")
    job = await comfy_env.services.jobs.create("comfyui", "text_to_image", {"prompt": "too big"})
    done = await comfy_env.run_until_done(job.id)
    assert done.status is JobStatus.FAILED and "CUDA out of memory" in (done.error_message or "")


async def test_a_lost_answer_from_the_users_own_comfyui_is_simply_sent_again(
    comfy_env: JobsEnv, server: FakeHttpServer
) -> None:
    """A local ComfyUI charges nothing: unlike a paid provider, a submission whose answer was lost is
    sent again rather than left for the user to check."""
    comfy = FakeComfyUI(server)
    await comfy_env.services.accounts.add("comfyui", "workstation", base_url=server.base_url)
    server.fail("POST", "/prompt", Reset(after_bytes=1 << 30))
    done = await comfy_env.generate("comfyui", "text_to_image", {"prompt": "a lighthouse", "seed": 5})
    assert done.status is JobStatus.SUCCEEDED and len(done.result_asset_ids) == 1
    assert server.count("POST", "/prompt") == 2 and len(comfy.prompts) == 1
