"""The branch timeline editor: one video's branch points, variants and clips, over a frame-accurate
player and a timeline.

Every edit is done by the story service first (through ``StoryOps``, on the core loop, one at a time)
and pushed on the window's ``QUndoStack`` only when it succeeded, so a refused edit writes nothing and
leaves no undo entry; its message shows in red under the panels and in the status bar. Edits that can
be checked here (a name, JSON, a time inside the video) are refused before anything is sent.

Entry point: ``open_story_editor(parent, services, bridge, video_id, at_sec=None)``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from PySide6.QtCore import QByteArray, QMimeData, QObject, QPoint, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QColor,
    QDrag,
    QDragEnterEvent,
    QDropEvent,
    QFontDatabase,
    QKeySequence,
    QUndoCommand,
    QUndoStack,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from core.db.enums import BranchType, JobStatus, MediaType, OperationType
from core.errors import PixSimError
from core.library import LibraryQuery, LibraryService
from core.providers.base import SupportsGenerate
from core.story.model import Branch, Clip, Problem, Variant, VideoStory
from ui.bridge import CoreBridge
from ui.context import WindowServices
from ui.generate_dialog import GenerateDialog, GenerateRequest, InputAsset, ProviderChoice
from ui.providers_dock import ASSET_IDS_MIME, asset_ids_from
from ui.story_commands import (
    AddBranch,
    AddClip,
    AddVariant,
    DeleteBranch,
    DeleteClip,
    DeleteVariant,
    Kind,
    ReorderVariants,
    SetDefaultVariant,
    StoryOps,
    UpdateBranch,
    UpdateClip,
    UpdateVariant,
)
from ui.timeline import Timeline, snap
from ui.video_player import VideoPlayer, format_time

if TYPE_CHECKING:
    from core.jobs.service import JobEvent

T = TypeVar("T")
ERROR_COLOR = "#e5484d"
ID_ROLE = Qt.ItemDataRole.UserRole + 1
VARIANT_MIME = "application/x-pixsim-variant-id"  # a variant dragged within its branch's list
TYPE_LABELS = {
    BranchType.MANUAL: "Manual: the player chooses",
    BranchType.CONDITIONAL: "Conditional: by game state",
    BranchType.RANDOM: "Random: by weight",
}


class InvalidEdit(PixSimError):
    """An edit refused in the editor before anything was sent (bad JSON, empty name, …)."""


def parse_json_object(text: str, what: str) -> dict[str, Any]:
    """``text`` as a JSON object ({} when empty); ``InvalidEdit`` saying where the JSON is wrong."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidEdit(
            f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None
    if not isinstance(value, dict):
        raise InvalidEdit(
            f'{what} must be a JSON object like {{"key": "value"}}, not {type(value).__name__}.'
        )
    return value


def _mono(widget: QWidget) -> None:
    widget.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))


def _seconds_box() -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setDecimals(3)
    box.setSuffix(" s")
    box.setRange(0, 1e6)
    box.setSingleStep(0.1)
    return box


class _Jobs(QObject):
    """Job events from the core thread, queued to the GUI thread."""

    job_did_change = Signal(object)  # JobEvent


class VariantList(QListWidget):
    """The branch's variants. Asset ids dropped from the library grid become new variants; a variant
    dragged within the list asks to move there (the editor makes the edit, with undo)."""

    assets_dropped = Signal(object)  # list[int]
    variant_moved = Signal(int, int)  # variant id, insertion row in the list as it is now

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("variantList")
        self.setAcceptDrops(True)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop)
        self.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.setDropIndicatorShown(True)
        self.setAlternatingRowColors(True)

    def mimeTypes(self) -> list[str]:
        return [ASSET_IDS_MIME, VARIANT_MIME]

    @staticmethod
    def variant_mime(item: QListWidgetItem) -> QMimeData:
        """What a dragged variant carries. (Not an override of ``mimeData``: a QMimeData made in Python
        and handed to Qt through a virtual is a lifetime hazard; ``startDrag`` gives it to QDrag.)"""
        data = QMimeData()
        data.setData(VARIANT_MIME, QByteArray(str(item.data(ID_ROLE)).encode()))
        return data

    def startDrag(self, supportedActions: Qt.DropAction) -> None:
        """Our own drag: the view's would remove the dragged row itself after a move. Here the editor
        stores the new order (with undo) and refills the list from the story."""
        item = self.currentItem()
        if item is None:
            return
        drag = QDrag(self)
        drag.setMimeData(self.variant_mime(item))  # QDrag owns it from here
        drag.setPixmap(self.viewport().grab(self.visualItemRect(item)))
        drag.exec(Qt.DropAction.MoveAction)

    def _ours(self, mime: QMimeData) -> bool:
        return mime.hasFormat(ASSET_IDS_MIME) or mime.hasFormat(VARIANT_MIME)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._ours(event.mimeData()):
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event: Any) -> None:
        if self._ours(event.mimeData()):
            super().dragMoveEvent(event)  # draws the drop indicator
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        mime = event.mimeData()
        if mime.hasFormat(VARIANT_MIME):
            try:
                variant_id = int(bytes(mime.data(VARIANT_MIME).data()).decode())
            except ValueError:
                event.ignore()
                return
            event.acceptProposedAction()
            self.variant_moved.emit(variant_id, self.drop_row(event.position().toPoint()))
            return
        ids = asset_ids_from(mime)
        if ids:
            event.acceptProposedAction()
            self.assets_dropped.emit(ids)
            return
        super().dropEvent(event)

    def drop_row(self, pos: QPoint) -> int:
        """Where a drop at ``pos`` inserts: before the row under it, or after it in its lower half."""
        index = self.indexAt(pos)
        if not index.isValid():
            return self.count()
        return index.row() + (1 if pos.y() > self.visualRect(index).center().y() else 0)


