"""The library's filter bar: search words, media types, provider, sort, more filters, saved searches.

It turns its controls into one ``LibraryQuery`` and emits it when the user changes something (typing
is debounced); the window runs the query. Saved searches and tag completion go through
``LibraryService`` on the core loop when the bar is given a bridge and a library.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta

from PySide6.QtCore import (
    QDate,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QStringListModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QHideEvent, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QCompleter,
    QDateEdit,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.db.enums import ContentDomain, ContentRating, MediaType
from core.library import (
    RATING_ORDER,
    DuplicateSearchName,
    Facets,
    LibraryQuery,
    LibraryService,
    SavedSearch,
    SimilarTo,
    SortOrder,
    normalize_tag,
    normalize_tags,
)
from ui.bridge import CoreBridge

DEBOUNCE_MS = 200
ERROR_COLOR = "#d04040"

MEDIA_LABELS: dict[MediaType, str] = {
    MediaType.VIDEO: "Video",
    MediaType.IMAGE: "Image",
    MediaType.AUDIO: "Audio",
    MediaType.MODEL_3D: "3D",
}
SORT_LABELS: dict[SortOrder, str] = {
    SortOrder.NEWEST: "Newest first",
    SortOrder.OLDEST: "Oldest first",
    SortOrder.NAME: "Name (A–Z)",
    SortOrder.DURATION: "Longest first",
    SortOrder.SIZE: "Largest first",
    SortOrder.RECENTLY_USED: "Recently used",
    SortOrder.RELEVANCE: "Best match",
}
RATING_LABELS: dict[ContentRating, str] = {r: r.value.capitalize() for r in RATING_ORDER}


WORDS_PLACEHOLDER = "Search titles, prompts, tags…"
DESCRIBE_PLACEHOLDER = "Describe what you look for, e.g. a lighthouse at night in the rain"
HOW_TO_DESCRIBE = (
    "Describe needs the CLIP model: Settings → Models → Install, "
    "or run `pixsim models install clip` in a terminal."
)


def model_label(model: str) -> str:
    """A short name for an embedding model id: "pixsim/visual-signature@1" → "visual signature"."""
    name = model.rsplit("/", 1)[-1].split("@", 1)[0]
    return "CLIP" if name.lower().startswith("clip") else name.replace("-", " ")


def domain_label(domain: ContentDomain) -> str:
    return domain.value.replace("_", " ").capitalize()


def split_tags(text: str) -> tuple[str, ...]:
    """Comma-separated tags as typed → normalised tags, without empties or duplicates."""
    return normalize_tags(text.split(","))


def _qdate(day: date) -> QDate:
    return QDate(day.year, day.month, day.day)


def _pydate(day: QDate) -> date:
    return date(day.year(), day.month(), day.day())


def _day_start(day: date) -> datetime:
    """Local midnight at the start of ``day``, as an aware datetime."""
    return datetime.combine(day, time.min).astimezone()


class TagCompleter(QCompleter):
    """Completes the last of the comma-separated tags in a line edit with the library's tags.

    Suggestions come from ``LibraryService.all_tags`` (most used first) as the user types; tags
    already in the field are not offered again.
    """

    def __init__(
        self,
        edit: QLineEdit,
        bridge: CoreBridge,
        library: LibraryService,
        include_age_restricted: Callable[[], bool],
    ) -> None:
        super().__init__(edit)
        self._edit = edit
        self._bridge = bridge
        self._library = library
        self._include_age_restricted = include_age_restricted
        self._wanted = ""  # the prefix of the latest request: earlier answers are dropped
        self._tags = QStringListModel(self)
        self.setModel(self._tags)
        self.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self.setMaxVisibleItems(10)
        edit.setCompleter(self)
        edit.textEdited.connect(self._fetch)

    def suggestions(self) -> list[str]:
        return self._tags.stringList()

    # QCompleter filters on the last tag only, and a choice replaces that tag alone.
    def splitPath(self, path: str) -> list[str]:
        return [path.rsplit(",", 1)[-1].strip()]

    def pathFromIndex(self, index: QModelIndex | QPersistentModelIndex) -> str:
        chosen = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
        head, comma, _ = self._edit.text().rpartition(",")
        return f"{head}{comma} {chosen}, ".lstrip() if comma else f"{chosen}, "

    def _fetch(self, text: str) -> None:
        prefix = normalize_tag(text.rsplit(",", 1)[-1])
        if not prefix or prefix == self._wanted:
            return
        self._wanted = prefix
        self._bridge.call(
            self._library.all_tags(prefix, 20, include_age_restricted=self._include_age_restricted()),
            lambda tags: self._show(prefix, tags),
            lambda _error: None,  # completion is a convenience: no suggestions is fine
        )

    def _show(self, prefix: str, tags: list[str]) -> None:
        if prefix != self._wanted:
            return  # the user typed on; a newer answer is coming
        chosen = set(split_tags(self._edit.text().rsplit(",", 1)[0])) if "," in self._edit.text() else set()
        self._tags.setStringList([t for t in tags if t not in chosen])
        if self._edit.hasFocus() and self._tags.rowCount():
            self.complete()


class FiltersPanel(QFrame):
    """The "Filters" popup: tags, content domain, maximum rating, created from/to."""

    changed = Signal()  # a control changed, or the tags were confirmed with Enter
    tags_edited = Signal()  # every keystroke in the tags field (the bar debounces)
    closed = Signal()

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent, Qt.WindowType.Popup)
        self.setObjectName("filtersPanel")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)

        self.tags = QLineEdit()
        self.tags.setObjectName("filterTags")
        self.tags.setPlaceholderText("e.g. lighthouse, night")
        self.tags.setToolTip("Only assets with all of these tags (comma separated)")
        self.tags.setClearButtonEnabled(True)
        self.domain = QComboBox()
        self.domain.setObjectName("filterDomain")
        self.domain.addItem("Any", None)
        for domain in ContentDomain:
            self.domain.addItem(domain_label(domain), domain)
        self.max_rating = QComboBox()
        self.max_rating.setObjectName("filterMaxRating")
        self.max_rating.setToolTip(
            "Hide assets rated above this. Adult and explicit assets also need the age setting."
        )
        self.max_rating.addItem("Any", None)
        for rating in RATING_ORDER:
            self.max_rating.addItem(f"Up to {RATING_LABELS[rating].lower()}", rating)

        today = date.today()
        self.from_enabled = QCheckBox("From")
        self.from_enabled.setObjectName("filterFromEnabled")
        self.from_date = self._date_edit("filterFrom", today - timedelta(days=30))
        self.to_enabled = QCheckBox("To")
        self.to_enabled.setObjectName("filterToEnabled")
        self.to_date = self._date_edit("filterTo", today)
        self.from_enabled.toggled.connect(self.from_date.setEnabled)
        self.to_enabled.toggled.connect(self.to_date.setEnabled)

        dates = QFormLayout()
        dates.setContentsMargins(0, 0, 0, 0)
        dates.addRow(self.from_enabled, self.from_date)
        dates.addRow(self.to_enabled, self.to_date)
        created = QWidget()
        created.setLayout(dates)

        self.reset_button = QPushButton("Reset These")
        self.reset_button.setObjectName("filterReset")
        self.reset_button.setToolTip("Clear the tags, domain, rating and dates")
        self.reset_button.clicked.connect(self.reset)
        done = QPushButton("Done")
        done.setDefault(True)
        done.clicked.connect(self.hide)
        buttons = QHBoxLayout()
        buttons.addWidget(self.reset_button)
        buttons.addStretch(1)
        buttons.addWidget(done)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("&Tags", self.tags)
        form.addRow("&Domain", self.domain)
        form.addRow("Max &rating", self.max_rating)
        form.addRow("Created", created)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 10)
        layout.setSpacing(10)
        layout.addLayout(form)
        layout.addLayout(buttons)
        self.setMinimumWidth(320)

        self._quiet = False
        # textChanged, not textEdited: a completion chosen from the popup changes the tags too.
        self.tags.textChanged.connect(lambda _text: self.tags_edited.emit())
        self.tags.returnPressed.connect(self._emit_changed)
        for box in (self.domain, self.max_rating):
            box.currentIndexChanged.connect(self._emit_changed)
        for check in (self.from_enabled, self.to_enabled):
            check.toggled.connect(self._emit_changed)
        for edit in (self.from_date, self.to_date):
            edit.dateChanged.connect(self._emit_changed)

    def _emit_changed(self, *_: object) -> None:
        if not self._quiet:
            self.changed.emit()

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self.closed.emit()

    @staticmethod
    def _date_edit(name: str, day: date) -> QDateEdit:
        edit = QDateEdit(_qdate(day))
        edit.setObjectName(name)
        edit.setCalendarPopup(True)
        edit.setDisplayFormat("yyyy-MM-dd")
        edit.setEnabled(False)
        return edit

    def active_count(self) -> int:
        return sum(
            (
                bool(split_tags(self.tags.text())),
                self.domain.currentData() is not None,
                self.max_rating.currentData() is not None,
                self.from_enabled.isChecked(),
                self.to_enabled.isChecked(),
            )
        )

    def reset(self) -> None:
        """Clear the panel's filters: one change for the bar, not one per control."""
        self._quiet = True
        try:
            self.tags.clear()
            self.domain.setCurrentIndex(0)
            self.max_rating.setCurrentIndex(0)
            self.from_enabled.setChecked(False)
            self.to_enabled.setChecked(False)
        finally:
            self._quiet = False
        self.changed.emit()

    def popup_below(self, anchor: QWidget) -> None:
        self.adjustSize()
        self.move(anchor.mapToGlobal(QPoint(0, anchor.height())))
        self.show()
        self.tags.setFocus(Qt.FocusReason.PopupFocusReason)


