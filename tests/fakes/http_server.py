"""A fault-injecting HTTP/1.1 server on 127.0.0.1, in pure asyncio so faults happen on the wire.

Faults are queued per (method, path) with FakeHttpServer.fail(); each request pops one and the fault decides the reply.
A path registered with add_websocket() accepts a WebSocket upgrade (RFC 6455): the server's frames are unmasked,
the client's must be masked; pings are answered, a close is echoed, text and binary messages are kept.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import enum
import hashlib
import http
import json as jsonlib
import re
import socket
import ssl
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = [
    "FIXED_LAST_MODIFIED",
    "CutShort",
    "FakeHttpServer",
    "Fault",
    "Handler",
    "Hang",
    "MultipartPart",
    "Oversize",
    "Redirect",
    "Request",
    "Reset",
    "Response",
    "Served",
    "Slow",
    "Stall",
    "Status",
    "WebSocketPeer",
    "WrongBody",
    "default_etag",
]

# 64 KiB matches asyncio's default write high-water mark: one write per drain keeps memory flat on huge bodies.
CHUNK = 64 * 1024
MAX_HEAD = 64 * 1024
FIXED_LAST_MODIFIED = "Wed, 01 Jan 2025 00:00:00 GMT"
_NO_BODY_STATUSES = frozenset({204, 304})
_BODYLESS_METHODS = frozenset({"GET", "HEAD"})


# ---------------------------------------------------------------------------------------------------------------------
# Requests and responses


@dataclass(frozen=True)
class MultipartPart:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class Request:
    """One request as received; header names are stored lower-cased, use header() for lookups."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""
    target: str = ""
    # False when a fault (Reset on an upload) stopped reading the body part-way.
    body_complete: bool = True

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return jsonlib.loads(self.body)

    def multipart(self) -> dict[str, MultipartPart]:
        """The multipart/form-data fields by name (a repeated name keeps the last part)."""
        content_type = self.header("content-type") or ""
        media_type, params = _parse_header_params(content_type)
        if media_type.lower() != "multipart/form-data" or "boundary" not in params:
            raise ValueError(f"not a multipart/form-data request: {content_type!r}")
        return {part.name: part for part in _parse_multipart(self.body, params["boundary"].encode("latin-1"))}


@dataclass
class Response:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @classmethod
    def json(cls, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        merged = {"Content-Type": "application/json"}
        merged.update(headers or {})
        return cls(status=status, headers=merged, body=jsonlib.dumps(obj).encode())


Handler = Callable[[Request], Awaitable[Response]]

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OP_CONTINUATION, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_WS_MESSAGE = 1 << 20


def websocket_accept(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 section 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _WS_GUID).digest()).decode("ascii")


class WebSocketPeer:
    """The server's end of one WebSocket: send text/binary/close, or drop the TCP connection without a close."""

    def __init__(self, request: Request, writer: asyncio.StreamWriter) -> None:
        self.request = request
        self.received: list[str | bytes] = []  # the client's text and binary messages, in order
        self.pings = 0
        self.close_code: int | None = None  # the code of the client's close frame, if it sent one
        self.closed = asyncio.Event()
        self._writer = writer
        self._close_sent = False
        self.dropped = False

    @property
    def open(self) -> bool:
        return not self.closed.is_set() and not self._close_sent and not self._writer.transport.is_closing()

    def send_text(self, text: str) -> None:
        self._frame(_OP_TEXT, text.encode("utf-8"))

    def send_json(self, obj: Any) -> None:
        self.send_text(jsonlib.dumps(obj))

    def send_bytes(self, data: bytes) -> None:
        self._frame(_OP_BINARY, data)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; the connection ends when the client answers (or goes away)."""
        if not self._close_sent:
            self._frame(_OP_CLOSE, struct.pack("!H", code) + reason.encode("utf-8"))
            self._close_sent = True

    def drop(self) -> None:
        """Abort the TCP connection with no close frame: what a crash or a cut cable looks like."""
        self.dropped = True
        self._writer.transport.abort()
        self.closed.set()

    def _frame(self, opcode: int, payload: bytes) -> None:
        if self._close_sent or self._writer.transport.is_closing():
            return  # like a real server, a message after the close goes nowhere
        length = len(payload)
        if length < 126:
            head = struct.pack("!BB", 0x80 | opcode, length)
        elif length < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 126, length)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 127, length)
        self._writer.write(head + payload)

    async def _read_frame(self, reader: asyncio.StreamReader) -> tuple[bool, int, bytes]:
        first, second = await reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await reader.readexactly(8))
        if not second & 0x80:
            raise ConnectionError("a client frame without a mask (RFC 6455 section 5.1)")
        if length > MAX_WS_MESSAGE:
            raise ConnectionError(f"a client frame of {length} bytes")
        mask = await reader.readexactly(4)
        data = await reader.readexactly(length)
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        return bool(first & 0x80), first & 0x0F, payload

    async def _serve(self, reader: asyncio.StreamReader) -> None:
        """Read the client's frames until the closing handshake ends or the connection does."""
        parts: list[bytes] = []
        kind = _OP_TEXT
        try:
            while True:
                fin, opcode, payload = await self._read_frame(reader)
                if opcode == _OP_PING:
                    self.pings += 1
                    self._frame(_OP_PONG, payload)
                elif opcode == _OP_PONG:
                    pass
                elif opcode == _OP_CLOSE:
                    self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                    if not self._close_sent:  # echo the client's close: the handshake is complete
                        self._frame(_OP_CLOSE, payload[:2])
                        self._close_sent = True
                    with contextlib.suppress(ConnectionError):
                        await self._writer.drain()
                    return
                else:
                    if opcode != _OP_CONTINUATION:
                        kind, parts = opcode, []
                    parts.append(payload)
                    if fin:
                        message = b"".join(parts)
                        self.received.append(message.decode("utf-8") if kind == _OP_TEXT else message)
        finally:
            self.closed.set()


