"""Importing the user's files: real media on disk, a real database and content store, nothing mocked."""

from __future__ import annotations

import argparse
import array
import asyncio
import hashlib
import io
import itertools
import json
import math
import os
import shutil
import socket
import struct
import threading
import wave
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.import_cli import run_import_command
from app.settings import Settings
from core.cache.index import CacheIndex
from core.cache.store import ContentStore
from core.db.engine import make_async_engine, make_async_session_factory
from core.db.enums import MediaType, SyncStatus, UploadMethod
from core.db.models import Asset, CacheEntry
from core.importer import ImportProgress, ImportService, expand_paths
from tests.factories import add_asset
from tests.fakes.media import tiny_mp4, tiny_png

# -- real media files --------------------------------------------------------------------------------


def jpeg_rotated() -> bytes:
    """An 80x40 JPEG whose EXIF says "rotate 90° to display": shown 40 wide, 80 high."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.new("RGB", (80, 40), "red").save(buffer, format="JPEG", exif=exif)
    return buffer.getvalue()


def wav_tone(seconds: float = 1.0, rate: int = 8000) -> bytes:
    samples = array.array(
        "h", (round(12000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(round(seconds * rate)))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


def glb_model() -> bytes:
    body = json.dumps({"asset": {"version": "2.0"}}).encode()
    body += b" " * (-len(body) % 4)
    chunk = struct.pack("<I4s", len(body), b"JSON") + body
    return struct.pack("<4sII", b"glTF", 2, 12 + len(chunk)) + chunk


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the library under test --------------------------------------------------------------------------


@dataclass
class Library:
    sessions: async_sessionmaker[AsyncSession]
    store: ContentStore
    service: ImportService

    async def assets(self) -> list[Asset]:
        async with self.sessions() as session:
            return list(await session.scalars(select(Asset).order_by(Asset.id)))

    async def cache_entries(self) -> list[str]:
        async with self.sessions() as session:
            return sorted(await session.scalars(select(CacheEntry.sha256)))

    def objects(self) -> list[str]:
        return sorted(sha256 for sha256, _ in self.store.iter_objects())

    def partials(self) -> list[Path]:
        return list(self.store.partials.glob("*")) if self.store.partials.exists() else []


def make_library(sessions: async_sessionmaker[AsyncSession], store: ContentStore) -> Library:
    return Library(sessions, store, ImportService(sessions, store, CacheIndex(sessions, store)))


@pytest.fixture
def library(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> Library:
    return make_library(sessions, ContentStore(tmp_path / "cache"))


class GatedStore(ContentStore):
    """The real store, pausing after each copy until the test lets it go: to act in mid-import."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.copied = threading.Event()
        self.go_on = threading.Event()

    def add_file(self, source: Path, key: str) -> tuple[str, int, Path]:
        result = super().add_file(source, key)
        self.copied.set()
        self.go_on.wait(10)
        return result


# -- tests -------------------------------------------------------------------------------------------


