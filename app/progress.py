"""A terminal progress bar for transfer events (the CLI's view of what the UI shows)."""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

from core.text import human_bytes
from core.transfer.events import Phase, TransferEvent


class ProgressBar:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._phase: Phase | None = None
        self._phase_started = time.monotonic()
        self._last_line = ""

    def __call__(self, event: TransferEvent) -> None:
        if event.phase != self._phase:
            if self._phase is not None and self._tty:
                self._stream.write("\n")
            self._phase = event.phase
            self._phase_started = time.monotonic()
        line = self._render(event)
        if self._tty:
            width = shutil.get_terminal_size((100, 20)).columns
            self._stream.write("\r" + line[: width - 1].ljust(min(len(self._last_line), width - 1)))
            if event.phase.is_final:
                self._stream.write("\n")
        elif event.phase.is_final or line.split("  ")[0] != self._last_line.split("  ")[0]:
            self._stream.write(line + "\n")  # not a terminal: one line per phase, no redraws
        self._stream.flush()
        self._last_line = line

    def _render(self, event: TransferEvent) -> str:
        label = f"{event.phase.value:<11}"
        if event.phase.is_final:
            return f"{label} {event.message or ''}".rstrip()
        if event.phase not in (Phase.DOWNLOADING, Phase.UPLOADING):
            return label
        elapsed = max(time.monotonic() - self._phase_started, 1e-6)
        speed = f"{human_bytes(event.bytes_done / elapsed)}/s"
        if event.bytes_total:
            fraction = min(1.0, event.bytes_done / event.bytes_total)
            filled = int(fraction * 30)
            bar = "#" * filled + "." * (30 - filled)
            return (
                f"{label} [{bar}] {fraction * 100:5.1f}%  {human_bytes(event.bytes_done)} / "
                f"{human_bytes(event.bytes_total)}  {speed}"
            )
        return f"{label} {human_bytes(event.bytes_done)}  {speed}"
