"""Exporting a story from the editor's window for a game runtime and for Twine, and importing it
back, with the progress dialog and the report the user sees."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtWidgets import QMessageBox, QWidget
from pytestqt.qtbot import QtBot

from core.story.export import RuntimeImport
from tests.ui.story_env import StoryApp, story_app  # noqa: F401 - the fixture
from ui.story_export import StoryExport, _report


def _story(app: StoryApp) -> int:
    root = app.video(21, seconds=2.0, name="crossroads")
    left = app.video(22, seconds=1.0, name="left road")
    right = app.video(23, seconds=1.0, name="right road")
    story = app.services.story

    async def build() -> None:
        branch = await story.add_branch(root, 1.0, name="Which road?")
        await story.add_variant(branch.id, left, name="Go left", weight=2.0)
        await story.add_variant(branch.id, right, name="Go right")
        await story.add_clip(root, 0.0, 1.0, name="Arrival")

    app.core.run(build(), timeout=30)
    return root


def _finish(qtbot: QtBot, job: StoryExport) -> object:
    results: list[object] = []
    job.finished.connect(results.append)
    qtbot.waitUntil(lambda: bool(results), timeout=30_000)
    return results[0]


def test_a_story_exports_for_a_game_and_imports_back(
    qtbot: QtBot,
    story_app: StoryApp,  # noqa: F811
    tmp_path: Path,
) -> None:
    root = _story(story_app)
    parent = QWidget()
    qtbot.addWidget(parent)
    folder = tmp_path / "game"
    folder.mkdir()

    job = StoryExport(parent, story_app.window_services, story_app.bridge)
    job.export_runtime(root, folder)
    result = _finish(qtbot, job)
    assert result == folder / "story.json"
    bundle = json.loads((folder / "story.json").read_text())
    assert len(bundle["videos"]) == 3
    for video in bundle["videos"]:
        assert (folder / video["file"]).stat().st_size == video["size_bytes"]
    assert not job.dialog.isVisible()

    twee = tmp_path / "story.twee"
    job = StoryExport(parent, story_app.window_services, story_app.bridge)
    job.export_twee(root, twee)
    assert _finish(qtbot, job) == twee
    text = twee.read_text()
    assert ":: StoryTitle" in text and "Go left" in text and "Go right" in text

    job = StoryExport(parent, story_app.window_services, story_app.bridge)
    job.import_runtime(folder / "story.json")
    imported = _finish(qtbot, job)
    assert isinstance(imported, RuntimeImport)
    # The same library already holds every video: nothing is duplicated, the story is matched.
    assert imported.imported == [] and len(imported.matched) == 3
    assert imported.root_asset_id == root and imported.branches == 1 and imported.clips == 1


def test_a_bad_bundle_is_refused_with_the_reason(
    qtbot: QtBot,
    story_app: StoryApp,  # noqa: F811
    tmp_path: Path,
) -> None:
    parent = QWidget()
    qtbot.addWidget(parent)
    (tmp_path / "story.json").write_text('{"format": "something else"}')
    job = StoryExport(parent, story_app.window_services, story_app.bridge)
    job.import_runtime(tmp_path / "story.json")
    error = _finish(qtbot, job)
    assert isinstance(error, Exception)
    _report(parent, "Import Story", error, "")
    box = parent.findChild(QMessageBox, "storyExportReport")
    assert box is not None and box.icon() is QMessageBox.Icon.Warning and str(error) in box.text()