async def test_each_kind_of_media_becomes_an_asset_with_its_probed_facts(
    library: Library, tmp_path: Path
) -> None:
    files = [
        write(tmp_path / "in" / "still.png", tiny_png(1, size=(64, 48))),
        write(tmp_path / "in" / "phone photo.jpg", jpeg_rotated()),
        write(tmp_path / "in" / "clip.mp4", tiny_mp4(2, seconds=1.0, size=(64, 48), fps=12)),
        write(tmp_path / "in" / "tone.wav", wav_tone(1.0)),
        write(tmp_path / "in" / "chair.glb", glb_model()),
    ]

    report = await library.service.import_paths(files)

    assert [p for p, _ in report.imported] == files
    assert (report.duplicates, report.failed, report.cancelled) == ([], [], False)
    assets = {a.id: a for a in await library.assets()}
    assert sorted(assets) == sorted(asset_id for _, asset_id in report.imported)
    by_file = {path.name: assets[asset_id] for path, asset_id in report.imported}
    facts = {
        name: (a.media_type, a.mime_type, a.width, a.height, a.fps, a.title) for name, a in by_file.items()
    }
    assert facts == {
        "still.png": (MediaType.IMAGE, "image/png", 64, 48, None, "still"),
        "phone photo.jpg": (MediaType.IMAGE, "image/jpeg", 40, 80, None, "phone photo"),
        "clip.mp4": (MediaType.VIDEO, "video/mp4", 64, 48, 12.0, "clip"),
        "tone.wav": (MediaType.AUDIO, "audio/wav", None, None, None, "tone"),
        "chair.glb": (MediaType.MODEL_3D, "model/gltf-binary", None, None, None, "chair"),
    }
    assert by_file["clip.mp4"].duration_sec == pytest.approx(1.0)
    assert by_file["tone.wav"].duration_sec == pytest.approx(1.0, abs=0.05)
    for path in files:
        asset = by_file[path.name]
        assert (asset.provider_id, asset.upload_method, asset.sync_status) == (
            "local",
            UploadMethod.LOCAL_IMPORT,
            SyncStatus.DOWNLOADED,
        )
        assert (asset.sha256, asset.file_size_bytes) == (sha(path), path.stat().st_size)
        assert asset.original_source_url == path.resolve().as_uri()
        assert asset.remote_url is None
        # The library holds its own verified copy, indexed, and counted as library storage (never evicted).
        assert library.store.object_path(sha(path)).read_bytes() == path.read_bytes()
    assert library.objects() == await library.cache_entries() == sorted(sha(p) for p in files)
    stats = await CacheIndex(library.sessions, library.store).stats(cap_bytes=1)
    assert stats.library_bytes == stats.total_bytes == sum(p.stat().st_size for p in files)
    assert library.partials() == []


async def test_the_same_content_twice_makes_one_asset_and_reports_its_id(
    library: Library, tmp_path: Path
) -> None:
    clip = write(tmp_path / "clip.mp4", tiny_mp4(3))
    copy = write(tmp_path / "renamed copy.mp4", clip.read_bytes())

    first = await library.service.import_paths([clip, copy])
    again = await library.service.import_paths([tmp_path])  # holds the store too: not imported

    [(_, asset_id)] = first.imported
    assert first.duplicates == [(copy, asset_id)]
    assert again.imported == []
    assert again.duplicates == [(clip, asset_id), (copy, asset_id)]
    assert [a.id for a in await library.assets()] == [asset_id]
    assert library.objects() == [sha(clip)]


async def test_content_already_in_the_library_from_a_provider_is_a_duplicate(
    library: Library, tmp_path: Path
) -> None:
    clip = write(tmp_path / "downloaded.mp4", tiny_mp4(4))
    async with library.sessions() as session, session.begin():
        generated = await add_asset(session, sha256=sha(clip), file_size_bytes=clip.stat().st_size)
        generated_id = generated.id

    report = await library.service.import_paths([clip])

    assert report.duplicates == [(clip, generated_id)] and report.imported == []
    assert len(await library.assets()) == 1
    # Its (evicted) cache copy is back, and indexed so that eviction can manage it.
    assert library.objects() == await library.cache_entries() == [sha(clip)]


