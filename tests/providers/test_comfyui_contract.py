"""The ComfyUI adapter against a fake ComfyUI server that follows ComfyUI's server.py and execution.py."""

from __future__ import annotations

import copy
import hashlib
import io
import socket
from pathlib import Path
from typing import Any

import av
import pytest
from PIL import Image

from core.db.enums import JobStatus, MediaType, ProviderRefKind
from core.errors import InvalidParameter, NetworkError, ProviderError, StaleReference, UnsafeUrl
from core.net.http import SafeHttp
from core.net.policy import UrlPolicy
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
    UploadRequest,
    find_operation,
)
from core.providers.comfyui import DEFAULT_BASE_URL, ComfyUIAdapter, bundled_workflow_path
from tests.fakes.comfyui import FakeComfyUI
from tests.fakes.http_server import FakeHttpServer, Status
from tests.fakes.media import tiny_mp4, tiny_png
from tests.providers.conftest import TEST_TIMEOUT, FakeInputs

IMAGE_TO_VIDEO: dict[str, Any] = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "{{input_image}}"}},
    "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "wan2.2_i2v.safetensors"}},
    "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{prompt}}", "clip": ["2", 1]}},
    "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{negative_prompt}}", "clip": ["2", 1]}},
    "5": {"class_type": "VAEEncode", "inputs": {"pixels": ["1", 0], "vae": ["2", 2]}},
    "6": {
        "class_type": "KSampler",
        "inputs": {
            "seed": "{{seed}}",
            "steps": 20,
            "model": ["2", 0],
            "positive": ["3", 0],
            "negative": ["4", 0],
            "latent_image": ["5", 0],
        },
    },
    "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["2", 2]}},
    "8": {"class_type": "CreateVideo", "inputs": {"images": ["7", 0], "fps": 12.0}},
    "9": {"class_type": "SaveVideo", "inputs": {"video": ["8", 0], "filename_prefix": "video/pixsim"}},
}

# A video workflow with every kind of output: a core video, a still, a VideoHelperSuite video, a preview.
MIXED_OUTPUTS: dict[str, Any] = {
    **copy.deepcopy(IMAGE_TO_VIDEO),
    "10": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "pixsim/still"}},
    "11": {
        "class_type": "VHS_VideoCombine",
        "inputs": {"images": ["7", 0], "frame_rate": 12, "filename_prefix": "vhs", "save_output": True},
    },
    "12": {"class_type": "PreviewImage", "inputs": {"images": ["7", 0]}},
}

VIDEO_EXTEND: dict[str, Any] = {
    "1": {"class_type": "LoadVideo", "inputs": {"file": "{{input_video}}"}},
    "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
    "3": {"class_type": "CreateVideo", "inputs": {"images": ["2", 0], "fps": 12.0}},
    "4": {"class_type": "SaveVideo", "inputs": {"video": ["3", 0], "filename_prefix": "video/extended"}},
}

# What ComfyUI's "Save" writes by default: the editor format, which /prompt cannot run.
UI_FORMAT: dict[str, Any] = {
    "last_node_id": 9,
    "last_link_id": 9,
    "nodes": [{"id": 3, "type": "KSampler", "widgets_values": [156680208700286, "randomize", 20]}],
    "links": [[1, 4, 0, 3, 0, "MODEL"]],
    "groups": [],
    "version": 0.4,
}


@pytest.fixture
def comfy(server: FakeHttpServer) -> FakeComfyUI:
    return FakeComfyUI(server)


@pytest.fixture
def adapter() -> ComfyUIAdapter:
    return ComfyUIAdapter()


@pytest.fixture
def creds(server: FakeHttpServer) -> Credentials:
    return Credentials(base_url=server.base_url)


def make_request(
    adapter: ComfyUIAdapter,
    operation: str,
    params: dict[str, Any],
    creds: Credentials,
    inputs: FakeInputs,
    workdir: Path,
    job_key: str = "job-1",
) -> GenerationRequest:
    op = find_operation(adapter, operation)
    return GenerationRequest(op, op.validate(params, "comfyui"), creds, inputs, workdir, job_key)


