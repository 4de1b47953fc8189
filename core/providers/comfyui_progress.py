"""Live progress of ComfyUI prompts, from ComfyUI's WebSocket ``/ws?clientId=<id>``.

ComfyUI reports a running prompt only on its WebSocket, and only to the client whose id came with the
prompt (``POST /prompt {"client_id"}``); ``progress_state`` and prompts queued without a client id go to
every client. The JSON text frames are ``{"type", "data"}``: ``execution_start``, ``execution_cached``
(``nodes`` skipped from the cache), ``executing`` (``node``; ``null`` when the prompt is done),
``progress`` (``value``/``max`` of the current node, e.g. sampler steps), ``progress_state`` (newer
versions: every started node's ``state``/``value``/``max``), ``executed``, ``execution_success`` /
``_error`` / ``_interrupted``. Binary frames are previews and are ignored. Older versions leave
``prompt_id`` out of some messages (``progress``, and the ``executing`` sent on a reconnect): those
belong to the prompt last named.

The fraction of a prompt is (nodes done + the current node's value/max) / nodes in the graph: cached
and finished nodes count as done. It only grows, and stays below 1.0: only ``/history`` says a prompt
finished (and has files).

The socket is an extra, never a requirement: if it cannot be opened (an old ComfyUI, a proxy that does
not pass WebSockets) or drops, jobs are polled exactly as without it, and the listener retries with
backoff. It connects only to the configured server: the ``UrlPolicy`` that guards the HTTP requests
checks the address before every attempt, redirects are never followed, and no proxy is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from core.errors import UnsafeUrl
from core.net.policy import UrlPolicy
from core.redact import redact_text

log = logging.getLogger(__name__)

# Below 1.0 until ComfyUI's history has the prompt (and its files).
MAX_RUNNING_FRACTION = 0.99
# Previews and ``executed`` messages with many outputs can be large; anything bigger closes the socket.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Messages about prompts nobody asked for yet (ours before the /prompt answer arrives, or others'
# broadcast ones): the newest are kept, so a prompt that starts at once is not missed.
MAX_UNTRACKED = 64


@dataclass
class PromptProgress:
    """What the WebSocket told about one prompt."""

    nodes: frozenset[str] = frozenset()  # the graph's node ids (empty: not known yet)
    done: set[str] = field(default_factory=set)
    current: str | None = None
    value: float = 0.0
    maximum: float = 0.0
    seen: bool = False  # any message about this prompt arrived
    tracked: bool = False  # a job asked about it
    best: float = 0.0
    touched: float = field(default_factory=time.monotonic)

    def fraction(self) -> float | None:
        """0..MAX_RUNNING_FRACTION, never lower than before; None when nothing is known."""
        if not self.seen or not self.nodes:
            return None
        done = self.done & self.nodes
        partial = 0.0
        if self.current in self.nodes and self.current not in done and self.maximum > 0:
            partial = min(1.0, max(0.0, self.value / self.maximum))
        value = min(MAX_RUNNING_FRACTION, (len(done) + partial) / len(self.nodes))
        self.best = max(self.best, value)
        return self.best

    def _key(self, node: Any, display: Any = None) -> str | None:
        """A node id as counted: an expanded node (``5.0.1``) counts as the graph node it belongs to."""
        if node is None:
            return None
        key = str(node)
        if self.nodes and key not in self.nodes and display is not None and str(display) in self.nodes:
            return str(display)
        return key

    def _move_to(self, key: str | None) -> None:
        if self.current is not None and self.current != key:
            self.done.add(self.current)
        if key != self.current:
            self.value = self.maximum = 0.0
        self.current = key

    def apply(self, kind: str, data: dict[str, Any]) -> None:
        self.seen = True
        if kind == "execution_cached":
            self.done.update(str(n) for n in data.get("nodes") or [])
        elif kind == "executing":
            key = self._key(data.get("node"), data.get("display_node"))
            self._move_to(key)
            if key is None:  # the prompt has run every node it needed
                self.done |= self.nodes
        elif kind == "progress":
            key = self._key(data.get("node"), data.get("display_node"))
            if key is not None:
                self._move_to(key)
            self.value, self.maximum = _number(data.get("value")), _number(data.get("max"))
        elif kind == "executed":
            key = self._key(data.get("node"), data.get("display_node"))
            if key is not None:
                self.done.add(key)
        elif kind == "progress_state":
            self._apply_state(data.get("nodes"))

    def _apply_state(self, nodes: Any) -> None:
        if not isinstance(nodes, dict):
            return
        for node_id, state in nodes.items():
            if not isinstance(state, dict):
                continue
            key = self._key(node_id, state.get("display_node_id"))
            if key is None:
                continue
            if state.get("state") == "finished":
                self.done.add(key)
            elif state.get("state") == "running":
                self._move_to(key)
                self.value, self.maximum = _number(state.get("value")), _number(state.get("max"))


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def websocket_url(base_url: str, client_id: str) -> str:
    """``http://host:port[/prefix]`` → ``ws://host:port[/prefix]/ws?clientId=<id>`` (https → wss)."""
    parts = urlsplit(base_url.rstrip("/"))
    scheme = "wss" if parts.scheme.lower() == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path + "/ws", urlencode({"clientId": client_id}), ""))


