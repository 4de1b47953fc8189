"""ComfyUI: the user's own workflows on the user's own ComfyUI server (default http://127.0.0.1:8188).

Contract: ../shared/design/PROVIDERS.md, checked against ComfyUI's ``server.py`` and ``execution.py``:

- ``POST /upload/image`` stores any file (videos too) under ``input/<subfolder>``; without
  ``overwrite=true`` a clashing name becomes ``name (1).ext``, so the name in the answer is the one used.
  A graph refers to the file as ``<subfolder>/<name>``; a file in the output folder as ``<name> [output]``.
- ``POST /prompt`` answers 400 ``{error: {type, message, details, extra_info}, node_errors}``;
  ``node_errors`` maps a node id to ``{class_type, errors: [{type, message, details, extra_info}]}``.
  A missing custom node is ``error.type == "missing_node_type"`` with empty ``node_errors``.
- ``GET /history/{id}`` is ``{}`` until the prompt has finished (or for an unknown id). The status
  ``messages`` are ``[event, data]`` pairs; a failure has ``execution_error`` (``exception_message``,
  ``exception_type``, ``node_id``, ``node_type``), an interrupt has ``execution_interrupted``.
- ``GET /queue`` lists ``queue_running`` / ``queue_pending`` items ``[number, prompt_id, graph, ...]``.
- ``POST /interrupt`` takes an optional ``{"prompt_id"}`` (newer versions then only stop that prompt);
  ``POST /queue {"delete": [ids]}`` removes pending prompts.
- Core ``SaveImage`` lists its files under ``images``; core ``SaveVideo``/``SaveWEBM`` and
  ``SaveAnimatedWEBP`` also under ``images`` with ``animated: [true]``; VideoHelperSuite's
  ``VHS_VideoCombine`` under ``gifs``. Previews are ``type: "temp"`` files, which we skip.
- ``GET /system_stats`` → ``{system: {comfyui_version, ...}, devices: [{name, type, vram_free, ...}]}``.
- ``GET /ws?clientId=<id>`` (WebSocket) reports a running prompt only to the client id it was submitted
  with, so every prompt goes out with this adapter's ``client_id`` (one per adapter, i.e. per process)
  and ``comfyui_progress`` listens there. ``GET /history`` stays the only word on the outcome; the
  socket only adds ``progress`` to RUNNING. Without it (an old ComfyUI, a proxy), polling alone works
  as before. A queue item carries the graph (``[number, prompt_id, graph, extra, outputs]``): a prompt
  submitted by an earlier run is counted from it, though its messages go to that run's client id.
"""

from __future__ import annotations

import copy
import hashlib
import json
import mimetypes
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlencode

import httpx

from core.db.enums import JobStatus, MediaType, OperationType, ParentRole, ProviderRefKind
from core.errors import (
    InvalidParameter,
    NetworkError,
    ProviderError,
    ProviderUnavailable,
    StaleReference,
)
from core.net.http import SafeHttp, error_for_status
from core.providers.base import (
    Credentials,
    GenerationRequest,
    JobHandle,
    JobUpdate,
    ProgressReader,
    ProviderReference,
    ResultFile,
    Submitted,
    Uploaded,
    UploadRequest,
)
from core.providers.comfyui_progress import ProgressListener, ProgressListeners
from core.providers.spec import Operation, Param, ParamKind
from core.transfer.download import DownloadSource

PROVIDER_ID = "comfyui"
DEFAULT_BASE_URL = "http://127.0.0.1:8188"
UPLOAD_SUBFOLDER = "pixsim"
POLL_AFTER_S = 1.0
# How long a submission waits for the progress socket to open first (a local server answers in ms):
# ComfyUI reports a prompt's first steps at once, to whoever is connected then.
SOCKET_WAIT_S = 2.0
SEED_MAX = 0xFFFF_FFFF_FFFF_FFFF  # ComfyUI's KSampler accepts any unsigned 64-bit seed

PLACEHOLDERS = ("prompt", "negative_prompt", "seed", "input_image", "input_video")
_TEXT_PLACEHOLDERS = ("prompt", "negative_prompt")

EXPORT_HINT = (
    "In ComfyUI, export the workflow in the API format: menu Workflow → Export (API) "
    "(older versions: enable 'Dev mode' in the settings, then 'Save (API Format)')."
)