def handle_for(request: GenerationRequest, prompt_id: str) -> JobHandle:
    return JobHandle(
        prompt_id, request.operation, request.params, request.credentials, request.workdir, request.job_key
    )


def give_input(comfy: FakeComfyUI, inputs: FakeInputs, asset_id: int, name: str, data: bytes) -> None:
    """An asset already uploaded to ComfyUI's input/pixsim folder, as the job runner would resolve it."""
    comfy.add_input_file(name, data, subfolder="pixsim")
    inputs.refs[asset_id] = ProviderReference(
        asset_id,
        "comfyui",
        None,
        ProviderRefKind.FILE_NAME,
        f"pixsim/{name}",
        details={"subfolder": "pixsim"},
    )


async def fetch(http: SafeHttp, url: str) -> bytes:
    async with http.stream(url) as response:
        assert response.status == 200
        return b"".join([chunk async for chunk in response.iter_chunks()])


async def poll_until_done(
    adapter: ComfyUIAdapter, http: SafeHttp, job: JobHandle, limit: int = 10
) -> JobUpdate:
    for _ in range(limit):
        update = await adapter.poll(http, job)
        if update.status.is_terminal:
            return update
    raise AssertionError("the job did not finish")


def test_the_adapter_offers_every_capability(adapter: ComfyUIAdapter) -> None:
    for protocol in (SupportsUpload, SupportsGenerate, SupportsCancel, SupportsAccountCheck):
        assert isinstance(adapter, protocol)
    assert (adapter.provider_id, adapter.display_name, adapter.requires_account) == (
        "comfyui",
        "ComfyUI",
        False,
    )
    ops = {op.id: op for op in adapter.operations()}
    assert set(ops) == {"text_to_image", "text_to_video", "image_to_video", "image_edit", "video_extend"}
    assert not ops["text_to_image"].param("workflow").required
    for name in ("text_to_video", "image_to_video", "image_edit", "video_extend"):
        assert ops[name].param("workflow").required
    assert ops["image_to_video"].param("image_asset_id").media_types == (MediaType.IMAGE,)
    assert ops["video_extend"].param("video_asset_id").media_types == (MediaType.VIDEO,)
    with pytest.raises(InvalidParameter, match="'workflow' is required"):
        ops["image_to_video"].validate({"image_asset_id": 1}, "comfyui")


# -- uploads -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "media_type", "mime"),
    [(tiny_png(3), MediaType.IMAGE, "image/png"), (tiny_mp4(3), MediaType.VIDEO, "video/mp4")],
)
async def test_upload_returns_a_file_name_that_view_fetches_back_identical(
    adapter: ComfyUIAdapter,
    comfy: FakeComfyUI,
    http: SafeHttp,
    creds: Credentials,
    tmp_path: Path,
    data: bytes,
    media_type: MediaType,
    mime: str,
) -> None:
    path = tmp_path / "input"
    path.write_bytes(data)
    seen: list[tuple[int, int]] = []
    request = UploadRequest(
        path,
        len(data),
        hashlib.sha256(data).hexdigest(),
        media_type,
        mime,
        creds,
        lambda d, t: seen.append((d, t)),
    )

    uploaded = await adapter.upload(http, request)

    assert uploaded.kind == ProviderRefKind.FILE_NAME
    assert uploaded.ref == f"pixsim/{request.filename}"
    assert uploaded.details == {"filename": request.filename, "subfolder": "pixsim", "type": "input"}
    assert comfy.file("input", "pixsim", request.filename) == data
    assert seen and seen[-1] == (len(data), len(data))
    ref = ProviderReference(
        1, "comfyui", None, uploaded.kind, uploaded.ref, url=uploaded.url, details=uploaded.details
    )
    # The transfer engine asks without credentials: the reference itself knows the server.
    source = adapter.download_source(ref, Credentials())
    assert source is not None and source.url.startswith(creds.base_url or "")
    assert await fetch(http, source.url) == data
    # A reference stored without a URL is found through the account's address.
    bare = ProviderReference(1, "comfyui", None, uploaded.kind, uploaded.ref, details=uploaded.details)
    bare_source = adapter.download_source(bare, creds)
    assert bare_source is not None
    assert await fetch(http, bare_source.url) == data