async def _wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for ``event``; False if it stays unset.

    ``asyncio.wait`` rather than ``asyncio.timeout``/``wait_for``: on Python 3.11 those can swallow a
    cancellation that arrives as the timeout expires, and this runs in job tasks and at shutdown.
    """
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=timeout_s)
    finally:
        waiter.cancel()
    return event.is_set()


class _NoRedirects(connect):
    """A redirect leads away from the configured server: treat it as a failed handshake."""

    def process_redirect(self, exc: Exception) -> Exception | str:
        return exc


class ProgressListener:
    """One WebSocket to one ComfyUI server, for one client id; keeps the progress of its prompts.

    ``track`` starts the listener (a task on the running loop); it stops by itself once no prompt has
    been asked about for ``idle_s``, and for good on ``aclose``.
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        policy: UrlPolicy,
        *,
        tls: ssl.SSLContext | None = None,
        idle_s: float = 30.0,
        stale_s: float = 900.0,
        retry_base_s: float = 0.25,
        retry_max_s: float = 30.0,
        open_timeout_s: float = 5.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.policy = policy
        self.tls = tls  # for wss: the same trust as SafeHttp (certifi's bundle, or a test's own CA)
        self.url = websocket_url(self.base_url, client_id)
        self.idle_s = idle_s
        self.stale_s = stale_s
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.open_timeout_s = open_timeout_s
        # Observable state (tests, diagnostics).
        self.connections = 0  # sockets opened so far
        self.refused: str | None = None  # why the policy refused the address (then no retries)
        self.unsupported: str | None = None  # the last handshake refusal (e.g. HTTP 404: no WebSocket)
        self._prompts: dict[str, PromptProgress] = {}
        self._last_prompt: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = asyncio.Event()
        self._settled = asyncio.Event()  # the first attempt since start() connected or failed
        self._nudged = asyncio.Event()  # a new prompt to follow: retry the socket now
        self._closed = False

    # -- what jobs ask -------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def track(self, prompt_id: str, nodes: Iterable[str] | None = None) -> None:
        """Follow ``prompt_id`` (whose graph has ``nodes``, if known) and make sure the socket is open."""
        prompt = self._prompts.get(prompt_id)
        if prompt is None:
            prompt = self._prompts[prompt_id] = PromptProgress()
        if not prompt.tracked and self.unsupported is None:
            self._nudged.set()  # a new job: retry a dropped socket now (not one the server refuses)
        prompt.tracked = True
        prompt.touched = time.monotonic()
        if nodes is not None:
            known = frozenset(str(n) for n in nodes)
            if known:
                prompt.nodes = known
        self.start()

    def fraction(self, prompt_id: str) -> float | None:
        prompt = self._prompts.get(prompt_id)
        if prompt is None or not prompt.tracked:
            return None
        prompt.touched = time.monotonic()
        return prompt.fraction()

    def forget(self, prompt_id: str) -> None:
        self._prompts.pop(prompt_id, None)

    def usable_on(self, loop: asyncio.AbstractEventLoop) -> bool:
        """False once closed, or when made on another (possibly closed) event loop."""
        return not self._closed and (self._loop is None or self._loop is loop)

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._closed or self.running or self.refused is not None:
            return
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._settled.clear()
        self._task = loop.create_task(self._run(), name=f"comfyui-progress {self.base_url}")

    async def wait_settled(self, timeout_s: float) -> bool:
        """Wait (bounded) for the first connection attempt; True if the socket is open."""
        if self.running:
            await _wait_event(self._settled, timeout_s)
        return self.connected

    async def aclose(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._connected.clear()

    # -- the connection loop -------------------------------------------------------------------------

    def _idle(self) -> bool:
        now = time.monotonic()
        for prompt_id, prompt in list(self._prompts.items()):
            if now - prompt.touched > (self.stale_s if prompt.tracked else self.idle_s):
                del self._prompts[prompt_id]  # a job nobody polls any more (deleted, or taken elsewhere)
        latest = max((p.touched for p in self._prompts.values() if p.tracked), default=None)
        return latest is None or now - latest > self.idle_s

    async def _run(self) -> None:
        failures = 0
        try:
            while not self._idle():
                try:
                    await self.policy.check(self.base_url + "/ws")
                except UnsafeUrl as exc:
                    self.refused = str(exc)
                    log.warning("ComfyUI progress: not connecting: %s", exc)
                    return
                try:
                    async with _NoRedirects(
                        self.url,
                        proxy=None,
                        compression=None,
                        open_timeout=self.open_timeout_s,
                        max_size=MAX_MESSAGE_BYTES,
                        close_timeout=2.0,
                        user_agent_header="PixSim",
                        ssl=self.tls if self.url.startswith("wss:") else None,
                    ) as ws:
                        failures = 0
                        self.connections += 1
                        self.unsupported = None
                        self._connected.set()
                        self._settled.set()
                        log.debug("ComfyUI progress: listening at %s", redact_text(self.url))
                        await self._receive(ws)
                        if not self._idle():
                            log.info("ComfyUI progress: the WebSocket at %s closed", self.base_url)
                except InvalidStatus as exc:
                    self.unsupported = f"HTTP {exc.response.status_code}"
                    failures = max(failures, 64)  # no WebSocket here: ask again only now and then
                    log.info(
                        "ComfyUI at %s answered %s to the WebSocket: progress comes from polling only",
                        self.base_url,
                        self.unsupported,
                    )
                except (OSError, TimeoutError, WebSocketException) as exc:
                    log.debug("ComfyUI progress: WebSocket at %s failed: %r", self.base_url, exc)
                finally:
                    self._connected.clear()
                    self._settled.set()
                failures += 1
                await self._pause(min(self.retry_max_s, self.retry_base_s * 2.0 ** min(failures - 1, 16)))
        finally:
            self._connected.clear()
            self._settled.set()

    async def _pause(self, seconds: float) -> None:
        """Sleep before the next attempt, waking early to stop when nobody needs the socket."""
        deadline = time.monotonic() + seconds
        self._nudged.clear()
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self._idle() or not await _wait_event(self._nudged, min(left, 1.0)):
                return

    async def _receive(self, ws: ClientConnection) -> None:
        watchdog = asyncio.ensure_future(self._close_when_idle(ws))
        try:
            async for message in ws:
                if isinstance(message, str):
                    self._handle(message)
        finally:
            watchdog.cancel()

    async def _close_when_idle(self, ws: ClientConnection) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.idle_s))
            if self._idle():
                await ws.close()
                return

    def _handle(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        kind, data = message.get("type"), message.get("data")
        if not isinstance(kind, str) or not isinstance(data, dict):
            return
        prompt_id = data.get("prompt_id")
        if isinstance(prompt_id, str) and prompt_id:
            if kind != "progress_state":  # broadcast to everyone: says nothing about what we run
                self._last_prompt = prompt_id
        elif kind in ("executing", "progress", "executed"):
            prompt_id = self._last_prompt
        else:
            return
        if prompt_id is None:
            return
        prompt = self._prompts.get(prompt_id)
        if prompt is None:
            prompt = self._prompts[prompt_id] = PromptProgress()
            self._drop_untracked()
        prompt.apply(kind, data)
        if not prompt.tracked:
            prompt.touched = time.monotonic()

    def _drop_untracked(self) -> None:
        untracked = [pid for pid, p in self._prompts.items() if not p.tracked]
        for prompt_id in untracked[: max(0, len(untracked) - MAX_UNTRACKED)]:
            del self._prompts[prompt_id]


class ProgressListeners:
    """The listeners of one adapter: one per ComfyUI address, all with the adapter's client id."""

    def __init__(self, client_id: str, **options: Any) -> None:
        self.client_id = client_id
        self._options = options
        self._listeners: dict[str, ProgressListener] = {}

    def ensure(self, base_url: str, policy: UrlPolicy, tls: ssl.SSLContext | None = None) -> ProgressListener:
        """The listener for ``base_url``, checked against ``policy`` and trusting what ``tls`` trusts
        (both the ones the HTTP requests use)."""
        key = base_url.rstrip("/")
        loop = asyncio.get_running_loop()
        listener = self._listeners.get(key)
        if listener is None or not listener.usable_on(loop):
            listener = self._listeners[key] = ProgressListener(
                key, self.client_id, policy, tls=tls, **self._options
            )
        elif listener.policy != policy:
            listener.policy = policy
            listener.refused = None  # a policy that trusts the address now may allow it
        return listener

    def get(self, base_url: str) -> ProgressListener | None:
        return self._listeners.get(base_url.rstrip("/"))

    async def aclose(self) -> None:
        listeners, self._listeners = list(self._listeners.values()), {}
        for listener in listeners:
            await listener.aclose()
