"""The timeline widget with real mouse gestures (offscreen): seeking, drawing clips, dragging markers and
clip edges, zooming; what it shows for branches and pending variants."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from core.db.enums import BranchType, JobStatus
from core.story.model import Branch, Clip, Variant
from ui.timeline import Timeline, snap

FPS = 24.0
DURATION = 10.0


def variant(vid: int, branch_id: int, *, pending: bool = False) -> Variant:
    return Variant(
        id=vid,
        branch_id=branch_id,
        asset_id=None if pending else 100 + vid,
        job_id=7 if pending else None,
        job_status=JobStatus.RUNNING if pending else None,
        name=f"v{vid}",
        tag=f"v{vid}",
        weight=1.0,
        conditions={},
        display_order=vid,
        is_default=False,
        asset_name=None,
    )


def branch(bid: int, sec: float, *variants: Variant) -> Branch:
    return Branch(
        id=bid,
        video_id=1,
        time_sec=sec,
        frame=round(sec * FPS),
        name=f"Choice {bid}",
        tag=f"choice-{bid}",
        branch_type=BranchType.MANUAL,
        description=None,
        game_metadata={},
        variants=tuple(variants),
    )


def clip(cid: int, start: float, end: float) -> Clip:
    return Clip(cid, 1, f"Clip {cid}", f"clip-{cid}", start, end, None, None, None, ())


@pytest.fixture
def timeline(qtbot: QtBot) -> Iterator[Timeline]:
    widget = Timeline()
    qtbot.addWidget(widget)
    widget.resize(800, 160)
    widget.show()
    qtbot.waitExposed(widget)
    widget.set_video(DURATION, FPS)
    widget.set_content(
        [branch(1, 2.0, variant(1, 1)), branch(2, 6.0, variant(2, 2, pending=True))], [clip(5, 4.0, 5.0)]
    )
    widget.view_box.setXRange(0, DURATION, padding=0)
    QApplication.processEvents()
    yield widget


def at(timeline: Timeline, sec: float, y: float) -> QPoint:
    scene = timeline.view_box.mapViewToScene(QPointF(sec, y))
    point: QPoint = timeline.plot.mapFromScene(scene)
    return point


def drag(timeline: Timeline, start: QPoint, end: QPoint) -> None:
    viewport = timeline.plot.viewport()
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    steps = 8
    for i in range(1, steps + 1):
        point = start + (end - start) * (i / steps)
        QTest.mouseMove(viewport, point, 10)
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end, 10)


def double_click(timeline: Timeline, point: QPoint) -> None:
    """What a real double-click delivers: press, release, double-click (instead of a press), release."""
    viewport = timeline.plot.viewport()
    QTest.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=point)
    global_pos = QPointF(viewport.mapToGlobal(point))
    event = QMouseEvent(
        QEvent.Type.MouseButtonDblClick,
        QPointF(point),
        global_pos,
        Qt.MouseButton.LeftButton,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(viewport, event)
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=point)


def test_it_shows_branches_clips_and_pending_variants(timeline: Timeline) -> None:
    assert set(timeline.branch_lines) == {1, 2} and set(timeline.clip_regions) == {5}
    assert timeline.branch_lines[1].label.textItem.toPlainText() == "Choice 1  ·  1 variant"
    assert "generating…" in timeline.branch_lines[2].label.textItem.toPlainText()
    assert timeline.branch_lines[2].pen.style() == Qt.PenStyle.DashLine
    timeline.set_branch_note(2, "generating 40 %")
    assert "generating 40 %" in timeline.branch_lines[2].label.textItem.toPlainText()
    assert timeline.clip_regions[5].getRegion() == (4.0, 5.0)
    assert timeline.frames_axis.tickStrings([1.0, 2.5], 1, 1) == ["f24", "f60"]


def test_clicking_an_empty_spot_seeks_to_a_frame_boundary(qtbot: QtBot, timeline: Timeline) -> None:
    with qtbot.waitSignal(timeline.seek_requested, timeout=2_000) as seek:
        QTest.mouseClick(timeline.plot.viewport(), Qt.MouseButton.LeftButton, pos=at(timeline, 3.3, 0.8))
    sec = seek.args[0]
    assert abs(sec - 3.3) < 0.1 and sec == snap(sec, FPS)
    assert timeline.playhead_sec == sec


def test_dragging_on_the_clip_lane_draws_a_new_clip(qtbot: QtBot, timeline: Timeline) -> None:
    with qtbot.waitSignal(timeline.clip_create_requested, timeout=2_000) as created:
        drag(timeline, at(timeline, 6.5, 0.25), at(timeline, 8.5, 0.25))
    start, end = created.args
    assert abs(start - 6.5) < 0.1 and abs(end - 8.5) < 0.1
    assert start == snap(start, FPS) and end == snap(end, FPS)
    assert not timeline.draft.isVisible()


def test_dragging_a_branch_marker_asks_to_move_it(qtbot: QtBot, timeline: Timeline) -> None:
    with qtbot.waitSignal(timeline.branch_move_requested, timeout=2_000) as moved:
        drag(timeline, at(timeline, 2.0, 0.8), at(timeline, 3.0, 0.8))
    branch_id, sec = moved.args
    assert branch_id == 1 and abs(sec - 3.0) < 0.1 and sec == snap(sec, FPS)


def test_dragging_a_clip_edge_asks_to_resize_it(qtbot: QtBot, timeline: Timeline) -> None:
    with qtbot.waitSignal(timeline.clip_change_requested, timeout=2_000) as changed:
        drag(timeline, at(timeline, 5.0, 0.25), at(timeline, 5.75, 0.25))
    clip_id, start, end = changed.args
    assert clip_id == 5 and start == 4.0 and abs(end - 5.75) < 0.1


def test_double_clicks_edit_a_branch_or_add_one(qtbot: QtBot, timeline: Timeline) -> None:
    with qtbot.waitSignal(timeline.branch_edit_requested, timeout=2_000) as edit:
        double_click(timeline, at(timeline, 6.0, 0.8))
    assert edit.args == [2] and timeline.selected_branch == 2
    with qtbot.waitSignal(timeline.branch_add_requested, timeout=2_000) as add:
        double_click(timeline, at(timeline, 8.0, 0.8))
    assert abs(add.args[0] - 8.0) < 0.1


def test_the_wheel_zooms_the_time_axis_only(qtbot: QtBot, timeline: Timeline) -> None:
    before = timeline.visible_range()
    viewport = timeline.plot.viewport()
    where = QPointF(at(timeline, 5.0, 0.5))
    event = QWheelEvent(
        where,
        QPointF(viewport.mapToGlobal(where.toPoint())),
        QPoint(0, 0),
        QPoint(0, 240),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(viewport, event)
    after = timeline.visible_range()
    assert after[1] - after[0] < (before[1] - before[0]) * 0.8
    assert timeline.view_box.viewRange()[1] == [0.0, 1.0]
    timeline.zoom(100)  # zooming out stops at the video (and a little margin)
    low, high = timeline.visible_range()
    assert low >= -DURATION * 0.021 and high <= DURATION * 1.021