async def test_upload_uses_the_name_comfyui_answers(
    adapter: ComfyUIAdapter, comfy: FakeComfyUI, http: SafeHttp, creds: Credentials, tmp_path: Path
) -> None:
    data = tiny_png(4)
    sha = hashlib.sha256(data).hexdigest()
    path = tmp_path / "input"
    path.write_bytes(data)
    request = UploadRequest(path, len(data), sha, MediaType.IMAGE, "image/png", creds)
    # An older ComfyUI that ignores overwrite, with another file already under our name.
    comfy.ignore_overwrite = True
    comfy.add_input_file(request.filename, b"someone else's file", subfolder="pixsim")

    uploaded = await adapter.upload(http, request)

    renamed = f"{sha[:16]} (1).png"
    assert uploaded.ref == f"pixsim/{renamed}"
    assert comfy.file("input", "pixsim", renamed) == data


async def test_upload_too_large_for_comfyui_says_how_to_raise_the_limit(
    adapter: ComfyUIAdapter,
    server: FakeHttpServer,
    comfy: FakeComfyUI,
    http: SafeHttp,
    creds: Credentials,
    tmp_path: Path,
) -> None:
    path = tmp_path / "big"
    path.write_bytes(tiny_png(5))
    server.fail("POST", "/upload/image", Status(413))
    request = UploadRequest(path, path.stat().st_size, "ab" * 32, MediaType.IMAGE, "image/png", creds)
    with pytest.raises(InvalidParameter, match="--max-upload-size"):
        await adapter.upload(http, request)


# -- submitting workflows ----------------------------------------------------------------------------


async def test_placeholders_are_filled_with_prompt_seed_and_the_uploaded_file_name(
    adapter: ComfyUIAdapter,
    comfy: FakeComfyUI,
    http: SafeHttp,
    creds: Credentials,
    inputs: FakeInputs,
    tmp_path: Path,
) -> None:
    give_input(comfy, inputs, 7, "0123456789abcdef.png", tiny_png(7))
    workflow = copy.deepcopy(IMAGE_TO_VIDEO)
    params = {
        "workflow": workflow,
        "image_asset_id": 7,
        "prompt": "a fox running through snow",
        "negative_prompt": "blurry",
        "seed": 123456789012,
    }
    request = make_request(adapter, "image_to_video", params, creds, inputs, tmp_path)

    submitted = await adapter.submit(http, request)

    assert submitted.provider_job_id in comfy.prompts
    assert submitted.poll_after_s == 1
    graph = comfy.graphs[-1]
    assert graph["1"]["inputs"]["image"] == "pixsim/0123456789abcdef.png"
    assert graph["3"]["inputs"]["text"] == "a fox running through snow"
    assert graph["4"]["inputs"]["text"] == "blurry"
    assert graph["6"]["inputs"]["seed"] == 123456789012  # a number, not text
    assert graph["6"]["inputs"]["model"] == ["2", 0]  # links untouched
    assert ("reference", 7) in inputs.calls
    assert workflow == IMAGE_TO_VIDEO  # the job's own workflow keeps its placeholders for a retry


async def test_video_extend_fills_the_input_video(
    adapter: ComfyUIAdapter,
    comfy: FakeComfyUI,
    http: SafeHttp,
    creds: Credentials,
    inputs: FakeInputs,
    tmp_path: Path,
) -> None:
    give_input(comfy, inputs, 9, "fedcba9876543210.mp4", tiny_mp4(9))
    request = make_request(
        adapter, "video_extend", {"workflow": VIDEO_EXTEND, "video_asset_id": 9}, creds, inputs, tmp_path
    )
    await adapter.submit(http, request)
    assert comfy.graphs[-1]["1"]["inputs"]["file"] == "pixsim/fedcba9876543210.mp4"


