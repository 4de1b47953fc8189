"""``pixsim story``: look at, check and export a branching video story (for a game or for Twine), or
import an exported one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy.engine import URL

from app.cli_support import run_on_database, stop_on_signals
from app.progress import ProgressBar
from app.services import Services, build_services
from app.settings import Settings
from core.story.export import ExportProgress, StoryNotExportable
from core.story.model import StoryGraph
from core.transfer.events import Phase, TransferEvent


def add_parsers(sub: Any) -> None:
    story = sub.add_parser(
        "story",
        help="show, check and export branching video stories (game runtime JSON, Twine)",
        description="A story starts at a video; its branch points lead through variants to other videos. "
        "See docs/STORY_FORMAT.md for the exported format.",
    )
    actions = story.add_subparsers(dest="story_command", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="the videos, branch points, variants and clips of a story")
    show.add_argument("video_id", type=int, metavar="VIDEO_ID", help="the story's first video")
    check = actions.add_parser("validate", help="list what is wrong with a story (exit status 1 on errors)")
    check.add_argument("video_id", type=int, metavar="VIDEO_ID")
    export = actions.add_parser("export", help="write story.json and the videos into a folder, for a game")
    export.add_argument("video_id", type=int, metavar="VIDEO_ID")
    export.add_argument("dest", type=Path, metavar="FOLDER")
    imp = actions.add_parser(
        "import", help="bring an exported story (its folder or story.json) into the library"
    )
    imp.add_argument("path", type=Path, metavar="PATH")
    twee = actions.add_parser("twee", help="the story as Twee 3 source, to open in Twine")
    twee.add_argument("video_id", type=int, metavar="VIDEO_ID")
    twee.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write here instead of standard output"
    )


def run_story_command(args: argparse.Namespace, settings: Settings) -> int:
    return run_on_database(settings, lambda url: _run(args, settings, url))


async def _run(args: argparse.Namespace, settings: Settings, url: URL) -> int:
    services = build_services(settings, url)
    try:
        return await _dispatch(args, services)
    finally:
        await services.aclose()


async def _dispatch(args: argparse.Namespace, services: Services) -> int:
    story = services.story
    command = args.story_command
    if command == "show":
        print_graph(await story.playthrough(args.video_id), sys.stdout)
        return 0
    if command == "validate":
        problems = await story.validate(args.video_id)
        for problem in problems:
            print(f"{problem.severity}: {problem.message}")
        errors = sum(p.severity == "error" for p in problems)
        print(f"{errors} error(s), {len(problems) - errors} warning(s).")
        return 1 if errors else 0
    if command == "export":
        bar = ExportBar()
        with stop_on_signals() as cancel:
            try:
                path = await story.export_runtime(args.video_id, args.dest, progress=bar, cancel=cancel)
            except StoryNotExportable as exc:
                print(f"pixsim: error: {exc}", file=sys.stderr)
                for message in exc.problems[1:]:
                    print(f"  also: {message}", file=sys.stderr)
                return 2
        print(f"Exported to {path}")
        return 0
    if command == "import":
        with stop_on_signals() as cancel:
            result = await story.import_runtime(args.path, cancel=cancel)
        print(
            f"Imported the story starting at asset {result.root_asset_id}: {len(result.imported)} new "
            f"video(s), {len(result.matched)} already in the library, {result.branches} branch point(s), "
            f"{result.clips} clip(s)."
        )
        return 0
    if command == "twee":
        source = await story.export_twee(args.video_id)
        if args.output is None:
            sys.stdout.write(source)
        else:
            args.output.write_text(source, encoding="utf-8")
            print(f"Wrote {args.output}")
        return 0
    raise AssertionError(command)


class ExportBar:
    """Export progress on the terminal's progress bar (app.progress), labelled as an export."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._bar = _LabelledBar("exporting", stream)

    def __call__(self, progress: ExportProgress) -> None:
        finished = progress.current is None and progress.files_done == progress.files_total
        self._bar(
            TransferEvent(
                transfer_id="story-export",
                asset_id=None,
                provider_id=None,
                phase=Phase.DONE if finished else Phase.DOWNLOADING,
                bytes_done=progress.bytes_done,
                bytes_total=progress.bytes_total or None,
                message=f"{progress.files_total} video(s) copied" if finished else None,
            )
        )


class _LabelledBar(ProgressBar):
    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._label = label

    def _render(self, event: TransferEvent) -> str:
        line = super()._render(event)
        return f"{self._label:<11}" + line[11:]


def print_graph(graph: StoryGraph, out: TextIO) -> None:
    """The story as an indented outline: each video, its branch points with their variants, its clips."""
    from core.story.export import story_order

    for video_id in story_order(graph):
        story = graph.videos[video_id]
        video = story.video
        marker = " (start)" if video_id == graph.root_id else ""
        out.write(f"[{video_id}] {video.name}{marker}  {video.duration_sec:.2f} s\n")
        for branch in story.branches:
            out.write(
                f"  @ {branch.time_sec:.2f} s  {branch.name} [{branch.tag}] {branch.branch_type.value}\n"
            )
            for variant in branch.variants:
                target = (
                    f"→ [{variant.asset_id}] {variant.asset_name}" if variant.asset_id else "→ (generating"
                )
                if variant.asset_id is None:
                    status = variant.job_status.value if variant.job_status else "job gone"
                    target += f": job {variant.job_id}, {status})"
                extras = []
                if variant.is_default:
                    extras.append("default")
                if branch.branch_type.value == "random":
                    extras.append(f"weight {variant.weight:g}")
                if variant.conditions:
                    extras.append(f"if {variant.conditions}")
                note = f"  ({', '.join(extras)})" if extras else ""
                out.write(f"      {variant.name} [{variant.tag}] {target}{note}\n")
        for clip in story.clips:
            out.write(f"  clip {clip.start_sec:.2f}–{clip.end_sec:.2f} s  {clip.name} [{clip.tag}]\n")
