"""The playthrough preview: play the story from a root video, stop at each branch point, choose a
variant (buttons at manual branch points; by weight at random ones; by the game state at conditional
ones) and continue in the chosen video, with a breadcrumb of the path taken.

The rules are ``core.story.playthrough.Playthrough``; this window plays the videos and asks.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from core.db.enums import BranchType
from core.story.model import Branch, StoryError, StoryGraph, Variant
from core.story.playthrough import Playthrough
from ui.bridge import CoreBridge
from ui.context import WindowServices
from ui.story_editor import ERROR_COLOR, InvalidEdit, parse_json_object
from ui.video_player import VideoMeta, VideoPlayer

AUTO_CONTINUE_MS = 900  # how long an automatic (random / conditional) pick is shown before play goes on


class PlaythroughWindow(QMainWindow):
    choice_needed = Signal(object, object)  # Branch, list[Variant]
    chosen = Signal(object, object)  # Branch, Variant
    finished = Signal()

    def __init__(
        self,
        services: WindowServices,
        bridge: CoreBridge,
        root_video_id: int,
        *,
        seed: int | None = None,
        state: dict[str, Any] | None = None,
        autoplay: bool = True,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowFlag(Qt.WindowType.Window, True)
        self.setObjectName("playthroughWindow")
        self.setWindowTitle("Playthrough")
        self.resize(1000, 680)
        self.services = services
        self.bridge = bridge
        self.root_video_id = root_video_id
        self.rng = random.Random(seed)
        self.autoplay = autoplay
        self.graph: StoryGraph | None = None
        self.play: Playthrough | None = None
        self.waiting: Branch | None = None  # the branch point play stopped at
        self.ended = False
        self.closed = False  # answers arriving after close are dropped
        self.showing_video: int | None = None  # the video the player has open

        self.player = VideoPlayer()
        self.breadcrumb = QLabel("Loading the story…")
        self.breadcrumb.setObjectName("breadcrumb")
        self.breadcrumb.setWordWrap(True)
        self.breadcrumb.setTextFormat(Qt.TextFormat.PlainText)
        self.prompt = QLabel("")
        self.prompt.setObjectName("choicePrompt")
        self.prompt.setWordWrap(True)
        font = self.prompt.font()
        font.setPointSizeF(font.pointSizeF() * 1.15)
        font.setBold(True)
        self.prompt.setFont(font)
        self.choice_bar = QHBoxLayout()
        self.choice_buttons: list[QPushButton] = []
        choices = QFrame()
        choices.setObjectName("choices")
        choice_layout = QVBoxLayout(choices)
        choice_layout.addWidget(self.prompt)
        choice_layout.addLayout(self.choice_bar)
        self.restart_button = QPushButton("Restart")
        self.restart_button.setObjectName("restartButton")
        self.restart_button.clicked.connect(self.restart)
        self.error_label = QLabel()
        self.error_label.setObjectName("playthroughError")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(f"color: {ERROR_COLOR};")
        self.error_label.hide()

        self.state_edit = QPlainTextEdit(json.dumps(state or {}, indent=1))
        self.state_edit.setObjectName("gameState")
        self.state_edit.setToolTip("Conditional branch points test their variants' conditions against this")
        state_box = QWidget()
        state_layout = QVBoxLayout(state_box)
        state_layout.setContentsMargins(0, 0, 0, 0)
        title = QLabel("Game state (JSON)")
        title.setStyleSheet("font-weight: bold;")
        hint = QLabel('For conditional branch points, e.g. {"has_key": true, "gold": 12}.')
        hint.setWordWrap(True)
        hint.setStyleSheet("color: palette(placeholder-text);")
        state_layout.addWidget(title)
        state_layout.addWidget(hint)
        state_layout.addWidget(self.state_edit, 1)
        state_layout.addWidget(self.restart_button)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.breadcrumb)
        left_layout.addWidget(self.player, 1)
        left_layout.addWidget(choices)
        left_layout.addWidget(self.error_label)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(state_box)
        split.setStretchFactor(0, 1)
        split.setSizes([740, 260])
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(split)
        self.setCentralWidget(central)

        self._auto = QTimer(self)
        self._auto.setSingleShot(True)
        self._pending_auto: Variant | None = None
        self._auto.timeout.connect(self._take_auto)
        self._opening: tuple[int, Path] | None = None
        self.player.opened.connect(self._video_ready)
        self.player.position_changed.connect(self._position)
        self.player.playing_changed.connect(self._playing_changed)
        self.player.failed.connect(self._fail)
        self.bridge.call(services.story.playthrough(root_video_id), self._loaded, self._fail)

    # -- public ------------------------------------------------------------------------------------

    @property
    def path_names(self) -> list[str]:
        """The breadcrumb as names: videos and the variants taken."""
        if self.play is None or self.graph is None:
            return []
        names = [self.graph.story(self.root_video_id).video.name]
        for step in self.play.history:
            if step.variant is not None:
                names.append(step.variant.name)
        return names

    def restart(self) -> None:
        if self.graph is None:
            return
        try:
            state = parse_json_object(self.state_edit.toPlainText(), "The game state")
        except InvalidEdit as exc:
            self._fail(exc)
            return
        self.error_label.hide()
        self._auto.stop()
        self.player.pause()
        self._clear_choices()
        self.waiting = None
        self.play = Playthrough(self.graph, rng=self.rng, state=state)
        self.ended = False
        self._enter_video(self.graph.root_id)

    def choose(self, variant_id: int) -> None:
        """Take ``variant_id`` at the branch point play stopped at."""
        if self.play is None or self.waiting is None:
            return
        branch = self.waiting
        variant = next(v for v in branch.variants if v.id == variant_id)
        try:
            video_id = self.play.choose(variant_id)
        except StoryError as exc:
            self._fail(exc)
            return
        self.waiting = None
        self._clear_choices()
        self.chosen.emit(branch, variant)
        self._enter_video(video_id)

    def skip_to_branch(self) -> None:
        """Jump to just before the next branch point (or the end) of the current video."""
        if self.play is None or self.player.meta is None:
            return
        branch = self.play.next_branch()
        target = branch.time_sec if branch is not None else self.player.meta.duration_sec
        self.player.seek(target)

    # -- flow --------------------------------------------------------------------------------------

    def _loaded(self, graph: StoryGraph) -> None:
        if self.closed:
            return
        self.graph = graph
        self.restart()

    def _enter_video(self, video_id: int) -> None:
        self.showing_video = None
        self._update_breadcrumb()
        self.prompt.setText("")
        self.bridge.call(
            self.services.transfers.ensure_local(video_id),
            lambda path: self._open(video_id, path),
            self._fail,
        )

    def _open(self, video_id: int, path: Path) -> None:
        if self.closed or self.play is None or self.play.current_video != video_id:
            return  # restarted or moved on meanwhile
        self._opening = (video_id, path)
        self.player.open(path, 0.0)

    def _video_ready(self, meta: VideoMeta) -> None:
        if self._opening is None or meta.path != self._opening[1]:
            return
        video_id, _ = self._opening
        self._opening = None
        if self.play is None or self.play.current_video != video_id:
            return
        self.showing_video = video_id
        if self.autoplay:
            QTimer.singleShot(0, self.player.play)

    def _position(self, _: int, sec: float) -> None:
        if self.play is None or self.waiting is not None or self.ended:
            return
        branch = self.play.next_branch()
        if branch is not None and sec >= branch.time_sec - 1e-6:
            self.player.pause()
            self._arrive(branch)
        elif (
            branch is None
            and self.player.meta
            and self.player.current_frame >= self.player.meta.frame_count - 1
        ):
            self._end()

    def _playing_changed(self, playing: bool) -> None:
        meta = self.player.meta
        if playing or self.play is None or self.waiting is not None or meta is None or self.ended:
            return
        if self.player.current_frame >= meta.frame_count - 1 and self.play.next_branch() is None:
            self._end()

    def _arrive(self, branch: Branch) -> None:
        assert self.play is not None
        self.waiting = branch
        self.play.position_sec = branch.time_sec
        playable = self.play.playable(branch)
        auto = self.play.auto_choice(branch)
        self._clear_choices()
        if auto is not None:
            how = "by weight" if branch.branch_type is BranchType.RANDOM else "by the game state"
            self.prompt.setText(f"{branch.name}: “{auto.name}” was picked {how}.")
            self._pending_auto = auto
            self._auto.start(AUTO_CONTINUE_MS if self.autoplay else 0)
            return
        if not playable:
            self.prompt.setText(f"{branch.name}: no variant can be played here. The story ends.")
            self.play.finish()
            self.ended = True
            self._update_breadcrumb()
            self.finished.emit()
            return
        self.prompt.setText(f"{branch.name}: what happens next?")
        for variant in playable:
            button = QPushButton(variant.name)
            button.setObjectName(f"choice_{variant.id}")
            button.setMinimumHeight(36)
            button.clicked.connect(lambda _=False, vid=variant.id: self.choose(vid))
            self.choice_bar.addWidget(button)
            self.choice_buttons.append(button)
        self.choice_needed.emit(branch, playable)

    def _take_auto(self) -> None:
        variant, self._pending_auto = self._pending_auto, None
        if variant is not None:
            self.choose(variant.id)

    def _end(self) -> None:
        assert self.play is not None
        self.play.finish()
        self.ended = True
        self.prompt.setText("The end.")
        self._update_breadcrumb()
        self.finished.emit()

    def _clear_choices(self) -> None:
        for button in self.choice_buttons:
            self.choice_bar.removeWidget(button)
            button.deleteLater()
        self.choice_buttons = []

    def _update_breadcrumb(self) -> None:
        self.breadcrumb.setText("  ›  ".join(self.path_names) or "")

    def _fail(self, error: BaseException) -> None:
        if self.closed:
            return
        self.error_label.setText(str(error) or type(error).__name__)
        self.error_label.show()

    def closeEvent(self, event: Any) -> None:
        self.closed = True
        self._auto.stop()
        self.player.shutdown()
        super().closeEvent(event)