async def test_without_a_seed_the_job_gets_the_same_one_on_every_retry(
    adapter: ComfyUIAdapter,
    comfy: FakeComfyUI,
    http: SafeHttp,
    creds: Credentials,
    inputs: FakeInputs,
    tmp_path: Path,
) -> None:
    give_input(comfy, inputs, 7, "0123456789abcdef.png", tiny_png(7))
    params = {"workflow": IMAGE_TO_VIDEO, "image_asset_id": 7, "prompt": "x"}
    for job_key in ("job-a", "job-a", "job-b"):
        await adapter.submit(
            http, make_request(adapter, "image_to_video", params, creds, inputs, tmp_path, job_key)
        )
    seeds = [graph["6"]["inputs"]["seed"] for graph in comfy.graphs]
    assert all(isinstance(seed, int) for seed in seeds)
    assert seeds[0] == seeds[1] != seeds[2]
    assert [graph["4"]["inputs"]["text"] for graph in comfy.graphs] == ["", "", ""]


async def test_text_to_image_runs_the_bundled_workflow_when_none_is_given(
    adapter: ComfyUIAdapter,
    comfy: FakeComfyUI,
    http: SafeHttp,
    creds: Credentials,
    inputs: FakeInputs,
    tmp_path: Path,
) -> None:
    assert bundled_workflow_path().is_file()
    request = make_request(
        adapter, "text_to_image", {"prompt": "a lighthouse", "seed": 5}, creds, inputs, tmp_path
    )
    submitted = await adapter.submit(http, request)

    graph = comfy.graphs[-1]
    classes = sorted(node["class_type"] for node in graph.values())
    assert classes == sorted(
        [
            "CheckpointLoaderSimple",
            "CLIPTextEncode",
            "CLIPTextEncode",
            "EmptyLatentImage",
            "KSampler",
            "VAEDecode",
            "SaveImage",
        ]
    )
    texts = {node["inputs"]["text"] for node in graph.values() if node["class_type"] == "CLIPTextEncode"}
    assert texts == {"a lighthouse", ""}
    assert [n["inputs"]["seed"] for n in graph.values() if n["class_type"] == "KSampler"] == [5]
    update = await poll_until_done(adapter, http, handle_for(request, submitted.provider_job_id))
    assert update.status is JobStatus.SUCCEEDED
    assert [o.media_type for o in update.outputs] == [MediaType.IMAGE]


