"""A fake ComfyUI server (the routes PixSim uses), served by FakeHttpServer, also under ``/api/``.

It follows ComfyUI's ``server.py`` and ``execution.py``: ``/upload/image`` (any file, ``name (1).ext`` on
a clash unless ``overwrite``), ``/prompt`` with ComfyUI's validation errors (``missing_node_type``,
``prompt_no_outputs``, ``prompt_outputs_failed_validation`` with ``node_errors``), ``/history/{id}``
(``{}`` until done), ``/queue`` (GET lists, POST ``delete``), ``/interrupt`` (optional ``prompt_id``),
``/view`` and ``/system_stats``.

A prompt moves on each ``GET /history/{id}``: pending for ``pending_polls`` polls, running for the
next ``running_polls``, then it "executes": every output node writes a real file.

- ``SaveImage`` → a PNG under ``images`` (type output); ``PreviewImage`` → a PNG of type temp.
- ``SaveVideo`` (core ComfyUI) → an MP4 under ``images`` with ``animated: [true]``, as core video
  nodes report it through ``ui.PreviewVideo``.
- ``VHS_VideoCombine`` (VideoHelperSuite) → an MP4 under ``gifs`` with ``format``/``frame_rate``; with
  ``save_output: false`` its file is of type temp.

Wire faults come from FakeHttpServer.fail(); an execution failure from ``fail_next_execution()``.

The WebSocket ``/ws?clientId=`` (unless ``websocket=False``: then a 404, as from a server without one)
sends what ComfyUI sends while a prompt runs: ``execution_start``, ``execution_cached`` (``cached_nodes``),
per node ``executing``, ``progress`` steps for a sampler (its ``steps`` input, default 20), ``executed``
for an output node, then ``executing`` with node null and ``execution_success`` (or
``execution_error`` / ``execution_interrupted``). Like ComfyUI, it sends them to the socket of the
prompt's client id only; a prompt queued without a client id goes to every socket. A new socket gets
``status``, and, if its client's prompt is running, ``executing`` with the current node (no prompt_id,
as ComfyUI's server.py does on a reconnect).

A running prompt can be held: ``hold_at(5)`` stops every prompt that starts at step 5 of its first
sampler (``hold_at(5, prompt_id=...)`` only that one; a later ``hold_at(8)`` moves it on to step 8);
it does not finish while held; ``release()`` lets it finish at its next poll.
"""

from __future__ import annotations

import itertools
import json
import mimetypes
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.http_server import FakeHttpServer, MultipartPart, Request, Response, WebSocketPeer
from tests.fakes.media import tiny_mp4, tiny_png

# Output node classes and what they write.
IMAGE_SAVERS = frozenset({"SaveImage", "PreviewImage"})
VIDEO_SAVERS = frozenset({"SaveVideo", "VHS_VideoCombine"})
OUTPUT_CLASSES = IMAGE_SAVERS | VIDEO_SAVERS

# Loader nodes whose file input must name a file ComfyUI has (LoadImage's VALIDATE_INPUTS and kin).
LOADERS = {
    "LoadImage": ("image", "image"),
    "LoadVideo": ("file", "video"),
    "VHS_LoadVideo": ("video", "video"),
}

# Nodes that report progress steps while they run (ComfyUI's sampler callback).
SAMPLERS = frozenset({"KSampler", "KSamplerAdvanced"})
DEFAULT_STEPS = 20

# Inputs ComfyUI converts to INT during validation (a placeholder left as text fails there).
INT_INPUTS = {"KSampler": ("seed", "steps"), "KSamplerAdvanced": ("noise_seed", "steps")}

DEFAULT_CLASSES = frozenset(
    {
        "CheckpointLoaderSimple",
        "CLIPTextEncode",
        "EmptyLatentImage",
        "KSampler",
        "KSamplerAdvanced",
        "VAEDecode",
        "VAEEncode",
        "ImageScale",
        "CreateVideo",
        "GetVideoComponents",
        *LOADERS,
        *OUTPUT_CLASSES,
    }
)