class AssetPicker(QDialog):
    """Choose a video of the library (searchable)."""

    def __init__(
        self, bridge: CoreBridge, library: LibraryService, exclude: int, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("assetPicker")
        self.setWindowTitle("Choose a Video")
        self.resize(420, 460)
        self._bridge = bridge
        self._library = library
        self._exclude = exclude
        self._generation = 0
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search videos by title, prompt or tag")
        self.search.setClearButtonEnabled(True)
        self.list = QListWidget()
        self.list.setObjectName("pickerList")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        self.list.itemDoubleClicked.connect(lambda _: self._accept())
        layout = QVBoxLayout(self)
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)
        layout.addWidget(buttons)
        self.search.textChanged.connect(self.reload)
        self.chosen: int | None = None
        self.reload()

    def reload(self) -> None:
        self._generation += 1
        generation = self._generation
        query = LibraryQuery(media_types=frozenset({MediaType.VIDEO}), text=self.search.text().strip())

        def show(cards: list[Any]) -> None:
            if generation != self._generation:
                return
            self.list.clear()
            for card in cards:
                if card.id == self._exclude:
                    continue
                seconds = f" · {card.duration_sec:.1f} s" if card.duration_sec else ""
                item = QListWidgetItem(f"#{card.id}  {card.display_name}{seconds}")
                item.setData(ID_ROLE, card.id)
                self.list.addItem(item)

        self._bridge.call(self._library.search(query, limit=200), show)

    def _accept(self) -> None:
        item = self.list.currentItem()
        if item is None:
            return
        self.chosen = int(item.data(ID_ROLE))
        self.accept()