# Where outputs are listed in a node's output entry (see the module docstring).
_OUTPUT_KEYS = ("images", "gifs", "videos")
_KEY_MEDIA = {"images": MediaType.IMAGE, "gifs": MediaType.VIDEO, "videos": MediaType.VIDEO}
_EXT_MEDIA = {
    ".png": MediaType.IMAGE,
    ".jpg": MediaType.IMAGE,
    ".jpeg": MediaType.IMAGE,
    ".webp": MediaType.IMAGE,
    ".gif": MediaType.IMAGE,
    ".bmp": MediaType.IMAGE,
    ".tif": MediaType.IMAGE,
    ".tiff": MediaType.IMAGE,
    ".mp4": MediaType.VIDEO,
    ".webm": MediaType.VIDEO,
    ".mov": MediaType.VIDEO,
    ".mkv": MediaType.VIDEO,
    ".avi": MediaType.VIDEO,
    ".flac": MediaType.AUDIO,
    ".mp3": MediaType.AUDIO,
    ".wav": MediaType.AUDIO,
    ".opus": MediaType.AUDIO,
    ".glb": MediaType.MODEL_3D,
}
_EXT_MIME = {
    ".webp": "image/webp",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".flac": "audio/flac",
    ".opus": "audio/ogg",
    ".glb": "model/gltf-binary",
}

# A long "Value not in list" detail lists every model file; keep messages readable.
_MAX_DETAIL = 240
_MAX_NODE_ERRORS = 5


def resources_dir() -> Path:
    """The ``resources`` directory: beside ``core`` both in a source checkout and in an installed wheel."""
    return Path(__file__).resolve().parents[2] / "resources"


def bundled_workflow_path(name: str = "text_to_image") -> Path:
    return resources_dir() / "comfyui" / f"{name}.json"


def load_bundled_workflow(name: str = "text_to_image") -> dict[str, Any]:
    with bundled_workflow_path(name).open(encoding="utf-8") as f:
        graph = json.load(f)
    if not isinstance(graph, dict):
        raise ValueError(f"the bundled ComfyUI workflow {name} is not a JSON object")
    return graph


# -- operations ------------------------------------------------------------------------------------


def _workflow_param(required: bool) -> Param:
    help_text = (
        "A workflow saved from ComfyUI in the API format ({node_id: {class_type, inputs}}). Inputs whose "
        "value is exactly {{prompt}}, {{negative_prompt}}, {{seed}}, {{input_image}} or {{input_video}} "
        "are filled in by PixSim."
    )
    if not required:
        help_text += " Leave empty for the bundled Stable Diffusion text-to-image workflow."
    return Param("workflow", ParamKind.JSON, "Workflow (API format)", required=required, help=help_text)


def _text_params(prompt_required: bool) -> tuple[Param, ...]:
    return (
        Param(
            "prompt",
            ParamKind.PROMPT,
            required=prompt_required,
            help="Replaces {{prompt}} in the workflow.",
        ),
        Param(
            "negative_prompt",
            ParamKind.PROMPT,
            help="Replaces {{negative_prompt}} in the workflow.",
            advanced=True,
        ),
        Param(
            "seed",
            ParamKind.INT,
            minimum=0,
            maximum=SEED_MAX,
            help="Replaces {{seed}}; when empty, a seed derived from the job (the same on a retry).",
            advanced=True,
        ),
    )


