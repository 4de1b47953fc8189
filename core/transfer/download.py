"""Verified, resumable downloads into a partial file of the content store.

Each attempt resumes from the bytes already on disk when the server supports ranges and the
resource did not change (``If-Range`` with its ETag or Last-Modified); otherwise it starts over.
The sha256 is computed while streaming (after re-reading the resumed prefix). Size is checked
against Content-Length/Content-Range and the size we expected; a body longer than declared is
refused as soon as it overflows. The file is fsynced before the caller commits it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from core.cache.store import COPY_CHUNK, PartialFile
from core.cache.writeback import Writeback
from core.errors import ContentMismatch, NetworkError
from core.net.http import SafeHttp, error_for_status, with_retries
from core.net.retry import RetryPolicy
from core.redact import redact_text

ProgressFn = Callable[[int, int | None], None]
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class DownloadSource:
    url: str
    provider_id: str | None = None
    auth_headers: Mapping[str, str] | None = None
    # What we know before downloading (from the database): checked against what arrives.
    expected_size: int | None = None
    expected_sha256: str | None = None


@dataclass(frozen=True)
class Downloaded:
    size: int
    sha256: str
    resumed_from: int


def _url_key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:32]


def _hash_prefix(partial: PartialFile, length: int) -> hashlib._Hash:
    digest = hashlib.sha256()
    remaining = length
    with partial.path.open("rb") as f:
        while remaining > 0:
            chunk = f.read(min(COPY_CHUNK, remaining))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
    return digest


async def download(
    http: SafeHttp,
    source: DownloadSource,
    partial: PartialFile,
    *,
    retry: RetryPolicy,
    progress: ProgressFn | None = None,
    on_retry: Callable[[int, float, Exception], None] | None = None,
) -> Downloaded:
    """Download ``source`` into ``partial``, retrying retryable failures and resuming where possible."""
    restarted_after_mismatch = False

    async def attempt(_: int) -> Downloaded:
        nonlocal restarted_after_mismatch
        try:
            return await _attempt(http, source, partial, progress)
        except ContentMismatch:
            resumed = partial.read_meta().get("resumed", False)
            partial.discard()
            if resumed and not restarted_after_mismatch:
                # A resumed prefix may belong to an older version of the file: start over once.
                restarted_after_mismatch = True
                raise NetworkError("content did not verify after resuming; downloading again") from None
            raise

    return await with_retries(attempt, retry, on_retry=on_retry)


async def _attempt(
    http: SafeHttp, source: DownloadSource, partial: PartialFile, progress: ProgressFn | None
) -> Downloaded:
    meta = partial.read_meta()
    offset = partial.size()
    validator = meta.get("etag") or meta.get("last_modified")
    if offset and (meta.get("url") != _url_key(source.url) or not validator):
        partial.discard()
        offset, meta = 0, {}
    headers: dict[str, str] = {}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        headers["If-Range"] = str(validator)

    async with http.stream(source.url, headers=headers, auth_headers=source.auth_headers) as response:
        status = response.status
        if status == 416 and offset:
            partial.discard()  # our partial is not a prefix of what the server has: start over
            raise NetworkError(f"the server refused to resume {redact_text(source.url)}")
        if status not in (200, 206):
            detail = (await response.aread(2048)).decode("utf-8", "replace").strip()[:200] or None
            raise error_for_status(
                status,
                response.headers,
                source.url,
                provider_id=source.provider_id,
                what=f"a download of {redact_text(source.url)}",
                reason=response.reason,
                detail=detail,
            )
        total: int | None
        if status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
            if not match or int(match.group(1)) != offset:
                partial.discard()
                raise NetworkError(f"the server resumed {redact_text(source.url)} at the wrong offset")
            total = None if match.group(3) == "*" else int(match.group(3))
        else:
            offset = 0
            length = response.headers.get("content-length")
            total = int(length) if length and length.isdigit() else None
        if source.expected_size is not None and total is not None and total != source.expected_size:
            raise ContentMismatch(
                f"{redact_text(source.url)} is {total} bytes, but this asset is {source.expected_size} bytes"
            )
        limit = total if total is not None else source.expected_size
        partial.write_meta(
            {
                "url": _url_key(source.url),
                "etag": response.headers.get("etag"),
                "last_modified": response.headers.get("last-modified"),
                "total": total,
                "resumed": offset > 0,
            }
        )
        digest = _hash_prefix(partial, offset) if offset else hashlib.sha256()
        size = offset
        with partial.path.open("r+b" if offset else "wb") as f:
            f.seek(offset)
            f.truncate()
            writeback = Writeback(f.fileno(), offset)

            def consume(chunk: memoryview) -> None:
                # On the body's own thread. hashlib, file writes and the writeback hints release the
                # GIL; the disk works while we download, and the final fsync finds little left to do.
                nonlocal size
                if limit is not None and size + len(chunk) > limit:
                    raise ContentMismatch(
                        f"{redact_text(source.url)} sent more than the {limit} bytes it declared"
                    )
                digest.update(chunk)
                f.write(chunk)
                f.flush()
                size += len(chunk)
                writeback.advance(size)

            report = None if progress is None else (lambda received: progress(offset + received, limit))
            await response.pump(consume, report)
            await asyncio.get_running_loop().run_in_executor(None, os.fsync, f.fileno())

    if limit is not None and size < limit:
        # Cut short: keep the bytes, the next attempt resumes after them.
        raise NetworkError(f"the download of {redact_text(source.url)} stopped at {size} of {limit} bytes")
    sha256 = digest.hexdigest()
    if source.expected_sha256 is not None and sha256 != source.expected_sha256:
        raise ContentMismatch(
            f"the file downloaded from {redact_text(source.url)} does not match this asset "
            f"(sha256 {sha256[:12]}…, expected {source.expected_sha256[:12]}…)"
        )
    return Downloaded(size=size, sha256=sha256, resumed_from=offset)
