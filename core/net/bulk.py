"""A lean HTTP/1.1 GET for bulk media bodies, on asyncio streams with megabyte reads.

httpx hands a body over in 64 KiB events with several layers of Python per event: about 280 MiB/s on
the project's 2-core machine, and enough GIL traffic to disturb the GUI thread. Media downloads need one
thing only: a GET streamed to disk. This client does exactly that (one request per connection, TLS via
the ``ssl`` module with certifi's CA bundle, Content-Length, chunked and close-delimited bodies) and
hands over whatever the socket has buffered, megabytes at a time. Redirects, URL checks and
credentials are ``SafeHttp``'s business, not this module's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import certifi

from core.errors import NetworkError
from core.redact import redact_text

STREAM_LIMIT = 2 << 20  # the transport pauses reading beyond twice this: bounded memory
# Reads take everything buffered (StreamReader moves the rest of its buffer after a partial read).
READ_SIZE = 2 * STREAM_LIMIT
MAX_HEAD = 64 * 1024
_NO_BODY = {204, 304}

_ssl_context: ssl.SSLContext | None = None


def _tls() -> ssl.SSLContext:
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = ssl.create_default_context(cafile=certifi.where())
    return _ssl_context


@dataclass
class BulkResponse:
    url: str
    status: int
    reason: str
    headers: dict[str, str]
    read_timeout: float
    _reader: asyncio.StreamReader = field(repr=False)
    _writer: asyncio.StreamWriter = field(repr=False)

    @property
    def is_redirect(self) -> bool:
        return self.status in (301, 302, 303, 307, 308) and "location" in self.headers

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, in pieces of up to 8 MiB. Raises ``NetworkError`` if it is cut short."""
        if self.status in _NO_BODY:
            return
        encoding = self.headers.get("transfer-encoding", "").lower()
        length = self.headers.get("content-length")
        if "chunked" in encoding:
            async for chunk in self._chunked():
                yield chunk
        elif length is not None and length.strip().isdigit():
            remaining = int(length)
            while remaining:
                chunk = await self._read(min(READ_SIZE, remaining))
                if not chunk:
                    raise NetworkError(
                        f"the connection closed {remaining} bytes before the end of the body "
                        f"({redact_text(self.url)})"
                    )
                remaining -= len(chunk)
                yield chunk
        else:
            while chunk := await self._read(READ_SIZE):  # close-delimited: the end is the close
                yield chunk

    async def aread(self, limit: int = MAX_HEAD) -> bytes:
        """A small body (an error message), at most ``limit`` bytes."""
        parts: list[bytes] = []
        size = 0
        async for chunk in self.iter_chunks():
            parts.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
        return b"".join(parts)[:limit]

    async def aclose(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
            await asyncio.wait_for(self._writer.wait_closed(), 2)

    async def _chunked(self) -> AsyncIterator[bytes]:
        while True:
            line = await self._line()
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise NetworkError(f"malformed chunked body from {redact_text(self.url)}") from None
            if size == 0:
                while await self._line():  # trailers, up to the blank line
                    pass
                return
            while size:
                chunk = await self._read(min(READ_SIZE, size))
                if not chunk:
                    raise NetworkError(f"the connection closed inside a chunk ({redact_text(self.url)})")
                size -= len(chunk)
                yield chunk
            if await self._line():
                raise NetworkError(f"malformed chunked body from {redact_text(self.url)}")

    async def _line(self) -> bytes:
        try:
            async with asyncio.timeout(self.read_timeout):
                line = await self._reader.readuntil(b"\r\n")
        except asyncio.IncompleteReadError:
            raise NetworkError(f"the connection closed mid-body ({redact_text(self.url)})") from None
        except asyncio.LimitOverrunError:
            raise NetworkError(f"malformed chunked body from {redact_text(self.url)}") from None
        except TimeoutError:
            raise NetworkError(f"the server stopped sending data ({redact_text(self.url)})") from None
        except (OSError, ssl.SSLError) as exc:
            raise NetworkError(f"network error ({redact_text(self.url)}): {exc}") from None
        return line[:-2]

    async def _read(self, size: int) -> bytes:
        try:
            # asyncio.timeout, not wait_for: no task per read (it matters at hundreds of MB/s).
            async with asyncio.timeout(self.read_timeout):
                return await self._reader.read(size)
        except TimeoutError:
            raise NetworkError(f"the server stopped sending data ({redact_text(self.url)})") from None
        except (OSError, ssl.SSLError) as exc:
            raise NetworkError(
                f"network error ({redact_text(self.url)}): {exc.strerror or exc}"
                if isinstance(exc, OSError)
                else f"TLS error ({redact_text(self.url)}): {exc}"
            ) from None


async def open_get(
    url: str,
    headers: Mapping[str, str],
    *,
    connect_timeout: float,
    read_timeout: float,
    user_agent: str = "PixSim",
    tls: ssl.SSLContext | None = None,
) -> BulkResponse:
    """Send a GET and read the response head. The caller has checked the URL against the policy."""
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    shown = redact_text(url)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host,
                port,
                ssl=(tls or _tls()) if secure else None,
                server_hostname=host if secure else None,
                limit=STREAM_LIMIT,
            ),
            connect_timeout,
        )
    except TimeoutError:
        raise NetworkError(f"connecting timed out ({shown})") from None
    except ssl.SSLError as exc:
        raise NetworkError(f"TLS error ({shown}): {exc.reason or exc}") from None
    except OSError as exc:
        raise NetworkError(f"cannot connect ({shown}): {exc.strerror or exc}") from None

    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = parts.netloc.rsplit("@", 1)[-1]
    lines = [f"GET {target} HTTP/1.1", f"Host: {host_header}", f"User-Agent: {user_agent}"]
    lines += ["Accept: */*", "Accept-Encoding: identity", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await asyncio.wait_for(writer.drain(), read_timeout)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), read_timeout)
    except (
        asyncio.IncompleteReadError,
        asyncio.LimitOverrunError,
        TimeoutError,
        OSError,
        ssl.SSLError,
    ) as exc:
        writer.close()
        kind = "the server did not answer" if isinstance(exc, TimeoutError) else "no valid answer"
        raise NetworkError(f"{kind} ({shown})") from None
    if len(head) > MAX_HEAD:
        writer.close()
        raise NetworkError(f"the response head is too large ({shown})")
    status, reason, response_headers = _parse_head(head, shown)
    return BulkResponse(url, status, reason, response_headers, read_timeout, reader, writer)


def _parse_head(head: bytes, shown: str) -> tuple[int, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/1.") or not status_line[1].isdigit():
        raise NetworkError(f"not an HTTP/1.x answer ({shown})")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise NetworkError(f"malformed header in the answer ({shown})")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return int(status_line[1]), status_line[2] if len(status_line) > 2 else "", headers