@pytest.mark.parametrize(
    ("operation", "workflow", "params", "complaint"),
    [
        # An input image given, but nowhere to put it.
        (
            "image_to_video",
            {k: v for k, v in IMAGE_TO_VIDEO.items() if k != "1"}
            | {"5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512}}},
            {"image_asset_id": 7},
            "{{input_image}}",
        ),
        # A negative prompt given, but the workflow has no {{negative_prompt}}.
        (
            "image_to_video",
            {k: v for k, v in IMAGE_TO_VIDEO.items() if k != "4"}
            | {"4": {"class_type": "CLIPTextEncode", "inputs": {"text": "ugly", "clip": ["2", 1]}}},
            {"image_asset_id": 7, "negative_prompt": "blurry"},
            "{{negative_prompt}}",
        ),
        # A video workflow used for text to video: nothing fills {{input_video}}.
        ("text_to_video", VIDEO_EXTEND, {"prompt": "waves"}, "{{input_video}}"),
        # A typo in a placeholder would reach ComfyUI as literal text.
        (
            "text_to_video",
            {"1": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{promt}}"}}},
            {"prompt": "waves"},
            "{{promt}}",
        ),
    ],
)
async def test_a_workflow_that_does_not_fit_the_job_is_refused_before_comfyui_sees_it(
    adapter: ComfyUIAdapter,
    server: FakeHttpServer,
    comfy: FakeComfyUI,
    http: SafeHttp,
    creds: Credentials,
    inputs: FakeInputs,
    tmp_path: Path,
    operation: str,
    workflow: dict[str, Any],
    params: dict[str, Any],
    complaint: str,
) -> None:
    give_input(comfy, inputs, 7, "0123456789abcdef.png", tiny_png(7))
    request = make_request(adapter, operation, {"workflow": workflow, **params}, creds, inputs, tmp_path)
    with pytest.raises(InvalidParameter) as caught:
        await adapter.submit(http, request)
    assert complaint in str(caught.value)
    assert server.count("POST", "/prompt") == 0


@pytest.mark.parametrize(
    "workflow", [UI_FORMAT, {"3": {"type": "KSampler", "widgets_values": [1, 2]}}, {"prompt": IMAGE_TO_VIDEO}]
)
async def test_a_workflow_not_in_api_format_is_refused_with_how_to_export_it(
    adapter: ComfyUIAdapter,
    server: FakeHttpServer,
    comfy: FakeComfyUI,
    http: SafeHttp,
    creds: Credentials,
    inputs: FakeInputs,
    tmp_path: Path,
    workflow: dict[str, Any],
) -> None:
    request = make_request(
        adapter, "text_to_video", {"workflow": workflow, "prompt": "x"}, creds, inputs, tmp_path
    )
    with pytest.raises(InvalidParameter, match=r"Export \(API\)") as caught:
        await adapter.submit(http, request)
    assert "API format" in str(caught.value)
    assert server.count("POST", "/prompt") == 0


async def test_node_errors_from_comfyui_name_the_node_and_the_problem(
    adapter: ComfyUIAdapter,
    comfy: FakeComfyUI,
    http: SafeHttp,
    creds: Credentials,
    inputs: FakeInputs,
    tmp_path: Path,
) -> None:
    give_input(comfy, inputs, 7, "0123456789abcdef.png", tiny_png(7))
    broken = copy.deepcopy(IMAGE_TO_VIDEO)
    broken["7"]["inputs"]["vae"] = ["42", 2]  # a link to a node that is not there
    request = make_request(
        adapter,
        "image_to_video",
        {"workflow": broken, "image_asset_id": 7, "prompt": "x"},
        creds,
        inputs,
        tmp_path,
    )
    with pytest.raises(InvalidParameter) as caught:
        await adapter.submit(http, request)
    message = str(caught.value)
    assert "Prompt outputs failed validation" in message
    assert "node 7 (VAEDecode)" in message and "42" in message
    assert caught.value.code == "prompt_outputs_failed_validation"
    assert not comfy.prompts


async def test_a_refusal_that_is_not_json_is_still_an_invalid_parameter(
    adapter: ComfyUIAdapter,
    server: FakeHttpServer,
    comfy: FakeComfyUI,
    http: SafeHttp,
    creds: Credentials,
    inputs: FakeInputs,
    tmp_path: Path,
) -> None:
    server.fail("POST", "/prompt", Status(400, body=b"400: Bad Request"))
    request = make_request(adapter, "text_to_image", {"prompt": "x"}, creds, inputs, tmp_path)
    with pytest.raises(InvalidParameter, match="Bad Request"):
        await adapter.submit(http, request)


async def test_an_address_that_is_not_comfyui_is_named(
    adapter: ComfyUIAdapter, server: FakeHttpServer, http: SafeHttp, inputs: FakeInputs, tmp_path: Path
) -> None:
    creds = Credentials(base_url=server.base_url + "/not-comfyui")  # answers 404 to everything
    request = make_request(adapter, "text_to_image", {"prompt": "x"}, creds, inputs, tmp_path)
    with pytest.raises(ProviderError, match="is this the address of a ComfyUI server") as caught:
        await adapter.submit(http, request)
    assert not isinstance(caught.value, StaleReference) and not caught.value.retryable


async def test_a_missing_custom_node_says_to_install_it(
    adapter: ComfyUIAdapter,
    comfy: FakeComfyUI,
    http: SafeHttp,
    creds: Credentials,
    inputs: FakeInputs,
    tmp_path: Path,
) -> None:
    workflow = copy.deepcopy(VIDEO_EXTEND) | {
        "5": {"class_type": "RIFE VFI", "inputs": {"frames": ["2", 0]}},
        "1": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{prompt}}"}},
    }
    request = make_request(
        adapter, "text_to_video", {"workflow": workflow, "prompt": "x"}, creds, inputs, tmp_path
    )
    with pytest.raises(InvalidParameter, match="RIFE VFI") as caught:
        await adapter.submit(http, request)
    assert "custom node" in str(caught.value)


