"""The branch timeline (pyqtgraph): a ruler in seconds (bottom) and frames (top), a playhead, branch
markers and clip regions over one video.

It only shows and reports: dragging a marker or a clip edge emits a request with the new (frame-
snapped) times and the editor decides; when it refuses, ``set_story`` puts things back. Clicking seeks,
the wheel zooms, dragging the upper lane pans, dragging on an empty part of the lower (clip) lane
draws a new clip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QVBoxLayout, QWidget

from core.story.model import Branch, Clip

CLIP_LANE = (0.04, 0.44)  # y range of clip regions; branch labels sit above it
LANE_SPLIT = 0.5
PLAYHEAD_COLOR = "#e5484d"
BRANCH_COLOR = "#3e9bff"
BRANCH_SELECTED = "#ffb224"
PENDING_COLOR = "#a07cf0"
CLIP_BRUSH = (62, 180, 137, 70)
CLIP_SELECTED_BRUSH = (255, 178, 36, 90)
MIN_CLIP_FRAMES = 2


def snap(sec: float, fps: float) -> float:
    """``sec`` on the nearest frame boundary."""
    return round(sec * fps) / fps if fps > 0 else sec


class _SecondsAxis(pg.AxisItem):  # type: ignore[misc]
    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        decimals = 0 if spacing >= 1 else 1 if spacing >= 0.1 else 2
        return [f"{v:.{decimals}f} s" if v >= 0 else "" for v in values]


class _FramesAxis(pg.AxisItem):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fps = 24.0

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        return [f"f{round(v * self.fps)}" if v >= 0 else "" for v in values]


class _ViewBox(pg.ViewBox):  # type: ignore[misc]
    """Click to seek, double-click the upper lane for a branch, drag on the lower lane for a clip."""

    def __init__(self, timeline: Timeline) -> None:
        super().__init__(enableMenu=False)
        self._timeline = timeline
        self.setMouseEnabled(x=True, y=False)

    def mouseClickEvent(self, ev: Any) -> None:
        if ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        ev.accept()
        pos = self.mapSceneToView(ev.scenePos())
        if ev.double():
            self._timeline._empty_double_click(pos.x(), pos.y())
        else:
            self._timeline._empty_click(pos.x())

    def mouseDragEvent(self, ev: Any, axis: int | None = None) -> None:
        if ev.button() == Qt.MouseButton.LeftButton:
            start = self.mapSceneToView(ev.buttonDownScenePos())
            if start.y() < LANE_SPLIT:
                ev.accept()
                now = self.mapSceneToView(ev.scenePos())
                self._timeline._drawing_clip(start.x(), now.x(), finished=ev.isFinish())
                return
        super().mouseDragEvent(ev, axis)


class _BranchLine(pg.InfiniteLine):  # type: ignore[misc]
    def __init__(self, timeline: Timeline, branch: Branch, bounds: tuple[float, float]) -> None:
        super().__init__(pos=branch.time_sec, angle=90, movable=True, bounds=bounds)
        self.branch = branch
        self._timeline = timeline
        self.setZValue(20)
        self.setCursor(Qt.CursorShape.SizeHorCursor)
        self.label = pg.InfLineLabel(self, text=branch.name, position=0.9, anchors=[(0, 0.5), (0, 0.5)])
        self.sigPositionChangeFinished.connect(lambda _: timeline._branch_dragged(self))

    def mouseClickEvent(self, ev: Any) -> None:
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            if ev.double():
                self._timeline.branch_edit_requested.emit(self.branch.id)
            else:
                self._timeline.select_branch(self.branch.id)
                self._timeline.branch_selected.emit(self.branch.id)
            return
        super().mouseClickEvent(ev)


class _ClipRegion(pg.LinearRegionItem):  # type: ignore[misc]
    def __init__(self, timeline: Timeline, clip: Clip, bounds: tuple[float, float]) -> None:
        super().__init__(
            values=(clip.start_sec, clip.end_sec),
            brush=pg.mkBrush(*CLIP_BRUSH),
            hoverBrush=pg.mkBrush(62, 180, 137, 110),
            pen=pg.mkPen("#3eb489", width=1),
            bounds=bounds,
            span=CLIP_LANE,
            swapMode="block",
        )
        self.clip = clip
        self._timeline = timeline
        self.setZValue(10)
        self.text = pg.TextItem(clip.name, color="#d8f3e8", anchor=(0, 0.5))
        self.text.setParentItem(self)
        self.sigRegionChangeFinished.connect(lambda _: timeline._clip_dragged(self))
        self.sigRegionChanged.connect(lambda _: self._place_text())
        self._place_text()

    def _place_text(self) -> None:
        start, _ = self.getRegion()
        self.text.setPos(start, (CLIP_LANE[0] + CLIP_LANE[1]) / 2)

    def mouseClickEvent(self, ev: Any) -> None:
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self._timeline.select_clip(self.clip.id)
            self._timeline.clip_selected.emit(self.clip.id)
            if ev.double():
                self._timeline.clip_edit_requested.emit(self.clip.id)
            return
        super().mouseClickEvent(ev)


class Timeline(QWidget):
    seek_requested = Signal(float)  # seconds
    branch_selected = Signal(int)
    branch_edit_requested = Signal(int)
    branch_move_requested = Signal(int, float)  # branch id, new time (frame-snapped)
    branch_add_requested = Signal(float)  # double-click on the upper lane
    clip_selected = Signal(int)
    clip_edit_requested = Signal(int)
    clip_change_requested = Signal(int, float, float)  # clip id, start, end
    clip_create_requested = Signal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("timeline")
        self.duration = 1.0
        self.fps = 24.0
        self.selected_branch: int | None = None
        self.selected_clip: int | None = None
        self.branch_lines: dict[int, _BranchLine] = {}
        self.clip_regions: dict[int, _ClipRegion] = {}
        self._notes: dict[int, str] = {}

        self.view_box = _ViewBox(self)
        self.frames_axis = _FramesAxis("top")
        self.plot = pg.PlotWidget(
            viewBox=self.view_box,
            axisItems={"bottom": _SecondsAxis("bottom"), "top": self.frames_axis},
            background="#1c1f24",
        )
        self.plot.setObjectName("timelinePlot")
        item = self.plot.getPlotItem()
        item.hideAxis("left")
        item.showAxis("top")
        item.hideButtons()
        item.setMenuEnabled(False)
        for name in ("bottom", "top"):
            axis = item.getAxis(name)
            axis.setPen(pg.mkPen("#5a6270"))
            axis.setTextPen(pg.mkPen("#aeb6c2"))
        self.view_box.setYRange(0, 1, padding=0)
        lane = pg.InfiniteLine(pos=LANE_SPLIT, angle=0, pen=pg.mkPen("#2c313a", width=1))
        self.plot.addItem(lane, ignoreBounds=True)
        self.lane_text = pg.TextItem("drag here to mark a clip", color="#5a6270", anchor=(0, 0))
        self.plot.addItem(self.lane_text, ignoreBounds=True)
        self.playhead = pg.InfiniteLine(
            pos=0, angle=90, movable=True, pen=pg.mkPen(PLAYHEAD_COLOR, width=2), hoverPen=None
        )
        self.playhead.setZValue(30)
        self.playhead.sigDragged.connect(lambda line: self.seek_requested.emit(max(0.0, line.value())))
        self.plot.addItem(self.playhead, ignoreBounds=True)
        self.draft = pg.LinearRegionItem(
            values=(0, 0), movable=False, span=CLIP_LANE, brush=pg.mkBrush(255, 255, 255, 40)
        )
        self.draft.setZValue(5)
        self.draft.hide()
        self.plot.addItem(self.draft, ignoreBounds=True)
        self.setMinimumHeight(130)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)

    # -- content ---------------------------------------------------------------------------------

    def set_video(self, duration_sec: float, fps: float | None) -> None:
        self.duration = max(duration_sec, 1e-3)
        self.fps = fps or 24.0
        self.frames_axis.fps = self.fps
        pad = self.duration * 0.02
        self.view_box.setLimits(
            xMin=-pad, xMax=self.duration + pad, minXRange=MIN_CLIP_FRAMES / self.fps, yMin=0, yMax=1
        )
        self.playhead.setBounds((0, self.duration))
        self.view_box.setXRange(0, self.duration, padding=0.02)
        self.view_box.setYRange(0, 1, padding=0)
        self.lane_text.setPos(0, LANE_SPLIT - 0.02)

    def set_content(self, branches: Sequence[Branch], clips: Sequence[Clip]) -> None:
        """Show these branches and clips (replacing what was shown; positions reset to the given data)."""
        bounds = (0.0, self.duration)
        for line in self.branch_lines.values():
            self.plot.removeItem(line)
        for region in self.clip_regions.values():
            self.plot.removeItem(region)
        self.branch_lines = {}
        self.clip_regions = {}
        for branch in branches:
            line = _BranchLine(self, branch, bounds)
            self.plot.addItem(line, ignoreBounds=True)
            self.branch_lines[branch.id] = line
        for clip in clips:
            region = _ClipRegion(self, clip, bounds)
            self.plot.addItem(region, ignoreBounds=True)
            self.clip_regions[clip.id] = region
        self.lane_text.setVisible(not clips)
        if self.selected_branch not in self.branch_lines:
            self.selected_branch = None
        if self.selected_clip not in self.clip_regions:
            self.selected_clip = None
        self._restyle()

    def set_branch_note(self, branch_id: int, note: str | None) -> None:
        """A short state shown after the branch name, e.g. "generating 40 %"."""
        if note:
            self._notes[branch_id] = note
        else:
            self._notes.pop(branch_id, None)
        self._restyle()

    def set_playhead(self, sec: float) -> None:
        self.playhead.setValue(sec)

    @property
    def playhead_sec(self) -> float:
        return float(self.playhead.value())

    def select_branch(self, branch_id: int | None) -> None:
        self.selected_branch = branch_id
        self._restyle()

    def select_clip(self, clip_id: int | None) -> None:
        self.selected_clip = clip_id
        self._restyle()

    def zoom(self, factor: float, center_sec: float | None = None) -> None:
        """Zoom the time axis by ``factor`` (>1 zooms out) around ``center_sec`` (the playhead)."""
        center = self.playhead_sec if center_sec is None else center_sec
        self.view_box.scaleBy(x=factor, center=QPointF(center, 0.5))

    def visible_range(self) -> tuple[float, float]:
        (x0, x1), _ = self.view_box.viewRange()
        return float(x0), float(x1)

    def _restyle(self) -> None:
        for branch_id, line in self.branch_lines.items():
            branch = line.branch
            pending = any(v.pending and v.job_id is not None for v in branch.variants)
            color = BRANCH_SELECTED if branch_id == self.selected_branch else BRANCH_COLOR
            if pending and branch_id != self.selected_branch:
                color = PENDING_COLOR
            pen = pg.mkPen(color, width=3 if branch_id == self.selected_branch else 2)
            if pending:
                pen.setStyle(Qt.PenStyle.DashLine)
            line.setPen(pen)
            line.setHoverPen(pg.mkPen(BRANCH_SELECTED, width=3))
            count = len(branch.variants)
            text = f"{branch.name}  ·  {count} variant{'s' if count != 1 else ''}"
            note = self._notes.get(branch_id) or ("generating…" if pending else "")
            if note:
                text += f"  ·  {note}"
            line.label.setText(text)
            line.label.setColor(QColor(color))
        for clip_id, region in self.clip_regions.items():
            selected = clip_id == self.selected_clip
            region.setBrush(pg.mkBrush(*(CLIP_SELECTED_BRUSH if selected else CLIP_BRUSH)))
            for edge in region.lines:
                # pg.mkPen is cosmetic (pixels); a plain QPen's width would be in seconds here.
                edge.setPen(pg.mkPen(BRANCH_SELECTED if selected else "#3eb489", width=2 if selected else 1))
            region.update()

    # -- gestures (from the items) ----------------------------------------------------------------

    def _clamp(self, sec: float) -> float:
        return min(max(0.0, snap(sec, self.fps)), self.duration)

    def _empty_click(self, sec: float) -> None:
        sec = self._clamp(sec)
        self.set_playhead(sec)
        self.seek_requested.emit(sec)

    def _empty_double_click(self, sec: float, y: float) -> None:
        if y >= LANE_SPLIT:
            self.branch_add_requested.emit(self._clamp(sec))

    def _drawing_clip(self, start: float, now: float, *, finished: bool) -> None:
        low, high = sorted((self._clamp(start), self._clamp(now)))
        self.draft.setRegion((low, high))
        self.draft.show()
        if finished:
            self.draft.hide()
            if (high - low) * self.fps >= MIN_CLIP_FRAMES - 1e-6:
                self.clip_create_requested.emit(low, high)

    def _branch_dragged(self, line: _BranchLine) -> None:
        sec = self._clamp(float(line.value()))
        line.setValue(sec)
        if not math.isclose(sec, line.branch.time_sec, abs_tol=1e-9):
            self.branch_move_requested.emit(line.branch.id, sec)

    def _clip_dragged(self, region: _ClipRegion) -> None:
        start, end = (self._clamp(v) for v in region.getRegion())
        clip = region.clip
        if math.isclose(start, clip.start_sec, abs_tol=1e-9) and math.isclose(
            end, clip.end_sec, abs_tol=1e-9
        ):
            return
        self.clip_change_requested.emit(clip.id, start, end)