def _asset_param(name: str, media: MediaType, label: str) -> Param:
    return Param(
        name,
        ParamKind.ASSET,
        label,
        required=True,
        media_types=(media,),
        role=ParentRole.SOURCE.value,
        help=f"Uploaded to ComfyUI; replaces {{{{input_{media.value}}}}} in the workflow.",
    )


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        OperationType.TEXT_TO_IMAGE.value,
        "Text to image",
        MediaType.IMAGE,
        (_workflow_param(required=False), *_text_params(prompt_required=True)),
        "Runs a text-to-image workflow (by default a bundled Stable Diffusion one) on your ComfyUI.",
    ),
    Operation(
        OperationType.TEXT_TO_VIDEO.value,
        "Text to video",
        MediaType.VIDEO,
        (_workflow_param(required=True), *_text_params(prompt_required=True)),
        "Runs your text-to-video workflow on your ComfyUI.",
    ),
    Operation(
        OperationType.IMAGE_TO_VIDEO.value,
        "Image to video",
        MediaType.VIDEO,
        (
            _workflow_param(required=True),
            _asset_param("image_asset_id", MediaType.IMAGE, "Image"),
            *_text_params(prompt_required=False),
        ),
        "Runs your image-to-video workflow; the image fills {{input_image}}.",
    ),
    Operation(
        OperationType.IMAGE_EDIT.value,
        "Image edit",
        MediaType.IMAGE,
        (
            _workflow_param(required=True),
            _asset_param("image_asset_id", MediaType.IMAGE, "Image"),
            *_text_params(prompt_required=False),
        ),
        "Runs your image-editing workflow; the image fills {{input_image}}.",
    ),
    Operation(
        OperationType.VIDEO_EXTEND.value,
        "Extend video",
        MediaType.VIDEO,
        (
            _workflow_param(required=True),
            _asset_param("video_asset_id", MediaType.VIDEO, "Video"),
            *_text_params(prompt_required=False),
        ),
        "Runs your video workflow; the video fills {{input_video}}.",
    ),
)

# Which asset parameter fills which input placeholder.
_INPUT_PLACEHOLDERS = {"image_asset_id": "input_image", "video_asset_id": "input_video"}


# -- workflow checks and placeholders ----------------------------------------------------------------


def check_api_format(graph: Mapping[str, Any]) -> None:
    """Raise InvalidParameter unless ``graph`` is an API-format workflow ``{node_id: {class_type, inputs}}``."""
    if isinstance(graph.get("nodes"), list) or isinstance(graph.get("links"), list):
        raise _invalid(
            "This workflow is in ComfyUI's editor (UI) format, with 'nodes' and 'links'; PixSim needs the "
            f"API format. {EXPORT_HINT}",
            "workflow_ui_format",
        )
    if isinstance(graph.get("prompt"), dict) and "class_type" not in graph["prompt"]:
        raise _invalid(
            "This looks like a whole /prompt request ({'prompt': ...}); give only the workflow graph "
            f"itself. {EXPORT_HINT}",
            "workflow_not_api_format",
        )
    if not graph:
        raise _invalid(f"The workflow is empty. {EXPORT_HINT}", "workflow_not_api_format")
    for node_id, node in graph.items():
        if (
            not isinstance(node, Mapping)
            or not isinstance(node.get("class_type"), str)
            or not isinstance(node.get("inputs"), Mapping)
        ):
            raise _invalid(
                f"The workflow is not in ComfyUI's API format: node {node_id!r} has no 'class_type' and "
                f"'inputs'. {EXPORT_HINT}",
                "workflow_not_api_format",
            )


def _walk_strings(graph: Mapping[str, Any]) -> Iterator[str]:
    for node in graph.values():
        for value in node["inputs"].values():
            if isinstance(value, str):
                yield value


def placeholders_in(graph: Mapping[str, Any]) -> set[str]:
    """The names of the placeholders the graph uses (input values exactly ``{{name}}``)."""
    found: set[str] = set()
    for value in _walk_strings(graph):
        if value.startswith("{{") and value.endswith("}}"):
            found.add(value[2:-2])
    return found