async def test_an_input_file_comfyui_lost_is_a_stale_reference(
    adapter: ComfyUIAdapter,
    comfy: FakeComfyUI,
    http: SafeHttp,
    creds: Credentials,
    inputs: FakeInputs,
    tmp_path: Path,
) -> None:
    give_input(comfy, inputs, 7, "0123456789abcdef.png", tiny_png(7))
    comfy.remove_input_file(
        "0123456789abcdef.png", subfolder="pixsim"
    )  # the user cleaned ComfyUI's input folder
    request = make_request(
        adapter, "image_to_video", {"workflow": IMAGE_TO_VIDEO, "image_asset_id": 7}, creds, inputs, tmp_path
    )
    with pytest.raises(StaleReference, match=r"pixsim/0123456789abcdef\.png"):
        await adapter.submit(http, request)


# -- lifecycle ---------------------------------------------------------------------------------------


async def test_pending_then_running_then_success_with_downloadable_image_and_videos(
    adapter: ComfyUIAdapter,
    server: FakeHttpServer,
    http: SafeHttp,
    creds: Credentials,
    inputs: FakeInputs,
    tmp_path: Path,
) -> None:
    comfy = FakeComfyUI(server, pending_polls=1, running_polls=1)
    give_input(comfy, inputs, 7, "0123456789abcdef.png", tiny_png(7))
    request = make_request(
        adapter, "image_to_video", {"workflow": MIXED_OUTPUTS, "image_asset_id": 7}, creds, inputs, tmp_path
    )
    submitted = await adapter.submit(http, request)
    job = handle_for(request, submitted.provider_job_id)

    statuses = [(await adapter.poll(http, job)).status for _ in range(2)]
    assert statuses == [JobStatus.SUBMITTED, JobStatus.RUNNING]
    done = await adapter.poll(http, job)

    assert done.status is JobStatus.SUCCEEDED and done.error is None
    by_node = {o.metadata["node_id"]: o for o in done.outputs}
    assert set(by_node) == {"9", "10", "11"}  # the preview (node 12, a temp file) is not an output
    assert [by_node[n].media_type for n in ("9", "10", "11")] == [
        MediaType.VIDEO,
        MediaType.IMAGE,
        MediaType.VIDEO,
    ]
    assert [by_node[n].mime_type for n in ("9", "10", "11")] == ["video/mp4", "image/png", "video/mp4"]
    still = by_node["10"]
    assert still.provider_asset_id == f"{job.provider_job_id}/pixsim/{still.metadata['filename']}"
    assert still.reference is not None and still.reference.kind == ProviderRefKind.FILE_NAME
    assert still.reference.ref == f"pixsim/{still.metadata['filename']} [output]"
    # The output can feed a later job without an upload, and be fetched again without credentials.
    assert still.provider_asset_id is not None
    origin = adapter.origin_reference(still.provider_asset_id, MediaType.IMAGE)
    assert origin is not None and origin.ref == still.reference.ref
    again = adapter.download_source(
        ProviderReference(
            5, "comfyui", None, ProviderRefKind.FILE_NAME, still.reference.ref, url=still.reference.url
        ),
        Credentials(),
    )
    assert again is not None and still.download is not None
    assert await fetch(http, again.url) == await fetch(http, still.download.url)
    for output in done.outputs:
        assert output.download is not None and output.download.provider_id == "comfyui"
        assert "type=output" in output.download.url
        body = await fetch(http, output.download.url)
        if output.media_type is MediaType.IMAGE:
            with Image.open(io.BytesIO(body)) as image:
                assert image.size == (64, 48)
        else:
            with av.open(io.BytesIO(body), mode="r") as container:
                frames = len(list(container.decode(video=0)))
            assert frames > 1