WebSocketHandler = Callable[[WebSocketPeer], Awaitable[None]]


# ---------------------------------------------------------------------------------------------------------------------
# Faults


@dataclass(frozen=True)
class Status:
    """Reply with this status, headers and body instead of the normal response."""

    code: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class CutShort:
    """Send the normal headers, only after_bytes of the body, then close cleanly (FIN)."""

    after_bytes: int
    close_delimited: bool = False


@dataclass(frozen=True)
class Reset:
    """GET: send headers + after_bytes of the body, then TCP RST. Upload: read after_bytes of the body, then RST."""

    after_bytes: int


@dataclass(frozen=True)
class Stall:
    """GET: send headers + after_bytes, hold the connection for seconds, then close. Upload: read it all, wait, reply."""

    after_bytes: int
    seconds: float


@dataclass(frozen=True)
class Slow:
    """Serve the correct response, writing the body in chunk_size pieces interval_s apart."""

    chunk_size: int
    interval_s: float


@dataclass(frozen=True)
class Redirect:
    location: str
    status: int = 302


@dataclass(frozen=True)
class WrongBody:
    """Serve these bytes as if they were the registered file (Range applies to them; ETag stays the file's)."""

    body: bytes


@dataclass(frozen=True)
class Oversize:
    """Serve the normal body plus extra bytes: close-delimited by default, else with the larger Content-Length."""

    extra: bytes
    close_delimited: bool = True


@dataclass(frozen=True)
class Hang:
    """Read the request, then never answer until the server exits."""


Fault = Status | CutShort | Reset | Stall | Slow | Redirect | WrongBody | Oversize | Hang


class Served(NamedTuple):
    """What the server did with one request: status 0 means no status line was sent (Reset upload, Hang)."""

    request: Request
    status: int
    bytes_sent: int  # body bytes handed to the socket, excluding the header block
    fault: Fault | None


# ---------------------------------------------------------------------------------------------------------------------
# Server


class _Auto(enum.Enum):
    AUTO = enum.auto()


def default_etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


@dataclass(frozen=True)
class _File:
    body: bytes
    content_type: str
    etag: str | None
    last_modified: str | None


@dataclass
class _Reply:
    status: int
    headers: list[tuple[str, str]]  # never Content-Length / Connection / Transfer-Encoding: _send owns those
    body: memoryview


class _BadRequest(Exception):
    pass


