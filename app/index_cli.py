"""``pixsim index``: one indexing pass from a terminal, what the app's background indexer does.

Videos without scenes are analysed first, then every image, video and scene lacking a vector gets
one for each installed model (the visual signature always, CLIP when installed). A progress line
shows the phase and done/total; Ctrl-C stops between batches and keeps every vector stored so far.
``--duplicates`` then groups near-duplicates (stacked in the grid; nothing is deleted).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from sqlalchemy.engine import URL

from app.cli_support import run_report_command, stop_on_signals
from app.services import build_services
from app.settings import Settings
from core.embeddings.indexer import IndexEvent, IndexPhase


def add_parsers(sub: Any) -> None:
    index = sub.add_parser(
        "index",
        help="embed new assets and scenes for similarity search (what the app does in the background)",
        description="Finds the scenes of videos not analysed yet, then gives every image, video and scene "
        "a vector for each installed model (visual signature; CLIP after `pixsim models install clip`). "
        "Ctrl-C stops between batches; what was stored stays.",
    )
    index.add_argument(
        "--duplicates",
        action="store_true",
        help="then group near-duplicates (stacked in the grid, never deleted)",
    )
    index.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")


@dataclass
class IndexReport:
    models: list[str]
    analysed: int = 0
    embedded: int = 0
    skipped: int = 0
    cancelled: bool = False
    duplicate_groups: int | None = None
    seconds: float = 0.0


def run_index_command(args: argparse.Namespace, settings: Settings) -> int:
    """0: done; 1: some files could not be read; 2: an error before any work; 130: stopped."""
    return run_report_command(
        settings,
        lambda url: _run(args, settings, url),
        as_json=args.json,
        to_json=asdict,
        print_summary=print_summary,
        incomplete=lambda report: bool(report.skipped),
    )


async def _run(args: argparse.Namespace, settings: Settings, url: URL) -> IndexReport:
    from core.embeddings.models import installed_embedders

    started = time.monotonic()
    services = build_services(settings, url)
    line = IndexLine(sys.stderr)
    try:
        embedders = await asyncio.to_thread(installed_embedders, settings.data_dir)
        indexer = services.indexer
        await indexer.set_embedders(embedders)
        indexer.subscribe(line)
        report = IndexReport(models=[e.model_id for e in embedders])
        with stop_on_signals() as stop:
            watcher = asyncio.ensure_future(_cancel_when(stop, indexer.cancel))
            try:
                summary = await indexer.run_once()
            finally:
                watcher.cancel()
            report.analysed, report.embedded, report.skipped = (
                summary.analysed,
                summary.embedded,
                summary.skipped,
            )
            report.cancelled = summary.cancelled or stop.is_set()
            if args.duplicates and not report.cancelled:
                report.duplicate_groups = await _duplicates(services, stop, line)
                report.cancelled = stop.is_set()
        report.seconds = round(time.monotonic() - started, 2)
        return report
    finally:
        line.close()
        await services.aclose()


async def _cancel_when(stop: asyncio.Event, cancel: Any) -> None:
    await stop.wait()
    cancel()


async def _duplicates(services: Any, stop: asyncio.Event, line: IndexLine) -> int | None:
    from core.embeddings import duplicates
    from core.embeddings.visual import VisualSignatureEmbedder

    embedder = VisualSignatureEmbedder()
    model_id = await services.embeddings.ensure_model(embedder)

    def progress(done: int, total: int) -> None:
        line(IndexEvent(IndexPhase.EMBEDDING, done, total, f"Comparing {done} of {total}", "duplicates"))

    try:
        summary = await duplicates.refresh(
            services.sessions, model_id, embedder.dimensions, progress=progress, cancel=stop
        )
    except asyncio.CancelledError:
        if stop.is_set():
            return None
        raise
    return summary.groups


class IndexLine:
    """``indexing  visual-signature@1  [#########.....]  63%  120 / 190`` on stderr: redrawn on a
    terminal; otherwise one plain line per phase and model, and the final one."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._last = ""
        self._key: tuple[str, str | None] | None = None
        self._drawn = 0.0

    def __call__(self, event: IndexEvent) -> None:
        key = (event.phase.value, event.model)
        text = self.render(event)
        if self._tty:
            now = time.monotonic()
            if key == self._key and not event.phase.is_final and now - self._drawn < 0.1:
                return
            self._drawn = now
            width = shutil.get_terminal_size((100, 20)).columns
            if key != self._key and self._key is not None:
                self._stream.write("\n")
            self._stream.write("\r" + text[: width - 1].ljust(min(len(self._last), width - 1)))
        elif key != self._key or event.phase.is_final:
            self._stream.write(text + "\n")
        self._key = key
        self._last = text
        self._stream.flush()

    @staticmethod
    def render(event: IndexEvent) -> str:
        if event.phase.is_final:
            return f"{event.phase.value:<10} {event.message or event.label}"
        phase = "scenes" if event.phase is IndexPhase.ANALYSING else "indexing"
        model = (event.model or "").rsplit("/", 1)[-1]
        if not event.total:
            return f"{phase:<10} {model}".rstrip()
        fraction = min(1.0, event.done / event.total)
        bar = "#" * int(fraction * 30) + "." * (30 - int(fraction * 30))
        head = f"{phase:<10} {model}".rstrip()
        return f"{head}  [{bar}] {fraction * 100:5.1f}%  {event.done} / {event.total}"

    def close(self) -> None:
        if self._tty and self._last:
            self._stream.write("\n")
            self._stream.flush()


def print_summary(report: IndexReport, out: TextIO) -> None:
    models = ", ".join(m.rsplit("/", 1)[-1] for m in report.models)
    verb = "Stopped" if report.cancelled else "Done"
    out.write(
        f"{verb} in {report.seconds:.1f} s: {report.embedded} vector{'s' if report.embedded != 1 else ''} "
        f"stored ({models}), {report.analysed} video{'s' if report.analysed != 1 else ''} split into scenes.\n"
    )
    if report.skipped:
        out.write(f"{report.skipped} file(s) could not be read and were skipped (see the log).\n")
    if report.duplicate_groups is not None:
        out.write(f"{report.duplicate_groups} group(s) of near-duplicates; nothing was deleted.\n")
    if report.cancelled:
        out.write("Vectors stored so far are kept; run `pixsim index` again to continue.\n")
