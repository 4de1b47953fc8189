"""``pixsim import``: the user's files and folders into the library, with a progress line and a summary."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy.engine import URL

from app.cli_support import run_report_command, stop_on_signals
from app.settings import Settings
from core.cache.index import CacheIndex
from core.cache.store import ContentStore
from core.db.engine import make_async_engine, make_async_session_factory
from core.importer import ImportProgress, ImportReport, ImportService
from core.text import human_bytes


def add_parsers(sub: Any) -> None:
    imp = sub.add_parser(
        "import",
        help="add your own media files (or folders of them) to the library",
        description="Copies each file into the library (files already there are found by content and not "
        "added twice). Folders are searched recursively; hidden files are skipped. Ctrl-C stops after the "
        "file being imported.",
    )
    imp.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="a media file or a folder")
    imp.add_argument("--json", action="store_true", help="print the outcome as JSON on stdout")


def run_import_command(args: argparse.Namespace, settings: Settings) -> int:
    """0: everything imported (or already there); 1: some files skipped; 2: an error; 130: stopped."""
    return run_report_command(
        settings,
        lambda url: _run(args.paths, settings, url),
        as_json=args.json,
        to_json=report_to_json,
        print_summary=print_summary,
        incomplete=lambda report: bool(report.failed),
    )


async def _run(paths: list[Path], settings: Settings, url: URL) -> ImportReport:
    engine = make_async_engine(url)
    line = ProgressLine(sys.stderr)
    try:
        sessions = make_async_session_factory(engine)
        store = ContentStore(settings.effective_cache_dir)
        service = ImportService(sessions, store, CacheIndex(sessions, store))
        with stop_on_signals() as cancel:
            return await service.import_paths(paths, progress=line, cancel=cancel)
    finally:
        line.close()
        await engine.dispose()


class ProgressLine:
    """``importing 3/12 files  41.0 MiB / 96.2 MiB  clip.mp4`` on stderr: redrawn on a terminal, a few
    plain lines (at most one a second, and the last) otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._last_line = ""
        self._last_plain = 0.0
        self._drawn = False

    def __call__(self, event: ImportProgress) -> None:
        line = render_progress(event)
        if self._tty:
            width = shutil.get_terminal_size((100, 20)).columns
            self._stream.write("\r" + line[: width - 1].ljust(min(len(self._last_line), width - 1)))
            self._drawn = True
        else:
            now = time.monotonic()
            last = event.files_done == event.files_total
            if not last and now - self._last_plain < 1.0:
                return
            self._last_plain = now
            self._stream.write(line + "\n")
        self._stream.flush()
        self._last_line = line

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()


def render_progress(event: ImportProgress) -> str:
    line = (
        f"importing {event.files_done}/{event.files_total} files  "
        f"{human_bytes(event.bytes_done)} / {human_bytes(event.bytes_total)}"
    )
    return f"{line}  {event.current.name}" if event.current is not None else line


def print_summary(report: ImportReport, out: TextIO) -> None:
    parts = [f"imported {len(report.imported)}"]
    if report.duplicates:
        ids = sorted({asset_id for _, asset_id in report.duplicates})
        shown = ", ".join(map(str, ids[:10])) + (", ..." if len(ids) > 10 else "")
        noun = "asset" if len(ids) == 1 else "assets"
        parts.append(f"{len(report.duplicates)} already in the library ({noun} {shown})")
    if report.failed:
        parts.append(f"{len(report.failed)} skipped")
    print(", ".join(parts) + (":" if report.failed else ""), file=out)
    for path, reason in report.failed:
        # Reasons name their file; others get it in front.
        print(f"  {reason}" if str(path) in reason else f"  {path}: {reason}", file=out)
    if report.cancelled:
        print(f"stopped: {len(report.not_started)} files were not imported", file=out)


def report_to_json(report: ImportReport) -> dict[str, Any]:
    return {
        "imported": [{"path": str(p), "asset_id": a} for p, a in report.imported],
        "duplicates": [{"path": str(p), "asset_id": a} for p, a in report.duplicates],
        "failed": [{"path": str(p), "reason": r} for p, r in report.failed],
        "cancelled": report.cancelled,
        "not_started": [str(p) for p in report.not_started],
    }