class FakeHttpServer:
    """Async context manager. Binds 127.0.0.1 on a free port in the current asyncio loop."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.base_url = ""
        self._tls = tls  # serve https (and wss) with this server context
        self.requests: list[Request] = []
        self.responses: list[Served] = []
        # Exceptions from route handlers (each answered with a 500) or from this server: a bug in a fake.
        self.errors: list[BaseException] = []
        self.connections = 0  # TCP connections accepted so far (keep-alive reuse shows as fewer connections)
        self._files: dict[str, _File] = {}
        self._routes: dict[tuple[str, str], Handler] = {}
        self._prefix_routes: dict[tuple[str, str], Handler] = {}
        self._websocket_routes: dict[str, WebSocketHandler] = {}
        self.websockets: list[WebSocketPeer] = []  # every WebSocket accepted, in order
        self._faults: dict[tuple[str, str], deque[Fault]] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    # -- lifecycle -----------------------------------------------------------------------------------------------------

    async def __aenter__(self) -> FakeHttpServer:
        self._server = await asyncio.start_server(
            self._on_connection, "127.0.0.1", 0, limit=MAX_HEAD, ssl=self._tls
        )
        port = self._server.sockets[0].getsockname()[1]
        self.base_url = f"{'https' if self._tls else 'http'}://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop listening and drop every open connection (stalls and hangs end at once)."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    # -- configuration -------------------------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.base_url + path

    def add_file(
        self,
        path: str,
        body: bytes,
        *,
        content_type: str = "application/octet-stream",
        etag: str | _Auto | None = _Auto.AUTO,
        last_modified: str | _Auto | None = _Auto.AUTO,
    ) -> None:
        """Serve body at GET/HEAD path; etag defaults to default_etag(body), last_modified to FIXED_LAST_MODIFIED."""
        self._files[path] = _File(
            body=body,
            content_type=content_type,
            etag=default_etag(body) if etag is _Auto.AUTO else etag,
            last_modified=FIXED_LAST_MODIFIED if last_modified is _Auto.AUTO else last_modified,
        )

    def remove_file(self, path: str) -> None:
        """Stop serving path (later GETs get 404)."""
        self._files.pop(path, None)

    def file_etag(self, path: str) -> str | None:
        return self._files[path].etag

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        self._routes[(method.upper(), path)] = handler

    def add_prefix_route(self, method: str, prefix: str, handler: Handler) -> None:
        """Route every path starting with prefix (e.g. "/videos/" for "/videos/{id}"); exact routes win,
        then the longest prefix. The handler reads the rest of request.path itself."""
        self._prefix_routes[(method.upper(), prefix)] = handler

    def add_websocket(self, path: str, on_open: WebSocketHandler) -> None:
        """Accept WebSocket upgrades on GET path; on_open runs once the handshake is done (it may send)."""
        self._websocket_routes[path] = on_open

    def remove_websocket(self, path: str) -> None:
        """Stop accepting upgrades on path (later GETs get 404, as from a server without WebSockets)."""
        self._websocket_routes.pop(path, None)

    def fail(self, method: str, path: str, *faults: Fault) -> None:
        self._faults.setdefault((method.upper(), path), deque()).extend(faults)

    def pending_faults(self, method: str, path: str) -> int:
        return len(self._faults.get((method.upper(), path), ()))

    def count(self, method: str, path: str) -> int:
        method = method.upper()
        return sum(1 for r in self.requests if r.method == method and r.path == path)

    # -- connection loop -----------------------------------------------------------------------------------------------

    def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback owning its task: when start_server wraps a coroutine itself, Python 3.11 logs
        # "Exception in callback" for every connection task that close() cancels.
        task = asyncio.get_running_loop().create_task(self._connection(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self.connections += 1
        graceful = False
        try:
            graceful = await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass  # the client went away or sent garbage; nothing to answer
        except Exception as exc:  # a bug in this server: keep it for the test instead of a log line at exit
            self.errors.append(exc)
        finally:
            self._writers.discard(writer)
            if graceful and not writer.transport.is_closing():
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            else:
                writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve requests until the client or a fault ends the connection; True means close it with a FIN."""
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return True
            try:
                request, keep_alive = _parse_head(head)
            except _BadRequest as exc:
                await self._send(
                    writer, None, _Reply(400, [], memoryview(str(exc).encode())), keep_alive=False
                )
                return True
            fault = self._pop_fault(request.method, request.path)

            if isinstance(fault, Reset) and request.method not in _BODYLESS_METHODS:
                # An upload cut off mid-body: take after_bytes of it, then RST without any response.
                request.body, request.body_complete = await _read_body(
                    reader, request, limit=fault.after_bytes
                )
                self._record(request, 0, 0, fault)
                _reset(writer)
                return False

            if (request.header("expect") or "").lower() == "100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.body, request.body_complete = await _read_body(reader, request, limit=None)
            self.requests.append(request)

            if isinstance(fault, Hang):
                self.responses.append(Served(request, 0, 0, fault))
                await asyncio.Event().wait()  # cancelled by close()
            if isinstance(fault, Stall) and request.method not in _BODYLESS_METHODS:
                await asyncio.sleep(fault.seconds)  # cancelled by close()
                fault = None

            on_open = self._websocket_routes.get(request.path) if request.method == "GET" else None
            if fault is None and on_open is not None:
                return await self._websocket(reader, writer, request, on_open)

            keep = await self._respond(writer, request, fault, keep_alive)
            if not keep:
                return True

    async def _websocket(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: Request,
        on_open: WebSocketHandler,
    ) -> bool:
        """The opening handshake (RFC 6455 section 4.2), then the connection belongs to a WebSocketPeer."""
        upgrade = (request.header("upgrade") or "").lower()
        connection = {t.strip().lower() for t in (request.header("connection") or "").split(",")}
        key = request.header("sec-websocket-key") or ""
        try:
            valid_key = len(base64.b64decode(key, validate=True)) == 16
        except (binascii.Error, ValueError):
            valid_key = False
        if upgrade != "websocket" or "upgrade" not in connection or not valid_key:
            reply = _Reply(400, [("Content-Type", "text/plain")], memoryview(b"not a WebSocket handshake"))
            await self._send(writer, request, reply, keep_alive=False)
            self.responses.append(Served(request, 400, len(reply.body), None))
            return True
        if request.header("sec-websocket-version") != "13":
            reply = _Reply(426, [("Sec-WebSocket-Version", "13")], memoryview(b""))
            await self._send(writer, request, reply, keep_alive=False)
            self.responses.append(Served(request, 426, 0, None))
            return True
        writer.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {websocket_accept(key)}\r\n\r\n"
            ).encode("latin-1")
        )
        self.responses.append(Served(request, 101, 0, None))
        peer = WebSocketPeer(request, writer)
        self.websockets.append(peer)
        try:
            await on_open(peer)
            await writer.drain()
            await peer._serve(reader)
        except asyncio.IncompleteReadError:
            pass  # the client went away without a close frame
        return not peer.dropped

    def _pop_fault(self, method: str, path: str) -> Fault | None:
        queue = self._faults.get((method, path))
        return queue.popleft() if queue else None

    def _record(self, request: Request, status: int, sent: int, fault: Fault | None) -> None:
        self.requests.append(request)
        self.responses.append(Served(request, status, sent, fault))

    # -- replies -------------------------------------------------------------------------------------------------------

    async def _respond(
        self, writer: asyncio.StreamWriter, request: Request, fault: Fault | None, keep_alive: bool
    ) -> bool:
        """Send the reply the fault (or the normal route/file) calls for; returns whether to keep the connection."""
        if isinstance(fault, Status):
            reply = _Reply(fault.code, list(fault.headers.items()), memoryview(fault.body))
        elif isinstance(fault, Redirect):
            reply = _Reply(fault.status, [("Location", fault.location)], memoryview(b""))
        else:
            reply = await self._dispatch(request, fault.body if isinstance(fault, WrongBody) else None)

        if isinstance(fault, CutShort):
            sent = await self._send(
                writer,
                request,
                reply,
                keep_alive=False,
                close_delimited=fault.close_delimited,
                limit=fault.after_bytes,
            )
            self.responses.append(Served(request, reply.status, sent, fault))
            return False
        if isinstance(fault, Reset):
            sent = await self._send(writer, request, reply, keep_alive=keep_alive, limit=fault.after_bytes)
            self.responses.append(Served(request, reply.status, sent, fault))
            await _wait_flushed(writer)
            _reset(writer)
            return False
        if isinstance(fault, Stall):
            sent = await self._send(writer, request, reply, keep_alive=keep_alive, limit=fault.after_bytes)
            self.responses.append(Served(request, reply.status, sent, fault))
            await asyncio.sleep(fault.seconds)  # cancelled by close()
            return False
        if isinstance(fault, Oversize):
            reply.body = memoryview(bytes(reply.body) + fault.extra)
            keep_alive = keep_alive and not fault.close_delimited
            sent = await self._send(
                writer, request, reply, keep_alive=keep_alive, close_delimited=fault.close_delimited
            )
            self.responses.append(Served(request, reply.status, sent, fault))
            return keep_alive

        sent = await self._send(
            writer, request, reply, keep_alive=keep_alive, pace=fault if isinstance(fault, Slow) else None
        )
        self.responses.append(Served(request, reply.status, sent, fault))
        return keep_alive

    async def _dispatch(self, request: Request, wrong_body: bytes | None) -> _Reply:
        handler = self._routes.get((request.method, request.path))
        if handler is None:
            prefixes = [
                (len(prefix), h)
                for (method, prefix), h in self._prefix_routes.items()
                if method == request.method and request.path.startswith(prefix)
            ]
            if prefixes:
                handler = max(prefixes, key=lambda item: item[0])[1]
        if handler is None and request.method == "HEAD":
            handler = self._routes.get(("GET", request.path))
        if handler is not None:
            try:
                response = await handler(request)
            except Exception as exc:  # a bug in a fake: answer 500 and keep it for the test to inspect
                self.errors.append(exc)
                return _Reply(500, [("Content-Type", "text/plain")], memoryview(repr(exc).encode()))
            body = response.body if wrong_body is None else wrong_body
            return _Reply(response.status, list(response.headers.items()), memoryview(body))
        file = self._files.get(request.path)
        if file is not None and request.method in _BODYLESS_METHODS:
            return _file_reply(request, file, file.body if wrong_body is None else wrong_body)
        if file is not None or any(path == request.path for _, path in self._routes):
            return _Reply(405, [("Content-Type", "text/plain")], memoryview(b"method not allowed"))
        return _Reply(404, [("Content-Type", "text/plain")], memoryview(b"not found"))

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        request: Request | None,
        reply: _Reply,
        *,
        keep_alive: bool,
        close_delimited: bool = False,
        limit: int | None = None,
        pace: Slow | None = None,
    ) -> int:
        """Write the status line, headers and (up to limit bytes of) the body; returns body bytes written."""
        reason = _reason(reply.status)
        lines = [f"HTTP/1.1 {reply.status} {reason}"]
        lines += [f"{name}: {value}" for name, value in reply.headers if name.lower() not in _OWNED_HEADERS]
        has_body = reply.status not in _NO_BODY_STATUSES and reply.status >= 200
        if has_body and not close_delimited:
            lines.append(f"Content-Length: {len(reply.body)}")
        if close_delimited or not keep_alive:
            lines.append("Connection: close")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

        body = reply.body if has_body and (request is None or request.method != "HEAD") else memoryview(b"")
        if limit is not None:
            body = body[: max(limit, 0)]
        step = pace.chunk_size if pace is not None else CHUNK
        sent = 0
        for offset in range(0, len(body), step):
            if pace is not None and offset:
                await asyncio.sleep(pace.interval_s)
            piece = body[offset : offset + step]
            writer.write(piece)
            await writer.drain()
            sent += len(piece)
        await writer.drain()
        return sent


