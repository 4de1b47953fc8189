"""Importing the user's own files into the library: each file is probed, copied into the content store and
becomes one asset per content (sha256), however many names or simultaneous imports the bytes arrive under.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.cache.index import CacheIndex
from core.cache.store import ContentStore
from core.db.enums import SyncStatus, UploadMethod
from core.db.locks import lock_key
from core.db.models import LOCAL_USERNAME, Asset, AssetLineage, CacheEntry, User
from core.errors import CacheError, DatabaseNotReady, MediaError, PixSimError
from core.media.probe import MediaFacts, probe

log = logging.getLogger(__name__)

# How often the copy of a large file reports its progress.
_POLL_SECONDS = 0.1
# A stored copy is leased while its asset row is written, so a concurrent eviction pass cannot take it.
_LEASE = timedelta(minutes=5)
# A stored copy that disappears before its asset is written (evicted, or discarded by a failed concurrent
# import of the same bytes) is copied again, this many times in all.
_ATTEMPTS = 3


@dataclass(frozen=True)
class ImportProgress:
    """Where an import is. Byte counts use the sizes found when the files were listed."""

    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    current: Path | None


@dataclass(frozen=True)
class ImportReport:
    """What an import did, file by file, in the order the files were found."""

    imported: list[tuple[Path, int]] = field(default_factory=list)  # (file, new asset id)
    duplicates: list[tuple[Path, int]] = field(default_factory=list)  # (file, asset id already there)
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (file or folder, why it was skipped)
    cancelled: bool = False
    not_started: list[Path] = field(default_factory=list)  # files left untouched by a cancellation


ProgressCallback = Callable[[ImportProgress], None]


@dataclass(frozen=True)
class DerivedParent:
    """A lineage edge of a file PixSim made from library assets (a cut clip, a saved frame)."""

    asset_id: int
    role: str
    operation: str
    start_sec: float | None = None
    end_sec: float | None = None
    frame: int | None = None
    transformation: dict[str, Any] = field(default_factory=dict)


def expand_paths(
    paths: Sequence[Path], *, skip_folders: Sequence[Path] = ()
) -> tuple[list[tuple[Path, int]], list[tuple[Path, str]]]:
    """The files to import, with their sizes, and the paths that cannot be imported, with the reason.

    Folders are walked recursively in name order, skipping hidden files and folders, ``skip_folders``
    (the library's own store) and anything that is not a regular file; symbolic links are followed, but a
    folder or file reached twice (a link loop, a hard link, the same path given twice) is taken once.
    Files given directly are kept even when hidden.
    """
    files: list[tuple[Path, int]] = []
    problems: list[tuple[Path, str]] = []
    seen_files: set[tuple[int, int]] = set()
    seen_folders: set[tuple[int, int]] = set()
    for folder in skip_folders:
        with contextlib.suppress(OSError):
            info = folder.stat()
            seen_folders.add((info.st_dev, info.st_ino))

    def add_file(path: Path, info: os.stat_result) -> None:
        if (info.st_dev, info.st_ino) not in seen_files:
            seen_files.add((info.st_dev, info.st_ino))
            files.append((path, info.st_size))

    def walk(folder: Path, info: os.stat_result) -> None:
        if (info.st_dev, info.st_ino) in seen_folders:
            return
        seen_folders.add((info.st_dev, info.st_ino))
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as exc:
            problems.append((folder, f"Cannot read the folder {folder}: {exc.strerror or exc}."))
            return
        for entry in entries:
            path = Path(entry.path)
            if _hidden(entry):
                continue
            try:
                target = path.stat()
            except FileNotFoundError:
                problems.append((path, f"{path} is a link to something that no longer exists."))
                continue
            except OSError as exc:
                problems.append((path, f"Cannot read {path}: {exc.strerror or exc}."))
                continue
            if stat.S_ISDIR(target.st_mode):
                walk(path, target)
            elif stat.S_ISREG(target.st_mode):
                add_file(path, target)
            # Pipes, sockets and devices are not media files (and reading a pipe could block forever).

    for path in paths:
        try:
            info = path.stat()
        except FileNotFoundError:
            problems.append((path, f"{path} does not exist."))
            continue
        except OSError as exc:
            problems.append((path, f"Cannot read {path}: {exc.strerror or exc}."))
            continue
        if stat.S_ISDIR(info.st_mode):
            walk(path, info)
        elif stat.S_ISREG(info.st_mode):
            add_file(path, info)
        else:
            problems.append((path, f"{path} is not a regular file (a device, pipe or socket)."))
    return files, problems


def _hidden(entry: os.DirEntry[str]) -> bool:
    if entry.name.startswith("."):
        return True
    try:
        attributes = getattr(entry.stat(follow_symlinks=False), "st_file_attributes", 0)
    except OSError:
        return False
    return bool(attributes & stat.FILE_ATTRIBUTE_HIDDEN)  # Windows' "hidden" flag


@dataclass(frozen=True)
class _Stored:
    sha256: str
    size: int
    path: Path
    created: bool  # this import put the object in the store (it was not there before)


class _Tracker:
    """Turns file and byte counts into monotonic ``ImportProgress`` events: one as each file starts and
    ends, and one per poll while a file is copied (so no more than about ten a second for large files)."""

    def __init__(self, callback: ProgressCallback | None, files_total: int, bytes_total: int) -> None:
        self._callback = callback
        self._files_total = files_total
        self._bytes_total = bytes_total
        self._files_done = 0
        self._bytes_before = 0  # bytes of the files already done
        self._bytes_current = 0  # bytes of the current file copied so far
        self._size = 0
        self._current: Path | None = None

    def start(self, path: Path, size: int) -> None:
        self._current, self._size, self._bytes_current = path, size, 0
        self.emit()

    def copied(self, done: int) -> None:
        done = min(done, self._size)
        if done > self._bytes_current:
            self._bytes_current = done
            self.emit()

    def finish(self) -> None:
        self._files_done += 1
        self._bytes_before += self._size
        self._current, self._size, self._bytes_current = None, 0, 0
        self.emit()

    def emit(self) -> None:
        if self._callback is None:
            return
        event = ImportProgress(
            files_done=self._files_done,
            files_total=self._files_total,
            bytes_done=self._bytes_before + self._bytes_current,
            bytes_total=self._bytes_total,
            current=self._current,
        )
        try:
            self._callback(event)
        except Exception:
            log.exception("import progress listener failed")


class ImportService:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], store: ContentStore, index: CacheIndex
    ) -> None:
        self._sessions = sessions
        self._store = store
        self._index = index

    async def import_paths(
        self,
        paths: Sequence[Path],
        *,
        progress: ProgressCallback | None = None,
        cancel: asyncio.Event | None = None,
    ) -> ImportReport:
        """Import files and folders (recursively) into the library.

        Files PixSim cannot read as media are listed in ``failed`` with the reason and leave nothing
        behind. Setting ``cancel`` stops before the next file; the file being imported is finished.
        """
        # A folder holding the library's own store (the data folder, say) must not import the store.
        files, problems = await asyncio.to_thread(expand_paths, paths, skip_folders=[self._store.root])
        user_id = await self._local_user_id()
        imported: list[tuple[Path, int]] = []
        duplicates: list[tuple[Path, int]] = []
        failed = list(problems)
        tracker = _Tracker(progress, len(files), sum(size for _, size in files))
        tracker.emit()
        for position, (path, size) in enumerate(files):
            if cancel is not None and cancel.is_set():
                left = [p for p, _ in files[position:]]
                return ImportReport(imported, duplicates, failed, cancelled=True, not_started=left)
            tracker.start(path, size)
            try:
                asset_id, new = await self._import_file(path, user_id, tracker.copied)
            except PixSimError as exc:
                log.info("not imported: %s", exc)
                failed.append((path, str(exc)))
            else:
                (imported if new else duplicates).append((path, asset_id))
            tracker.finish()
        return ImportReport(imported, duplicates, failed)

    async def store_derived(
        self, path: Path, *, title: str, parents: Sequence[DerivedParent], description: str | None = None
    ) -> int:
        """Keep a file PixSim derived from library assets (a clip cut, a saved frame) as an asset with
        its lineage edges, in one transaction. Content already in the library is reused (same sha256),
        and gets the edges if it lacks them. The file at ``path`` is copied; the caller removes it."""
        user_id = await self._local_user_id()
        facts = await asyncio.to_thread(probe, path)
        for _ in range(_ATTEMPTS):
            stored = await self._copy(path, lambda _done: None)
            try:
                await self._index.record(stored.sha256, stored.size)
                if not await self._index.lease(stored.sha256, _LEASE):
                    continue
                asset_id = await self._record_derived(user_id, stored, facts, title, description, parents)
            except BaseException:
                await asyncio.shield(self._discard_unused(stored))
                raise
            if asset_id is not None:
                return asset_id
        raise CacheError(
            f"Cannot keep {title!r} in the library: its stored copy was removed while it was being "
            "saved (by a cache eviction). Try again."
        )

    async def _record_derived(
        self,
        user_id: int,
        stored: _Stored,
        facts: MediaFacts,
        title: str,
        description: str | None,
        parents: Sequence[DerivedParent],
    ) -> int | None:
        async with self._sessions() as session, session.begin():
            found = await self._find_or_add(
                session, user_id, stored, facts, title=title, description=description
            )
            if found is None:
                return None
            asset_id = found[0]
            for order, parent in enumerate(parents):
                if parent.asset_id == asset_id:
                    continue  # identical bytes (a cut of the whole video): no self edge
                await session.execute(
                    insert(AssetLineage)
                    .values(
                        parent_asset_id=parent.asset_id,
                        child_asset_id=asset_id,
                        operation=parent.operation,
                        parent_role=parent.role,
                        provider_id="local",
                        parent_start_sec=parent.start_sec,
                        parent_end_sec=parent.end_sec,
                        parent_frame=parent.frame,
                        sequence_order=order,
                        transformation=parent.transformation,
                    )
                    .on_conflict_do_nothing()
                )
            log.info("stored derived file %r as asset %s", title, asset_id)
            return asset_id

    async def _local_user_id(self) -> int:
        async with self._sessions() as session:
            user_id = await session.scalar(select(User.id).where(User.username == LOCAL_USERNAME))
        if user_id is None:
            raise DatabaseNotReady(
                f"The library database has no {LOCAL_USERNAME!r} user to own imported files. "
                "Run `pixsim db upgrade`, or ask the server's administrator to restore the user."
            )
        return user_id

    async def _import_file(
        self, source: Path, user_id: int, copied: Callable[[int], None]
    ) -> tuple[int, bool]:
        """(asset id, True) for a new asset, (existing asset id, False) for content already there."""
        try:
            before = await asyncio.to_thread(source.stat)
        except OSError as exc:
            raise MediaError(f"Cannot read {source}: {exc.strerror or exc}.") from None
        # Probing first keeps files that are not media out of the store altogether. The source is probed
        # (not the stored copy) because its name's suffix helps tell MOV from MP4 and WebM from MKV.
        facts = await asyncio.to_thread(probe, source)
        uri = await asyncio.to_thread(lambda: source.resolve().as_uri())
        for _ in range(_ATTEMPTS):
            stored = await self._copy(source, copied)
            try:
                await asyncio.to_thread(_check_unchanged, source, before, stored.size)
                await self._index.record(stored.sha256, stored.size)
                # The lease simply runs out: releasing would shorten other holders' leases too.
                if not await self._index.lease(stored.sha256, _LEASE):
                    continue  # evicted between the two statements: copy again
                outcome = await self._record_asset(source, user_id, stored, facts, uri)
            except BaseException:
                await asyncio.shield(self._discard_unused(stored))
                raise
            if outcome is not None:
                return outcome
        raise CacheError(
            f"Cannot keep {source} in the library: its stored copy was removed while it was being "
            "imported (by a cache eviction or another import). Import it again."
        )

    async def _copy(self, source: Path, copied: Callable[[int], None]) -> _Stored:
        """Copy into the store on a worker thread, reporting how far the copy got.

        If the caller is cancelled meanwhile, the copy (which cannot be interrupted) is waited for and
        its object removed again unless something uses it: a cancelled import leaves nothing behind.
        """
        key = f"import-{uuid.uuid4().hex}"
        partial = self._store.partial(key)
        task = asyncio.ensure_future(asyncio.to_thread(self._copy_sync, source, key))
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=_POLL_SECONDS)
                copied(partial.size())
        except asyncio.CancelledError:
            with contextlib.suppress(PixSimError):
                stored = await asyncio.shield(task)
                await asyncio.shield(self._discard_unused(stored))
            raise
        return task.result()

    def _copy_sync(self, source: Path, key: str) -> _Stored:
        self._store.ensure_dirs()
        partial = self._store.partial(key)
        # The store opens its partial file for writing, which keeps this inode; after the rename the
        # object has it too, unless identical content was already stored (then the partial is dropped).
        # That is how we know whether this import created the object.
        try:
            partial.path.touch(exist_ok=False)
            inode = partial.path.stat().st_ino
        except OSError as exc:
            raise CacheError(
                f"Cannot write to the library folder {self._store.root}: {exc.strerror}."
            ) from None
        try:
            sha256, size, path = self._store.add_file(source, key)
        finally:
            partial.discard()  # nothing to do unless the copy failed before the store cleaned up
        try:
            created = inode != 0 and path.stat().st_ino == inode
        except OSError:
            created = False
        return _Stored(sha256, size, path, created)

    async def _record_asset(
        self, source: Path, user_id: int, stored: _Stored, facts: MediaFacts, uri: str
    ) -> tuple[int, bool] | None:
        """The existing asset of these bytes, or a new one (see ``_find_or_add``)."""
        async with self._sessions() as session, session.begin():
            found = await self._find_or_add(
                session, user_id, stored, facts, title=source.stem, original_source_url=uri
            )
            if found is not None and found[1]:
                log.info("imported %s as asset %s", source, found[0])
            return found

    async def _find_or_add(
        self,
        session: AsyncSession,
        user_id: int,
        stored: _Stored,
        facts: MediaFacts,
        *,
        title: str,
        description: str | None = None,
        original_source_url: str | None = None,
    ) -> tuple[int, bool] | None:
        """Under a transaction-scoped advisory lock per content: the user's existing asset with these
        bytes (id, False), or a new local asset of them (id, True). None if the stored copy vanished
        (the caller copies again)."""
        await _lock_content(session, stored.sha256)
        existing = await session.scalar(
            select(Asset.id)
            .where(Asset.user_id == user_id, Asset.sha256 == stored.sha256)
            .order_by(Asset.id)
            .limit(1)
        )
        if existing is not None:
            return existing, False
        # A failed import of the same bytes removes the object under this lock when no asset uses it.
        if not await asyncio.to_thread(self._store.has, stored.sha256, stored.size):
            return None
        asset = Asset(
            user_id=user_id,
            media_type=facts.media_type,
            provider_id="local",
            sha256=stored.sha256,
            file_size_bytes=stored.size,
            mime_type=facts.mime_type,
            sync_status=SyncStatus.DOWNLOADED,
            width=facts.width,
            height=facts.height,
            duration_sec=facts.duration_sec,
            fps=facts.fps,
            title=title,
            description=description,
            original_source_url=original_source_url,
            upload_method=UploadMethod.LOCAL_IMPORT,
        )
        session.add(asset)
        await session.flush()
        return asset.id, True

    async def _discard_unused(self, stored: _Stored) -> None:
        """Remove an object this import created if no asset uses it (checked under the content's lock)."""
        if not stored.created:
            return
        try:
            async with self._sessions() as session, session.begin():
                await _lock_content(session, stored.sha256)
                used = await session.scalar(select(Asset.id).where(Asset.sha256 == stored.sha256).limit(1))
                if used is not None:
                    return
                await session.execute(delete(CacheEntry).where(CacheEntry.sha256 == stored.sha256))
                await asyncio.to_thread(self._store.remove, stored.sha256)
        except Exception:
            # The failure being reported matters more; the object is then an unused cache file.
            log.exception("could not remove the unused stored copy %s", stored.sha256)


async def _lock_content(session: AsyncSession, sha256: str) -> None:
    await session.execute(select(func.pg_advisory_xact_lock(lock_key("import", sha256))))


def _check_unchanged(source: Path, before: os.stat_result, copied: int) -> None:
    try:
        after = source.stat()
    except OSError as exc:
        raise MediaError(f"Cannot read {source}: {exc.strerror or exc}.") from None
    if copied != before.st_size or (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise MediaError(
            f"{source} changed while it was being imported (is it still being written?). "
            "Import it again once it is complete."
        )
