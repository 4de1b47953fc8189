"""The inspector (right dock): one asset's facts, where it came from, and its editable description.

It asks ``LibraryService.detail`` through the bridge whenever the selection changes (answers for an
earlier selection are dropped), saves edits with ``update``, and edits the classification of several
selected assets at once with ``update_many``. The window fills the preview image.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QFontDatabase,
    QIcon,
    QImage,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QPalette,
    QPixmap,
    QResizeEvent,
    QShortcut,
    QTextOption,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.db.enums import ContentDomain, ContentRating, JobStatus, MediaType, SyncStatus
from core.library import (
    RATING_ORDER,
    AssetDetail,
    AssetEdit,
    AssetNotFound,
    LibraryError,
    LibraryService,
    LineageLink,
    ProviderRefInfo,
)
from core.text import human_bytes
from ui.bridge import CoreBridge
from ui.filter_bar import ERROR_COLOR, MEDIA_LABELS, RATING_LABELS, TagCompleter, domain_label, split_tags

if TYPE_CHECKING:
    from core.embeddings.base import Embedder
    from core.embeddings.classify import Suggestions
    from core.embeddings.store import EmbeddingStore
    from core.segments import SegmentInfo, SegmentService

SCENE_THUMB = QSize(112, 63)

EMPTY_TEXT = "Select an asset to see where it came from"
EMPTY_DETAIL = (
    "Its provider references, the assets it was made from, what was made from it, "
    "and the job that made it appear here."
)
LOADING_DELAY_MS = 150  # show "Loading…" only if the answer is slow: no flicker on quick answers
PREVIEW_MAX_HEIGHT = 260
ASSET_ID_ROLE = Qt.ItemDataRole.UserRole + 1
_DIM = "color: palette(placeholder-text);"

JOB_STATUS_LABELS: dict[JobStatus, str] = {
    JobStatus.QUEUED: "Queued",
    JobStatus.SUBMITTED: "Submitted",
    JobStatus.RUNNING: "Running",
    JobStatus.DOWNLOADING: "Downloading the result",
    JobStatus.SUCCEEDED: "Succeeded",
    JobStatus.FAILED: "Failed",
    JobStatus.CANCELLED: "Cancelled",
}
SYNC_LABELS: dict[SyncStatus, str] = {
    SyncStatus.REMOTE: "At the provider only",
    SyncStatus.DOWNLOADING: "Downloading",
    SyncStatus.DOWNLOADED: "In the local store",
}


# -- formatting ------------------------------------------------------------------------------------


def _words(value: str) -> str:
    return value.replace("_", " ")


def scene_time(seconds: float) -> str:
    """Where a scene starts, to a tenth of a second: ``0:01.5``."""
    tenths = round(seconds * 10)
    return f"{tenths // 600}:{tenths % 600 / 10:04.1f}"


def format_bytes(n: int) -> str:
    return human_bytes(n, si=True)


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_instant(moment: datetime) -> str:
    """Local time, to the minute."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def format_remaining(left: timedelta) -> str:
    """How long until a reference expires, roughly: "in 40 min", "in 5 h", "in 3 days"."""
    minutes = max(1, int(left.total_seconds() // 60))
    if minutes < 60:
        return f"in {minutes} min"
    if minutes < 48 * 60:
        return f"in {minutes // 60} h"
    return f"in {minutes // (24 * 60)} days"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- small widgets ---------------------------------------------------------------------------------


class PreviewLabel(QLabel):
    """The preview image, scaled to the dock's width (at most ``PREVIEW_MAX_HEIGHT`` high)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("inspectorPreview")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self._image: QImage | None = None
        self.set_image(None)

    @property
    def image(self) -> QImage | None:
        return self._image

    def set_image(self, image: QImage | None) -> None:
        self._image = None if image is None or image.isNull() else image
        self._render()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if event.oldSize().width() != event.size().width():
            self._render()

    def _render(self) -> None:
        image = self._image
        if image is None:
            self.setPixmap(QPixmap())
            self.setText("No preview")
            self.setStyleSheet(_DIM)
            self.setFixedHeight(72)
            return
        self.setStyleSheet("")
        width = max(1, self.contentsRect().width())
        height = min(PREVIEW_MAX_HEIGHT, max(1, round(width * image.height() / max(1, image.width()))))
        self.setFixedHeight(height + self.frameWidth() * 2)
        ratio = self.devicePixelRatioF()
        pixmap = QPixmap.fromImage(image).scaled(
            QSize(round(width * ratio), round(height * ratio)),
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
        pixmap.setDevicePixelRatio(ratio)
        self.setPixmap(pixmap)


class LineageList(QListWidget):
    """Related assets; a click, or Enter on the current row, chooses one (a double click once)."""

    asset_chosen = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWordWrap(True)
        self.setAlternatingRowColors(True)
        self.viewport().setCursor(Qt.CursorShape.PointingHandCursor)
        self._pressed: QListWidgetItem | None = None

    def fill(self, links: Collection[LineageLink], describe: Callable[[LineageLink], str]) -> None:
        self.clear()
        for link in links:
            item = QListWidgetItem(f"{link.asset.display_name}\n{describe(link)}")
            item.setData(ASSET_ID_ROLE, link.asset.id)
            item.setToolTip(f"Show {link.asset.display_name} (asset {link.asset.id})")
            self.addItem(item)
        rows = min(len(links), 5)
        height = sum(self.sizeHintForRow(i) for i in range(rows)) + 2 * self.frameWidth() + 2
        self.setFixedHeight(max(height, 8))
        self.setVisible(bool(links))

    def mousePressEvent(self, event: QMouseEvent) -> None:
        super().mousePressEvent(event)
        self._pressed = self.itemAt(event.position().toPoint())

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        # The second press of a double click: the first one already chose (maybe this list's
        # rows have changed since).
        self._pressed = None
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        super().mouseReleaseEvent(event)
        item = self.itemAt(event.position().toPoint())
        if event.button() == Qt.MouseButton.LeftButton and item is not None and item is self._pressed:
            self._choose(item)
        self._pressed = None

    def keyPressEvent(self, event: QKeyEvent) -> None:
        item = self.currentItem()
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space) and item is not None:
            self._choose(item)
            event.accept()
            return
        super().keyPressEvent(event)

    def _choose(self, item: QListWidgetItem) -> None:
        asset_id = item.data(ASSET_ID_ROLE)
        if isinstance(asset_id, int):
            self.asset_chosen.emit(asset_id)


class FitTable(QTableWidget):
    """A table as high as its rows (the dock scrolls, not the table); a horizontal scroll bar only
    when the dock is too narrow for the columns."""

    def updateGeometries(self) -> None:
        super().updateGeometries()
        self.fit_height()

    def fit_height(self) -> None:
        height = self.horizontalHeader().sizeHint().height() + 2 * self.frameWidth()
        height += sum(self.rowHeight(r) for r in range(self.rowCount()))
        scrollbar = self.horizontalScrollBar()
        if scrollbar.maximum() > 0:
            height += scrollbar.sizeHint().height()
        if height != self.maximumHeight():
            self.setFixedHeight(height)


def _section(text: str) -> QLabel:
    label = QLabel(text)
    font = label.font()
    font.setBold(True)
    label.setFont(font)
    label.setContentsMargins(0, 8, 0, 0)
    return label


def _value_label() -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def _dim(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet(_DIM)
    return label


def _form() -> QFormLayout:
    form = QFormLayout()
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
    form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
    form.setHorizontalSpacing(10)
    form.setVerticalSpacing(4)
    return form


def _domain_box(first: str) -> QComboBox:
    box = QComboBox()
    if first:
        box.addItem(first, None)
    for domain in ContentDomain:
        box.addItem(domain_label(domain), domain)
    return box


def _rating_box(first: str) -> QComboBox:
    box = QComboBox()
    if first:
        box.addItem(first, None)
    for rating in RATING_ORDER:
        box.addItem(RATING_LABELS[rating], rating)
    return box


# -- the inspector ---------------------------------------------------------------------------------


class Inspector(QWidget):
    navigate_requested = Signal(int)  # an asset id: show that asset (a lineage row was chosen)
    asset_changed = Signal(int)  # an asset id, after a save: refresh its card
    assets_changed = Signal(object)  # tuple[int, ...], after a bulk classification edit
    story_requested = Signal(int)  # a video's id: open it in the story editor
    scene_requested = Signal(int, float)  # a video's id and a scene's start: open the editor there
    similar_requested = Signal(int, str)  # an asset's id and name: find what looks like it

    def __init__(
        self,
        bridge: CoreBridge,
        library: LibraryService,
        include_age_restricted: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("inspector")
        self._bridge = bridge
        self._library = library
        self._include_age_restricted = include_age_restricted
        self._provider_names: dict[str, str] = {}
        self._detail: AssetDetail | None = None
        self._asset_id: int | None = None
        self._many: tuple[int, ...] = ()
        self._token = 0  # bumped on every change of what is shown; older answers are dropped
        self._saving = False
        self._filling = False
        self._segments: SegmentService | None = None
        self._embeddings: EmbeddingStore | None = None
        self._text_embedder: Embedder | None = None
        self._suggestions: Suggestions | None = None

        self._loading_timer = QTimer(self)
        self._loading_timer.setSingleShot(True)
        self._loading_timer.setInterval(LOADING_DELAY_MS)
        self._loading_timer.timeout.connect(lambda: self._show_message("Loading…", ""))

        self.pages = QStackedWidget()
        self.empty_page, self.empty_heading, _ = self._message_page(EMPTY_TEXT, EMPTY_DETAIL)
        self.message_page, self.message, self.message_detail = self._message_page("", "")
        self.asset_page = self._asset_page()
        self.many_page = self._many_page()
        for page in (self.empty_page, self.message_page, self.asset_page, self.many_page):
            self.pages.addWidget(page)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.pages)

        save_shortcut = QShortcut(QKeySequence.StandardKey.Save, self)
        save_shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        save_shortcut.activated.connect(self.save)
        self.show_nothing()

    # -- public -----------------------------------------------------------------------------------

    @property
    def current_asset_id(self) -> int | None:
        """The asset shown (or being loaded), None when nothing or several are selected."""
        return self._asset_id

    @property
    def detail(self) -> AssetDetail | None:
        """The asset as last loaded or saved."""
        return self._detail

    def show_asset(self, asset_id: int) -> None:
        """Load and show one asset. An answer for an earlier request is dropped."""
        token = self._next_token()
        self._asset_id = asset_id
        self._many = ()
        if self._detail is None or self._detail.id != asset_id:
            self.preview.set_image(None)
        self._loading_timer.start()
        self._bridge.call(
            self._library.detail(asset_id, include_age_restricted=self._include_age_restricted),
            lambda detail: self._loaded(token, detail),
            lambda error: self._load_failed(token, asset_id, error),
        )

    def show_nothing(self) -> None:
        self._next_token()
        self._asset_id = None
        self._detail = None
        self._many = ()
        self.pages.setCurrentWidget(self.empty_page)

    def show_many(self, asset_ids: Collection[int]) -> None:
        """Several assets are selected: offer to set their classification at once."""
        ids = tuple(dict.fromkeys(asset_ids))
        if len(ids) == 1:
            self.show_asset(ids[0])
            return
        if not ids:
            self.show_nothing()
            return
        self._next_token()
        self._asset_id = None
        self._detail = None
        self._many = ids
        self.many_heading.setText(f"{len(ids)} assets selected")
        self.apply_button.setText(f"Apply to {len(ids)} Assets")
        self._reset_bulk()
        self.bulk_status.clear()
        self.pages.setCurrentWidget(self.many_page)

    def set_preview(self, image: QImage | None, asset_id: int | None = None) -> None:
        """The preview image, from the window. Showing another asset clears it, so set it after
        ``show_asset``; with ``asset_id``, an image for an asset no longer shown is ignored."""
        if asset_id is not None and asset_id != self._asset_id:
            return
        self.preview.set_image(image)

    def set_include_age_restricted(self, include: bool) -> None:
        """The user's age setting: lineage neighbours are hidden or shown; reloads the asset."""
        if include == self._include_age_restricted:
            return
        self._include_age_restricted = include
        if self._asset_id is not None and not self._saving:
            self.show_asset(self._asset_id)

    @property
    def suggestions(self) -> Suggestions | None:
        """The classification suggested for the shown asset (CLIP), once computed."""
        return self._suggestions

    def set_services(self, segments: SegmentService | None, embeddings: EmbeddingStore | None) -> None:
        """Scene segments (the Scenes section) and vectors (suggestions), once the core is up."""
        self._segments = segments
        self._embeddings = embeddings
        if self._detail is not None:
            self._fill_analysis(self._detail)

    def set_text_embedder(self, embedder: Embedder | None) -> None:
        """CLIP when it is loaded: classification suggestions are offered (never applied unasked)."""
        self._text_embedder = embedder
        if self._detail is not None:
            self._fill_analysis(self._detail)

    def set_provider_names(self, names: Mapping[str, str]) -> None:
        """Display names for provider ids (ids are shown otherwise)."""
        self._provider_names = dict(names)
        if self._detail is not None:
            self._fill(self._detail)

    # -- pages ------------------------------------------------------------------------------------

    def _message_page(self, text: str, detail: str) -> tuple[QWidget, QLabel, QLabel]:
        page = QWidget()
        heading = QLabel(text)
        heading.setObjectName("inspectorMessage")
        heading.setWordWrap(True)
        heading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        font = heading.font()
        font.setPointSizeF(font.pointSizeF() * 1.2)
        heading.setFont(font)
        body = _dim(detail)
        body.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(18, 18, 18, 18)
        layout.addStretch(1)
        layout.addWidget(heading)
        layout.addSpacing(6)
        layout.addWidget(body)
        layout.addStretch(2)
        return page, heading, body

    def _asset_page(self) -> QWidget:
        self.preview = PreviewLabel()
        self.title_edit = QLineEdit()
        self.title_edit.setObjectName("inspectorTitle")
        self.title_edit.setToolTip("Title (Enter saves)")
        font = self.title_edit.font()
        font.setPointSizeF(font.pointSizeF() * 1.15)
        font.setBold(True)
        self.title_edit.setFont(font)
        self.title_edit.returnPressed.connect(self.save)

        self.facts = _form()
        self.fact_labels: dict[str, QLabel] = {}
        for key in (
            "Type",
            "Size",
            "Duration",
            "Frame rate",
            "File size",
            "Format",
            "Audio",
            "Model",
            "Provider",
            "Added",
            "Created",
            "Stored",
        ):
            label = _value_label()
            label.setObjectName(f"fact{key.replace(' ', '')}")
            self.fact_labels[key] = label
            self.facts.addRow(key, label)
        self.prompt = _value_label()
        self.prompt.setObjectName("inspectorPrompt")
        self.facts.addRow("Prompt", self.prompt)

        self.description_edit = QPlainTextEdit()
        self.description_edit.setObjectName("inspectorDescription")
        self.description_edit.setTabChangesFocus(True)
        self.description_edit.setPlaceholderText("What is this asset? Words here are searchable.")
        line = self.description_edit.fontMetrics().lineSpacing()
        self.description_edit.setFixedHeight(line * 4 + 12)
        self.tags_edit = QLineEdit()
        self.tags_edit.setObjectName("inspectorTags")
        self.tags_edit.setPlaceholderText("comma separated, e.g. lighthouse, night")
        self.tags_edit.setToolTip("Tags, separated by commas; saved in lower case without duplicates")
        self.tag_completer = TagCompleter(
            self.tags_edit, self._bridge, self._library, lambda: self._include_age_restricted
        )
        self.domain_box = _domain_box("")
        self.domain_box.setObjectName("inspectorDomain")
        self.category_edit = QLineEdit()
        self.category_edit.setObjectName("inspectorCategory")
        self.category_edit.setMaxLength(120)
        self.category_edit.setPlaceholderText("e.g. storyboard, character sheet")
        self.rating_box = _rating_box("")
        self.rating_box.setObjectName("inspectorRating")
        self.age_check = QCheckBox("Age-restricted")
        self.age_check.setObjectName("inspectorAgeRestricted")
        self.age_check.setToolTip("Hidden from the library unless age-restricted assets are shown")
        edits = _form()
        edits.addRow("&Description", self.description_edit)
        edits.addRow("&Tags", self.tags_edit)
        edits.addRow("Do&main", self.domain_box)
        edits.addRow("&Category", self.category_edit)
        edits.addRow("&Rating", self.rating_box)
        edits.addRow("", self.age_check)

        self.save_button = QPushButton("Save")
        self.save_button.setObjectName("inspectorSave")
        self.save_button.setToolTip(
            f"Save the changes ({QKeySequence(QKeySequence.StandardKey.Save).toString(QKeySequence.SequenceFormat.NativeText)})"
        )
        self.save_button.clicked.connect(self.save)
        self.revert_button = QPushButton("Revert")
        self.revert_button.setObjectName("inspectorRevert")
        self.revert_button.setToolTip("Undo the changes not saved yet")
        self.revert_button.clicked.connect(self.revert)
        self.save_status = QLabel()
        self.save_status.setObjectName("inspectorSaveStatus")
        self.save_status.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.save_status, 1)
        buttons.addWidget(self.revert_button)
        buttons.addWidget(self.save_button)
        self.title_edit.textChanged.connect(self._edited)
        self.description_edit.textChanged.connect(self._edited)
        self.tags_edit.textChanged.connect(self._edited)
        self.category_edit.textChanged.connect(self._edited)
        self.domain_box.currentIndexChanged.connect(self._edited)
        self.rating_box.currentIndexChanged.connect(self._edited)
        self.age_check.toggled.connect(self._edited)

        self.refs_table = FitTable(0, 5)
        self.refs_table.setObjectName("inspectorRefs")
        self.refs_table.setHorizontalHeaderLabels(["Provider", "Account", "Kind", "Reference", "Expires"])
        self.refs_table.verticalHeader().hide()
        self.refs_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.refs_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.refs_table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.refs_table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        header = self.refs_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        header.setMaximumSectionSize(240)  # long references are elided; the tooltip has them whole
        self.refs_table.verticalHeader().setDefaultSectionSize(self.refs_table.fontMetrics().height() + 10)
        self.refs_none = _dim("This asset has no provider references yet.")

        self.parents_heading = _section("Made from")
        self.parents_list = LineageList()
        self.parents_list.setObjectName("inspectorParents")
        self.parents_none = _dim("Not made from other assets.")
        self.children_heading = _section("Used in")
        self.children_list = LineageList()
        self.children_list.setObjectName("inspectorChildren")
        self.children_none = _dim("Nothing has been made from it yet.")
        self.hidden_note = _dim()
        self.hidden_note.setObjectName("inspectorHidden")
        for lineage in (self.parents_list, self.children_list):
            lineage.asset_chosen.connect(self.navigate_requested)

        self.job_heading = _section("Made by")
        self.job_form = _form()
        self.job_labels: dict[str, QLabel] = {}
        for key in ("Job", "Provider", "Operation", "Status", "Error", "Finished"):
            label = _value_label()
            label.setObjectName(f"job{key}")
            self.job_labels[key] = label
            self.job_form.addRow(key, label)
        self.job_labels["Error"].setStyleSheet(f"color: {ERROR_COLOR};")
        self.job_params = QPlainTextEdit()
        self.job_params.setObjectName("inspectorJobParams")
        self.job_params.setReadOnly(True)
        self.job_params.setTabChangesFocus(True)
        self.job_params.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.job_params.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.job_params.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.job_params.setToolTip("The parameters the job was sent with")
        self.job_params_label = _dim("Parameters")
        self.job_none = _dim("No recorded job made this asset.")

        content = QWidget()
        layout = QVBoxLayout(content)
        layout.setContentsMargins(10, 10, 10, 10)
        layout.setSpacing(6)
        layout.addWidget(self.preview)
        layout.addWidget(self.title_edit)
        layout.addLayout(self.facts)
        self.story_button = QPushButton("Open in Story Editor")
        self.story_button.setToolTip(
            "Play the video frame by frame; add branch points, variants and named clips (Ctrl+E)"
        )
        self.story_button.clicked.connect(self._request_story)
        self.similar_button = QPushButton("Find Similar")
        self.similar_button.setObjectName("inspectorFindSimilar")
        self.similar_button.setToolTip(
            "Show pictures, videos and scenes that look like this one (Ctrl+Shift+F)"
        )
        self.similar_button.clicked.connect(self._request_similar)
        actions = QHBoxLayout()
        actions.setSpacing(6)
        actions.addWidget(self.story_button)
        actions.addWidget(self.similar_button)
        layout.addLayout(actions)
        layout.addWidget(_section("About this asset"))
        layout.addLayout(edits)
        layout.addLayout(buttons)
        self.suggestion_label = QLabel()
        self.suggestion_label.setObjectName("inspectorSuggestion")
        self.suggestion_label.setWordWrap(True)
        self.suggestion_label.setTextFormat(Qt.TextFormat.PlainText)
        self.suggestion_apply = QPushButton("Apply")
        self.suggestion_apply.setObjectName("inspectorApplySuggestion")
        self.suggestion_apply.setToolTip("Use the suggested domain, category and rating and save")
        self.suggestion_apply.clicked.connect(self.apply_suggestion)
        suggestion_row = QHBoxLayout()
        suggestion_row.addWidget(self.suggestion_label, 1)
        suggestion_row.addWidget(self.suggestion_apply, 0, Qt.AlignmentFlag.AlignTop)
        self.suggestion_box = QFrame()
        self.suggestion_box.setObjectName("inspectorSuggestionBox")
        self.suggestion_box.setLayout(suggestion_row)
        self.suggestion_box.hide()
        layout.addWidget(self.suggestion_box)
        self.scenes_heading = _section("Scenes")
        self.scenes_list = QListWidget()
        self.scenes_list.setObjectName("inspectorScenes")
        self.scenes_list.setViewMode(QListWidget.ViewMode.IconMode)
        self.scenes_list.setFlow(QListWidget.Flow.LeftToRight)
        self.scenes_list.setWrapping(True)
        self.scenes_list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.scenes_list.setMovement(QListWidget.Movement.Static)
        self.scenes_list.setIconSize(SCENE_THUMB)
        self.scenes_list.setGridSize(QSize(SCENE_THUMB.width() + 10, SCENE_THUMB.height() + 26))
        self.scenes_list.setToolTip("Click a scene to open the video there in the story editor")
        self.scenes_list.itemClicked.connect(self._scene_clicked)
        self.scenes_list.itemActivated.connect(self._scene_clicked)
        self.scenes_none = _dim()
        self.scenes_none.setObjectName("inspectorScenesNone")
        layout.addWidget(self.scenes_heading)
        layout.addWidget(self.scenes_list)
        layout.addWidget(self.scenes_none)
        layout.addWidget(_section("Provider references"))
        layout.addWidget(self.refs_table)
        layout.addWidget(self.refs_none)
        layout.addWidget(self.parents_heading)
        layout.addWidget(self.parents_list)
        layout.addWidget(self.parents_none)
        layout.addWidget(self.children_heading)
        layout.addWidget(self.children_list)
        layout.addWidget(self.children_none)
        layout.addWidget(self.hidden_note)
        layout.addWidget(self.job_heading)
        layout.addLayout(self.job_form)
        layout.addWidget(self.job_params_label)
        layout.addWidget(self.job_params)
        layout.addWidget(self.job_none)
        layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setObjectName("inspectorScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(content)
        self.scroll_area = scroll
        return scroll

    def _many_page(self) -> QWidget:
        page = QWidget()
        self.many_heading = QLabel()
        self.many_heading.setObjectName("inspectorManyHeading")
        font = self.many_heading.font()
        font.setPointSizeF(font.pointSizeF() * 1.2)
        font.setBold(True)
        self.many_heading.setFont(font)
        note = _dim(
            "Set the classification of all of them. Fields left on “Keep” keep each asset's own value."
        )
        self.bulk_domain = _domain_box("Keep")
        self.bulk_domain.setObjectName("bulkDomain")
        self.bulk_category = QLineEdit()
        self.bulk_category.setObjectName("bulkCategory")
        self.bulk_category.setMaxLength(120)
        self.bulk_category.setPlaceholderText("Keep")
        self.bulk_rating = _rating_box("Keep")
        self.bulk_rating.setObjectName("bulkRating")
        self.bulk_age = QComboBox()
        self.bulk_age.setObjectName("bulkAgeRestricted")
        self.bulk_age.addItem("Keep", None)
        self.bulk_age.addItem("Yes", True)
        self.bulk_age.addItem("No", False)
        form = _form()
        form.addRow("Do&main", self.bulk_domain)
        form.addRow("&Category", self.bulk_category)
        form.addRow("&Rating", self.bulk_rating)
        form.addRow("&Age-restricted", self.bulk_age)
        self.apply_button = QPushButton("Apply")
        self.apply_button.setObjectName("bulkApply")
        self.apply_button.clicked.connect(self.apply_bulk)
        self.bulk_status = QLabel()
        self.bulk_status.setObjectName("bulkStatus")
        self.bulk_status.setWordWrap(True)
        for box in (self.bulk_domain, self.bulk_rating, self.bulk_age):
            box.currentIndexChanged.connect(self._bulk_edited)
        self.bulk_category.textChanged.connect(self._bulk_edited)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.apply_button)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(10, 10, 10, 10)
        layout.setSpacing(8)
        layout.addWidget(self.many_heading)
        layout.addWidget(note)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.bulk_status)
        layout.addStretch(1)
        return page

    # -- loading ----------------------------------------------------------------------------------

    def _next_token(self) -> int:
        self._token += 1
        self._loading_timer.stop()
        return self._token

    def _loaded(self, token: int, detail: AssetDetail) -> None:
        if token != self._token:
            return  # the selection moved on
        self._loading_timer.stop()
        same_asset = self._detail is not None and self._detail.id == detail.id
        self._detail = detail
        self._fill(detail)
        if not same_asset:
            self.save_status.clear()
            self.scroll_area.verticalScrollBar().setValue(0)
        self.pages.setCurrentWidget(self.asset_page)

    def _load_failed(self, token: int, asset_id: int, error: BaseException) -> None:
        if token != self._token:
            return
        self._loading_timer.stop()
        self._detail = None
        if isinstance(error, AssetNotFound):
            self._show_message(str(error), "It may have been deleted, or it belongs to another user.")
        else:
            self._show_message(
                f"Could not load asset {asset_id}.", str(error) or type(error).__name__, error=True
            )

    def _show_message(self, text: str, detail: str, *, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet(f"color: {ERROR_COLOR};" if error else "")
        self.message_detail.setText(detail)
        self.message_detail.setVisible(bool(detail))
        self.pages.setCurrentWidget(self.message_page)

    # -- filling ----------------------------------------------------------------------------------

    def _provider(self, provider_id: str | None) -> str:
        if provider_id is None:
            return ""
        return self._provider_names.get(provider_id, provider_id)

    def _fill(self, detail: AssetDetail) -> None:
        self._filling = True
        try:
            self._fill_edits(detail)
            self._fill_facts(detail)
            self._fill_refs(detail)
            self._fill_lineage(detail)
            self._fill_job(detail)
            self.story_button.setVisible(detail.media_type is MediaType.VIDEO)
            self.similar_button.setVisible(detail.media_type in (MediaType.IMAGE, MediaType.VIDEO))
        finally:
            self._filling = False
        self._edited()
        self._fill_analysis(detail)

    def _request_similar(self) -> None:
        if self._detail is not None:
            self.similar_requested.emit(self._detail.id, self._detail.display_name)

    # -- scenes and suggestions -------------------------------------------------------------------

    def _fill_analysis(self, detail: AssetDetail) -> None:
        """Scenes of a video and classification suggestions, each loaded on the core loop."""
        token = self._token
        video = detail.media_type is MediaType.VIDEO
        self.scenes_heading.setVisible(video)
        self.scenes_list.setVisible(False)
        self.scenes_none.setVisible(video)
        self.scenes_list.clear()
        if video:
            if self._segments is None:
                self.scenes_none.setText("Scenes appear once PixSim has started.")
            else:
                self.scenes_none.setText("Loading scenes…")
                self._bridge.call(
                    self._segments.segments(detail.id),
                    lambda found: self._show_scenes(token, detail.id, found),
                    lambda error: self._scenes_failed(token, error),
                )
        self._suggestions = None
        self.suggestion_box.hide()
        embedder, store = self._text_embedder, self._embeddings
        if (
            embedder is not None
            and store is not None
            and detail.media_type in (MediaType.IMAGE, MediaType.VIDEO)
        ):
            self._bridge.call(
                _suggest(store, embedder, detail.id),
                lambda found: self._show_suggestions(token, found),
                lambda error: self._show_suggestions(token, None),
            )

    def _show_scenes(self, token: int, asset_id: int, scenes: list[SegmentInfo]) -> None:
        if token != self._token:
            return
        if not scenes:
            self.scenes_none.setText(
                "Not analysed yet: scenes are found in the background (Transfers and Jobs shows it)."
            )
            return
        self.scenes_none.hide()
        self.scenes_list.show()
        placeholder = QPixmap(SCENE_THUMB)
        placeholder.fill(QColor(38, 40, 46))
        for scene in scenes:
            item = QListWidgetItem(QIcon(placeholder), scene_time(scene.start_sec))
            item.setData(Qt.ItemDataRole.UserRole, (asset_id, scene.start_sec))
            end = f" – {scene_time(scene.end_sec)}" if scene.end_sec is not None else ""
            item.setToolTip(f"Scene {scene_time(scene.start_sec)}{end}: click to open it there")
            self.scenes_list.addItem(item)
            if self._segments is not None:
                self._bridge.call(
                    _keyframe(self._segments, scene.id),
                    functools.partial(self._scene_image, token, item),
                    lambda _error: None,
                )
        rows = (len(scenes) + 1) // 2
        self.scenes_list.setFixedHeight(min(3, rows) * (SCENE_THUMB.height() + 26) + 8)

    def _scene_image(self, token: int, item: QListWidgetItem, image: QImage | None) -> None:
        if token == self._token and image is not None and not image.isNull():
            item.setIcon(QIcon(QPixmap.fromImage(image)))

    def _scenes_failed(self, token: int, error: BaseException) -> None:
        if token == self._token:
            self.scenes_none.setText(f"Scenes could not be loaded: {error}")

    def _scene_clicked(self, item: QListWidgetItem) -> None:
        data = item.data(Qt.ItemDataRole.UserRole)
        if data:
            asset_id, start = data
            self.scene_requested.emit(int(asset_id), float(start))

    def _show_suggestions(self, token: int, suggestions: Suggestions | None) -> None:
        if token != self._token or suggestions is None:
            return
        detail = self._detail
        if detail is None:
            return
        self._suggestions = suggestions
        parts = [
            f"{_words(suggestions.domain.value)} ({suggestions.domain.confidence * 100:.0f} %)",
            f"category {suggestions.category.value} ({suggestions.category.confidence * 100:.0f} %)",
            f"rating {suggestions.rating.value} ({suggestions.rating.confidence * 100:.0f} %)",
        ]
        same = (
            detail.content_domain == suggestions.domain_value
            and detail.content_category == suggestions.category.value
            and detail.content_rating == suggestions.rating_value
        )
        self.suggestion_label.setText("Suggested: " + " · ".join(parts))
        self.suggestion_apply.setEnabled(not same)
        self.suggestion_apply.setToolTip(
            "Already applied" if same else "Use the suggested domain, category and rating and save"
        )
        self.suggestion_box.show()

    def apply_suggestion(self) -> None:
        """The user confirms the suggestion: fill the classification fields and save."""
        suggestions = self._suggestions
        if suggestions is None or self._detail is None:
            return
        self.domain_box.setCurrentIndex(max(0, self.domain_box.findData(suggestions.domain_value)))
        self.category_edit.setText(suggestions.category.value)
        self.rating_box.setCurrentIndex(max(0, self.rating_box.findData(suggestions.rating_value)))
        self.save()

    def _request_story(self) -> None:
        if self._detail is not None and self._detail.media_type is MediaType.VIDEO:
            self.story_requested.emit(self._detail.id)

    def _fill_edits(self, detail: AssetDetail) -> None:
        self.title_edit.setText(detail.title or "")
        self.title_edit.setPlaceholderText(detail.display_name if not detail.title else "Title")
        self.description_edit.setPlainText(detail.description or "")
        self.tags_edit.setText(", ".join(detail.tags))
        self.domain_box.setCurrentIndex(max(0, self.domain_box.findData(detail.content_domain)))
        self.category_edit.setText(detail.content_category or "")
        self.rating_box.setCurrentIndex(max(0, self.rating_box.findData(detail.content_rating)))
        self.age_check.setChecked(detail.age_restricted)

    def _fill_facts(self, detail: AssetDetail) -> None:
        facts: dict[str, str] = {
            "Type": MEDIA_LABELS.get(detail.media_type, _words(detail.media_type.value)),
            "Size": f"{detail.width} × {detail.height}" if detail.width and detail.height else "",
            "Duration": format_duration(detail.duration_sec) if detail.duration_sec is not None else "",
            "Frame rate": f"{detail.fps:g} fps" if detail.fps else "",
            "File size": format_bytes(detail.file_size_bytes) if detail.file_size_bytes is not None else "",
            "Format": detail.mime_type or "",
            "Provider": self._provider(detail.provider_id),
            "Added": _words(detail.upload_method.value).capitalize(),
            "Created": format_instant(detail.created_at),
            "Stored": SYNC_LABELS.get(detail.card.sync_status, _words(detail.card.sync_status.value)),
        }
        if detail.media_type is MediaType.IMAGE:
            facts["Duration"] = facts["Frame rate"] = ""
        audio = detail.audio
        if audio is not None:
            parts = [
                f"{audio.sample_rate} Hz" if audio.sample_rate else "",
                f"{audio.channels} channel{'s' if audio.channels != 1 else ''}" if audio.channels else "",
                audio.codec or "",
                f"{audio.bpm:g} BPM" if audio.bpm else "",
                audio.musical_key or "",
                audio.language or "",
            ]
            facts["Audio"] = " · ".join(p for p in parts if p)
        model = detail.model_3d
        if model is not None:
            parts = [
                f"{model.polygon_count:,} polygons" if model.polygon_count else "",
                f"{model.vertex_count:,} vertices" if model.vertex_count else "",
                model.file_format or "",
                "textured" if model.has_textures else "",
                "animated" if model.has_animations else "",
                "rigged" if model.has_rigging else "",
            ]
            facts["Model"] = " · ".join(p for p in parts if p)
        for key, label in self.fact_labels.items():
            text = facts.get(key, "")
            label.setText(text)
            self.facts.setRowVisible(label, bool(text))
        self.fact_labels["Created"].setToolTip(
            f"Created {format_instant(detail.created_at)}, last changed {format_instant(detail.updated_at)}"
        )
        self.prompt.setText(detail.prompt or "")
        self.facts.setRowVisible(self.prompt, bool(detail.prompt))

    def _fill_refs(self, detail: AssetDetail) -> None:
        now = datetime.now(UTC)
        table = self.refs_table
        table.setRowCount(len(detail.provider_refs))
        for row, ref in enumerate(detail.provider_refs):
            for column, item in enumerate(self._ref_items(ref, now)):
                table.setItem(row, column, item)
        table.setVisible(bool(detail.provider_refs))
        self.refs_none.setVisible(not detail.provider_refs)
        table.fit_height()

    def _ref_items(self, ref: ProviderRefInfo, now: datetime) -> list[QTableWidgetItem]:
        provider = self._provider(ref.provider_id) + (" · origin" if ref.is_origin else "")
        until = None if ref.expires_at is None else _aware(ref.expires_at)
        if until is None:
            expires, tip = "never", "This reference does not expire."
        elif until <= now:
            expires, tip = "expired", f"Expired {format_instant(until)}"
        else:
            expires, tip = (
                format_remaining(until - now),
                f"Usable until {format_instant(until)}",
            )
        ref_tip = (
            ref.ref + (f"\n{ref.url}" if ref.url else "") + f"\nUploaded {format_instant(ref.uploaded_at)}"
        )
        cells = [
            (
                provider,
                "The asset made here" if ref.is_origin else f"Known to {self._provider(ref.provider_id)}",
            ),
            (ref.account_label or "—", "" if ref.account_label else "No account (keyless provider)"),
            (_words(ref.kind.value), ""),
            (ref.ref, ref_tip),
            (expires, tip),
        ]
        items = []
        for text, tooltip in cells:
            item = QTableWidgetItem(text)
            item.setToolTip(tooltip or text)
            items.append(item)
        if expires == "expired":
            # Not usable any more: the row reads as disabled, the verdict in red.
            dimmed = self.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
            for item in items[:4]:
                item.setForeground(dimmed)
            items[4].setForeground(QColor(ERROR_COLOR))
        return items

    def _describe(self, link: LineageLink) -> str:
        parts = [_words(link.operation), _words(link.role), self._provider(link.provider_id)]
        return " · ".join(p for p in parts if p)

    def _fill_lineage(self, detail: AssetDetail) -> None:
        self.parents_heading.setText(f"Made from ({len(detail.parents)})" if detail.parents else "Made from")
        self.parents_list.fill(detail.parents, self._describe)
        self.parents_none.setVisible(not detail.parents)
        self.children_heading.setText(f"Used in ({len(detail.children)})" if detail.children else "Used in")
        self.children_list.fill(detail.children, self._describe)
        self.children_none.setVisible(not detail.children)
        hidden = detail.hidden_relatives
        self.hidden_note.setText(
            f"{hidden} related asset{' is' if hidden == 1 else 's are'} hidden by the age setting."
            if hidden
            else ""
        )
        self.hidden_note.setVisible(bool(hidden))

    def _fill_job(self, detail: AssetDetail) -> None:
        job = detail.job
        self.job_none.setVisible(job is None)
        rows: dict[str, str] = {}
        if job is not None:
            rows = {
                "Job": f"#{job.id}, {format_instant(job.created_at)}",
                "Provider": self._provider(job.provider_id),
                "Operation": _words(job.operation),
                "Status": JOB_STATUS_LABELS.get(job.status, job.status.value),
                "Error": job.error_message or "",
                "Finished": format_instant(job.finished_at) if job.finished_at else "",
            }
            self.job_params.setPlainText(
                json.dumps(job.params, indent=2, sort_keys=True, ensure_ascii=False, default=str)
            )
            lines = min(14, max(3, self.job_params.document().blockCount() + 1))
            self.job_params.setFixedHeight(self.job_params.fontMetrics().lineSpacing() * lines + 14)
        for key, label in self.job_labels.items():
            label.setText(rows.get(key, ""))
            self.job_form.setRowVisible(label, bool(rows.get(key)))
        self.job_params.setVisible(job is not None)
        self.job_params_label.setVisible(job is not None)

    # -- editing one asset ------------------------------------------------------------------------

    def pending_edit(self) -> AssetEdit:
        """The fields changed since the asset was loaded (raises LibraryError on a bad value)."""
        detail = self._detail
        if detail is None:
            return AssetEdit()
        title = self.title_edit.text().strip()
        description = self.description_edit.toPlainText().strip()
        tags = split_tags(self.tags_edit.text())
        domain: ContentDomain | None = self.domain_box.currentData()
        category = self.category_edit.text().strip()
        rating: ContentRating | None = self.rating_box.currentData()
        age = self.age_check.isChecked()
        return AssetEdit(
            title=title if title != (detail.title or "") else None,
            description=description if description != (detail.description or "") else None,
            tags=tags if tags != detail.tags else None,
            content_domain=domain if domain != detail.content_domain else None,
            content_category=category if category != (detail.content_category or "") else None,
            content_rating=rating if rating != detail.content_rating else None,
            age_restricted=age if age != detail.age_restricted else None,
        )

    def has_changes(self) -> bool:
        try:
            return bool(self.pending_edit().values())
        except LibraryError:
            return True

    def _edited(self, *_: object) -> None:
        if self._filling:
            return
        dirty = self.has_changes()
        self.save_button.setEnabled(dirty and not self._saving)
        self.revert_button.setEnabled(dirty and not self._saving)
        if dirty and self.save_status.property("kind") == "saved":
            self.save_status.clear()
            self.save_status.setProperty("kind", None)

    def revert(self) -> None:
        if self._detail is not None:
            self._fill(self._detail)
            self._set_status("", "")

    def save(self) -> None:
        """Save the edits of the shown asset; the saved state is shown and ``asset_changed`` emitted."""
        detail = self._detail
        if (
            detail is None
            or detail.id != self._asset_id
            or self._saving
            or self.pages.currentWidget() is not self.asset_page
        ):
            return
        try:
            edit = self.pending_edit()
        except LibraryError as error:
            self._set_status(str(error), "error")
            return
        if not edit.values():
            return
        self._saving = True
        self._edited()
        self._set_status("Saving…", "busy")
        token = self._token
        asset_id = detail.id

        def saved(new: AssetDetail) -> None:
            self._saving = False
            if token == self._token:
                self._detail = new
                self._fill(new)
                self._set_status("Saved.", "saved")
            self.asset_changed.emit(asset_id)

        def failed(error: BaseException) -> None:
            self._saving = False
            if token == self._token:
                self._edited()
                self._set_status(f"Not saved: {error}", "error")

        self._bridge.call(
            self._library.update(asset_id, edit, include_age_restricted=self._include_age_restricted),
            saved,
            failed,
        )

    def _set_status(self, text: str, kind: str) -> None:
        self.save_status.setText(text)
        self.save_status.setProperty("kind", kind or None)
        self.save_status.setStyleSheet(
            f"color: {ERROR_COLOR};" if kind == "error" else _DIM if kind in ("busy", "saved") else ""
        )

    # -- editing several assets -------------------------------------------------------------------

    def bulk_edit(self) -> AssetEdit:
        category = self.bulk_category.text().strip()
        return AssetEdit(
            content_domain=self.bulk_domain.currentData(),
            content_category=category or None,
            content_rating=self.bulk_rating.currentData(),
            age_restricted=self.bulk_age.currentData(),
        )

    def _reset_bulk(self) -> None:
        for box in (self.bulk_domain, self.bulk_rating, self.bulk_age):
            box.setCurrentIndex(0)
        self.bulk_category.clear()
        self._bulk_edited()

    def _bulk_edited(self, *_: object) -> None:
        self.apply_button.setEnabled(bool(self._many) and bool(self.bulk_edit().values()))

    def apply_bulk(self) -> None:
        """Set the chosen classification fields on every selected asset (``update_many``)."""
        ids = self._many
        edit = self.bulk_edit()
        if not ids or not edit.values():
            return
        token = self._token
        self.apply_button.setEnabled(False)
        self.bulk_status.setStyleSheet(_DIM)
        self.bulk_status.setText("Saving…")

        def done(changed: int) -> None:
            if token == self._token:
                self._reset_bulk()
                self.bulk_status.setText(f"Changed {changed} asset{'s' if changed != 1 else ''}.")
            self.assets_changed.emit(ids)

        def failed(error: BaseException) -> None:
            if token == self._token:
                self._bulk_edited()
                self.bulk_status.setStyleSheet(f"color: {ERROR_COLOR};")
                self.bulk_status.setText(f"Not saved: {error}")

        self._bridge.call(self._library.update_many(ids, edit), done, failed)


async def _keyframe(segments: SegmentService, segment_id: int) -> QImage | None:
    """A scene's keyframe, scaled for the Scenes list (decoded on the core thread, not the GUI's)."""
    path = await segments.keyframe_file(segment_id)
    image = QImage(str(path))
    if image.isNull():
        return None
    return image.scaled(
        SCENE_THUMB, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
    )


async def _suggest(store: EmbeddingStore, embedder: Embedder, asset_id: int) -> Suggestions | None:
    """CLIP zero-shot suggestions from the asset's stored CLIP vector; None until it is indexed."""
    from core.embeddings import classify
    from core.embeddings.store import NotEmbedded, Subject

    model = next((m for m in await store.models() if m.name == embedder.model_id), None)
    if model is None:
        return None
    try:
        vector = await store.vector(model.id, Subject.asset(asset_id))
    except NotEmbedded:
        return None
    return await asyncio.to_thread(classify.suggest, vector, embedder)  # type: ignore[arg-type]