class FilterBar(QWidget):
    """Search field, media toggles, provider, sort, a Filters popup, Clear and saved searches."""

    query_changed = Signal(object)  # LibraryQuery

    def __init__(
        self,
        bridge: CoreBridge | None = None,
        library: LibraryService | None = None,
        parent: QWidget | None = None,
        *,
        stack_duplicates: bool = False,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("filterBar")
        # Find-similar (from an asset, a segment or a frame) and one stack of duplicates shown.
        self._similar: SimilarTo | None = None
        self._group: tuple[int, str] | None = None
        self._describe_model: str | None = None  # a text-capable model (CLIP) is loaded
        self._bridge = bridge
        self._library = library
        self._include_age_restricted = False
        self._provider_names: dict[str, str] = {}
        self._provider_counts: dict[str, int] = {}
        # What a query set from outside (a saved search) holds that no control shows; kept as is.
        self._hidden = LibraryQuery()
        # The exact instants of a query set from outside, while their dates are left as they were.
        self._exact_from: tuple[date, datetime] | None = None
        self._exact_to: tuple[date, datetime] | None = None
        self._saved: list[SavedSearch] = []
        self._current_saved: int | None = None
        self._loading = False
        self._last_emitted: LibraryQuery | None = None

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self._changed)

        self.search = QLineEdit()
        self.search.setObjectName("librarySearch")
        self.search.setPlaceholderText(WORDS_PLACEHOLDER)
        self.search.setToolTip("Words in titles, descriptions, prompts and tags (Esc clears)")

        # Words (full text) or Describe (CLIP: pictures that look like the description).
        self.words_action = QAction("Words", self, checkable=True, checked=True)
        self.words_action.setToolTip("Find words in titles, descriptions, prompts and tags")
        self.describe_action = QAction("Describe", self, checkable=True)
        self.describe_action.setEnabled(False)
        self.describe_action.setToolTip(HOW_TO_DESCRIBE)
        self.words_action.triggered.connect(lambda: self.set_describe(False))
        self.describe_action.triggered.connect(lambda: self.set_describe(True))
        mode_menu = QMenu(self)
        mode_menu.setToolTipsVisible(True)
        mode_menu.addAction(self.words_action)
        mode_menu.addAction(self.describe_action)
        self.mode_button = QToolButton()
        self.mode_button.setObjectName("searchMode")
        self.mode_button.setText("Words")
        self.mode_button.setMenu(mode_menu)
        self.mode_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.mode_button.setToolTip("Search by words. " + HOW_TO_DESCRIBE)
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._search_changed)
        self.search.returnPressed.connect(self._changed)
        self.search.installEventFilter(self)

        self.media_all = self._toggle("All", "Every media type")
        self.media_all.setChecked(True)
        self.media_all.clicked.connect(self._all_media_clicked)
        self.media_buttons: dict[MediaType, QToolButton] = {}
        for media_type, label in MEDIA_LABELS.items():
            button = self._toggle(label, f"Show {label.lower()} assets (several may be on)")
            button.clicked.connect(self._media_clicked)
            self.media_buttons[media_type] = button

        self.provider_box = QComboBox()
        self.provider_box.setObjectName("providerFilter")
        self.provider_box.setToolTip("Only assets made by this provider")
        self.provider_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.provider_box.addItem("Any provider", ())
        self.provider_box.currentIndexChanged.connect(lambda _index: self._changed())

        self.sort_box = QComboBox()
        self.sort_box.setObjectName("sortOrder")
        self.sort_box.setToolTip("Sort order")
        for order, label in SORT_LABELS.items():
            self.sort_box.addItem(label, order)
        self.sort_box.currentIndexChanged.connect(lambda _index: self._changed())

        self.panel = FiltersPanel(self)
        self.panel.hide()
        self.panel.changed.connect(self._changed)
        self.panel.tags_edited.connect(self._debounce.start)
        self.panel.closed.connect(self._flush)
        self.filters_button = QToolButton()
        self.filters_button.setObjectName("filtersButton")
        self.filters_button.setText("Filters")
        self.filters_button.setToolTip("Tags, content domain, rating and dates")
        self.filters_button.setArrowType(Qt.ArrowType.NoArrow)
        self.filters_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.filters_button.clicked.connect(lambda: self.panel.popup_below(self.filters_button))

        self.clear_button = QToolButton()
        self.clear_button.setObjectName("clearFilters")
        self.clear_button.setText("Clear")
        self.clear_button.setToolTip("Show the whole library: clear the words and every filter")
        self.clear_button.clicked.connect(self.clear)

        self.saved_box = QComboBox()
        self.saved_box.setObjectName("savedSearches")
        self.saved_box.setToolTip("Saved searches")
        self.saved_box.setMinimumContentsLength(14)
        self.saved_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.saved_box.addItem("Saved searches…", None)
        self.saved_box.activated.connect(self._saved_chosen)

        self.save_action = QAction("Save Search…", self)
        self.save_action.setToolTip("Keep these words and filters under a name")
        self.save_action.triggered.connect(self.ask_save)
        self.rename_action = QAction("Rename Saved Search…", self)
        self.rename_action.triggered.connect(self.ask_rename)
        self.delete_action = QAction("Delete Saved Search", self)
        self.delete_action.triggered.connect(self.ask_delete)
        menu = QMenu(self)
        menu.addAction(self.rename_action)
        menu.addAction(self.delete_action)
        self.save_button = QToolButton()
        self.save_button.setObjectName("saveSearch")
        self.save_button.setDefaultAction(self.save_action)
        self.save_button.setText("Save…")
        self.save_button.setMenu(menu)
        self.save_button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)

        self.stack_check = QCheckBox("Stack duplicates")
        self.stack_check.setObjectName("stackDuplicates")
        self.stack_check.setToolTip(
            "Show one card per group of near-duplicates, with a count; nothing is deleted.\n"
            "Right-click a stacked card → Show Duplicates to see its group."
        )
        self.stack_check.setChecked(stack_duplicates)
        self.stack_check.toggled.connect(lambda _on: self._changed())

        # The chip of a find-similar search or of one stack of duplicates: click to leave it.
        self.similar_chip = QToolButton()
        self.similar_chip.setObjectName("similarChip")
        self.similar_chip.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.similar_chip.setStyleSheet(
            "QToolButton#similarChip { border: 1px solid palette(highlight); border-radius: 10px;"
            " padding: 2px 10px; background: palette(alternate-base); font-weight: 600; }"
            "QToolButton#similarChip:hover { background: palette(midlight); }"
        )
        self.similar_chip.clicked.connect(self.leave_similar)
        self.similar_chip.hide()

        self.status = QLabel()
        self.status.setObjectName("filterStatus")
        self.status.setWordWrap(False)
        self.status.hide()

        top = QHBoxLayout()
        top.setSpacing(6)
        top.addWidget(self.mode_button)
        top.addWidget(self.search, 1)
        top.addWidget(self.similar_chip)
        top.addWidget(self.stack_check)
        top.addWidget(self.saved_box)
        top.addWidget(self.save_button)
        bottom = QHBoxLayout()
        bottom.setSpacing(6)
        media = QHBoxLayout()
        media.setSpacing(2)
        media.addWidget(self.media_all)
        for button in self.media_buttons.values():
            media.addWidget(button)
        bottom.addLayout(media)
        bottom.addSpacing(8)
        bottom.addWidget(self.provider_box)
        bottom.addWidget(self.sort_box)
        bottom.addWidget(self.filters_button)
        bottom.addWidget(self.clear_button)
        bottom.addStretch(1)
        bottom.addWidget(self.status)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(6)
        layout.addLayout(top)
        layout.addLayout(bottom)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

        self.tag_completer: TagCompleter | None = None
        if bridge is not None and library is not None:
            self.tag_completer = TagCompleter(
                self.panel.tags, bridge, library, lambda: self._include_age_restricted
            )
            self.refresh_saved_searches()
        else:
            for widget in (self.saved_box, self.save_button):
                widget.setVisible(False)
        self._last_emitted = self.query()
        self._update_controls()

    # -- public -----------------------------------------------------------------------------------

    def query(self) -> LibraryQuery:
        """The query the controls describe now (the search words as typed, even mid-debounce)."""
        media = frozenset(m for m, b in self.media_buttons.items() if b.isChecked())
        panel = self.panel
        tags = split_tags(panel.tags.text())
        created_from = created_to = None
        if panel.from_enabled.isChecked():
            day = _pydate(panel.from_date.date())
            exact = self._exact_from
            created_from = exact[1] if exact and exact[0] == day else _day_start(day)
        if panel.to_enabled.isChecked():
            day = _pydate(panel.to_date.date())
            exact = self._exact_to
            created_to = exact[1] if exact and exact[0] == day else _day_start(day + timedelta(days=1))
        text, similar = self.search.text(), self._similar
        if self.describing and text.strip() and self._describe_model is not None:
            # Describe mode: the words are a picture's description, matched by CLIP, not full text.
            similar = SimilarTo(label=f"“{text.strip()}”", model=self._describe_model, text=text.strip())
            text = ""
        return dataclasses.replace(
            self._hidden,
            media_types=media,
            providers=frozenset(self.provider_box.currentData() or ()),
            tags=frozenset(tags),
            content_domain=panel.domain.currentData(),
            max_content_rating=panel.max_rating.currentData(),
            created_from=created_from,
            created_to=created_to,
            text=text,
            sort=self.sort_box.currentData(),
            include_age_restricted=self._include_age_restricted,
            stack_duplicates=self.stack_check.isChecked(),
            duplicate_group=self._group[0] if self._group else None,
            similar_to=similar,
        )

    @property
    def describing(self) -> bool:
        """The search field takes a description (CLIP) instead of words."""
        return self.describe_action.isChecked()

    def set_describe_model(self, model: str | None) -> None:
        """The text-capable model loaded (CLIP), or None: Describe is offered only with one."""
        self._describe_model = model
        self.describe_action.setEnabled(model is not None)
        if model is None:
            self.describe_action.setToolTip(HOW_TO_DESCRIBE)
            self.mode_button.setToolTip("Search by words. " + HOW_TO_DESCRIBE)
            if self.describing:
                self.set_describe(False)
        else:
            self.describe_action.setToolTip(
                f"Find pictures and scenes that look like a description ({model_label(model)})"
            )
            self.mode_button.setToolTip(
                "Words: full-text search · Describe: pictures that look like the words"
            )

    def set_describe(self, on: bool) -> None:
        """Switch the search field between words and descriptions (re-runs what is typed)."""
        on = on and self._describe_model is not None
        self.describe_action.setChecked(on)
        self.words_action.setChecked(not on)
        self.mode_button.setText("Describe" if on else "Words")
        self.search.setPlaceholderText(DESCRIBE_PLACEHOLDER if on else WORDS_PLACEHOLDER)
        if on and self._similar is not None:
            self._similar = None  # one likeness at a time: the description replaces the chip
        self._changed()

    @property
    def similar(self) -> SimilarTo | None:
        return self._similar

    def set_similar(self, similar: SimilarTo | None) -> None:
        """Show results like ``similar``'s source (with the other filters), or leave that mode."""
        self._similar = similar
        if similar is not None:
            self._group = None
            if self.describing:
                self._loading = True
                try:
                    self.search.clear()
                    self.set_describe(False)
                finally:
                    self._loading = False
        self._changed()

    def show_duplicate_group(self, group: int, name: str) -> None:
        """Only the members of one stack of near-duplicates."""
        self._group = (group, name)
        self._similar = None
        self._changed()

    def leave_similar(self) -> None:
        """The chip's ✕: back to the library (find-similar or one stack of duplicates)."""
        self._similar = None
        self._group = None
        self._changed()

    def set_query(self, query: LibraryQuery) -> None:
        """Show ``query`` in the controls (a saved search was chosen) and emit it once.

        The age gate stays the user's setting whatever ``query`` says.
        """
        self._loading = True
        try:
            self._debounce.stop()
            similar = query.similar_to
            if similar is not None and similar.text is not None and self._describe_model is not None:
                self.set_describe(True)
                query = dataclasses.replace(query, text=similar.text)
                similar = None
            elif self.describing:
                self.set_describe(False)
            self._similar = similar
            self._group = (
                (query.duplicate_group, f"#{query.duplicate_group}") if query.duplicate_group else None
            )
            self._hidden = LibraryQuery(
                on_providers=query.on_providers,
                content_category=query.content_category,
                content_ratings=query.content_ratings,
            )
            self.search.setText(query.text)
            for media_type, button in self.media_buttons.items():
                button.setChecked(media_type in query.media_types)
            self.media_all.setChecked(not query.media_types)
            self._select_providers(query.providers)
            self.sort_box.setCurrentIndex(max(0, self.sort_box.findData(query.sort)))
            panel = self.panel
            panel.tags.setText(", ".join(sorted(query.tags)))
            panel.domain.setCurrentIndex(max(0, panel.domain.findData(query.content_domain)))
            panel.max_rating.setCurrentIndex(max(0, panel.max_rating.findData(query.max_content_rating)))
            self._exact_from = self._exact_to = None
            panel.from_enabled.setChecked(query.created_from is not None)
            if query.created_from is not None:
                day = query.created_from.astimezone().date()
                panel.from_date.setDate(_qdate(day))
                self._exact_from = (day, query.created_from)
            panel.to_enabled.setChecked(query.created_to is not None)
            if query.created_to is not None:
                # created_to is exclusive; the control shows the last day included.
                day = (query.created_to - timedelta(microseconds=1)).astimezone().date()
                panel.to_date.setDate(_qdate(day))
                self._exact_to = (day, query.created_to)
        finally:
            self._loading = False
        self._changed()

    def clear(self) -> None:
        """Clear the words and every filter (the sort order stays)."""
        sort = self.sort_box.currentData()
        self.set_query(LibraryQuery(sort=sort))

    def set_age_gate(self, include_age_restricted: bool) -> None:
        """The user's "show age-restricted assets" setting; a change re-emits the query."""
        self._include_age_restricted = include_age_restricted
        self._changed()

    def set_providers(self, providers: Sequence[tuple[str, str]]) -> None:
        """The providers offered in the provider box, as (provider id, display name)."""
        selected: tuple[str, ...] = tuple(self.provider_box.currentData() or ())
        self._provider_names = dict(providers)
        self._loading = True
        try:
            self._select_providers(frozenset(selected))
        finally:
            self._loading = False

    def set_facets(self, facets: Facets) -> None:
        """Counts on the media toggles and in the provider box, for the query just run."""
        self.media_all.setText(f"All {sum(facets.media_types.values())}")
        for media_type, button in self.media_buttons.items():
            button.setText(f"{MEDIA_LABELS[media_type]} {facets.media_types.get(media_type, 0)}")
        self._provider_counts = dict(facets.providers)
        for index in range(self.provider_box.count()):
            ids: tuple[str, ...] = tuple(self.provider_box.itemData(index) or ())
            if ids:
                self.provider_box.setItemText(index, self._provider_label(ids))

    def _flush(self) -> None:
        """Apply typing still waiting for the debounce (the Filters popup closed)."""
        if self._debounce.isActive():
            self._changed()

    def focus_search(self) -> None:
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    # -- saved searches ---------------------------------------------------------------------------

    @property
    def current_saved_search(self) -> SavedSearch | None:
        return next((s for s in self._saved if s.id == self._current_saved), None)

    def refresh_saved_searches(self, then_select: int | None = None) -> None:
        if self._bridge is None or self._library is None:
            return
        self._bridge.call(
            self._library.saved_searches(),
            lambda searches: self._show_saved(searches, then_select),
            self._show_error,
        )

    def ask_save(self) -> None:
        current = self.current_saved_search
        self._ask_name("Save Search", "Name for this search:", current.name if current else "", self.save_as)

    def save_as(self, name: str, replace: bool = False) -> None:
        if self._bridge is None or self._library is None:
            return
        query = self.query()

        def saved(search: SavedSearch) -> None:
            self._show_message(f"Saved “{search.name}”.")
            self.refresh_saved_searches(then_select=search.id)

        def failed(error: BaseException) -> None:
            if isinstance(error, DuplicateSearchName) and not replace:
                self._confirm(
                    "Replace Saved Search",
                    f"A saved search named “{name.strip()}” already exists. Replace it with this search?",
                    "Replace",
                    lambda: self.save_as(name, replace=True),
                )
            else:
                self._show_error(error)

        self._bridge.call(self._library.save_search(name, query, replace=replace), saved, failed)

    def ask_rename(self) -> None:
        current = self.current_saved_search
        if current is None:
            return
        self._ask_name(
            "Rename Saved Search", "New name:", current.name, lambda name: self.rename_current(name)
        )

    def rename_current(self, name: str) -> None:
        current = self.current_saved_search
        if current is None or self._bridge is None or self._library is None:
            return

        def renamed(search: SavedSearch) -> None:
            self._show_message(f"Renamed to “{search.name}”.")
            self.refresh_saved_searches(then_select=search.id)

        self._bridge.call(self._library.rename_search(current.id, name), renamed, self._show_error)

    def ask_delete(self) -> None:
        current = self.current_saved_search
        if current is None:
            return
        self._confirm(
            "Delete Saved Search",
            f"Delete the saved search “{current.name}”? No asset is affected.",
            "Delete",
            self.delete_current,
        )

    def delete_current(self) -> None:
        current = self.current_saved_search
        if current is None or self._bridge is None or self._library is None:
            return

        def deleted(_: None) -> None:
            self._show_message(f"Deleted “{current.name}”.")
            self._current_saved = None
            self.refresh_saved_searches()

        self._bridge.call(self._library.delete_search(current.id), deleted, self._show_error)

    def _show_saved(self, searches: list[SavedSearch], then_select: int | None) -> None:
        self._saved = searches
        if then_select is not None:
            self._current_saved = then_select
        self._sync_saved_box()

    def _saved_chosen(self, index: int) -> None:
        search_id = self.saved_box.itemData(index)
        search = next((s for s in self._saved if s.id == search_id), None)
        if search is None:
            self._sync_saved_box()
            return
        self._current_saved = search.id
        self.set_query(search.query)

    def _sync_saved_box(self) -> None:
        """Show the saved search the grid shows, if any: the current one first, else any match."""
        query = self.query()
        matching = [s for s in self._saved if self._as_shown(s.query) == query]
        current = next((s for s in matching if s.id == self._current_saved), None)
        if current is None and matching and self._current_saved is None:
            current = matching[0]
        self._current_saved = current.id if current else None
        self.saved_box.blockSignals(True)
        self.saved_box.clear()
        self.saved_box.addItem("Saved searches…" if self._saved else "No saved searches", None)
        for search in self._saved:
            self.saved_box.addItem(search.name, search.id)
        self.saved_box.setCurrentIndex(max(0, self.saved_box.findData(self._current_saved)))
        self.saved_box.setEnabled(bool(self._saved))
        self.saved_box.blockSignals(False)
        self.rename_action.setEnabled(current is not None)
        self.delete_action.setEnabled(current is not None)

    def _as_shown(self, query: LibraryQuery) -> LibraryQuery:
        return dataclasses.replace(
            query,
            include_age_restricted=self._include_age_restricted,
            stack_duplicates=self.stack_check.isChecked(),
        )

    def _ask_name(self, title: str, label: str, text: str, then: Callable[[str], None]) -> None:
        # open(), never exec(): a nested event loop would stall the app's qasync loop.
        dialog = QInputDialog(self)
        dialog.setObjectName("searchNameDialog")
        dialog.setWindowTitle(title)
        dialog.setLabelText(label)
        dialog.setTextValue(text)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.textValueSelected.connect(lambda name: then(name) if name.strip() else None)
        dialog.open()

    def _confirm(self, title: str, text: str, action: str, then: Callable[[], None]) -> None:
        box = QMessageBox(QMessageBox.Icon.Question, title, text, QMessageBox.StandardButton.NoButton, self)
        box.setObjectName("searchConfirm")
        yes = box.addButton(action, QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(yes)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        yes.clicked.connect(then)
        box.open()

    def _show_message(self, text: str) -> None:
        self.status.setStyleSheet("color: palette(placeholder-text);")
        self.status.setText(text)
        self.status.setToolTip("")
        self.status.show()

    def _show_error(self, error: BaseException) -> None:
        text = str(error) or type(error).__name__
        self.status.setStyleSheet(f"color: {ERROR_COLOR};")
        self.status.setText(text if len(text) <= 80 else text[:79] + "…")
        self.status.setToolTip(text)
        self.status.show()

    # -- controls ---------------------------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            watched is self.search
            and event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.matches(QKeySequence.StandardKey.Cancel)
            and self.search.text()
        ):
            self.search.clear()
            self._changed()
            return True
        return super().eventFilter(watched, event)

    def _toggle(self, text: str, tip: str) -> QToolButton:
        button = QToolButton()
        button.setText(text)
        button.setToolTip(tip)
        button.setCheckable(True)
        button.setAutoRaise(True)
        button.setObjectName(f"media{text.replace(' ', '')}")
        return button

    def _search_changed(self, text: str) -> None:
        # Words wait for a pause in typing; an emptied field (clear button, backspace) shows all at once.
        if text.strip():
            self._debounce.start()
        else:
            self._changed()

    def _all_media_clicked(self) -> None:
        for button in self.media_buttons.values():
            button.setChecked(False)
        self.media_all.setChecked(True)
        self._changed()

    def _media_clicked(self) -> None:
        self.media_all.setChecked(not any(b.isChecked() for b in self.media_buttons.values()))
        self._changed()

    def _provider_label(self, ids: Sequence[str]) -> str:
        name = " + ".join(self._provider_names.get(i, i) for i in ids)
        count = sum(self._provider_counts.get(i, 0) for i in ids)
        return f"{name} ({count})" if self._provider_counts else name

    def _select_providers(self, providers: frozenset[str]) -> None:
        """Rebuild the provider box (known providers, plus the wanted ones if unknown) and select."""
        wanted = tuple(sorted(providers))
        self.provider_box.blockSignals(True)
        self.provider_box.clear()
        self.provider_box.addItem("Any provider", ())
        for provider_id in self._provider_names:
            self.provider_box.addItem(self._provider_label((provider_id,)), (provider_id,))
        if wanted and self.provider_box.findData(wanted) < 0:
            self.provider_box.addItem(self._provider_label(wanted), wanted)
        self.provider_box.setCurrentIndex(max(0, self.provider_box.findData(wanted)))
        self.provider_box.blockSignals(False)

    def _changed(self) -> None:
        """A control changed: emit the new query once (nothing if it is the one last emitted)."""
        if self._loading:
            return
        self._debounce.stop()
        query = self.query()
        self._update_controls()
        self._sync_saved_box()
        if query != self._last_emitted:
            self._last_emitted = query
            self.query_changed.emit(query)

    def _update_controls(self) -> None:
        active = self.panel.active_count()
        self.filters_button.setText(f"Filters ({active})" if active else "Filters")
        empty = LibraryQuery(
            sort=self.sort_box.currentData(),
            include_age_restricted=self._include_age_restricted,
            stack_duplicates=self.stack_check.isChecked(),
        )
        self.clear_button.setEnabled(self.query() != empty)
        self._update_chip()

    def _update_chip(self) -> None:
        similar, group = self._similar, self._group
        if similar is not None:
            name = similar.label if len(similar.label) <= 32 else similar.label[:31] + "…"
            self.similar_chip.setText(f"Similar to: {name}  ✕")
            self.similar_chip.setToolTip(
                f"In order of likeness to {similar.label}, by {model_label(similar.model)}, with the "
                f"filters on the left ({similar.k} at most).\nClick to go back to the library."
            )
        elif group is not None:
            self.similar_chip.setText(f"Duplicates of: {group[1]}  ✕")
            self.similar_chip.setToolTip("One stack of near-duplicates. Click to go back to the library.")
        self.similar_chip.setVisible(similar is not None or group is not None)
        in_order = similar is not None or (self.describing and bool(self.search.text().strip()))
        self.sort_box.setEnabled(not in_order)
        self.sort_box.setToolTip("Results are in order of likeness" if in_order else "Sort order")
