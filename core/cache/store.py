"""Files addressed by their sha256. Bytes arrive in ``partial/`` and only become visible under
``objects/`` after they were verified and fsynced, by an atomic rename: a crash at any point leaves
either nothing or a complete, correct file under the final name."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.cache.writeback import Writeback
from core.errors import CacheError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,120}$")
COPY_CHUNK = 1024 * 1024


def check_sha256(sha256: str) -> str:
    if not _SHA256.match(sha256):
        raise CacheError(f"not a sha256 hex digest: {sha256[:80]!r}")
    return sha256


def fsync_dir(path: Path) -> None:
    """Make a rename durable (directory entries are data too). No-op where directories can't be opened."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class PartialFile:
    """A download in progress: the bytes so far, and what we need to resume them safely."""

    path: Path
    meta_path: Path

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def read_meta(self) -> dict[str, Any]:
        try:
            data = json.loads(self.meta_path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write_meta(self, meta: dict[str, Any]) -> None:
        tmp = self.meta_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta))
        tmp.replace(self.meta_path)

    def discard(self) -> None:
        for path in (self.path, self.meta_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


class ContentStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects"
        self.partials = root / "partial"

    def ensure_dirs(self) -> None:
        try:
            self.objects.mkdir(parents=True, exist_ok=True)
            self.partials.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"Cannot create the cache folder {self.root}: {exc.strerror}.") from None

    def object_path(self, sha256: str) -> Path:
        """Derived from the hash only, never from a name a server or user supplied."""
        check_sha256(sha256)
        return self.objects / sha256[:2] / sha256[2:4] / sha256

    def has(self, sha256: str, size: int | None = None) -> bool:
        try:
            stat = self.object_path(sha256).stat()
        except FileNotFoundError:
            return False
        return size is None or stat.st_size == size

    def partial(self, key: str) -> PartialFile:
        if not _KEY.match(key):
            raise CacheError(f"invalid partial key {key!r}")
        return PartialFile(self.partials / f"{key}.part", self.partials / f"{key}.json")

    def commit(self, partial: PartialFile, sha256: str) -> Path:
        """Move a verified, fsynced partial file to its final name (or drop it: content already stored)."""
        final = self.object_path(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists() and final.stat().st_size == partial.size():
            partial.discard()  # identical content is stored once
            return final
        partial.path.replace(final)
        fsync_dir(final.parent)
        with contextlib.suppress(FileNotFoundError):
            partial.meta_path.unlink()
        return final

    def add_file(self, source: Path, key: str) -> tuple[str, int, Path]:
        """Copy a local file into the store, hashing as it goes. Returns (sha256, size, path)."""
        self.ensure_dirs()
        partial = self.partial(key)
        digest = hashlib.sha256()
        size = 0
        try:
            with source.open("rb") as src, partial.path.open("wb") as dst:
                writeback = Writeback(dst.fileno())
                while chunk := src.read(COPY_CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
                    dst.flush()
                    writeback.advance(size)
                dst.flush()
                os.fsync(dst.fileno())
        except OSError as exc:
            partial.discard()
            raise CacheError(f"Cannot copy {source} into the library: {exc.strerror or exc}.") from None
        sha256 = digest.hexdigest()
        return sha256, size, self.commit(partial, sha256)

    def remove(self, sha256: str) -> int:
        path = self.object_path(sha256)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def iter_objects(self) -> Iterator[tuple[str, int]]:
        if not self.objects.exists():
            return
        for path in self.objects.glob("??/??/*"):
            if _SHA256.match(path.name):
                yield path.name, path.stat().st_size

    def clear_partials(self) -> None:
        shutil.rmtree(self.partials, ignore_errors=True)
        self.partials.mkdir(parents=True, exist_ok=True)
