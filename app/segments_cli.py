"""``pixsim segments``: split videos into scenes (temporal segments with keyframe pictures) from a terminal.

Downloads a video first when the library has no local copy (the transfer progress bar shows it), then
a progress line per video while its scenes are found. Ctrl-C stops cleanly: the video being analysed
keeps the segments it had, the ones already done keep their new ones.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from sqlalchemy.engine import URL

from app.cli_support import run_report_command, stop_on_signals
from app.progress import ProgressBar
from app.services import build_services
from app.settings import Settings
from core.errors import PixSimError
from core.media.scenes import AnalysisCancelled
from core.segments import SegmentInfo, SegmentService
from core.transfer.events import Phase, TransferEvent

# Videos asked for at a time by --all.
_BATCH = 50


def add_parsers(sub: Any) -> None:
    seg = sub.add_parser(
        "segments",
        help="find the scenes of videos (segments with keyframe pictures, searchable by similarity)",
        description="Splits each video into scenes at its hard cuts (fades and flashes are not cuts) and "
        "stores a keyframe picture of each. Analysing a video again replaces its scenes. Ctrl-C stops; "
        "the video being analysed keeps what it had.",
    )
    seg.add_argument("asset_ids", nargs="*", type=int, metavar="ASSET_ID", help="a video to analyse (again)")
    seg.add_argument("--all", action="store_true", help="every video that has no scenes yet")
    seg.add_argument("--json", action="store_true", help="print the scenes as JSON on stdout")


@dataclass
class SegmentsReport:
    analysed: dict[int, list[SegmentInfo]] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    cancelled: bool = False


def run_segments_command(args: argparse.Namespace, settings: Settings) -> int:
    """0: every video analysed; 1: some failed; 2: an error before any work; 130: stopped."""
    if bool(args.all) == bool(args.asset_ids):
        print("pixsim: error: name the videos to analyse (their asset ids), or --all.", file=sys.stderr)
        return 2
    return run_report_command(
        settings,
        lambda url: _run(args, settings, url),
        as_json=args.json,
        to_json=report_to_json,
        print_summary=print_summary,
        incomplete=lambda report: bool(report.failed),
    )


async def _run(args: argparse.Namespace, settings: Settings, url: URL) -> SegmentsReport:
    services = build_services(settings, url)
    transfers = services.transfers
    transfers.events.subscribe(_downloads_only(ProgressBar()))
    segments = SegmentService(services.sessions, transfers.ensure_local, transfers.store, transfers.index)
    line = ProgressLine(sys.stderr)
    report = SegmentsReport()
    try:
        with stop_on_signals() as cancel:
            if args.all:
                while not cancel.is_set():
                    batch = await segments.unanalysed_videos(_BATCH)
                    if not batch:
                        break
                    line.total += len(batch)
                    await _analyse_each(segments, batch, cancel, line, report)
            else:
                line.total = len(args.asset_ids)
                await _analyse_each(segments, args.asset_ids, cancel, line, report)
            report.cancelled = report.cancelled or cancel.is_set()
        return report
    finally:
        line.close()
        await segments.aclose()
        await services.aclose()


def _downloads_only(bar: ProgressBar) -> Callable[[TransferEvent], None]:
    """Show the transfer bar only for videos that are really downloaded, not for local copies found."""
    downloading: set[str] = set()

    def show(event: TransferEvent) -> None:
        if event.phase is Phase.DOWNLOADING:
            downloading.add(event.transfer_id)
        if event.transfer_id in downloading:
            bar(event)
            if event.phase.is_final:
                downloading.discard(event.transfer_id)

    return show


async def _analyse_each(
    segments: SegmentService,
    asset_ids: list[int],
    cancel: asyncio.Event,
    line: ProgressLine,
    report: SegmentsReport,
) -> None:
    for asset_id in asset_ids:
        if cancel.is_set():
            report.cancelled = True
            return
        line.start(asset_id)
        try:
            report.analysed[asset_id] = await segments.analyse(asset_id, cancel=cancel, progress=line.update)
        except AnalysisCancelled:
            report.cancelled = True
            return
        except PixSimError as exc:
            report.failed[asset_id] = str(exc)
        line.finish()


class ProgressLine:
    """``scenes 2/5 videos  asset 41  [#########.....]  63%  12.3 / 19.5 s`` on stderr: redrawn on a
    terminal; otherwise one plain line per video, when it is done."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self.total = 0
        self._done = 0
        self._asset: int | None = None
        self._position = (0.0, 0.0)
        self._last_line = ""
        self._last_drawn = 0.0

    def start(self, asset_id: int) -> None:
        self._asset, self._position = asset_id, (0.0, 0.0)
        self._draw(force=True)

    def update(self, done: float, total: float) -> None:
        self._position = (done, total)
        self._draw()

    def finish(self) -> None:
        self._done += 1
        if not self._tty:
            self._stream.write(self.render() + "\n")
            self._stream.flush()
        else:
            self._draw(force=True)

    def close(self) -> None:
        if self._tty and self._last_line:
            self._stream.write("\n")
            self._stream.flush()

    def render(self) -> str:
        text = f"scenes {self._done}/{self.total} videos"
        if self._asset is None:
            return text
        done, total = self._position
        text += f"  asset {self._asset}"
        if total > 0:
            fraction = min(1.0, done / total)
            filled = int(fraction * 20)
            text += (
                f"  [{'#' * filled}{'.' * (20 - filled)}] {fraction * 100:3.0f}%  {done:.1f} / {total:.1f} s"
            )
        return text

    def _draw(self, *, force: bool = False) -> None:
        if not self._tty:
            return
        now = time.monotonic()
        if not force and now - self._last_drawn < 0.1:
            return
        self._last_drawn = now
        line = self.render()
        width = shutil.get_terminal_size((100, 20)).columns
        self._stream.write("\r" + line[: width - 1].ljust(min(len(self._last_line), width - 1)))
        self._stream.flush()
        self._last_line = line


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}:{rest:05.2f}"


def print_summary(report: SegmentsReport, out: TextIO) -> None:
    for asset_id, infos in report.analysed.items():
        noun = "scene" if len(infos) == 1 else "scenes"
        print(f"asset {asset_id}: {len(infos)} {noun}", file=out)
        for number, info in enumerate(infos, 1):
            frame = f" (frame {info.frame_number})" if info.frame_number is not None else ""
            print(
                f"  {number:>3}  {_clock(info.start_sec)} – {_clock(info.end_sec)}  "
                f"keyframe {_clock(info.timestamp_sec)}{frame}  segment {info.id}",
                file=out,
            )
    for asset_id, reason in report.failed.items():
        print(f"asset {asset_id}: not analysed: {reason}", file=out)
    if not report.analysed and not report.failed and not report.cancelled:
        print("every video already has its scenes", file=out)
    if report.cancelled:
        print("stopped", file=out)


def report_to_json(report: SegmentsReport) -> dict[str, Any]:
    return {
        "analysed": {
            str(asset_id): [asdict(info) for info in infos] for asset_id, infos in report.analysed.items()
        },
        "failed": {str(asset_id): reason for asset_id, reason in report.failed.items()},
        "cancelled": report.cancelled,
    }