_OWNED_HEADERS = frozenset({"content-length", "connection", "transfer-encoding"})


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _reset(writer: asyncio.StreamWriter) -> None:
    """Abort the connection with a TCP RST: SO_LINGER (on, 0s) makes close() discard and reset instead of FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _wait_flushed(writer: asyncio.StreamWriter, max_wait: float = 1.0) -> None:
    """Wait (bounded) until the kernel has sent everything, so a Reset delivers exactly after_bytes first.

    An RST discards unsent data in the send queue; without this the client would see a random, shorter prefix.
    """
    sock = writer.get_extra_info("socket")
    try:
        import fcntl
        import termios

        outq = termios.TIOCOUTQ  # Linux: SIOCOUTQ, bytes not yet acknowledged by the peer
    except (ImportError, AttributeError):
        await asyncio.sleep(0.05)
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait
    while sock is not None and loop.time() < deadline:
        try:
            pending = struct.unpack("i", fcntl.ioctl(sock.fileno(), outq, b"\0\0\0\0"))[0]
        except OSError:
            return
        if pending == 0:
            return
        await asyncio.sleep(0.002)


# ---------------------------------------------------------------------------------------------------------------------
# Parsing


def _parse_head(head: bytes) -> tuple[Request, bool]:
    """Parse the request line and headers; returns the request (no body yet) and whether to keep the connection."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes anything
        raise _BadRequest("undecodable head") from exc
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(f"bad request line: {lines[0]!r}")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise _BadRequest(f"bad header line: {line!r}")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    split = urlsplit(target)
    request = Request(
        method=method.upper(),
        path=unquote(split.path),
        query=dict(parse_qsl(split.query, keep_blank_values=True)),
        headers=headers,
        target=target,
    )
    connection = {token.strip().lower() for token in headers.get("connection", "").split(",")}
    keep_alive = "keep-alive" in connection if version == "HTTP/1.0" else "close" not in connection
    return request, keep_alive