@dataclass(frozen=True)
class StoredFile:
    folder_type: str  # input | output | temp
    subfolder: str
    filename: str
    data: bytes


@dataclass
class FakePrompt:
    id: str
    number: int
    graph: dict[str, Any]
    client_id: str | None
    state: str = "pending"  # pending | running | done | deleted
    polls: int = 0
    history: dict[str, Any] = field(default_factory=dict)
    run: Iterator[int | None] | None = None  # the execution under way: yields each sampler step
    step: int = 0  # the sampler step reached
    node: str | None = None  # the node executing now
    held: bool = False
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecutionFailure:
    message: str
    exception_type: str
    node_id: str | None


class FakeComfyUI:
    """Registers ComfyUI's routes on server. ``prompts`` keeps every accepted prompt, in order."""

    def __init__(
        self,
        server: FakeHttpServer,
        *,
        known_classes: frozenset[str] = DEFAULT_CLASSES,
        pending_polls: int = 0,
        running_polls: int = 1,
        version: str = "0.3.40",
        device_name: str = "cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync",
        websocket: bool = True,
    ) -> None:
        self.server = server
        self.known_classes = known_classes
        self.pending_polls = pending_polls
        self.running_polls = running_polls
        self.version = version
        self.device_name = device_name
        # An old ComfyUI that ignores "overwrite" (renames clashing uploads to "name (1).ext").
        self.ignore_overwrite = False
        self.files: dict[tuple[str, str, str], StoredFile] = {}
        self.uploads: list[StoredFile] = []
        self.prompts: dict[str, FakePrompt] = {}
        self.refused: list[dict[str, Any]] = []  # bodies of /prompt answered 400
        self.interrupts: list[str | None] = []  # the prompt_id of each /interrupt (None: global)
        self.deleted: list[str] = []  # prompt ids removed by POST /queue {"delete"}
        self._failures: deque[ExecutionFailure] = deque()
        self._numbers = itertools.count(0)
        self._counters: dict[tuple[str, str], itertools.count[int]] = {}
        # Node ids reported as cached (not run again) when a prompt starts.
        self.cached_nodes: set[str] = set()
        self.sockets: dict[str, WebSocketPeer] = {}  # client id → its open socket (a reconnect replaces it)
        self.socket_clients: list[str] = []  # the client id of every socket opened, in order
        self.sent: list[tuple[str | None, str, dict[str, Any]]] = []  # (client id or None: all, type, data)
        self._holds: dict[str | None, int] = {}  # prompt id (None: every prompt) → the step to stop at
        for prefix in ("", "/api"):
            server.add_route("POST", f"{prefix}/upload/image", self._upload)
            server.add_route("POST", f"{prefix}/prompt", self._prompt)
            server.add_prefix_route("GET", f"{prefix}/history/", self._history)
            server.add_route("GET", f"{prefix}/queue", self._get_queue)
            server.add_route("POST", f"{prefix}/queue", self._post_queue)
            server.add_route("POST", f"{prefix}/interrupt", self._interrupt)
            server.add_route("GET", f"{prefix}/view", self._view)
            server.add_route("GET", f"{prefix}/system_stats", self._system_stats)
            if websocket:
                server.add_websocket(f"{prefix}/ws", self._websocket)

    # -- controls ------------------------------------------------------------------------------------------------------

    def fail_next_execution(
        self, message: str, *, exception_type: str = "RuntimeError", node_id: str | None = None
    ) -> None:
        """The next prompt to finish fails in node_id (default: its first node) with this message."""
        self._failures.append(ExecutionFailure(message, exception_type, node_id))

    def hold_at(self, step: int | None, *, prompt_id: str | None = None) -> None:
        """Stop running prompts (or only prompt_id) at this sampler step; a held one moves on to it now."""
        if step is None:
            self._holds.pop(prompt_id, None)
        else:
            self._holds[prompt_id] = step
        for prompt in self.running():
            if prompt.held and (prompt_id is None or prompt.id == prompt_id):
                hold = self._hold_for(prompt)
                if hold is None or hold > prompt.step:
                    prompt.held = False
                    if hold is not None:
                        self._advance(prompt, to_end=False)

    def release(self, prompt_id: str | None = None) -> None:
        """Let held prompts (or prompt_id) go on: they finish at their next poll."""
        if prompt_id is None:
            self._holds.clear()
        else:
            self._holds.pop(prompt_id, None)
        for prompt in self.prompts.values():
            if prompt_id is None or prompt.id == prompt_id:
                prompt.held = False

    def drop_sockets(self) -> None:
        """Cut every open WebSocket without a close frame (ComfyUI restarting, a network hiccup)."""
        for peer in list(self.sockets.values()):
            peer.drop()
        self.sockets.clear()

    def add_input_file(self, name: str, data: bytes, subfolder: str = "") -> None:
        self._store("input", subfolder, name, data)

    def remove_input_file(self, name: str, subfolder: str = "") -> None:
        """Simulate the user cleaning ComfyUI's input folder."""
        self.files.pop(("input", subfolder, name), None)

    def file(self, folder_type: str, subfolder: str, filename: str) -> bytes:
        return self.files[(folder_type, subfolder, filename)].data

    @property
    def graphs(self) -> list[dict[str, Any]]:
        """Every accepted graph, as submitted (placeholders already filled in by the client)."""
        return [p.graph for p in self.prompts.values()]

    def running(self) -> list[FakePrompt]:
        return [p for p in self.prompts.values() if p.state == "running"]

    def pending(self) -> list[FakePrompt]:
        return [p for p in self.prompts.values() if p.state == "pending"]

    # -- upload and view -----------------------------------------------------------------------------------------------

    def _store(self, folder_type: str, subfolder: str, filename: str, data: bytes) -> StoredFile:
        stored = StoredFile(folder_type, subfolder, filename, data)
        self.files[(folder_type, subfolder, filename)] = stored
        return stored

    async def _upload(self, request: Request) -> Response:
        try:
            fields = request.multipart()
        except ValueError:
            return Response(status=400)
        image = fields.get("image")
        if image is None or not image.filename:
            return Response(status=400)
        folder_type = _text(fields.get("type")) or "input"
        if folder_type not in ("input", "temp", "output"):
            folder_type = "input"
        subfolder = _text(fields.get("subfolder"))
        if subfolder.startswith("/") or ".." in subfolder.split("/") or "/" in image.filename:
            return Response(status=400)
        overwrite = _text(fields.get("overwrite")) in ("true", "1") and not self.ignore_overwrite
        name = image.filename
        if not overwrite:
            stem, dot, ext = name.rpartition(".")
            stem, ext = (stem, dot + ext) if dot else (ext, "")
            counter = 1
            while (existing := self.files.get((folder_type, subfolder, name))) is not None:
                if existing.data == image.data:
                    break  # ComfyUI keeps one copy of identical content
                name = f"{stem} ({counter}){ext}"
                counter += 1
        self.uploads.append(self._store(folder_type, subfolder, name, image.data))
        return Response.json({"name": name, "subfolder": subfolder, "type": folder_type})

    async def _view(self, request: Request) -> Response:
        filename = request.query.get("filename", "")
        if not filename or filename.startswith("/") or ".." in filename:
            return Response(status=400)
        folder_type = request.query.get("type", "output")
        subfolder = request.query.get("subfolder", "")
        if ".." in subfolder.split("/"):
            return Response(status=403)
        stored = self.files.get((folder_type, subfolder, filename))
        if stored is None:
            return Response(status=404)
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        return Response(
            headers={"Content-Type": content_type, "Content-Disposition": f'filename="{filename}"'},
            body=stored.data,
        )

    # -- prompts -------------------------------------------------------------------------------------------------------

    async def _prompt(self, request: Request) -> Response:
        try:
            body = request.json()
        except ValueError:
            return Response(status=400, body=b"invalid JSON")
        graph = body.get("prompt") if isinstance(body, dict) else None
        if not isinstance(graph, dict):
            return self._refuse(body, _error("no_prompt", "No prompt provided", "No prompt provided"), {})
        for node_id, node in graph.items():
            if not isinstance(node, dict) or "class_type" not in node:
                return self._refuse(
                    body,
                    _error(
                        "missing_node_type",
                        f"Node ID '#{node_id}' has no class_type. The workflow may be corrupted or a custom "
                        "node may be missing.",
                        f"Node ID '#{node_id}'",
                    ),
                    {},
                )
            class_type = node["class_type"]
            if class_type not in self.known_classes:
                return self._refuse(
                    body,
                    _error(
                        "missing_node_type",
                        f"Node '{class_type}' not found. The custom node may not be installed.",
                        f"Node ID '#{node_id}'",
                        {"node_id": node_id, "class_type": class_type},
                    ),
                    {},
                )
            if not isinstance(node.get("inputs"), dict):
                return self._refuse(
                    body,
                    _error("invalid_prompt", f"Node '#{node_id}' has no inputs", f"Node ID '#{node_id}'"),
                    {},
                )
        outputs = [n for n, node in graph.items() if node["class_type"] in OUTPUT_CLASSES]
        if not outputs:
            return self._refuse(body, _error("prompt_no_outputs", "Prompt has no outputs", ""), {})
        node_errors: dict[str, Any] = {}
        for node_id, node in graph.items():
            errors = self._node_errors(graph, node)
            if errors:
                node_errors[node_id] = {
                    "errors": errors,
                    "dependent_outputs": outputs,
                    "class_type": node["class_type"],
                }
        if node_errors:
            return self._refuse(
                body,
                _error("prompt_outputs_failed_validation", "Prompt outputs failed validation", ""),
                node_errors,
            )
        prompt_id = str(uuid.uuid4())
        number = next(self._numbers)
        client_id = body.get("client_id")
        self.prompts[prompt_id] = FakePrompt(
            prompt_id, number, graph, client_id if isinstance(client_id, str) else None
        )
        return Response.json({"prompt_id": prompt_id, "number": number, "node_errors": {}})

    def _refuse(self, body: Any, error: dict[str, Any], node_errors: dict[str, Any]) -> Response:
        self.refused.append(body if isinstance(body, dict) else {})
        return Response.json({"error": error, "node_errors": node_errors}, status=400)

    def _node_errors(self, graph: dict[str, Any], node: dict[str, Any]) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        class_type = node["class_type"]
        for name, value in node["inputs"].items():
            if isinstance(value, list):
                if len(value) != 2:
                    errors.append(
                        _node_error(
                            "bad_linked_input",
                            "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                            name,
                            {"input_name": name, "received_value": value},
                        )
                    )
                elif str(value[0]) not in graph:
                    errors.append(
                        _node_error(
                            "exception_during_inner_validation",
                            "Exception when validating inner node",
                            f"KeyError: '{value[0]}'",
                            {"input_name": name, "received_value": value},
                        )
                    )
        for name in INT_INPUTS.get(class_type, ()):
            value = node["inputs"].get(name)
            if value is not None and not isinstance(value, int):
                errors.append(
                    _node_error(
                        "invalid_input_type",
                        "Failed to convert an input value to a INT value",
                        f"{name}, {value}, invalid literal for int() with base 10: {value!r}",
                        {"input_name": name, "received_value": value},
                    )
                )
        if class_type in LOADERS:
            name, kind = LOADERS[class_type]
            value = node["inputs"].get(name)
            if not isinstance(value, str) or self._annotated(value) is None:
                errors.append(
                    _node_error(
                        "custom_validation_failed",
                        "Custom validation failed for node",
                        f"{name} - Invalid {kind} file: {value}",
                        {"input_name": name},
                    )
                )
        return errors

    def _annotated(self, value: str) -> StoredFile | None:
        """The file a graph names: "sub/name.png" in input, "name.png [output]" in another folder."""
        folder_type = "input"
        for kind in ("input", "output", "temp"):
            suffix = f" [{kind}]"
            if value.endswith(suffix):
                value, folder_type = value[: -len(suffix)], kind
        subfolder, _, filename = value.rpartition("/")
        return self.files.get((folder_type, subfolder, filename))

    # -- lifecycle -----------------------------------------------------------------------------------------------------

    async def _history(self, request: Request) -> Response:
        prompt_id = request.path.removeprefix("/api").removeprefix("/history/")
        prompt = self.prompts.get(prompt_id)
        if prompt is None or prompt.state == "deleted":
            return Response.json({})
        if prompt.state in ("pending", "running"):
            prompt.polls += 1
            if prompt.polls > self.pending_polls and prompt.state == "pending":
                prompt.state = "running"
                self._advance(prompt, to_end=False)
            if prompt.polls > self.pending_polls + self.running_polls and not prompt.held:
                self._execute(prompt)
        if prompt.state != "done":
            return Response.json({})
        return Response.json({prompt.id: prompt.history})

    # -- the execution, step by step -----------------------------------------------------------------------------------

    def _hold_for(self, prompt: FakePrompt) -> int | None:
        return self._holds.get(prompt.id, self._holds.get(None))

    def _advance(self, prompt: FakePrompt, *, to_end: bool) -> None:
        """Run the prompt on: to its hold step (or only its start, with no hold), or to the end."""
        if prompt.run is None:
            prompt.run = self._run(prompt)
        for step in prompt.run:
            if to_end:
                continue
            hold = self._hold_for(prompt)
            if hold is None and step is None:
                return  # started; the rest runs when the prompt finishes
            if hold is not None and step is not None and step >= hold:
                prompt.held = True
                return

    def _run(self, prompt: FakePrompt) -> Iterator[int | None]:
        """Send ComfyUI's messages for each node; yields None once started, then each sampler step."""
        send = self._sender(prompt)
        send("execution_start", {"prompt_id": prompt.id, "timestamp": _now_ms()})
        cached = [n for n in sorted(prompt.graph, key=_node_order) if n in self.cached_nodes]
        send("execution_cached", {"nodes": cached, "prompt_id": prompt.id, "timestamp": _now_ms()})
        yield None
        if self._failures:
            return  # _execute reports the failure
        for node_id in sorted(prompt.graph, key=_node_order):
            if node_id in cached:
                continue
            node = prompt.graph[node_id]
            prompt.node = node_id
            send("executing", {"node": node_id, "display_node": node_id, "prompt_id": prompt.id})
            if node["class_type"] in SAMPLERS and prompt.step == 0:
                steps = node["inputs"].get("steps")
                steps = steps if isinstance(steps, int) and steps > 0 else DEFAULT_STEPS
                for step in range(1, steps + 1):
                    prompt.step = step
                    send("progress", {"value": step, "max": steps, "prompt_id": prompt.id, "node": node_id})
                    yield step
            produced = self._run_output_node(node)
            if produced is not None:
                prompt.outputs[node_id] = produced
                send(
                    "executed",
                    {"node": node_id, "display_node": node_id, "output": produced, "prompt_id": prompt.id},
                )
        prompt.node = None
        send("executing", {"node": None, "prompt_id": prompt.id})

    def _sender(self, prompt: FakePrompt) -> Any:
        def send(kind: str, data: dict[str, Any]) -> None:
            self._send(prompt.client_id, kind, data)

        return send

    def _send(self, client_id: str | None, kind: str, data: dict[str, Any]) -> None:
        """To the socket of client_id only; with no client id, to every socket (ComfyUI's send_sync)."""
        self.sent.append((client_id, kind, data))
        message = {"type": kind, "data": data}
        if client_id is None:
            for peer in list(self.sockets.values()):
                if peer.open:
                    peer.send_json(message)
        else:
            target = self.sockets.get(client_id)
            if target is not None and target.open:
                target.send_json(message)

    async def _websocket(self, peer: WebSocketPeer) -> None:
        client_id = peer.request.query.get("clientId") or uuid.uuid4().hex
        self.sockets[client_id] = peer
        self.socket_clients.append(client_id)
        queue_remaining = len(self.running()) + len(self.pending())
        peer.send_json(
            {
                "type": "status",
                "data": {"status": {"exec_info": {"queue_remaining": queue_remaining}}, "sid": client_id},
            }
        )
        for prompt in self.running():
            if prompt.client_id == client_id and prompt.node is not None:
                peer.send_json({"type": "executing", "data": {"node": prompt.node}})

    def _execute(self, prompt: FakePrompt) -> None:
        self._advance(prompt, to_end=True)
        send = self._sender(prompt)
        start = ["execution_start", {"prompt_id": prompt.id, "timestamp": _now_ms()}]
        cached_nodes = [n for n in sorted(prompt.graph, key=_node_order) if n in self.cached_nodes]
        cached = ["execution_cached", {"nodes": cached_nodes, "prompt_id": prompt.id, "timestamp": _now_ms()}]
        if self._failures:
            failure = self._failures.popleft()
            node_id = failure.node_id or sorted(prompt.graph)[0]
            error = {
                "prompt_id": prompt.id,
                "node_id": node_id,
                "node_type": prompt.graph[node_id]["class_type"],
                "executed": [],
                "exception_message": failure.message,
                "exception_type": failure.exception_type,
                "traceback": [
                    "Traceback (most recent call last):\n",
                    f"{failure.exception_type}: {failure.message}\n",
                ],
                "current_inputs": {},
                "current_outputs": {},
                "timestamp": _now_ms(),
            }
            send("execution_error", error)
            self._finish(prompt, "error", {}, [start, cached, ["execution_error", error]])
            return
        success = ["execution_success", {"prompt_id": prompt.id, "timestamp": _now_ms()}]
        send("execution_success", success[1])
        self._finish(prompt, "success", prompt.outputs, [start, cached, success])

    def _finish(self, prompt: FakePrompt, status: str, outputs: dict[str, Any], messages: list[Any]) -> None:
        output_ids = [n for n, node in prompt.graph.items() if node["class_type"] in OUTPUT_CLASSES]
        prompt.state = "done"
        prompt.history = {
            "prompt": [prompt.number, prompt.id, prompt.graph, {"client_id": prompt.client_id}, output_ids],
            "outputs": outputs,
            "status": {"status_str": status, "completed": status == "success", "messages": messages},
            "meta": {
                n: {"node_id": n, "display_node": n, "parent_node": None, "real_node_id": n} for n in outputs
            },
        }

    def _next_counter(self, folder_type: str, prefix: str) -> int:
        return next(self._counters.setdefault((folder_type, prefix), itertools.count(1)))

    def _run_output_node(self, node: dict[str, Any]) -> dict[str, Any] | None:
        class_type = node["class_type"]
        inputs = node["inputs"]
        if class_type == "SaveImage":
            entry = self._save("output", str(inputs.get("filename_prefix") or "ComfyUI"), "_.png", tiny_png)
            return {"images": [entry]}
        if class_type == "PreviewImage":
            entry = self._save("temp", "ComfyUI_temp_pxsim", "_.png", tiny_png)
            return {"images": [entry]}
        if class_type == "SaveVideo":
            entry = self._save(
                "output", str(inputs.get("filename_prefix") or "video/ComfyUI"), "_.mp4", tiny_mp4
            )
            return {"images": [entry], "animated": [True]}
        if class_type == "VHS_VideoCombine":
            folder_type = "output" if inputs.get("save_output", True) else "temp"
            prefix = str(inputs.get("filename_prefix") or "AnimateDiff")
            entry = self._save(folder_type, prefix, ".mp4", tiny_mp4)
            entry.update({"format": "video/h264-mp4", "frame_rate": float(inputs.get("frame_rate", 8))})
            return {"gifs": [entry]}
        return None

    def _save(self, folder_type: str, prefix: str, tail: str, make: Any) -> dict[str, Any]:
        subfolder, _, base = prefix.rpartition("/")
        counter = self._next_counter(folder_type, prefix)
        filename = f"{base}_{counter:05}{tail}"
        self._store(folder_type, subfolder, filename, make(counter))
        return {"filename": filename, "subfolder": subfolder, "type": folder_type}

    # -- queue, interrupt, stats ---------------------------------------------------------------------------------------

    def _queue_item(self, prompt: FakePrompt) -> list[Any]:
        outputs = [n for n, node in prompt.graph.items() if node["class_type"] in OUTPUT_CLASSES]
        return [prompt.number, prompt.id, prompt.graph, {"client_id": prompt.client_id}, outputs]

    async def _get_queue(self, request: Request) -> Response:
        return Response.json(
            {
                "queue_running": [self._queue_item(p) for p in self.running()],
                "queue_pending": [self._queue_item(p) for p in self.pending()],
            }
        )

    async def _post_queue(self, request: Request) -> Response:
        body = _json_or_empty(request)
        if body.get("clear"):
            for prompt in self.pending():
                prompt.state = "deleted"
        for prompt_id in body.get("delete") or []:
            queued = self.prompts.get(str(prompt_id))
            if queued is not None and queued.state == "pending":  # only waiting prompts can be removed
                queued.state = "deleted"
                self.deleted.append(queued.id)
        return Response(status=200)

    async def _interrupt(self, request: Request) -> Response:
        body = _json_or_empty(request)
        wanted = body.get("prompt_id")
        self.interrupts.append(str(wanted) if wanted else None)
        for prompt in self.running():
            if wanted and prompt.id != wanted:
                continue  # newer ComfyUI: a named prompt that is not running is left alone
            node_id = sorted(prompt.graph)[0]
            stopped = {
                "prompt_id": prompt.id,
                "node_id": node_id,
                "node_type": prompt.graph[node_id]["class_type"],
                "executed": [],
                "timestamp": _now_ms(),
            }
            start = ["execution_start", {"prompt_id": prompt.id, "timestamp": _now_ms()}]
            self._send(prompt.client_id, "execution_interrupted", stopped)
            self._finish(prompt, "error", {}, [start, ["execution_interrupted", stopped]])
        return Response(status=200)

    async def _system_stats(self, request: Request) -> Response:
        return Response.json(
            {
                "system": {
                    "os": "posix",
                    "ram_total": 64 << 30,
                    "ram_free": 48 << 30,
                    "comfyui_version": self.version,
                    "python_version": "3.12.3 (main) [GCC 13.2.0]",
                    "pytorch_version": "2.7.0+cu128",
                    "embedded_python": False,
                    "argv": ["main.py"],
                },
                "devices": [
                    {
                        "name": self.device_name,
                        "type": "cuda",
                        "index": 0,
                        "vram_total": 24 << 30,
                        "vram_free": 20 << 30,
                        "torch_vram_total": 0,
                        "torch_vram_free": 0,
                    }
                ],
            }
        )


def _text(part: MultipartPart | None) -> str:
    return part.data.decode("utf-8") if part is not None else ""


def _json_or_empty(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.body) if request.body else {}
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error(kind: str, message: str, details: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": extra or {}}


def _node_error(kind: str, message: str, details: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


def _node_order(node_id: str) -> tuple[int, str]:
    return (int(node_id), node_id) if node_id.isdigit() else (1 << 62, node_id)


def _now_ms() -> int:
    return int(time.time() * 1000)
