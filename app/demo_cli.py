"""``pixsim demo``: fill the library with the demo world ("The Lighthouse Keeper"), made offline."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, TextIO

from sqlalchemy.engine import URL

from app.cli_support import run_on_database, stop_on_signals
from app.services import build_services
from app.settings import Settings
from core.demo import (
    BRANCH_NAME,
    BRANCH_TIME_SEC,
    DEMO_TAG,
    DemoOutcome,
    DemoProgress,
    DemoReport,
    build_demo_library,
)


def add_parsers(sub: Any) -> None:
    demo = sub.add_parser(
        "demo",
        help="fill the library with a small demo world, made offline with the Sandbox provider",
        description="Makes 'The Lighthouse Keeper': stills, short clips, an extend chain, a transition, a "
        "storyboard and a story video with a branch point and named clips, all tagged 'demo'. It runs "
        "offline in under a minute. Running it again does nothing once the demo is there; Ctrl-C stops "
        "it, and the next run finishes what is missing.",
    )
    demo.add_argument("--scale", type=_fraction, default=1.0, help=argparse.SUPPRESS)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("the scale is between 0 and 1")
    return value


def run_demo_command(args: argparse.Namespace, settings: Settings) -> int:
    return run_on_database(settings, lambda url: _run(args, settings, url))


async def _run(args: argparse.Namespace, settings: Settings, url: URL) -> int:
    services = build_services(settings, url)
    line = DemoLine()
    try:
        with stop_on_signals() as cancel:  # an interrupted build resumes on the next run
            report = await build_demo_library(
                services.jobs,
                services.sessions,
                services.runner,
                progress=line,
                cancel=cancel,
                scale=getattr(args, "scale", 1.0),
            )
    finally:
        line.finish()
        await services.aclose()
    return _summary(report)


def _summary(report: DemoReport) -> int:
    counts = f"{len(report.asset_ids)} assets ({report.images} images, {report.videos} videos)"
    if report.outcome is DemoOutcome.CANCELLED:
        kept = f"the {counts} made so far are kept" if report.asset_ids else "nothing was made yet"
        print(f"demo stopped: {kept}; run `pixsim demo` again to finish it", file=sys.stderr)
        return 130
    variants = ", ".join(map(str, report.variant_asset_ids))
    if report.outcome is DemoOutcome.ALREADY_PRESENT:
        print(f"The demo library is already there: {counts}, tagged '{DEMO_TAG}'. Nothing was made.")
    else:
        reused = len(report.asset_ids) - len(report.new_asset_ids)
        note = f", {reused} of them from an earlier run" if reused else ""
        print(f"Demo library ready in {report.seconds:.1f} s: {counts}{note}, tagged '{DEMO_TAG}'.")
    print(
        f"  story video: asset {report.story_asset_id}, branch '{BRANCH_NAME}' at {BRANCH_TIME_SEC:g} s "
        f"with {len(report.variant_asset_ids)} variants (assets {variants}), "
        f"{len(report.clip_ids)} named clips"
    )
    print("  open the app (`pixsim`) to explore it")
    return 0


class DemoLine:
    """The demo's progress on stderr: one line redrawn on a terminal, a line per step otherwise."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._last = ""
        self._started = time.monotonic()

    def __call__(self, progress: DemoProgress) -> None:
        fraction = progress.done / progress.total if progress.total else 1.0
        filled = int(fraction * 20)
        bar = "#" * filled + "." * (20 - filled)
        elapsed = time.monotonic() - self._started
        text = f"demo [{bar}] {progress.done:>2}/{progress.total}  {elapsed:5.1f} s  {progress.label}"[:110]
        if self._tty:
            self._stream.write("\r" + text.ljust(len(self._last)))
        else:
            self._stream.write(text + "\n")
        self._stream.flush()
        self._last = text

    def finish(self) -> None:
        if self._tty and self._last:
            self._stream.write("\n")
            self._stream.flush()
            self._last = ""