async def test_routes_under_api_work_too(
    adapter: ComfyUIAdapter,
    server: FakeHttpServer,
    comfy: FakeComfyUI,
    http: SafeHttp,
    inputs: FakeInputs,
    tmp_path: Path,
) -> None:
    creds = Credentials(base_url=server.base_url + "/api")
    request = make_request(adapter, "text_to_image", {"prompt": "a lighthouse"}, creds, inputs, tmp_path)
    submitted = await adapter.submit(http, request)
    update = await poll_until_done(adapter, http, handle_for(request, submitted.provider_job_id))
    assert update.status is JobStatus.SUCCEEDED
    assert update.outputs[0].download is not None
    assert "/api/view?" in update.outputs[0].download.url
    assert Image.open(io.BytesIO(await fetch(http, update.outputs[0].download.url))).format == "PNG"
    assert server.count("POST", "/api/prompt") == 1 and server.count("POST", "/prompt") == 0


async def test_an_execution_error_fails_the_job_with_comfyuis_message(
    adapter: ComfyUIAdapter,
    comfy: FakeComfyUI,
    http: SafeHttp,
    creds: Credentials,
    inputs: FakeInputs,
    tmp_path: Path,
) -> None:
    comfy.fail_next_execution(
        "Allocation on device 0 would exceed allowed memory. (out of memory)",
        exception_type="torch.OutOfMemoryError",
        node_id="3",
    )
    request = make_request(adapter, "text_to_image", {"prompt": "a lighthouse"}, creds, inputs, tmp_path)
    submitted = await adapter.submit(http, request)

    update = await poll_until_done(adapter, http, handle_for(request, submitted.provider_job_id))

    assert update.status is JobStatus.FAILED and not update.outputs
    assert isinstance(update.error, ProviderError)
    assert "would exceed allowed memory" in str(update.error)
    assert "node 3 (KSampler)" in str(update.error)
    assert update.error.code == "torch.OutOfMemoryError"


async def test_a_workflow_that_only_previews_fails_saying_why(
    adapter: ComfyUIAdapter,
    comfy: FakeComfyUI,
    http: SafeHttp,
    creds: Credentials,
    inputs: FakeInputs,
    tmp_path: Path,
) -> None:
    workflow = {k: v for k, v in IMAGE_TO_VIDEO.items() if k not in ("8", "9")} | {
        "8": {"class_type": "PreviewImage", "inputs": {"images": ["7", 0]}}
    }
    give_input(comfy, inputs, 7, "0123456789abcdef.png", tiny_png(7))
    request = make_request(
        adapter, "image_edit", {"workflow": workflow, "image_asset_id": 7}, creds, inputs, tmp_path
    )
    submitted = await adapter.submit(http, request)
    update = await poll_until_done(adapter, http, handle_for(request, submitted.provider_job_id))
    assert update.status is JobStatus.FAILED
    assert update.error is not None and "saved no files" in str(update.error)


# -- cancel --------------------------------------------------------------------------------------------


async def test_cancel_interrupts_a_running_prompt(
    adapter: ComfyUIAdapter,
    server: FakeHttpServer,
    http: SafeHttp,
    creds: Credentials,
    inputs: FakeInputs,
    tmp_path: Path,
) -> None:
    comfy = FakeComfyUI(server, running_polls=5)
    request = make_request(adapter, "text_to_image", {"prompt": "x"}, creds, inputs, tmp_path)
    submitted = await adapter.submit(http, request)
    job = handle_for(request, submitted.provider_job_id)
    assert (await adapter.poll(http, job)).status is JobStatus.RUNNING

    await adapter.cancel(http, job)

    assert comfy.interrupts == [job.provider_job_id] and comfy.deleted == []
    update = await adapter.poll(http, job)
    assert update.status is JobStatus.CANCELLED and not update.outputs