async def test_unreadable_and_damaged_files_are_skipped_with_reasons_and_leave_nothing(
    library: Library, tmp_path: Path
) -> None:
    video = tiny_mp4(5, seconds=2.0)
    bad = [
        write(tmp_path / "cut.mp4", video[: len(video) * 7 // 10]),
        write(tmp_path / "noise.mp4", os.urandom(50_000)),
        write(tmp_path / "empty.png", b""),
        write(tmp_path / "notes.txt", b"shot list: 1. the fox jumps\n" * 20),
        tmp_path / "missing.mp4",
    ]

    report = await library.service.import_paths(bad)

    assert (report.imported, report.duplicates) == ([], [])
    reasons = dict(report.failed)
    assert list(reasons) == [bad[4], *bad[:4]]  # paths that cannot be listed come first
    assert "does not exist" in reasons[bad[4]]
    assert "truncated" in reasons[bad[0]]
    assert "not a media file" in reasons[bad[1]] or "damaged" in reasons[bad[1]]
    assert "empty" in reasons[bad[2]]
    assert "PixSim reads" in reasons[bad[3]]  # says what it can read
    for path, reason in report.failed:
        assert str(path) in reason
    assert await library.assets() == []
    assert library.objects() == [] and await library.cache_entries() == [] and library.partials() == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads every file")
async def test_a_file_without_read_permission_is_skipped(library: Library, tmp_path: Path) -> None:
    locked = write(tmp_path / "locked.png", tiny_png(6))
    locked.chmod(0)
    try:
        report = await library.service.import_paths([locked])
    finally:
        locked.chmod(0o644)
    [(path, reason)] = report.failed
    assert path == locked and "Permission denied" in reason
    assert await library.assets() == [] and library.objects() == []


def test_folders_are_walked_in_order_without_hidden_files_or_link_loops(tmp_path: Path) -> None:
    root = tmp_path / "shoot"
    expected = [
        write(root / "a still.png", tiny_png(7)),
        write(root / "b clip.mp4", tiny_mp4(8)),
        write(root / "day 2" / "tone.wav", wav_tone(0.5)),
    ]
    write(root / ".DS_Store", b"\0" * 10)
    write(root / ".thumbnails" / "t.png", tiny_png(9))
    (root / "day 2" / "loop").symlink_to(root, target_is_directory=True)
    (root / "day 2" / "same still.png").symlink_to(root / "a still.png")
    hidden_given = write(tmp_path / ".secret.png", tiny_png(10))

    files, problems = expand_paths([root, hidden_given, tmp_path / "nope"])

    assert [p for p, _ in files] == [*expected, hidden_given]
    assert [size for _, size in files] == [p.stat().st_size for p in [*expected, hidden_given]]
    assert problems == [(tmp_path / "nope", f"{tmp_path / 'nope'} does not exist.")]


async def test_importing_a_folder_tree(library: Library, tmp_path: Path) -> None:
    root = tmp_path / "shoot"
    write(root / "a.png", tiny_png(11))
    write(root / "nested" / "deeper" / "b.mp4", tiny_mp4(12))
    write(root / "nested" / "readme.txt", b"not media")
    write(root / ".hidden" / "c.png", tiny_png(13))

    report = await library.service.import_paths([root])

    assert [p.relative_to(root).as_posix() for p, _ in report.imported] == ["a.png", "nested/deeper/b.mp4"]
    assert [p.name for p, _ in report.failed] == ["readme.txt"]
    assert len(await library.assets()) == 2


async def test_progress_is_monotonic_and_ends_at_the_totals(library: Library, tmp_path: Path) -> None:
    files = [
        write(tmp_path / "1.png", tiny_png(14)),
        write(tmp_path / "2.txt", b"skipped"),
        write(tmp_path / "3.mp4", tiny_mp4(15, seconds=2.0)),
        write(tmp_path / "4.wav", wav_tone(2.0)),
    ]
    events: list[ImportProgress] = []

    await library.service.import_paths(files, progress=events.append)

    total = sum(p.stat().st_size for p in files)
    assert events[0] == ImportProgress(0, 4, 0, total, None)
    assert events[-1] == ImportProgress(4, 4, total, total, None)
    assert {(e.files_total, e.bytes_total) for e in events} == {(4, total)}
    for before, after in itertools.pairwise(events):
        assert after.files_done >= before.files_done and after.bytes_done >= before.bytes_done
    assert {e.current for e in events} <= {None, *files}


async def test_cancelling_stops_between_files_and_reports_what_was_done(
    library: Library, tmp_path: Path
) -> None:
    files = [write(tmp_path / f"{n}.png", tiny_png(20 + n)) for n in range(4)]
    cancel = asyncio.Event()

    def progress(event: ImportProgress) -> None:
        if event.current == files[1]:
            cancel.set()  # while the second file is being imported

    report = await library.service.import_paths(files, progress=progress, cancel=cancel)

    assert report.cancelled
    assert [p for p, _ in report.imported] == files[:2]  # the file in progress is finished
    assert report.not_started == files[2:]
    assert len(await library.assets()) == 2
    assert library.objects() == sorted(sha(p) for p in files[:2])


async def test_a_task_cancelled_during_the_copy_leaves_no_object(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    store = GatedStore(tmp_path / "cache")
    library = make_library(sessions, store)
    clip = write(tmp_path / "clip.mp4", tiny_mp4(30))

    task = asyncio.create_task(library.service.import_paths([clip]))
    assert await asyncio.to_thread(store.copied.wait, 10)
    task.cancel()
    store.go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await library.assets() == []
    assert library.objects() == [] and await library.cache_entries() == [] and library.partials() == []


async def test_a_file_changed_while_importing_is_skipped_and_only_its_new_object_removed(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    store = GatedStore(tmp_path / "cache")
    library = make_library(sessions, store)
    cached = write(tmp_path / "cached.png", tiny_png(31))
    ContentStore(store.root).add_file(cached, "already-there")  # a cache file the import must keep
    growing = write(tmp_path / "growing.mp4", tiny_mp4(32))
    same_as_cached = write(tmp_path / "same.png", cached.read_bytes())

    async def import_while_appending(path: Path, data: bytes) -> str:
        task = asyncio.create_task(library.service.import_paths([path]))
        assert await asyncio.to_thread(store.copied.wait, 10)
        with path.open("ab") as out:
            out.write(data)
        store.copied.clear()
        store.go_on.set()
        report = await task
        store.go_on.clear()
        [(failed, reason)] = report.failed
        assert failed == path
        return reason

    assert "changed while it was being imported" in await import_while_appending(growing, b"\0" * 100)
    assert "changed while it was being imported" in await import_while_appending(same_as_cached, b"\0")

    assert await library.assets() == []
    assert library.objects() == [sha(cached)]


async def test_simultaneous_imports_of_the_same_content_make_one_asset(db_url: URL, tmp_path: Path) -> None:
    """Two services on two engines (as two processes would be), one store, the same bytes."""
    clip = write(tmp_path / "a" / "clip.mp4", tiny_mp4(40))
    copy = write(tmp_path / "b" / "clip copy.mp4", clip.read_bytes())
    engines = [make_async_engine(db_url) for _ in range(2)]
    try:
        libraries = [
            make_library(make_async_session_factory(e), ContentStore(tmp_path / "cache")) for e in engines
        ]
        new = 0
        for _ in range(3):  # every round must find the one asset
            reports = await asyncio.gather(
                libraries[0].service.import_paths([clip, copy]),
                libraries[1].service.import_paths([copy, clip]),
            )
            ids = {asset_id for r in reports for _, asset_id in [*r.imported, *r.duplicates]}
            assert len(ids) == 1
            assert all(r.failed == [] for r in reports)
            new += sum(len(r.imported) for r in reports)
        assert new == 1
        assert [a.id for a in await libraries[0].assets()] == list(ids)
        assert libraries[0].objects() == [sha(clip)]
    finally:
        for engine in engines:
            await engine.dispose()


# -- the command line --------------------------------------------------------------------------------


def _settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", config_dir=tmp_path / "config", database_url=database_url)


def test_the_import_command_prints_progress_and_a_summary(
    db_url: URL, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(tmp_path, db_url.render_as_string(hide_password=False))
    folder = tmp_path / "in"
    png = write(folder / "still.png", tiny_png(50))
    write(folder / "clip.mp4", tiny_mp4(51))
    text = write(folder / "notes.txt", b"hello")

    code = run_import_command(argparse.Namespace(paths=[folder], json=False), settings)

    out, err = capsys.readouterr()
    assert code == 1, err
    assert "importing 3/3 files" in err
    assert out.splitlines()[0] == "imported 2, 1 skipped:"
    assert str(text) in out.splitlines()[1]
    assert (settings.effective_cache_dir / "objects").is_dir()

    shutil.copy(png, tmp_path / "again.png")
    code = run_import_command(argparse.Namespace(paths=[tmp_path / "again.png", png], json=True), settings)

    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert data["imported"] == [] and data["failed"] == [] and not data["cancelled"]
    [first, second] = data["duplicates"]
    assert first["asset_id"] == second["asset_id"]
    code = run_import_command(argparse.Namespace(paths=[png], json=False), settings)
    out, _ = capsys.readouterr()
    assert code == 0
    assert out.strip() == f"imported 0, 1 already in the library (asset {first['asset_id']})"


def test_the_import_command_exits_2_when_the_database_is_unreachable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = _settings(tmp_path, f"postgresql://me:pw@127.0.0.1:{port}/pixsim")
    png = write(tmp_path / "still.png", tiny_png(52))

    code = run_import_command(argparse.Namespace(paths=[png], json=False), settings)

    _, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("pixsim: error: ") and f"127.0.0.1:{port}" in err
