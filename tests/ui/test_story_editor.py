"""The story editor window, offscreen, on a real database with real videos: branch points, variants and
clips edited through the UI with undo and redo (checked in the window and in the database), refused
edits that write nothing, "continue from here" on the Sandbox, saving a frame and exporting a clip."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QPlainTextEdit
from pytestqt.qtbot import QtBot

from core.db.enums import BranchType
from tests.ui.story_env import StoryApp, story_app  # noqa: F401 - the fixture
from ui.providers_dock import asset_ids_mime
from ui.story_editor import StoryEditor, open_story_editor

DURATION = 2.0  # seconds of the test videos (12 fps)


def settle(qtbot: QtBot, editor: StoryEditor) -> None:
    qtbot.waitUntil(lambda: not editor.busy and editor.story is not None, timeout=20_000)


@pytest.fixture
def video(story_app: StoryApp) -> int:  # noqa: F811
    return story_app.video(1, seconds=DURATION, name="gate")


@pytest.fixture
def editor(qtbot: QtBot, story_app: StoryApp, video: int) -> Iterator[StoryEditor]:  # noqa: F811
    window = open_story_editor(None, story_app.window_services, story_app.bridge, video, at_sec=0.5)
    qtbot.addWidget(window)
    settle(qtbot, window)
    qtbot.waitUntil(lambda: window.player.meta is not None, timeout=10_000)
    yield window  # qtbot closes it (and it deletes itself)


def test_the_editor_opens_on_the_video_at_the_given_time(qtbot: QtBot, editor: StoryEditor) -> None:
    assert editor.windowTitle() == "Story Editor — gate"
    qtbot.waitUntil(lambda: editor.player.current_frame == 6, timeout=10_000)  # 0.5 s at 12 fps
    assert editor.timeline.playhead_sec == pytest.approx(0.5)
    assert editor.timeline.duration == pytest.approx(DURATION)
    assert [a.text() for a in editor.menuBar().actions()] == ["&File", "&Edit", "&View"]
    assert editor.branch_pages.currentIndex() == 0  # the hint: nothing selected


def test_branch_points_are_added_moved_and_deleted_with_undo_and_redo(
    qtbot: QtBot,
    editor: StoryEditor,
    story_app: StoryApp,  # noqa: F811
    video: int,
) -> None:
    editor.add_branch(1.0, name="At the gate")
    settle(qtbot, editor)
    (branch,) = story_app.story(video).branches
    assert (branch.name, branch.time_sec, branch.frame) == ("At the gate", 1.0, 12)
    assert set(editor.timeline.branch_lines) == {branch.id}
    assert (
        editor.branch_name.text() == "At the gate"
        and editor.undo_action.text() == "&Undo Add branch “At the gate”"
    )

    # Dragging its marker moves it (frame-snapped by the timeline).
    editor.timeline.branch_move_requested.emit(branch.id, 1.5)
    settle(qtbot, editor)
    assert story_app.story(video).branches[0].time_sec == 1.5
    assert editor.timeline.branch_lines[branch.id].value() == 1.5

    editor.undo_action.trigger()
    settle(qtbot, editor)
    assert story_app.story(video).branches[0].time_sec == 1.0
    assert editor.timeline.branch_lines[branch.id].value() == 1.0
    editor.redo_action.trigger()
    settle(qtbot, editor)
    assert story_app.story(video).branches[0].time_sec == 1.5

    # A variant, then delete the branch point: undo brings both back (new ids, same content).
    other = story_app.video(2, name="forest")
    editor.add_variant(other)
    settle(qtbot, editor)
    editor.delete_branch_button.click()
    settle(qtbot, editor)
    assert story_app.story(video).branches == ()
    assert editor.timeline.branch_lines == {} and editor.branch_pages.currentIndex() == 0
    editor.undo_action.trigger()
    settle(qtbot, editor)
    (restored,) = story_app.story(video).branches
    assert (restored.name, restored.time_sec) == ("At the gate", 1.5)
    assert [v.asset_id for v in restored.variants] == [other]
    assert set(editor.timeline.branch_lines) == {restored.id}

    # Undo the variant, the move and the add: the commands follow the re-created row's new id.
    for _ in range(3):
        editor.undo_action.trigger()
    settle(qtbot, editor)
    assert story_app.story(video).branches == ()
    assert not editor.undo_stack.canUndo()
    for _ in range(4):
        editor.redo_action.trigger()
    settle(qtbot, editor)
    assert story_app.story(video).branches == ()  # redoing the delete deletes it again
    editor.undo_action.trigger()
    settle(qtbot, editor)
    (again,) = story_app.story(video).branches
    assert again.time_sec == 1.5 and [v.asset_id for v in again.variants] == [other]
    assert editor.last_error == ""


def test_branch_properties_are_applied_as_one_undoable_edit(
    qtbot: QtBot,
    editor: StoryEditor,
    story_app: StoryApp,  # noqa: F811
    video: int,
) -> None:
    editor.add_branch(0.5, name="Crossroads")
    settle(qtbot, editor)
    editor.branch_name.setText("The crossroads")
    editor.branch_type.setCurrentIndex(editor.branch_type.findData(BranchType.RANDOM))
    editor.branch_metadata.setPlainText('{"scene": "crossroads", "music": "tense"}')
    editor.branch_description.setPlainText("Left or right?")
    editor.apply_branch_button.click()
    settle(qtbot, editor)
    (branch,) = story_app.story(video).branches
    assert branch.name == "The crossroads" and branch.branch_type is BranchType.RANDOM
    assert branch.game_metadata == {"scene": "crossroads", "music": "tense"}
    assert branch.description == "Left or right?"
    assert branch.tag == "crossroads"  # the tag was made from the first name and kept
    editor.undo_action.trigger()
    settle(qtbot, editor)
    (branch,) = story_app.story(video).branches
    assert (branch.name, branch.branch_type, branch.game_metadata) == ("Crossroads", BranchType.MANUAL, {})
    assert editor.branch_name.text() == "Crossroads" and editor.branch_metadata.toPlainText() == ""


def test_invalid_edits_are_explained_and_write_nothing(
    qtbot: QtBot,
    editor: StoryEditor,
    story_app: StoryApp,  # noqa: F811
    video: int,
) -> None:
    editor.add_branch(1.0, name="Door")
    settle(qtbot, editor)
    count = editor.undo_stack.count()
    before = story_app.story(video)

    editor.branch_metadata.setPlainText('{"scene": "door",}')
    editor.apply_branch_button.click()
    settle(qtbot, editor)
    assert "Game metadata is not valid JSON" in editor.error_label.text() and editor.error_label.isVisibleTo(
        editor
    )
    editor.branch_metadata.setPlainText("[1, 2]")
    editor.apply_branch_button.click()
    assert "must be a JSON object" in editor.error_label.text()

    editor.branch_metadata.setPlainText("")
    editor.branch_time.setValue(DURATION + 0.5)
    editor.apply_branch_button.click()
    assert "between 0 and 2.000 s" in editor.error_label.text()
    editor.add_branch(5.0)
    assert "not 5.000 s" in editor.error_label.text()

    editor.add_variant(video)  # the video itself
    assert "cannot be this video itself" in editor.error_label.text()

    image = story_app.image(3)
    editor.add_variant(image)  # the service refuses: not a video
    settle(qtbot, editor)
    assert "video" in editor.last_error.lower() and str(image) in editor.last_error

    # A cycle: the other video already continues into this one.
    other = story_app.video(4, name="loop")
    story_app.core.run(_branch_with_variant(story_app, other, video), timeout=30)
    editor.add_variant(other)
    settle(qtbot, editor)
    assert "back" in editor.last_error.lower() or "cycle" in editor.last_error.lower()

    editor.add_clip(1.5, 1.0)
    assert "must end after it starts" in editor.error_label.text()

    after = story_app.story(video)
    assert after.branches == before.branches and after.clips == before.clips
    assert editor.undo_stack.count() == count
    # The next good edit clears the message.
    editor.add_clip(0.25, 0.75)
    settle(qtbot, editor)
    assert editor.error_label.isHidden() and len(story_app.story(video).clips) == 1


async def _branch_with_variant(app: StoryApp, source: int, target: int) -> None:
    branch = await app.services.story.add_branch(source, 1.0, name="Back")
    await app.services.story.add_variant(branch.id, target)


def _drag_variant(
    editor: StoryEditor, row: int, onto: int, *, lower_half: bool = False
) -> tuple[QDropEvent, QMimeData]:
    """Drag the variant at ``row`` and release it over row ``onto`` (its upper or lower half). The mime
    data is returned with the event: the event only points at it."""
    variants = editor.variant_list
    mime = variants.variant_mime(variants.item(row))
    rect = variants.visualItemRect(variants.item(onto))
    y = rect.bottom() - 2 if lower_half else rect.top() + 2
    drop = QDropEvent(
        QPointF(rect.center().x(), y),
        Qt.DropAction.MoveAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    variants.dropEvent(drop)  # what Qt calls when the drag is released over the list
    return drop, mime


def test_variants_are_reordered_by_dragging_them_within_the_list(
    qtbot: QtBot,
    editor: StoryEditor,
    story_app: StoryApp,  # noqa: F811
    video: int,
) -> None:
    a, b, c = (story_app.video(seed, name=name) for seed, name in ((5, "a"), (6, "b"), (7, "c")))
    editor.add_branch(1.0, name="Fork")
    settle(qtbot, editor)
    editor._add_variants([a, b, c])
    settle(qtbot, editor)
    order = lambda: [v.asset_id for v in story_app.story(video).branches[0].variants]  # noqa: E731
    assert order() == [a, b, c]
    edits = editor.undo_stack.count()

    drop, _ = _drag_variant(editor, 2, onto=0)  # c to the top
    assert drop.isAccepted()
    settle(qtbot, editor)
    assert order() == [c, a, b]
    assert editor.variant_list.count() == 3 and f"#{c}" in editor.variant_list.item(0).text()
    assert editor.variant().asset_id == c  # type: ignore[union-attr]  # the moved variant stays selected

    _drag_variant(editor, 0, onto=2, lower_half=True)  # c back to the end
    settle(qtbot, editor)
    assert order() == [a, b, c]
    _drag_variant(editor, 1, onto=1)  # onto itself: no edit
    settle(qtbot, editor)
    assert order() == [a, b, c] and editor.undo_stack.count() == edits + 2

    editor.undo_action.trigger()
    settle(qtbot, editor)
    assert order() == [c, a, b]
    editor.undo_action.trigger()
    settle(qtbot, editor)
    assert order() == [a, b, c] and editor.variant_list.count() == 3


def test_variants_are_added_edited_reordered_and_removed_with_undo(
    qtbot: QtBot,
    editor: StoryEditor,
    story_app: StoryApp,  # noqa: F811
    video: int,
) -> None:
    left, right = story_app.video(5, name="left"), story_app.video(6, name="right")
    editor.add_branch(1.0, name="Fork")
    settle(qtbot, editor)
    # Asset ids dropped from the library grid.
    mime = asset_ids_mime([left, right])
    drop = QDropEvent(
        QPointF(20, 20),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    editor.variant_list.dropEvent(drop)  # what Qt calls when the drag is released over the list
    assert drop.isAccepted()
    settle(qtbot, editor)
    branch = story_app.story(video).branches[0]
    assert [v.asset_id for v in branch.variants] == [left, right]
    assert [v.is_default for v in branch.variants] == [True, False]
    assert editor.variant_list.count() == 2 and editor.variant_list.item(0).text().startswith("★ left")

    # Weight and conditions of the selected variant.
    editor.variant_list.setCurrentRow(1)
    editor.variant_weight.setValue(3.0)
    editor.variant_conditions.setPlainText('{"var": "has_key", "eq": true}')
    editor.apply_variant_button.click()
    settle(qtbot, editor)
    second = story_app.story(video).branches[0].variants[1]
    assert second.weight == 3.0 and second.conditions == {"var": "has_key", "eq": True}

    editor.variant_list.setCurrentRow(1)
    editor.variant_up.click()
    settle(qtbot, editor)
    assert [v.asset_id for v in story_app.story(video).branches[0].variants] == [right, left]
    editor.default_button.click()  # "right" is still selected
    settle(qtbot, editor)
    assert story_app.story(video).branches[0].default_variant.asset_id == right  # type: ignore[union-attr]

    editor.remove_variant_button.click()
    settle(qtbot, editor)
    assert [v.asset_id for v in story_app.story(video).branches[0].variants] == [left]

    editor.undo_action.trigger()  # the removal
    settle(qtbot, editor)
    variants = story_app.story(video).branches[0].variants
    assert [v.asset_id for v in variants] == [right, left] and variants[0].is_default
    assert variants[0].weight == 3.0
    editor.undo_action.trigger()  # the default
    editor.undo_action.trigger()  # the order
    editor.undo_action.trigger()  # weight and conditions
    settle(qtbot, editor)
    variants = story_app.story(video).branches[0].variants
    assert [v.asset_id for v in variants] == [left, right] and variants[0].is_default
    assert variants[1].weight == 1.0 and variants[1].conditions == {}
    assert editor.variant_list.item(0).text().startswith("★ left")

    bad = editor.variant_conditions
    assert isinstance(bad, QPlainTextEdit)
    editor.variant_list.setCurrentRow(0)
    bad.setPlainText("{has_key: true}")
    editor.apply_variant_button.click()
    assert "Conditions is not valid JSON" in editor.error_label.text()
    editor.variant_conditions.setPlainText(
        '{"var": "x", "between": [1, 2]}'
    )  # the service knows the language
    editor.apply_variant_button.click()
    settle(qtbot, editor)
    assert "between" in editor.last_error
    assert story_app.story(video).branches[0].variants[0].conditions == {}


def test_clips_are_drawn_resized_and_deleted_with_undo(
    qtbot: QtBot,
    editor: StoryEditor,
    story_app: StoryApp,  # noqa: F811
    video: int,
) -> None:
    editor.timeline.clip_create_requested.emit(0.5, 1.25)
    settle(qtbot, editor)
    (clip,) = story_app.story(video).clips
    assert (clip.name, clip.start_sec, clip.end_sec) == ("Clip 1", 0.5, 1.25)
    assert set(editor.timeline.clip_regions) == {clip.id} and editor.tabs.currentIndex() == 1
    editor.timeline.clip_change_requested.emit(clip.id, 0.5, 1.75)
    settle(qtbot, editor)
    assert story_app.story(video).clips[0].end_sec == 1.75
    assert editor.timeline.clip_regions[clip.id].getRegion() == (0.5, 1.75)

    editor.clip_name.setText("Boss intro")
    editor.apply_clip_button.click()
    settle(qtbot, editor)
    assert story_app.story(video).clips[0].name == "Boss intro"
    editor.delete_clip_button.click()
    settle(qtbot, editor)
    assert story_app.story(video).clips == () and editor.timeline.clip_regions == {}

    editor.undo_action.trigger()
    settle(qtbot, editor)
    (back,) = story_app.story(video).clips
    assert (back.name, back.start_sec, back.end_sec) == ("Boss intro", 0.5, 1.75)
    for _ in range(3):
        editor.undo_action.trigger()
    settle(qtbot, editor)
    assert story_app.story(video).clips == ()
    for _ in range(3):
        editor.redo_action.trigger()
    settle(qtbot, editor)
    (redone,) = story_app.story(video).clips
    assert (redone.name, redone.end_sec) == ("Boss intro", 1.75)
    assert editor.clip_list.count() == 1 and editor.clip_list.item(0).text().startswith("Boss intro")


def test_a_clip_is_exported_and_the_frame_at_the_playhead_saved(
    qtbot: QtBot,
    editor: StoryEditor,
    story_app: StoryApp,  # noqa: F811
    video: int,
    tmp_path: object,
) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    editor.add_clip(0.5, 1.5, name="Middle")
    settle(qtbot, editor)
    clip = story_app.story(video).clips[0]
    dest = tmp_path / "middle.mp4"
    editor.export_clip(clip.id, dest)
    qtbot.waitUntil(lambda: len(editor.exported) == 1, timeout=30_000)
    assert dest.stat().st_size > 0
    assert f"asset #{editor.exported[0]}" in editor.statusBar().currentMessage()

    editor.player.seek_frame(9)
    qtbot.waitUntil(lambda: editor.player.current_frame == 9, timeout=10_000)
    editor.save_frame_action.trigger()
    qtbot.waitUntil(lambda: len(editor.exported) == 2, timeout=30_000)
    assert "Frame 9" in editor.statusBar().currentMessage()
    detail = story_app.core.run(_parents(story_app, editor.exported[1]), timeout=30)
    assert detail == [(video, "frame", 9)]


async def _parents(app: StoryApp, asset_id: int) -> list[tuple[int, str, int | None]]:
    from sqlalchemy import select

    from core.db.models import AssetLineage

    async with app.services.sessions() as session:
        rows = await session.scalars(select(AssetLineage).where(AssetLineage.child_asset_id == asset_id))
        return [(r.parent_asset_id, r.parent_role, r.parent_frame) for r in rows]


def test_continue_from_here_makes_a_pending_variant_that_becomes_real(
    qtbot: QtBot,
    editor: StoryEditor,
    story_app: StoryApp,  # noqa: F811
    video: int,
) -> None:
    editor.add_branch(1.0, name="Storm")
    settle(qtbot, editor)
    dialog = editor.open_continue_dialog("sandbox")
    assert dialog is not None and dialog.operation is not None and dialog.operation.id == "video_extend"
    prompt = dialog.field("prompt")
    assert isinstance(prompt, QPlainTextEdit)
    prompt.setPlainText("the storm breaks")
    dialog.generate_button.click()
    settle(qtbot, editor)
    branch_id = editor.selected_branch
    assert branch_id is not None
    qtbot.waitUntil(
        lambda: (
            (b := editor.branch(branch_id)) is not None
            and len(b.variants) == 1
            and not b.variants[0].pending
            and not editor.busy
        ),
        timeout=60_000,
    )
    (variant,) = story_app.story(video).branches[0].variants
    assert variant.asset_id is not None and variant.job_id is not None
    assert "generating" not in editor.timeline.branch_lines[branch_id].label.textItem.toPlainText()
    assert "is ready" in editor.statusBar().currentMessage()
