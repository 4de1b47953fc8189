"""Export a story for a game runtime (story.json + media), to Twine (Twee 3), and import one back.

The work runs on the core loop (core.story.export); this module asks where, shows progress with a
Cancel button, and says what happened. A cancelled export leaves no story.json behind (the core writes
it last, atomically).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox, QProgressDialog, QWidget

from core.story.export import ExportProgress, RuntimeImport
from core.text import human_bytes
from ui.bridge import CoreBridge
from ui.context import WindowServices


class _Relay(QObject):
    progress = Signal(object)  # ExportProgress, queued from the core thread


class StoryExport(QObject):
    """One export or import in flight, with its progress dialog. Parented to the window while it runs
    (and kept alive by the pending call's callback); afterwards it lives as long as a reference to it."""

    finished = Signal(object)  # the result (Path | str | RuntimeImport), or an exception

    def __init__(self, parent: QWidget, services: WindowServices, bridge: CoreBridge) -> None:
        super().__init__(parent)
        self._parent = parent
        self._services = services
        self._bridge = bridge
        self._cancel: asyncio.Event | None = None
        self._relay = _Relay(self)
        self._relay.progress.connect(self._progress)
        self.dialog = QProgressDialog("", "Cancel", 0, 0, parent)
        self.dialog.setObjectName("storyExportProgress")
        self.dialog.setWindowModality(Qt.WindowModality.WindowModal)
        self.dialog.setMinimumDuration(300)
        self.dialog.setAutoClose(False)
        self.dialog.setAutoReset(False)
        self.dialog.canceled.connect(self.cancel)
        self.dialog.reset()  # not shown until the work starts

    # -- actions -----------------------------------------------------------------------------------

    def export_runtime(self, video_id: int, folder: Path) -> None:
        """``folder/story.json`` and the story's videos beside it."""
        self._start("Exporting the story…")

        def progress(event: ExportProgress) -> None:
            self._relay.progress.emit(event)

        async def run(cancel: asyncio.Event) -> Path:
            return await self._services.story.export_runtime(
                video_id, folder, progress=progress, cancel=cancel
            )

        self._run(run)

    def export_twee(self, video_id: int, path: Path) -> None:
        self._start("Writing the Twine story…")

        async def run(cancel: asyncio.Event) -> Path:
            text = await self._services.story.export_twee(video_id)
            await asyncio.to_thread(_write_text, path, text)
            return path

        self._run(run)

    def import_runtime(self, path: Path) -> None:
        self._start("Importing the story…")

        async def run(cancel: asyncio.Event) -> RuntimeImport:
            return await self._services.story.import_runtime(path, cancel=cancel)

        self._run(run)

    def cancel(self) -> None:
        cancel = self._cancel
        if cancel is not None:

            async def stop() -> None:
                cancel.set()

            self._bridge.call(stop(), lambda _: None)
        self.dialog.setLabelText("Cancelling…")

    # -- plumbing ----------------------------------------------------------------------------------

    def _start(self, label: str) -> None:
        self.dialog.setLabelText(label)
        self.dialog.setRange(0, 0)
        self.dialog.show()

    def _run(self, work: object) -> None:
        async def call() -> object:
            self._cancel = asyncio.Event()
            assert callable(work)
            return await work(self._cancel)

        self._bridge.call(call(), self._done, self._done)

    def _progress(self, event: ExportProgress) -> None:
        if event.bytes_total > 0:
            self.dialog.setRange(0, 1000)
            self.dialog.setValue(int(1000 * event.bytes_done / event.bytes_total))
        name = f": {event.current}" if event.current else ""
        self.dialog.setLabelText(
            f"Copying media {event.files_done} of {event.files_total}{name}\n"
            f"{human_bytes(event.bytes_done)} of {human_bytes(event.bytes_total)}"
        )

    def _done(self, result: object) -> None:
        self.dialog.reset()
        self.dialog.hide()
        # From here Python owns the job and its dialog: they go when the last reference does. No
        # deleteLater: a deferred delete still pending when the parent window is deleted at once
        # (a window closed from Python) crashed in ~QObject (seen under load in the UI tests).
        self.dialog.setParent(None)
        self.setParent(None)
        self.finished.emit(result)


def _write_text(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def _report(parent: QWidget, title: str, result: object, success: str) -> None:
    if isinstance(result, BaseException):
        box = QMessageBox(QMessageBox.Icon.Warning, title, str(result), parent=parent)
    else:
        box = QMessageBox(QMessageBox.Icon.Information, title, success, parent=parent)
    box.setObjectName("storyExportReport")
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()


def export_story_dialog(
    parent: QWidget, services: WindowServices, bridge: CoreBridge, video_id: int
) -> StoryExport | None:
    """Ask for an (empty) folder and export the story starting at ``video_id`` into it."""
    folder = QFileDialog.getExistingDirectory(parent, "Export Story for a Game: Choose a Folder")
    if not folder:
        return None
    job = StoryExport(parent, services, bridge)
    job.finished.connect(
        lambda result: _report(
            parent,
            "Export Story",
            result,
            f"The story was exported to {result}.\n\nA game loads story.json once at start; the "
            "videos beside it are named by their hash.",
        )
    )
    job.export_runtime(video_id, Path(folder))
    return job


def export_twee_dialog(
    parent: QWidget, services: WindowServices, bridge: CoreBridge, video_id: int
) -> StoryExport | None:
    path, _ = QFileDialog.getSaveFileName(
        parent, "Export to Twine (Twee 3)", "story.twee", "Twee 3 (*.twee *.tw)"
    )
    if not path:
        return None
    job = StoryExport(parent, services, bridge)
    job.finished.connect(
        lambda result: _report(
            parent, "Export to Twine", result, f"Written to {result}. Import it in Twine 2.6 or later."
        )
    )
    job.export_twee(video_id, Path(path))
    return job


def import_story_dialog(parent: QWidget, services: WindowServices, bridge: CoreBridge) -> StoryExport | None:
    path, _ = QFileDialog.getOpenFileName(
        parent, "Import a Story", "", "PixSim story (story.json);;JSON (*.json)"
    )
    if not path:
        return None
    job = StoryExport(parent, services, bridge)

    def done(result: object) -> None:
        if isinstance(result, RuntimeImport):
            text = (
                f"{len(result.imported)} video(s) imported, {len(result.matched)} already in the library; "
                f"{result.branches} branch point(s) and {result.clips} clip(s)."
            )
        else:
            text = ""
        _report(parent, "Import Story", result, text)

    job.finished.connect(done)
    job.import_runtime(Path(path))
    return job