def fill_placeholders(graph: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``graph`` with every input value exactly ``{{name}}`` replaced by ``values[name]``."""
    filled: dict[str, Any] = copy.deepcopy(dict(graph))
    for node in filled.values():
        inputs = node["inputs"]
        for key, value in inputs.items():
            if isinstance(value, str) and value.startswith("{{") and value.endswith("}}"):
                name = value[2:-2]
                if name in values:
                    inputs[key] = values[name]
    return filled


def _invalid(message: str, code: str) -> InvalidParameter:
    return InvalidParameter(message, provider_id=PROVIDER_ID, code=code)


def _derived_seed(job_key: str) -> int:
    return int.from_bytes(hashlib.sha256(job_key.encode()).digest()[:4], "big") & 0x7FFF_FFFF


def _braces(name: str) -> str:
    return "{{" + name + "}}"


# -- small helpers ---------------------------------------------------------------------------------


def _short(text: Any) -> str:
    value = " ".join(str(text).split())
    return value if len(value) <= _MAX_DETAIL else value[: _MAX_DETAIL - 1] + "…"


def _json(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ProviderUnavailable(
            f"ComfyUI answered {what} with something that is not JSON", provider_id=PROVIDER_ID
        ) from None


def _file_ref(filename: str, subfolder: str, folder_type: str) -> str:
    """How a graph names a file: ``sub/name`` in the input folder, ``sub/name [output]`` elsewhere."""
    name = f"{subfolder}/{filename}" if subfolder else filename
    return name if folder_type == "input" else f"{name} [{folder_type}]"


def _media_of(filename: str, key: str) -> tuple[MediaType, str]:
    ext = PurePosixPath(filename).suffix.lower()
    media = _EXT_MEDIA.get(ext, _KEY_MEDIA.get(key, MediaType.IMAGE))
    mime = _EXT_MIME.get(ext) or mimetypes.types_map.get(ext) or "application/octet-stream"
    return media, mime


def _queue_items(items: Any) -> dict[str, frozenset[str]]:
    """Queue items ``[number, prompt_id, graph, ...]`` as prompt id → the graph's node ids."""
    found: dict[str, frozenset[str]] = {}
    if isinstance(items, list):
        for item in items:
            if isinstance(item, list | tuple) and len(item) > 1:
                graph = item[2] if len(item) > 2 and isinstance(item[2], dict) else {}
                found[str(item[1])] = frozenset(str(node) for node in graph)
    return found


class ComfyUIAdapter:
    provider_id = PROVIDER_ID
    display_name = "ComfyUI"
    description = (
        "Runs your own ComfyUI workflows on your own ComfyUI server (by default http://127.0.0.1:8188). "
        "No account or key needed; an account can set another server address."
    )
    requires_account = False
    repeatable_submit = True

    def __init__(self) -> None:
        # ComfyUI sends a prompt's progress to the client id it came with: one id for all our prompts.
        self.client_id = uuid.uuid4().hex
        self.progress = ProgressListeners(self.client_id)

    async def aclose(self) -> None:
        """Close the progress sockets (jobs still poll; a later poll opens them again)."""
        await self.progress.aclose()

    def _listener(self, http: SafeHttp, base: str) -> ProgressListener:
        return self.progress.ensure(base, http.policy, http.tls)

    def _forget(self, base: str, prompt_id: str) -> None:
        listener = self.progress.get(base)
        if listener is not None:
            listener.forget(prompt_id)

    # -- addresses ---------------------------------------------------------------------------------

    def _base(self, credentials: Credentials) -> str:
        return (credentials.base_url or DEFAULT_BASE_URL).rstrip("/")

    def view_url(self, base: str, filename: str, subfolder: str, folder_type: str) -> str:
        query = urlencode({"filename": filename, "subfolder": subfolder, "type": folder_type})
        return f"{base.rstrip('/')}/view?{query}"

    def trusted_origins(self, credentials: Credentials) -> list[str]:
        # The user configured this server (or runs it on the default loopback address): plain http is fine.
        return [self._base(credentials)]

    async def _request(
        self, http: SafeHttp, method: str, base: str, path: str, what: str, **kwargs: Any
    ) -> httpx.Response:
        try:
            return await http.request(method, base + path, **kwargs)
        except NetworkError as exc:
            # SafeHttp raises "from None": the httpx error is still the context.
            if isinstance(exc.__context__, httpx.ConnectError | httpx.ConnectTimeout):
                raise NetworkError(
                    f"Cannot connect to ComfyUI at {base} for {what}: is ComfyUI running? Start it, or "
                    f"correct the server address of the ComfyUI account ({exc})."
                ) from None
            raise

    def _status_error(self, response: httpx.Response, what: str, detail: str | None = None) -> ProviderError:
        if response.status_code == 404:
            # Not a stale reference: the address answers, but not as ComfyUI does.
            return ProviderError(
                f"The server at {response.request.url.scheme}://{response.request.url.netloc.decode()} answered "
                f"404 to {what}: is this the address of a ComfyUI server?",
                provider_id=PROVIDER_ID,
                code="404",
            )
        return error_for_status(
            response.status_code,
            response.headers,
            str(response.request.url),
            provider_id=PROVIDER_ID,
            what=what,
            reason=response.reason_phrase,
            detail=detail,
        )

    # -- upload ------------------------------------------------------------------------------------

    async def upload(self, http: SafeHttp, request: UploadRequest) -> Uploaded:
        base = self._base(request.credentials)
        what = f"the upload of {request.filename}"
        with request.path.open("rb") as raw:
            body = ProgressReader(raw, request.size, request.progress)
            files = {"image": (request.filename, body, request.mime_type or "application/octet-stream")}
            data = {"type": "input", "subfolder": UPLOAD_SUBFOLDER, "overwrite": "true"}
            response = await self._request(http, "POST", base, "/upload/image", what, files=files, data=data)
        if response.status_code == 413:
            raise InvalidParameter(
                f"ComfyUI refused {what}: the file is larger than its upload limit (start ComfyUI with "
                "--max-upload-size <MB> to raise it).",
                provider_id=PROVIDER_ID,
                code="413",
            )
        if response.status_code != 200:
            raise self._status_error(response, what)
        answer = _json(response, what)
        name = answer.get("name") if isinstance(answer, dict) else None
        if not isinstance(name, str) or not name:
            raise ProviderUnavailable(f"ComfyUI's answer to {what} had no file name", provider_id=PROVIDER_ID)
        subfolder = str(answer.get("subfolder") or "")
        folder_type = str(answer.get("type") or "input")
        return Uploaded(
            kind=ProviderRefKind.FILE_NAME,
            ref=_file_ref(name, subfolder, folder_type),
            # Downloads get no credentials: the address of this server travels with the reference.
            url=self.view_url(base, name, subfolder, folder_type),
            details={"filename": name, "subfolder": subfolder, "type": folder_type},
        )

    # -- references --------------------------------------------------------------------------------

    def origin_reference(self, provider_asset_id: str, media_type: MediaType) -> Uploaded | None:
        # "<prompt_id>/<subfolder>/<filename>": a graph reads it from the output folder, no upload needed.
        parts = provider_asset_id.split("/")
        if len(parts) < 3 or not parts[-1]:
            return None
        filename, subfolder = parts[-1], "/".join(parts[1:-1])
        return Uploaded(
            kind=ProviderRefKind.FILE_NAME,
            ref=_file_ref(filename, subfolder, "output"),
            details={"filename": filename, "subfolder": subfolder, "type": "output"},
        )

    def download_source(self, ref: ProviderReference, credentials: Credentials) -> DownloadSource | None:
        if ref.kind != ProviderRefKind.FILE_NAME:
            return None
        if ref.url:
            return DownloadSource(url=ref.url, provider_id=PROVIDER_ID)
        details = ref.details or {}
        folder_type = str(details.get("type") or "input")
        name = ref.ref
        if name.endswith("]") and " [" in name:
            name, _, annotated = name[:-1].rpartition(" [")
            folder_type = annotated
        if "filename" in details:
            filename, subfolder = str(details["filename"]), str(details.get("subfolder") or "")
        else:
            subfolder, _, filename = name.rpartition("/")
        return DownloadSource(
            url=self.view_url(self._base(credentials), filename, subfolder, folder_type),
            provider_id=PROVIDER_ID,
        )

    # -- generation --------------------------------------------------------------------------------

    def operations(self) -> tuple[Operation, ...]:
        return OPERATIONS

    async def _graph_for(self, request: GenerationRequest) -> tuple[dict[str, Any], list[str]]:
        """The workflow with its placeholders filled, and the input file names it refers to."""
        params = request.params
        workflow = params.get("workflow")
        if workflow is None:
            if request.operation.id != OperationType.TEXT_TO_IMAGE.value:
                raise _invalid(
                    f"{request.operation.label} on ComfyUI needs your workflow (API format). {EXPORT_HINT}",
                    "workflow_required",
                )
            workflow = load_bundled_workflow("text_to_image")
        if not isinstance(workflow, Mapping):
            raise _invalid(f"The workflow must be a JSON object. {EXPORT_HINT}", "workflow_not_api_format")
        check_api_format(workflow)

        used = placeholders_in(workflow)
        unknown = sorted(used - set(PLACEHOLDERS))
        if unknown:
            known = ", ".join(_braces(p) for p in PLACEHOLDERS)
            raise _invalid(
                f"The workflow uses {', '.join(_braces(u) for u in unknown)}, which PixSim does not "
                f"fill in (it knows {known}).",
                "unknown_placeholder",
            )

        values: dict[str, Any] = {}
        problems: list[str] = []
        for name in _TEXT_PLACEHOLDERS:
            given = params.get(name)
            if given not in (None, ""):
                if name not in used:
                    problems.append(
                        f"a {name.replace('_', ' ')} was given but the workflow has no input set to "
                        f"{_braces(name)}"
                    )
                values[name] = str(given)
            else:
                values[name] = ""
        seed = params.get("seed")
        if seed is not None and "seed" not in used:
            problems.append(f"a seed was given but the workflow has no input set to {_braces('seed')}")
        values["seed"] = int(seed) if seed is not None else _derived_seed(request.job_key)

        inputs: list[str] = []
        for param in request.operation.input_params:
            placeholder = _INPUT_PLACEHOLDERS.get(param.name)
            asset_id = params.get(param.name)
            if placeholder is None or asset_id is None:
                continue
            if placeholder not in used:
                problems.append(
                    f"an input {placeholder.removeprefix('input_')} was given but the workflow has no "
                    f"input set to {_braces(placeholder)} (put it in the file name of its Load node)"
                )
                continue
            ref = await request.inputs.reference(int(asset_id))
            values[placeholder] = ref.ref
            inputs.append(ref.ref)
        for placeholder in ("input_image", "input_video"):
            if placeholder in used and placeholder not in values:
                problems.append(
                    f"the workflow expects {_braces(placeholder)}, which {request.operation.label.lower()} "
                    "does not provide"
                )
        if problems:
            raise _invalid(
                f"This workflow does not fit {request.operation.label.lower()}: " + "; ".join(problems) + ".",
                "workflow_placeholders",
            )
        return fill_placeholders(workflow, values), inputs

    async def submit(self, http: SafeHttp, request: GenerationRequest) -> Submitted:
        graph, inputs = await self._graph_for(request)
        base = self._base(request.credentials)
        body = {"prompt": graph, "client_id": self.client_id}
        what = "the workflow"
        listener = self._listener(http, base)
        listener.start()
        await listener.wait_settled(SOCKET_WAIT_S)
        await request.sending()
        response = await self._request(http, "POST", base, "/prompt", what, json=body)
        if response.status_code == 400:
            try:
                refusal = response.json()
            except ValueError:
                raise self._status_error(response, what, response.text[:200] or None) from None
            raise self._refusal(refusal, inputs)
        if response.status_code != 200:
            raise self._status_error(response, what)
        answer = _json(response, what)
        prompt_id = answer.get("prompt_id") if isinstance(answer, dict) else None
        if not prompt_id:
            raise ProviderUnavailable(
                "ComfyUI queued the workflow but gave no prompt_id", provider_id=PROVIDER_ID
            )
        listener.track(str(prompt_id), graph)
        return Submitted(str(prompt_id), poll_after_s=POLL_AFTER_S)

    def _refusal(self, answer: Any, inputs: list[str]) -> ProviderError:
        """A 400 from /prompt as an error: which nodes ComfyUI refused, and why."""
        answer = answer if isinstance(answer, dict) else {}
        error = answer.get("error")
        if isinstance(error, dict):
            error_type = str(error.get("type") or "invalid_prompt")
            headline = str(error.get("message") or error_type)
            details = str(error.get("details") or "")
        else:
            error_type, headline, details = "invalid_prompt", str(error or "invalid workflow"), ""
        lines: list[str] = []
        node_errors = answer.get("node_errors")
        texts: list[str] = []
        if isinstance(node_errors, dict):
            for node_id, node in node_errors.items():
                if not isinstance(node, dict):
                    continue
                for item in node.get("errors") or []:
                    if not isinstance(item, dict):
                        continue
                    message = str(item.get("message") or item.get("type") or "error")
                    detail = str(item.get("details") or "")
                    texts.append(f"{message} {detail}")
                    text = f"{message}: {detail}" if detail else message
                    lines.append(f"node {node_id} ({node.get('class_type', '?')}): {_short(text)}")
        # An input file ComfyUI no longer has (its input folder was cleaned): upload it again.
        for name in inputs:
            if any(name in text for text in texts):
                return StaleReference(
                    f"ComfyUI no longer has the input file {name}; it will be uploaded again.",
                    provider_id=PROVIDER_ID,
                    code=error_type,
                )
        message = f"ComfyUI refused the workflow: {headline}"
        if details and not lines:
            message += f" ({_short(details)})"
        if lines:
            shown = lines[:_MAX_NODE_ERRORS]
            more = len(lines) - len(shown)
            message += " — " + "; ".join(shown) + (f"; and {more} more" if more else "")
        if error_type == "missing_node_type":
            message += ". Install the missing custom node in ComfyUI, or use a workflow without it"
        return InvalidParameter(message + ".", provider_id=PROVIDER_ID, code=error_type)

    async def poll(self, http: SafeHttp, job: JobHandle) -> JobUpdate:
        base = self._base(job.credentials)
        prompt_id = job.provider_job_id
        entry = await self._history(http, base, prompt_id)
        if entry is None:
            running, pending = await self._queue(http, base)
            if prompt_id in running or prompt_id in pending:
                listener = self._listener(http, base)
                listener.track(prompt_id, running.get(prompt_id) or pending.get(prompt_id))
                if prompt_id in running:
                    progress = listener.fraction(prompt_id)
                    return JobUpdate(JobStatus.RUNNING, progress=progress, poll_after_s=POLL_AFTER_S)
                return JobUpdate(JobStatus.SUBMITTED, poll_after_s=POLL_AFTER_S)
            # It may have finished between the two requests: ask once more before calling it lost.
            entry = await self._history(http, base, prompt_id)
            if entry is None:
                self._forget(base, prompt_id)
                return JobUpdate(
                    JobStatus.FAILED,
                    error=ProviderError(
                        f"ComfyUI has no record of prompt {prompt_id}: it was removed from ComfyUI's queue, "
                        "or ComfyUI was restarted before it finished.",
                        provider_id=PROVIDER_ID,
                        code="prompt_lost",
                    ),
                )
        self._forget(base, prompt_id)
        return self._finished(base, prompt_id, entry)

    async def _history(self, http: SafeHttp, base: str, prompt_id: str) -> dict[str, Any] | None:
        what = f"the status of prompt {prompt_id}"
        response = await self._request(http, "GET", base, f"/history/{prompt_id}", what)
        if response.status_code != 200:
            raise self._status_error(response, what)
        answer = _json(response, what)
        entry = answer.get(prompt_id) if isinstance(answer, dict) else None
        return entry if isinstance(entry, dict) else None

    async def _queue(
        self, http: SafeHttp, base: str
    ) -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
        """The running and the pending prompts, each with its graph's node ids."""
        what = "the queue"
        response = await self._request(http, "GET", base, "/queue", what)
        if response.status_code != 200:
            raise self._status_error(response, what)
        answer = _json(response, what)
        if not isinstance(answer, dict):
            return {}, {}
        return _queue_items(answer.get("queue_running")), _queue_items(answer.get("queue_pending"))

    def _finished(self, base: str, prompt_id: str, entry: dict[str, Any]) -> JobUpdate:
        raw_status = entry.get("status")
        # Very old ComfyUI versions had no status: an entry in the history then means it finished.
        status: dict[str, Any] = raw_status if isinstance(raw_status, dict) else {}
        messages = [m for m in status.get("messages") or [] if isinstance(m, list | tuple) and len(m) == 2]
        if status.get("status_str") == "error":
            for event, data in messages:
                data = data if isinstance(data, dict) else {}
                if event == "execution_interrupted":
                    return JobUpdate(
                        JobStatus.CANCELLED,
                        error=ProviderError(
                            f"The run was interrupted in ComfyUI (node {data.get('node_id')}).",
                            provider_id=PROVIDER_ID,
                            code="interrupted",
                        ),
                    )
                if event == "execution_error":
                    where = f"node {data.get('node_id')} ({data.get('node_type', '?')})"
                    kind = str(data.get("exception_type") or "error")
                    text = str(data.get("exception_message") or "").strip() or "no message"
                    return JobUpdate(
                        JobStatus.FAILED,
                        error=ProviderError(
                            f"ComfyUI failed in {where}: {kind}: {text}", provider_id=PROVIDER_ID, code=kind
                        ),
                    )
            return JobUpdate(
                JobStatus.FAILED,
                error=ProviderError(
                    "ComfyUI reports that the run failed, without a reason.", provider_id=PROVIDER_ID
                ),
            )
        outputs = self._outputs(base, prompt_id, entry.get("outputs"))
        if not outputs:
            return JobUpdate(
                JobStatus.FAILED,
                error=ProviderError(
                    "The workflow finished but saved no files. Use a save node (Save Image, Save Video) "
                    "rather than a preview node, whose files ComfyUI deletes.",
                    provider_id=PROVIDER_ID,
                    code="no_outputs",
                ),
            )
        return JobUpdate(JobStatus.SUCCEEDED, progress=1.0, outputs=tuple(outputs))

    def _outputs(self, base: str, prompt_id: str, outputs: Any) -> list[ResultFile]:
        results: list[ResultFile] = []
        seen: set[tuple[str, str]] = set()
        if not isinstance(outputs, dict):
            return results
        for node_id, node_output in outputs.items():
            if not isinstance(node_output, dict):
                continue
            for key in _OUTPUT_KEYS:
                for item in node_output.get(key) or []:
                    if not isinstance(item, dict) or item.get("type", "output") != "output":
                        continue  # previews live in ComfyUI's temp folder and are deleted
                    filename = item.get("filename")
                    if not isinstance(filename, str) or not filename:
                        continue
                    subfolder = str(item.get("subfolder") or "")
                    if (subfolder, filename) in seen:
                        continue
                    seen.add((subfolder, filename))
                    media, mime = _media_of(filename, key)
                    url = self.view_url(base, filename, subfolder, "output")
                    asset_id = f"{prompt_id}/{subfolder}/{filename}"
                    # A later job on this server reads the file from the output folder: no upload.
                    reference = Uploaded(
                        kind=ProviderRefKind.FILE_NAME,
                        ref=_file_ref(filename, subfolder, "output"),
                        url=url,
                        details={"filename": filename, "subfolder": subfolder, "type": "output"},
                    )
                    results.append(
                        ResultFile(
                            media_type=media,
                            download=DownloadSource(url=url, provider_id=PROVIDER_ID),
                            mime_type=mime,
                            provider_asset_id=asset_id,
                            remote_url=url,
                            reference=reference,
                            metadata={"node_id": str(node_id), "filename": filename, "subfolder": subfolder},
                        )
                    )
        return results

    # -- cancel and account check ------------------------------------------------------------------

    async def cancel(self, http: SafeHttp, job: JobHandle) -> None:
        base = self._base(job.credentials)
        prompt_id = job.provider_job_id
        running, pending = await self._queue(http, base)
        if prompt_id in running:
            # Newer ComfyUI stops only this prompt when named; older ones stop whatever runs (ours).
            what = f"the interruption of prompt {prompt_id}"
            response = await self._request(
                http, "POST", base, "/interrupt", what, json={"prompt_id": prompt_id}
            )
        elif prompt_id in pending:
            what = f"the removal of prompt {prompt_id} from the queue"
            response = await self._request(http, "POST", base, "/queue", what, json={"delete": [prompt_id]})
        else:
            self._forget(base, prompt_id)
            return  # finished already (or never queued): nothing to stop
        self._forget(base, prompt_id)
        if response.status_code != 200:
            raise self._status_error(response, what)

    async def check_account(self, http: SafeHttp, credentials: Credentials) -> str:
        base = self._base(credentials)
        what = "a status check"
        response = await self._request(http, "GET", base, "/system_stats", what)
        if response.status_code != 200:
            raise self._status_error(response, what)
        answer = _json(response, what)
        system = answer.get("system") if isinstance(answer, dict) else None
        version = system.get("comfyui_version") if isinstance(system, dict) else None
        devices = answer.get("devices") if isinstance(answer, dict) else None
        device = devices[0] if isinstance(devices, list) and devices and isinstance(devices[0], dict) else {}
        name = str(device.get("name") or device.get("type") or "an unknown device")
        version_text = f"ComfyUI {version}" if version else "ComfyUI (version unknown)"
        return f"{version_text} at {base}, running on {name}."