class StoryEditor(QMainWindow):
    """The editor window for one video. ``loaded`` is emitted after each (re)load from the database."""

    loaded = Signal(object)  # VideoStory
    problems_changed = Signal(object)  # list[Problem]
    message_shown = Signal(str, bool)  # text, is_error
    similar_frame_requested = Signal(int, float, str)  # video id, time, video name: find similar

    def __init__(
        self,
        services: WindowServices,
        bridge: CoreBridge,
        video_id: int,
        at_sec: float | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("storyEditor")
        self.setWindowTitle("Story Editor")
        self.resize(1280, 820)
        self.services = services
        self.bridge = bridge
        self.video_id = video_id
        self.ops = StoryOps(bridge, services.story)
        self.undo_stack = QUndoStack(self)
        self.undo_stack.setObjectName("storyUndoStack")
        self.story: VideoStory | None = None
        self.problems: list[Problem] = []
        self.selected_branch: int | None = None
        self.selected_variant: int | None = None
        self.selected_clip: int | None = None
        self.loading = 0
        self.closed = False  # answers arriving after close are dropped
        self.last_error = ""
        self.exported: list[int] = []
        self._at_sec = at_sec
        self._accounts: list[Any] = []
        self._job_notes: dict[int, str] = {}
        self._jobs = _Jobs(self)
        self._jobs.job_did_change.connect(self._on_job)
        self._unsubscribe = services.jobs.events.subscribe(self._jobs.job_did_change.emit)

        self.player = VideoPlayer()
        self.timeline = Timeline()
        self._build_panels()
        self._build_layout()
        self._build_actions()
        self._connect()
        self.reload()
        self.bridge.call(services.transfers.ensure_local(video_id), self._open_file, self.edit_failed)
        self.bridge.call(services.accounts.list(), self._got_accounts, lambda _: None)

    # -- building --------------------------------------------------------------------------------

    def _build_panels(self) -> None:
        # Branch point properties.
        self.branch_name = QLineEdit()
        self.branch_name.setObjectName("branchName")
        self.branch_tag = QLineEdit()
        self.branch_tag.setObjectName("branchTag")
        self.branch_tag.setPlaceholderText("made from the name")
        self.branch_type = QComboBox()
        self.branch_type.setObjectName("branchType")
        for kind, label in TYPE_LABELS.items():
            self.branch_type.addItem(label, kind)
        self.branch_time = _seconds_box()
        self.branch_time.setObjectName("branchTime")
        self.branch_frame = QLabel()
        self.branch_frame.setStyleSheet("color: palette(placeholder-text);")
        self.branch_description = QPlainTextEdit()
        self.branch_description.setObjectName("branchDescription")
        self.branch_description.setFixedHeight(52)
        self.branch_metadata = QPlainTextEdit()
        self.branch_metadata.setObjectName("branchMetadata")
        self.branch_metadata.setPlaceholderText('{"scene": "gate", "music": "tense"}')
        self.branch_metadata.setFixedHeight(64)
        _mono(self.branch_metadata)
        self.apply_branch_button = QPushButton("Apply")
        self.apply_branch_button.setObjectName("applyBranchButton")
        self.delete_branch_button = QPushButton("Delete Branch Point")
        self.delete_branch_button.setObjectName("deleteBranchButton")
        time_row = QHBoxLayout()
        time_row.addWidget(self.branch_time, 1)
        time_row.addWidget(self.branch_frame)
        branch_form = QFormLayout()
        branch_form.addRow("Name", self.branch_name)
        branch_form.addRow("Tag", self.branch_tag)
        branch_form.addRow("Type", self.branch_type)
        branch_form.addRow("Time", time_row)
        branch_form.addRow("Description", self.branch_description)
        branch_form.addRow("Game metadata", self.branch_metadata)
        branch_buttons = QHBoxLayout()
        branch_buttons.addWidget(self.delete_branch_button)
        branch_buttons.addStretch(1)
        branch_buttons.addWidget(self.apply_branch_button)
        branch_box = QGroupBox("Branch point")
        branch_layout = QVBoxLayout(branch_box)
        branch_layout.addLayout(branch_form)
        branch_layout.addLayout(branch_buttons)

        # Variants.
        self.variant_list = VariantList()
        self.add_variant_button = QPushButton("Add Video…")
        self.add_variant_button.setObjectName("addVariantButton")
        self.add_variant_button.setToolTip("Offer an existing video here (or drop videos from the library)")
        self.continue_button = QPushButton("Continue From Here…")
        self.continue_button.setObjectName("continueButton")
        self.continue_button.setToolTip("Generate a continuation from this time on a provider")
        self.variant_up = QPushButton("↑")
        self.variant_up.setObjectName("variantUp")
        self.variant_down = QPushButton("↓")
        self.variant_down.setObjectName("variantDown")
        for button in (self.variant_up, self.variant_down):
            button.setFixedWidth(32)
        self.default_button = QPushButton("Make Default")
        self.default_button.setObjectName("defaultButton")
        self.remove_variant_button = QPushButton("Remove")
        self.remove_variant_button.setObjectName("removeVariantButton")
        self.variant_name = QLineEdit()
        self.variant_name.setObjectName("variantName")
        self.variant_weight = QDoubleSpinBox()
        self.variant_weight.setObjectName("variantWeight")
        self.variant_weight.setRange(0, 1000)
        self.variant_weight.setDecimals(2)
        self.variant_conditions = QPlainTextEdit()
        self.variant_conditions.setObjectName("variantConditions")
        self.variant_conditions.setPlaceholderText('{"var": "has_key", "eq": true}')
        self.variant_conditions.setFixedHeight(52)
        _mono(self.variant_conditions)
        self.apply_variant_button = QPushButton("Apply")
        self.apply_variant_button.setObjectName("applyVariantButton")
        add_row = QHBoxLayout()
        add_row.addWidget(self.add_variant_button)
        add_row.addWidget(self.continue_button)
        add_row.addStretch(1)
        order_row = QHBoxLayout()
        order_row.addWidget(self.variant_up)
        order_row.addWidget(self.variant_down)
        order_row.addWidget(self.default_button)
        order_row.addStretch(1)
        order_row.addWidget(self.remove_variant_button)
        variant_form = QFormLayout()
        variant_form.addRow("Name", self.variant_name)
        variant_form.addRow("Weight", self.variant_weight)
        variant_form.addRow("Conditions", self.variant_conditions)
        apply_row = QHBoxLayout()
        apply_row.addStretch(1)
        apply_row.addWidget(self.apply_variant_button)
        variant_box = QGroupBox("Variants")
        variant_layout = QVBoxLayout(variant_box)
        variant_layout.addLayout(add_row)
        variant_layout.addWidget(self.variant_list, 1)
        variant_layout.addLayout(order_row)
        variant_layout.addLayout(variant_form)
        variant_layout.addLayout(apply_row)
        self.variant_editor_widgets: tuple[QWidget, ...] = (
            self.variant_name,
            self.variant_weight,
            self.variant_conditions,
            self.apply_variant_button,
            self.variant_up,
            self.variant_down,
            self.default_button,
            self.remove_variant_button,
        )

        branch_page = QWidget()
        page_layout = QVBoxLayout(branch_page)
        page_layout.setContentsMargins(0, 0, 0, 0)
        page_layout.addWidget(branch_box)
        page_layout.addWidget(variant_box, 1)
        hint = QLabel(
            "Select a branch point on the timeline, or add one at the playhead (B).\n\n"
            "Double-click the upper lane of the timeline to add one there; drag a marker to move it."
        )
        hint.setWordWrap(True)
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint.setStyleSheet("color: palette(placeholder-text); padding: 24px;")
        self.branch_pages = QStackedWidget()
        self.branch_pages.addWidget(hint)
        self.branch_pages.addWidget(branch_page)

        # Clips.
        self.clip_list = QListWidget()
        self.clip_list.setObjectName("clipList")
        self.clip_name = QLineEdit()
        self.clip_name.setObjectName("clipName")
        self.clip_start = _seconds_box()
        self.clip_start.setObjectName("clipStart")
        self.clip_end = _seconds_box()
        self.clip_end.setObjectName("clipEnd")
        self.clip_description = QLineEdit()
        self.clip_description.setObjectName("clipDescription")
        self.apply_clip_button = QPushButton("Apply")
        self.apply_clip_button.setObjectName("applyClipButton")
        self.delete_clip_button = QPushButton("Delete")
        self.delete_clip_button.setObjectName("deleteClipButton")
        self.export_clip_button = QPushButton("Export as File…")
        self.export_clip_button.setObjectName("exportClipButton")
        clip_form = QFormLayout()
        clip_form.addRow("Name", self.clip_name)
        clip_form.addRow("Start", self.clip_start)
        clip_form.addRow("End", self.clip_end)
        clip_form.addRow("Description", self.clip_description)
        clip_buttons = QHBoxLayout()
        clip_buttons.addWidget(self.delete_clip_button)
        clip_buttons.addWidget(self.export_clip_button)
        clip_buttons.addStretch(1)
        clip_buttons.addWidget(self.apply_clip_button)
        clip_hint = QLabel("Drag on the lower lane of the timeline to mark a clip.")
        clip_hint.setWordWrap(True)
        clip_hint.setStyleSheet("color: palette(placeholder-text);")
        clips_page = QWidget()
        clips_layout = QVBoxLayout(clips_page)
        clips_layout.addWidget(clip_hint)
        clips_layout.addWidget(self.clip_list, 1)
        clips_layout.addLayout(clip_form)
        clips_layout.addLayout(clip_buttons)
        self.clip_editor_widgets: tuple[QWidget, ...] = (
            self.clip_name,
            self.clip_start,
            self.clip_end,
            self.clip_description,
            self.apply_clip_button,
            self.delete_clip_button,
            self.export_clip_button,
        )

        # Problems.
        self.problem_list = QListWidget()
        self.problem_list.setObjectName("problemList")
        self.problem_list.setWordWrap(True)

        self.tabs = QTabWidget()
        self.tabs.setObjectName("storyTabs")
        self.tabs.addTab(self.branch_pages, "Branch Point")
        self.tabs.addTab(clips_page, "Clips")
        self.tabs.addTab(self.problem_list, "Problems")

        self.error_label = QLabel()
        self.error_label.setObjectName("editorError")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(
            f"color: {ERROR_COLOR}; background: rgba(229, 72, 77, 0.10); padding: 6px; border-radius: 4px;"
        )
        self.error_label.hide()

    def _build_layout(self) -> None:
        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.player)
        left.addWidget(self.timeline)
        left.setStretchFactor(0, 3)
        left.setStretchFactor(1, 1)
        left.setSizes([560, 200])
        right = QWidget()
        right.setMinimumWidth(360)
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.tabs, 1)
        right_layout.addWidget(self.error_label)
        main = QSplitter(Qt.Orientation.Horizontal)
        main.addWidget(left)
        main.addWidget(right)
        main.setStretchFactor(0, 1)
        main.setSizes([880, 400])
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(main)
        self.setCentralWidget(central)

    def _build_actions(self) -> None:
        self.undo_action = self.undo_stack.createUndoAction(self, "&Undo")
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.redo_action = self.undo_stack.createRedoAction(self, "&Redo")
        self.redo_action.setShortcuts(
            [QKeySequence("Ctrl+Shift+Z"), QKeySequence(QKeySequence.StandardKey.Redo)]
        )
        self.add_branch_action = QAction("Add Branch Point", self)
        self.add_branch_action.setShortcut(QKeySequence("B"))
        self.add_branch_action.setToolTip("Add a branch point at the playhead (B)")
        self.add_branch_action.triggered.connect(lambda: self.add_branch(self.player.current_sec))
        self.save_frame_action = QAction("Save Frame", self)
        self.save_frame_action.setToolTip("Save the frame at the playhead as an image asset")
        self.save_frame_action.triggered.connect(self.save_frame)
        self.similar_frame_action = QAction("Find Similar", self)
        self.similar_frame_action.setObjectName("findSimilarFrame")
        self.similar_frame_action.setShortcut(QKeySequence("Ctrl+Shift+F"))
        self.similar_frame_action.setToolTip(
            "Show pictures, videos and scenes that look like the frame at the playhead in the library"
        )
        self.similar_frame_action.triggered.connect(self.find_similar_frame)
        self.playthrough_action = QAction("Playthrough…", self)
        self.playthrough_action.setToolTip("Play the story from this video, choosing at each branch point")
        self.playthrough_action.triggered.connect(self.open_playthrough)
        self.zoom_in_action = QAction("Zoom In", self)
        self.zoom_in_action.setShortcut(QKeySequence.StandardKey.ZoomIn)
        self.zoom_in_action.triggered.connect(lambda: self.timeline.zoom(0.5))
        self.zoom_out_action = QAction("Zoom Out", self)
        self.zoom_out_action.setShortcut(QKeySequence.StandardKey.ZoomOut)
        self.zoom_out_action.triggered.connect(lambda: self.timeline.zoom(2.0))
        close = QAction("&Close", self)
        close.setShortcut(QKeySequence.StandardKey.Close)
        close.triggered.connect(self.close)

        self.export_action = QAction("&Export Story for a Game…", self)
        self.export_action.setToolTip("story.json and the videos beside it, for a game to load once")
        self.export_action.triggered.connect(self.export_story)
        self.twee_action = QAction("Export to &Twine (Twee 3)…", self)
        self.twee_action.triggered.connect(self.export_twee)
        self.import_action = QAction("&Import Story…", self)
        self.import_action.triggered.connect(self.import_story)

        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.save_frame_action)
        file_menu.addAction(self.similar_frame_action)
        file_menu.addSeparator()
        file_menu.addAction(self.export_action)
        file_menu.addAction(self.twee_action)
        file_menu.addAction(self.import_action)
        file_menu.addSeparator()
        file_menu.addAction(close)
        self.edit_menu = self.menuBar().addMenu("&Edit")
        self.edit_menu.addAction(self.undo_action)
        self.edit_menu.addAction(self.redo_action)
        self.edit_menu.addSeparator()
        self.edit_menu.addAction(self.add_branch_action)
        view_menu = self.menuBar().addMenu("&View")
        view_menu.addAction(self.zoom_in_action)
        view_menu.addAction(self.zoom_out_action)
        view_menu.addSeparator()
        view_menu.addAction(self.playthrough_action)

        toolbar = QToolBar("Story")
        toolbar.setObjectName("storyToolbar")
        toolbar.setMovable(False)
        for action in (
            self.undo_action,
            self.redo_action,
            None,
            self.add_branch_action,
            self.save_frame_action,
            self.similar_frame_action,
            None,
            self.zoom_in_action,
            self.zoom_out_action,
            None,
            self.playthrough_action,
        ):
            if action is None:
                toolbar.addSeparator()
            else:
                toolbar.addAction(action)
        self.addToolBar(toolbar)

    def _connect(self) -> None:
        self.player.opened.connect(self._player_opened)
        self.player.position_changed.connect(lambda _, sec: self.timeline.set_playhead(sec))
        self.player.failed.connect(lambda message: self.show_message(message, error=True))
        self.timeline.seek_requested.connect(self.player.seek)
        self.timeline.branch_selected.connect(self.select_branch)
        self.timeline.branch_edit_requested.connect(self._edit_branch)
        self.timeline.branch_move_requested.connect(self.move_branch)
        self.timeline.branch_add_requested.connect(self.add_branch)
        self.timeline.clip_selected.connect(self.select_clip)
        self.timeline.clip_edit_requested.connect(lambda _: self.tabs.setCurrentIndex(1))
        self.timeline.clip_create_requested.connect(self.add_clip)
        self.timeline.clip_change_requested.connect(self.resize_clip)
        self.apply_branch_button.clicked.connect(self.apply_branch)
        self.delete_branch_button.clicked.connect(self.delete_branch)
        self.variant_list.currentItemChanged.connect(self._variant_row_changed)
        self.variant_list.assets_dropped.connect(self._add_variants)
        self.variant_list.variant_moved.connect(self.move_variant_to)
        self.add_variant_button.clicked.connect(self.pick_variant)
        self.continue_button.clicked.connect(self.open_continue_dialog)
        self.variant_up.clicked.connect(lambda: self.move_variant(-1))
        self.variant_down.clicked.connect(lambda: self.move_variant(1))
        self.default_button.clicked.connect(self.make_default)
        self.remove_variant_button.clicked.connect(self.remove_variant)
        self.apply_variant_button.clicked.connect(self.apply_variant)
        self.clip_list.currentItemChanged.connect(self._clip_row_changed)
        self.apply_clip_button.clicked.connect(self.apply_clip)
        self.delete_clip_button.clicked.connect(self.delete_clip)
        self.export_clip_button.clicked.connect(self.choose_clip_export)
        self.problem_list.itemActivated.connect(self._problem_activated)
        self.problem_list.itemClicked.connect(self._problem_activated)

    # -- loading ---------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Edits or loads in flight (tests wait for this to clear)."""
        return self.ops.pending > 0 or self.loading > 0

    def reload(self) -> None:
        self.loading += 1

        async def load() -> tuple[VideoStory, list[Problem]]:
            story = await self.services.story.story(self.video_id)
            problems = await self.services.story.validate(self.video_id)
            return story, problems

        def done(result: tuple[VideoStory, list[Problem]]) -> None:
            self.loading -= 1
            self._show_story(*result)

        def failed(error: BaseException) -> None:
            self.loading -= 1
            self.show_message(str(error) or type(error).__name__, error=True)

        # Through the serial queue: a reload never overtakes an edit.
        self.ops.run(load, done, failed)

    def story_changed(self, focus: tuple[Kind, int] | None = None) -> None:
        """After an undo or redo: show the edited row and reload."""
        if focus is not None:
            kind, original = focus
            current = self.ops.ids.current(kind, original)
            if kind == "branch":
                self.selected_branch = current
            elif kind == "variant":
                self.selected_variant = current
            else:
                self.selected_clip = current
        self.clear_error()
        self.reload()

    def _open_file(self, path: Path) -> None:
        if self.closed:
            return
        self.player.open(path, self._at_sec or 0.0)

    def _player_opened(self, meta: Any) -> None:
        if self.story is None:
            self.timeline.set_video(meta.duration_sec, meta.fps)

    def _got_accounts(self, accounts: list[Any]) -> None:
        self._accounts = accounts

    def _show_story(self, story: VideoStory, problems: list[Problem]) -> None:
        if self.closed:
            return
        first = self.story is None
        self.story = story
        self.problems = problems
        video = story.video
        self.setWindowTitle(f"Story Editor — {video.name}")
        if first:
            self.timeline.set_video(video.duration_sec, video.fps)
        branch_ids = {b.id for b in story.branches}
        if self.selected_branch not in branch_ids:
            self.selected_branch = None
        if self.selected_clip not in {c.id for c in story.clips}:
            self.selected_clip = None
        self.timeline.set_content(story.branches, story.clips)
        for branch_id, note in self._job_notes.items():
            if branch_id in branch_ids:
                self.timeline.set_branch_note(branch_id, note)
        self.timeline.select_branch(self.selected_branch)
        self.timeline.select_clip(self.selected_clip)
        self._fill_branch()
        self._fill_clips()
        self._fill_problems()
        self.loaded.emit(story)
        self.problems_changed.emit(problems)

    # -- selection and panels ----------------------------------------------------------------------

    def branch(self, branch_id: int | None = None) -> Branch | None:
        wanted = self.selected_branch if branch_id is None else branch_id
        if self.story is None or wanted is None:
            return None
        return next((b for b in self.story.branches if b.id == wanted), None)

    def clip(self, clip_id: int | None = None) -> Clip | None:
        wanted = self.selected_clip if clip_id is None else clip_id
        if self.story is None or wanted is None:
            return None
        return next((c for c in self.story.clips if c.id == wanted), None)

    def variant(self) -> Variant | None:
        branch = self.branch()
        if branch is None or self.selected_variant is None:
            return None
        return next((v for v in branch.variants if v.id == self.selected_variant), None)

    def select_branch(self, branch_id: int | None) -> None:
        self.selected_branch = branch_id
        self.selected_variant = None
        self.timeline.select_branch(branch_id)
        self.tabs.setCurrentIndex(0)
        branch = self.branch()
        if branch is not None:
            self.player.seek(branch.time_sec)
        self._fill_branch()

    def _edit_branch(self, branch_id: int) -> None:
        self.select_branch(branch_id)
        self.branch_name.setFocus()
        self.branch_name.selectAll()

    def select_clip(self, clip_id: int | None) -> None:
        self.selected_clip = clip_id
        self.timeline.select_clip(clip_id)
        self.tabs.setCurrentIndex(1)
        clip = self.clip()
        if clip is not None:
            self.player.seek(clip.start_sec)
        self._fill_clips()

    def _fill_branch(self) -> None:
        branch = self.branch()
        self.branch_pages.setCurrentIndex(1 if branch is not None else 0)
        if branch is None:
            return
        duration = self.story.video.duration_sec if self.story else 1e6
        self.branch_name.setText(branch.name)
        self.branch_tag.setText(branch.tag)
        self.branch_type.setCurrentIndex(max(0, self.branch_type.findData(branch.branch_type)))
        self.branch_time.setRange(0, max(duration, branch.time_sec) + 1)  # a bad time can be typed: refused
        self.branch_time.setValue(branch.time_sec)
        self.branch_frame.setText(f"frame {branch.frame}" if branch.frame is not None else "")
        self.branch_description.setPlainText(branch.description or "")
        self.branch_metadata.setPlainText(
            json.dumps(branch.game_metadata, indent=1) if branch.game_metadata else ""
        )
        self.variant_list.blockSignals(True)
        self.variant_list.clear()
        for variant in branch.variants:
            item = QListWidgetItem(self._variant_text(variant))
            item.setToolTip(self._variant_text(variant).strip())
            item.setData(ID_ROLE, variant.id)
            if variant.pending:
                failed = variant.job_status in (JobStatus.FAILED, JobStatus.CANCELLED)
                item.setForeground(QColor(ERROR_COLOR if failed else "#a07cf0"))
            self.variant_list.addItem(item)
            if variant.id == self.selected_variant:
                self.variant_list.setCurrentItem(item)
        self.variant_list.blockSignals(False)
        if self.variant() is None:
            self.selected_variant = None
        self._fill_variant()

    def _variant_text(self, variant: Variant) -> str:
        star = "★ " if variant.is_default else "    "
        if variant.pending:
            status = variant.job_status
            if status in (JobStatus.FAILED, JobStatus.CANCELLED):
                what = f"generation {status.value if status else 'failed'} (job {variant.job_id})"
            else:
                what = self._job_notes.get(-(variant.job_id or 0)) or "generating…"
            return f"{star}{variant.name}  —  {what}"
        weight = f"  ·  weight {variant.weight:g}"
        condition = "  ·  if …" if variant.conditions else ""
        # The asset's own name only when it says something the variant's name does not.
        shown = variant.asset_name if variant.asset_name and variant.asset_name != variant.name else ""
        asset = f"#{variant.asset_id} {shown}".rstrip()
        return f"{star}{variant.name}  —  {asset}{weight}{condition}"

    def _variant_row_changed(self, current: QListWidgetItem | None, _: QListWidgetItem | None) -> None:
        self.selected_variant = int(current.data(ID_ROLE)) if current is not None else None
        self._fill_variant()

    def _fill_variant(self) -> None:
        variant = self.variant()
        for widget in self.variant_editor_widgets:
            widget.setEnabled(variant is not None)
        if variant is None:
            self.variant_name.clear()
            self.variant_weight.setValue(0)
            self.variant_conditions.clear()
            return
        self.variant_name.setText(variant.name)
        self.variant_weight.setValue(variant.weight)
        self.variant_conditions.setPlainText(json.dumps(variant.conditions) if variant.conditions else "")
        self.default_button.setText("Clear Default" if variant.is_default else "Make Default")

    def _fill_clips(self) -> None:
        self.clip_list.blockSignals(True)
        self.clip_list.clear()
        for row in self.story.clips if self.story else ():
            item = QListWidgetItem(f"{row.name}   {format_time(row.start_sec)} – {format_time(row.end_sec)}")
            item.setData(ID_ROLE, row.id)
            self.clip_list.addItem(item)
            if row.id == self.selected_clip:
                self.clip_list.setCurrentItem(item)
        self.clip_list.blockSignals(False)
        clip = self.clip()
        for widget in self.clip_editor_widgets:
            widget.setEnabled(clip is not None)
        if clip is None:
            for line in (self.clip_name, self.clip_description):
                line.clear()
            return
        duration = self.story.video.duration_sec if self.story else 1e6
        for box in (self.clip_start, self.clip_end):
            box.setRange(0, duration + 1)
        self.clip_name.setText(clip.name)
        self.clip_start.setValue(clip.start_sec)
        self.clip_end.setValue(clip.end_sec)
        self.clip_description.setText(clip.description or "")

    def _clip_row_changed(self, current: QListWidgetItem | None, _: QListWidgetItem | None) -> None:
        if current is not None:
            self.select_clip(int(current.data(ID_ROLE)))

    def _fill_problems(self) -> None:
        self.problem_list.clear()
        for problem in self.problems:
            prefix = "Error: " if problem.severity == "error" else "Warning: "
            item = QListWidgetItem(prefix + problem.message)
            item.setForeground(QColor(ERROR_COLOR if problem.severity == "error" else "#d9a400"))
            item.setData(ID_ROLE, problem)
            self.problem_list.addItem(item)
        if not self.problems:
            item = QListWidgetItem("No problems: the story can be played and exported.")
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.problem_list.addItem(item)
        errors = sum(p.severity == "error" for p in self.problems)
        self.tabs.setTabText(2, f"Problems ({len(self.problems)})" if self.problems else "Problems")
        if errors:
            self.tabs.tabBar().setTabTextColor(2, QColor(ERROR_COLOR))
        else:
            self.tabs.tabBar().setTabTextColor(2, self.tabs.tabBar().palette().windowText().color())

    def _problem_activated(self, item: QListWidgetItem) -> None:
        problem = item.data(ID_ROLE)
        if not isinstance(problem, Problem):
            return
        if problem.branch_id is not None:
            self.select_branch(problem.branch_id)
            if problem.variant_id is not None:
                self.selected_variant = problem.variant_id
                self._fill_branch()
        elif problem.clip_id is not None:
            self.select_clip(problem.clip_id)

    # -- messages --------------------------------------------------------------------------------

    def show_message(self, text: str, *, error: bool = False) -> None:
        if self.closed:
            return
        if error:
            self.last_error = text
            self.error_label.setText(text)
            self.error_label.show()
            self.statusBar().showMessage(text, 15_000)
        else:
            self.statusBar().showMessage(text, 8_000)
        self.message_shown.emit(text, error)

    def clear_error(self) -> None:
        self.last_error = ""
        self.error_label.hide()

    def edit_failed(self, error: BaseException) -> None:
        """An edit (or undo/redo) the service refused: say why, and show what the database holds."""
        self.show_message(str(error) or type(error).__name__, error=True)
        self.reload()

    def refuse(self, message: str) -> None:
        """An edit refused here, before anything was sent."""
        self.show_message(message, error=True)

    # -- edits -----------------------------------------------------------------------------------

    def _edit(
        self,
        make: Callable[[], Awaitable[T]],
        command: Callable[[T], QUndoCommand],
        select: Callable[[T], None] | None = None,
    ) -> None:
        """Do ``make`` on the core loop; when it succeeded, push its (already done) command and reload."""

        def done(result: T) -> None:
            if self.closed:
                return
            self.clear_error()
            self.undo_stack.push(command(result))
            if select is not None:
                select(result)
            self.reload()

        self.ops.run(make, done, self.edit_failed)

    def _check_time(self, sec: float, what: str) -> bool:
        duration = self.story.video.duration_sec if self.story else None
        if sec < 0 or (duration is not None and sec > duration + 1e-3):
            limit = f"0 and {duration:.3f} s" if duration is not None else "0 s and the end"
            self.refuse(f"The {what} must be between {limit} (the video's length), not {sec:.3f} s.")
            return False
        return True

    def add_branch(self, sec: float, name: str | None = None) -> None:
        if self.story is None or not self._check_time(sec, "branch time"):
            return
        fps = self.story.video.fps or 0
        sec = snap(sec, fps) if fps else sec
        label = name or f"Choice at {sec:.2f} s"

        def select(branch: Branch) -> None:
            self.selected_branch = branch.id
            self.selected_variant = None
            self.tabs.setCurrentIndex(0)

        self._edit(
            lambda: self.services.story.add_branch(self.video_id, sec, name=label),
            lambda branch: AddBranch(self, branch),
            select,
        )

    def move_branch(self, branch_id: int, sec: float) -> None:
        branch = self.branch(branch_id)
        if branch is None:
            return
        if not self._check_time(sec, "branch time"):
            self.reload()
            return
        before = branch.time_sec
        self._edit(
            lambda: self.services.story.update_branch(branch_id, time_sec=sec),
            lambda _: UpdateBranch(
                self,
                branch_id,
                {"time_sec": before},
                {"time_sec": sec},
                f"Move “{branch.name}” to {sec:.2f} s",
            ),
        )

    def apply_branch(self) -> None:
        branch = self.branch()
        if branch is None:
            return
        name = self.branch_name.text().strip()
        if not name:
            self.refuse("A branch point needs a name.")
            return
        try:
            metadata = parse_json_object(self.branch_metadata.toPlainText(), "Game metadata")
        except InvalidEdit as exc:
            self.refuse(str(exc))
            return
        sec = self.branch_time.value()
        if not self._check_time(sec, "branch time"):
            return
        wanted: dict[str, Any] = {
            "name": name,
            "tag": self.branch_tag.text().strip() or branch.tag,
            "branch_type": self.branch_type.currentData(),
            "time_sec": sec,
            "description": self.branch_description.toPlainText().strip() or None,
            "game_metadata": metadata,
        }
        now: dict[str, Any] = {
            "name": branch.name,
            "tag": branch.tag,
            "branch_type": branch.branch_type,
            "time_sec": branch.time_sec,
            "description": branch.description,
            "game_metadata": branch.game_metadata,
        }
        after = {k: v for k, v in wanted.items() if v != now[k]}
        if not after:
            self.show_message("Nothing to apply: the branch point is unchanged.")
            return
        before = {k: now[k] for k in after}
        self._edit(
            lambda: self.services.story.update_branch(branch.id, **after),
            lambda _: UpdateBranch(self, branch.id, before, after, f"Edit “{branch.name}”"),
        )

    def delete_branch(self) -> None:
        branch = self.branch()
        if branch is None:
            return
        self._edit(
            lambda: self.services.story.delete_branch(branch.id),
            lambda removed: DeleteBranch(self, removed),
        )

    def _add_variants(self, asset_ids: list[int]) -> None:
        for asset_id in asset_ids:
            self.add_variant(asset_id)

    def add_variant(self, asset_id: int) -> None:
        branch = self.branch()
        if branch is None:
            self.refuse("Select a branch point first: variants belong to a branch point.")
            return
        if asset_id == self.video_id:
            self.refuse(
                "A variant cannot be this video itself: it would play the same video again from the start. "
                "Choose another video."
            )
            return

        def select(variant: Variant) -> None:
            self.selected_variant = variant.id

        self._edit(
            lambda: self.services.story.add_variant(branch.id, asset_id),
            lambda variant: AddVariant(self, variant),
            select,
        )

    def pick_variant(self) -> AssetPicker | None:
        if self.branch() is None:
            return None
        picker = AssetPicker(self.bridge, LibraryService(self.services.sessions), self.video_id, self)
        picker.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def chosen() -> None:
            if picker.chosen is not None:
                self.add_variant(picker.chosen)

        picker.accepted.connect(chosen)
        picker.open()
        return picker

    def apply_variant(self) -> None:
        variant = self.variant()
        if variant is None:
            return
        name = self.variant_name.text().strip()
        if not name:
            self.refuse("A variant needs a name.")
            return
        try:
            conditions = parse_json_object(self.variant_conditions.toPlainText(), "Conditions")
        except InvalidEdit as exc:
            self.refuse(str(exc))
            return
        wanted: dict[str, Any] = {
            "name": name,
            "weight": self.variant_weight.value(),
            "conditions": conditions,
        }
        now = {"name": variant.name, "weight": variant.weight, "conditions": variant.conditions}
        after = {k: v for k, v in wanted.items() if v != now[k]}
        if not after:
            return
        before = {k: now[k] for k in after}
        self._edit(
            lambda: self.services.story.update_variant(variant.id, **after),
            lambda _: UpdateVariant(self, variant.id, before, after, f"Edit variant “{variant.name}”"),
        )

    def remove_variant(self) -> None:
        variant = self.variant()
        if variant is None:
            return
        self.selected_variant = None
        self._edit(
            lambda: self.services.story.delete_variant(variant.id),
            lambda removed: DeleteVariant(self, removed),
        )

    def move_variant(self, delta: int) -> None:
        """↑ / ↓: one place up or down."""
        branch, variant = self.branch(), self.variant()
        if branch is None or variant is None:
            return
        index = [v.id for v in branch.variants].index(variant.id)
        if 0 <= index + delta < len(branch.variants):
            self.move_variant_to(variant.id, index + delta + (1 if delta > 0 else 0))

    def move_variant_to(self, variant_id: int, row: int) -> None:
        """Move a variant of the current branch to insertion ``row`` (0 … count) of the list as it is."""
        branch = self.branch()
        if branch is None:
            return
        before = [v.id for v in branch.variants]
        if variant_id not in before:
            return  # dragged in from another editor's list: not this branch's variant
        after = [v for v in before if v != variant_id]
        index = before.index(variant_id)
        after.insert(max(0, min(row if row <= index else row - 1, len(after))), variant_id)
        if after == before:
            return
        self.selected_variant = variant_id
        self._edit(
            lambda: self.services.story.reorder_variants(branch.id, after),
            lambda _: ReorderVariants(self, branch.id, before, after),
        )

    def make_default(self) -> None:
        branch, variant = self.branch(), self.variant()
        if branch is None or variant is None:
            return
        current = branch.default_variant
        before = current.id if current is not None else None
        after = None if variant.is_default else variant.id
        self._edit(
            lambda: self.services.story.set_default_variant(branch.id, after),
            lambda _: SetDefaultVariant(self, branch.id, before, after),
        )

    # -- continue from here ---------------------------------------------------------------------------

    def provider_choices(self) -> list[ProviderChoice]:
        """Providers that can extend a video, with their extend operation only."""
        choices = []
        for adapter in self.services.registry.all():
            if not isinstance(adapter, SupportsGenerate):
                continue
            ops = tuple(op for op in adapter.operations() if op.id == OperationType.VIDEO_EXTEND.value)
            if not ops:
                continue
            accounts = tuple(
                (a.id, a.label) for a in self._accounts if a.provider_id == adapter.provider_id and a.enabled
            )
            choices.append(
                ProviderChoice(
                    adapter.provider_id,
                    adapter.display_name,
                    adapter.description,
                    ops,
                    accounts,
                    adapter.requires_account,
                )
            )
        return choices

    def open_continue_dialog(self, provider_id: str | None = None) -> GenerateDialog | None:
        branch = self.branch()
        if branch is None or self.story is None:
            return None
        video = InputAsset(self.video_id, self.story.video.name, MediaType.VIDEO)
        dialog = GenerateDialog(
            self.provider_choices(), [video], provider_id=provider_id or "sandbox", parent=self
        )
        dialog.setWindowTitle(f"Continue “{branch.name}” from {branch.time_sec:.2f} s")
        dialog.generate_button.setText("Continue")
        for name in ("start_sec", "start_time", "video_start_sec"):
            if name in dialog._fields:
                field = dialog.field(name)
                field.setEnabled(False)
                field.setToolTip(f"Set by the branch point: {branch.time_sec:.3f} s")
        dialog.request_ready.connect(lambda request: self.continue_from(branch.id, request))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def continue_from(self, branch_id: int, request: GenerateRequest) -> None:
        def select(variant: Variant) -> None:
            self.selected_variant = variant.id
            if variant.job_id is not None:
                self._job_notes[branch_id] = "queued"
            self.show_message(f"Job {variant.job_id} queued: the variant appears when it finishes.")

        self._edit(
            lambda: self.services.story.continue_from_branch(
                branch_id,
                request.provider_id,
                request.params,
                operation=request.operation_id,
                account=request.account_id,
            ),
            lambda variant: AddVariant(self, variant),
            select,
        )

    def _on_job(self, event: JobEvent) -> None:
        if self.closed:
            return
        if self.story is None:
            return
        for branch in self.story.branches:
            for variant in branch.variants:
                if variant.job_id != event.job_id or not variant.pending:
                    continue
                if event.status.is_terminal:
                    self._job_notes.pop(branch.id, None)
                    self._job_notes.pop(-event.job_id, None)
                    self.timeline.set_branch_note(branch.id, None)
                    done = event.status is JobStatus.SUCCEEDED
                    self.show_message(
                        f"“{variant.name}” is ready."
                        if done
                        else f"“{variant.name}”: {event.message or 'failed'}",
                        error=not done,
                    )
                    self.reload()
                    return
                note = f"generating {event.progress * 100:.0f} %"
                self._job_notes[branch.id] = note
                self._job_notes[-event.job_id] = note
                self.timeline.set_branch_note(branch.id, note)
                item = self._variant_item(variant.id)
                if item is not None:
                    item.setText(self._variant_text(variant))
                return

    def _variant_item(self, variant_id: int) -> QListWidgetItem | None:
        for row in range(self.variant_list.count()):
            item = self.variant_list.item(row)
            if item.data(ID_ROLE) == variant_id:
                return item
        return None

    # -- clips -----------------------------------------------------------------------------------

    def add_clip(self, start: float, end: float, name: str | None = None) -> None:
        if self.story is None:
            return
        if end <= start:
            self.refuse(f"A clip must end after it starts ({start:.3f} s – {end:.3f} s).")
            return
        if not (self._check_time(start, "clip start") and self._check_time(end, "clip end")):
            return
        label = name or f"Clip {len(self.story.clips) + 1}"

        def select(clip: Clip) -> None:
            self.selected_clip = clip.id
            self.tabs.setCurrentIndex(1)

        self._edit(
            lambda: self.services.story.add_clip(self.video_id, start, end, name=label),
            lambda clip: AddClip(self, clip),
            select,
        )

    def resize_clip(self, clip_id: int, start: float, end: float) -> None:
        clip = self.clip(clip_id)
        if clip is None:
            return
        self._update_clip(clip, {"start_sec": start, "end_sec": end}, f"Resize “{clip.name}”")

    def apply_clip(self) -> None:
        clip = self.clip()
        if clip is None:
            return
        name = self.clip_name.text().strip()
        if not name:
            self.refuse("A clip needs a name.")
            return
        wanted = {
            "name": name,
            "start_sec": self.clip_start.value(),
            "end_sec": self.clip_end.value(),
            "description": self.clip_description.text().strip() or None,
        }
        self._update_clip(clip, wanted, f"Edit clip “{clip.name}”")

    def _update_clip(self, clip: Clip, wanted: Mapping[str, Any], text: str) -> None:
        start = wanted.get("start_sec", clip.start_sec)
        end = wanted.get("end_sec", clip.end_sec)
        if end <= start:
            self.refuse(f"A clip must end after it starts ({start:.3f} s – {end:.3f} s).")
            self.reload()
            return
        if not (self._check_time(start, "clip start") and self._check_time(end, "clip end")):
            self.reload()
            return
        now = {
            "name": clip.name,
            "start_sec": clip.start_sec,
            "end_sec": clip.end_sec,
            "description": clip.description,
        }
        after = {k: v for k, v in wanted.items() if v != now[k]}
        if not after:
            return
        before = {k: now[k] for k in after}
        self._edit(
            lambda: self.services.story.update_clip(clip.id, **after),
            lambda _: UpdateClip(self, clip.id, before, after, text),
        )

    def delete_clip(self) -> None:
        clip = self.clip()
        if clip is None:
            return
        self._edit(
            lambda: self.services.story.delete_clip(clip.id), lambda removed: DeleteClip(self, removed)
        )

    def choose_clip_export(self) -> QFileDialog | None:
        clip = self.clip()
        if clip is None:
            return None
        dialog = QFileDialog(self, "Export Clip", f"{clip.tag}.mp4", "MP4 video (*.mp4)")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setDefaultSuffix("mp4")
        dialog.fileSelected.connect(lambda path: self.export_clip(clip.id, Path(path)))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def export_clip(self, clip_id: int, dest: Path | None = None) -> None:
        """Cut the clip into a new asset (with lineage); with ``dest``, also save a copy of the file there."""
        clip = self.clip(clip_id)
        name = clip.name if clip else f"clip {clip_id}"
        self.statusBar().showMessage(f"Exporting “{name}”…")
        cancel = asyncio.Event()
        self._export_cancel = cancel

        async def export() -> int:
            asset_id = await self.services.story.export_clip(clip_id, cancel=cancel)
            if dest is not None:
                local = await self.services.transfers.ensure_local(asset_id)
                await asyncio.to_thread(shutil.copyfile, local, dest)
            return asset_id

        def done(asset_id: int) -> None:
            self.exported.append(asset_id)
            where = f" and saved to {dest}" if dest is not None else ""
            self.show_message(f"“{name}” exported as asset #{asset_id}{where}.")

        self.bridge.call(export(), done, lambda error: self.show_message(str(error), error=True))

    # -- frames and playthrough ---------------------------------------------------------------------

    def save_frame(self) -> None:
        if self.player.meta is None:
            return
        sec = self.player.current_sec
        frame = self.player.current_frame

        def done(asset_id: int) -> None:
            self.exported.append(asset_id)
            self.show_message(f"Frame {frame} ({sec:.3f} s) saved as image asset #{asset_id}.")

        self.bridge.call(
            self.services.story.save_frame(self.video_id, sec),
            done,
            lambda error: self.show_message(str(error), error=True),
        )

    def export_story(self) -> None:
        from ui.story_export import export_story_dialog

        export_story_dialog(self, self.services, self.bridge, self.video_id)

    def export_twee(self) -> None:
        from ui.story_export import export_twee_dialog

        export_twee_dialog(self, self.services, self.bridge, self.video_id)

    def import_story(self) -> None:
        from ui.story_export import import_story_dialog

        import_story_dialog(self, self.services, self.bridge)

    def find_similar_frame(self) -> None:
        """Ask the library window for what looks like the frame at the playhead (it embeds the frame
        off the GUI thread and shows the results in its grid)."""
        if self.player.meta is None:
            return
        name = self.story.video.name if self.story is not None else ""
        self.similar_frame_requested.emit(self.video_id, float(self.player.current_sec), name)

    def open_playthrough(self) -> QWidget:
        from ui.playthrough import PlaythroughWindow

        window = PlaythroughWindow(self.services, self.bridge, self.video_id, parent=self)
        window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        window.show()
        return window

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.closed:
            self.closed = True
            self._unsubscribe()
            self.player.shutdown()
        super().closeEvent(event)


def open_story_editor(
    parent: QWidget | None,
    services: WindowServices,
    bridge: CoreBridge,
    video_id: int,
    at_sec: float | None = None,
) -> StoryEditor:
    """Open the branch timeline editor for ``video_id`` (a separate window), playhead at ``at_sec``."""
    editor = StoryEditor(services, bridge, video_id, at_sec, parent)
    editor.setWindowFlag(Qt.WindowType.Window, True)
    editor.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    editor.show()
    return editor