async def test_cancel_removes_a_queued_prompt_from_the_queue(
    adapter: ComfyUIAdapter,
    server: FakeHttpServer,
    http: SafeHttp,
    creds: Credentials,
    inputs: FakeInputs,
    tmp_path: Path,
) -> None:
    comfy = FakeComfyUI(server, pending_polls=5)
    request = make_request(adapter, "text_to_image", {"prompt": "x"}, creds, inputs, tmp_path)
    submitted = await adapter.submit(http, request)
    job = handle_for(request, submitted.provider_job_id)
    assert (await adapter.poll(http, job)).status is JobStatus.SUBMITTED

    await adapter.cancel(http, job)

    assert comfy.deleted == [job.provider_job_id] and comfy.interrupts == []
    # A prompt that left the queue without running is never reported as running or done.
    update = await adapter.poll(http, job)
    assert update.status is JobStatus.FAILED and update.error is not None
    assert "removed from ComfyUI's queue" in str(update.error)


async def test_cancel_after_the_prompt_finished_stops_nothing(
    adapter: ComfyUIAdapter,
    comfy: FakeComfyUI,
    http: SafeHttp,
    creds: Credentials,
    inputs: FakeInputs,
    tmp_path: Path,
) -> None:
    request = make_request(adapter, "text_to_image", {"prompt": "x"}, creds, inputs, tmp_path)
    submitted = await adapter.submit(http, request)
    job = handle_for(request, submitted.provider_job_id)
    assert (await poll_until_done(adapter, http, job)).status is JobStatus.SUCCEEDED
    await adapter.cancel(http, job)
    assert comfy.interrupts == [] and comfy.deleted == []


# -- account check and trust ---------------------------------------------------------------------------


async def test_check_account_names_the_version_and_the_device(
    adapter: ComfyUIAdapter, comfy: FakeComfyUI, http: SafeHttp, creds: Credentials
) -> None:
    message = await adapter.check_account(http, creds)
    assert "ComfyUI 0.3.40" in message and "NVIDIA GeForce RTX 4090" in message


async def test_check_account_with_comfyui_not_running_says_to_start_it() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"  # nothing listens here any more: connection refused
    adapter = ComfyUIAdapter()
    creds = Credentials(base_url=base)
    http = SafeHttp(UrlPolicy()).trusting(*adapter.trusted_origins(creds))
    try:
        with pytest.raises(NetworkError) as caught:
            await adapter.check_account(http, creds)
    finally:
        await http.aclose()
    message = str(caught.value)
    assert base in message and "is ComfyUI running?" in message and "server address" in message
    assert caught.value.retryable


async def test_trusted_origins_allow_plain_http_to_the_configured_server_only(
    adapter: ComfyUIAdapter, server: FakeHttpServer, comfy: FakeComfyUI, creds: Credentials
) -> None:
    assert adapter.trusted_origins(Credentials()) == [DEFAULT_BASE_URL]
    assert adapter.trusted_origins(creds) == [server.base_url]

    plain = SafeHttp(UrlPolicy(), timeout=TEST_TIMEOUT)
    trusting = plain.trusting(*adapter.trusted_origins(creds))
    try:
        with pytest.raises(UnsafeUrl):  # without the trust, http to a loopback server is refused
            await adapter.check_account(plain, creds)
        assert "ComfyUI" in await adapter.check_account(trusting, creds)
        other_port = server.base_url.rsplit(":", 1)[0] + ":1"
        for other in (other_port, "http://example.com"):
            with pytest.raises(UnsafeUrl):
                await adapter.check_account(trusting, Credentials(base_url=other))
    finally:
        await plain.aclose()
    assert server.count("GET", "/system_stats") == 1