async def _read_body(
    reader: asyncio.StreamReader, request: Request, *, limit: int | None
) -> tuple[bytes, bool]:
    """Read the request body (Content-Length or chunked), at most limit bytes; returns (body, complete)."""
    if "chunked" in (request.header("transfer-encoding") or "").lower():
        return await _read_chunked(reader, limit)
    length_text = request.header("content-length")
    if length_text is None:
        return b"", True
    try:
        length = int(length_text)
    except ValueError as exc:
        raise ConnectionError(f"bad Content-Length {length_text!r}") from exc
    if limit is not None and limit < length:
        return await reader.readexactly(limit), False
    return await reader.readexactly(length), True


async def _read_chunked(reader: asyncio.StreamReader, limit: int | None) -> tuple[bytes, bool]:
    parts: list[bytes] = []
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise ConnectionError(f"bad chunk size line {size_line!r}") from exc
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailer fields: ignored
            return b"".join(parts), True
        if limit is not None and total + size > limit:
            if limit - total:
                parts.append(await reader.readexactly(limit - total))
            return b"".join(parts), False
        parts.append(await reader.readexactly(size))
        total += size
        await reader.readexactly(2)


_PARAM_RE = re.compile(r';\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def _parse_header_params(value: str) -> tuple[str, dict[str, str]]:
    """Split 'type; a=1; b="x y"' into ('type', {'a': '1', 'b': 'x y'}); parameter names are lower-cased."""
    main, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for match in _PARAM_RE.finditer(";" + rest):
        raw = match.group(2).strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[match.group(1).lower()] = raw
    return main.strip(), params


def _parse_multipart(body: bytes, boundary: bytes) -> list[MultipartPart]:
    delimiter = b"--" + boundary
    chunks = body.split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise ValueError("malformed multipart body: no closing boundary")
    parts: list[MultipartPart] = []
    for chunk in chunks[1:-1]:
        # Each part is CRLF, headers, CRLF CRLF, data, CRLF (the CRLF before the next delimiter belongs to it).
        if not chunk.startswith(b"\r\n") or not chunk.endswith(b"\r\n"):
            raise ValueError("malformed multipart part framing")
        head, sep, data = chunk[2:-2].partition(b"\r\n\r\n")
        if not sep:
            head, data = chunk[2:-2].removesuffix(b"\r\n"), b""
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip():
                headers[name.strip().lower()] = value.strip()
        _, disposition = _parse_header_params(headers.get("content-disposition", ""))
        if "name" not in disposition:
            raise ValueError("multipart part without a name")
        parts.append(
            MultipartPart(
                name=disposition["name"],
                filename=disposition.get("filename"),
                content_type=headers.get("content-type"),
                data=data,
            )
        )
    return parts


def _parse_range(value: str, size: int) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """A single 'bytes=' range as (first, last) inclusive; None means ignore the header and serve 200."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", value)
    if match is None:
        return None  # multiple ranges or another unit: ignoring Range is allowed (RFC 9110 §14.2)
    first_text, last_text = match.groups()
    if not first_text:
        if not last_text:
            return None
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size - 1
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None
    if first >= size:
        return "unsatisfiable"
    last = min(int(last_text), size - 1) if last_text else size - 1
    return first, last


def _if_range_matches(value: str, file: _File) -> bool:
    value = value.strip()
    if value.startswith("W/"):
        return False  # If-Range needs a strong validator
    if file.etag is not None and value == file.etag:
        return True
    return file.last_modified is not None and value == file.last_modified


def _file_reply(request: Request, file: _File, body: bytes) -> _Reply:
    headers = [("Content-Type", file.content_type), ("Accept-Ranges", "bytes")]
    if file.etag is not None:
        headers.append(("ETag", file.etag))
    if file.last_modified is not None:
        headers.append(("Last-Modified", file.last_modified))
    view = memoryview(body)
    size = len(view)
    range_header = request.header("range")
    if_range = request.header("if-range")
    if range_header is not None and (if_range is None or _if_range_matches(if_range, file)):
        parsed = _parse_range(range_header, size)
        if parsed == "unsatisfiable":
            return _Reply(416, [*headers, ("Content-Range", f"bytes */{size}")], memoryview(b""))
        if parsed is not None:
            first, last = parsed
            return _Reply(
                206, [*headers, ("Content-Range", f"bytes {first}-{last}/{size}")], view[first : last + 1]
            )
    return _Reply(200, headers, view)
