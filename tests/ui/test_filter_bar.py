"""The filter bar: each control changes the emitted query as a user expects; facets on the toggles;
saved searches round-trip through the real database; the age gate is passed along."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest
from PySide6.QtCore import QDate, Qt
from PySide6.QtWidgets import QInputDialog, QMessageBox, QPushButton
from pytestqt.qtbot import QtBot

from core.db.enums import ContentDomain, ContentRating, MediaType
from core.library import Facets, LibraryQuery, SortOrder
from tests.ui.conftest import Library
from ui.bridge import CoreBridge
from ui.filter_bar import DEBOUNCE_MS, FilterBar, split_tags

WAIT = 10_000
# The offscreen platform cannot raise a popup or grab the keyboard for it; it says so.
POPUP = pytest.mark.qt_log_ignore(r"This plugin does not support (raise\(\)|grabbing the keyboard)")


class Spy:
    def __init__(self, bar: FilterBar) -> None:
        self.queries: list[LibraryQuery] = []
        bar.query_changed.connect(self.queries.append)

    @property
    def last(self) -> LibraryQuery:
        return self.queries[-1]


@pytest.fixture
def bar(qtbot: QtBot) -> FilterBar:
    widget = FilterBar()
    qtbot.addWidget(widget)
    widget.set_providers([("pixverse", "Pixverse"), ("sora", "Sora"), ("sandbox", "Sandbox")])
    return widget


@pytest.fixture
def saved_bar(qtbot: QtBot, library: Library) -> FilterBar:
    widget = FilterBar(CoreBridge(library.core), library.service)
    qtbot.addWidget(widget)
    qtbot.waitUntil(lambda: widget.saved_box.itemText(0) == "No saved searches", timeout=WAIT)
    return widget


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min).astimezone()


def test_typing_is_debounced_into_one_query_and_escape_clears(qtbot: QtBot, bar: FilterBar) -> None:
    spy = Spy(bar)
    qtbot.keyClicks(bar.search, "lighthouse dusk")
    assert spy.queries == [], "nothing is emitted while typing"
    assert bar.query().text == "lighthouse dusk"
    qtbot.waitUntil(lambda: len(spy.queries) == 1, timeout=WAIT)
    qtbot.wait(DEBOUNCE_MS + 100)
    assert [q.text for q in spy.queries] == ["lighthouse dusk"]

    qtbot.keyClick(bar.search, Qt.Key.Key_Escape)
    assert bar.search.text() == "" and [q.text for q in spy.queries] == ["lighthouse dusk", ""]
    qtbot.keyClick(bar.search, Qt.Key.Key_Escape)
    assert len(spy.queries) == 2, "Esc in an empty field changes nothing"

    qtbot.keyClicks(bar.search, "keeper")
    qtbot.keyClick(bar.search, Qt.Key.Key_Return)
    assert spy.last.text == "keeper", "Enter searches at once"
    qtbot.wait(DEBOUNCE_MS + 100)
    assert len(spy.queries) == 3


def test_media_toggles_combine_and_all_resets_them(qtbot: QtBot, bar: FilterBar) -> None:
    spy = Spy(bar)
    video, image = bar.media_buttons[MediaType.VIDEO], bar.media_buttons[MediaType.IMAGE]
    assert bar.media_all.isChecked()
    qtbot.mouseClick(video, Qt.MouseButton.LeftButton)
    assert spy.last.media_types == {MediaType.VIDEO} and not bar.media_all.isChecked()
    qtbot.mouseClick(image, Qt.MouseButton.LeftButton)
    assert spy.last.media_types == {MediaType.VIDEO, MediaType.IMAGE}
    qtbot.mouseClick(video, Qt.MouseButton.LeftButton)
    assert spy.last.media_types == {MediaType.IMAGE}
    qtbot.mouseClick(bar.media_all, Qt.MouseButton.LeftButton)
    assert spy.last.media_types == frozenset() and bar.media_all.isChecked()
    assert not image.isChecked()
    qtbot.mouseClick(bar.media_all, Qt.MouseButton.LeftButton)
    assert bar.media_all.isChecked() and len(spy.queries) == 4, "All again changes nothing"
    qtbot.mouseClick(video, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(video, Qt.MouseButton.LeftButton)
    assert bar.media_all.isChecked() and spy.last.media_types == frozenset()


def test_provider_and_sort(bar: FilterBar) -> None:
    spy = Spy(bar)
    assert [bar.provider_box.itemText(i) for i in range(bar.provider_box.count())] == [
        "Any provider",
        "Pixverse",
        "Sora",
        "Sandbox",
    ]
    bar.provider_box.setCurrentIndex(2)
    assert spy.last.providers == {"sora"}
    bar.sort_box.setCurrentIndex(bar.sort_box.findText("Name (A–Z)"))
    assert spy.last.sort is SortOrder.NAME and spy.last.providers == {"sora"}
    assert [bar.sort_box.itemData(i) for i in range(bar.sort_box.count())] == list(SortOrder)
    bar.set_providers([("sora", "Sora"), ("comfyui", "ComfyUI")])
    assert bar.query().providers == {"sora"} and len(spy.queries) == 2, "the choice survives new providers"
    bar.provider_box.setCurrentIndex(0)
    assert spy.last.providers == frozenset()


@POPUP
def test_the_filters_panel(qtbot: QtBot, bar: FilterBar) -> None:
    spy = Spy(bar)
    panel = bar.panel
    bar.show()
    qtbot.mouseClick(bar.filters_button, Qt.MouseButton.LeftButton)
    assert panel.isVisible()

    qtbot.keyClicks(panel.tags, "Night Sky, Lighthouse")
    qtbot.waitUntil(lambda: len(spy.queries) == 1, timeout=WAIT)
    qtbot.wait(DEBOUNCE_MS + 100)
    assert len(spy.queries) == 1 and spy.last.tags == {"night sky", "lighthouse"}

    panel.domain.setCurrentIndex(panel.domain.findData(ContentDomain.NATURE))
    assert spy.last.content_domain is ContentDomain.NATURE
    panel.max_rating.setCurrentIndex(panel.max_rating.findData(ContentRating.MATURE))
    assert spy.last.max_content_rating is ContentRating.MATURE

    assert not panel.from_date.isEnabled()
    panel.from_date.setDate(QDate(2025, 3, 1))
    assert spy.last.created_from is None, "an unticked date is no filter"
    panel.from_enabled.setChecked(True)
    assert panel.from_date.isEnabled() and spy.last.created_from == _local_midnight(date(2025, 3, 1))
    panel.to_enabled.setChecked(True)
    panel.to_date.setDate(QDate(2025, 3, 31))
    assert spy.last.created_to == _local_midnight(date(2025, 4, 1)), "the last day is included"
    assert bar.filters_button.text() == "Filters (5)"

    count = len(spy.queries)
    panel.reset_button.click()
    assert len(spy.queries) == count + 1, "one query for the whole reset"
    assert spy.last == LibraryQuery()
    assert bar.filters_button.text() == "Filters"
    panel.hide()


@POPUP
def test_closing_the_panel_applies_pending_tags_at_once(qtbot: QtBot, bar: FilterBar) -> None:
    spy = Spy(bar)
    bar.show()
    bar.filters_button.click()
    qtbot.keyClicks(bar.panel.tags, "dusk")
    bar.panel.hide()
    assert [q.tags for q in spy.queries] == [{"dusk"}]


def test_clear_resets_every_filter_but_keeps_the_sort(bar: FilterBar) -> None:
    spy = Spy(bar)
    assert not bar.clear_button.isEnabled()
    bar.set_query(
        LibraryQuery(
            media_types=frozenset({MediaType.AUDIO}),
            providers=frozenset({"sandbox"}),
            tags=frozenset({"rain"}),
            content_domain=ContentDomain.MUSIC,
            text="storm",
            sort=SortOrder.DURATION,
        )
    )
    assert len(spy.queries) == 1 and bar.clear_button.isEnabled()
    bar.clear_button.click()
    assert spy.last == LibraryQuery(sort=SortOrder.DURATION)
    assert bar.search.text() == "" and bar.panel.tags.text() == "" and bar.media_all.isChecked()
    assert not bar.clear_button.isEnabled()


def test_set_query_fills_every_control_and_round_trips(bar: FilterBar) -> None:
    spy = Spy(bar)
    query = LibraryQuery(
        media_types=frozenset({MediaType.VIDEO, MediaType.MODEL_3D}),
        providers=frozenset({"pixverse", "unknown-plugin"}),
        on_providers=frozenset({"sora"}),
        tags=frozenset({"dusk", "lighthouse"}),
        content_domain=ContentDomain.ARCHITECTURE,
        content_category="storyboard",
        max_content_rating=ContentRating.GENERAL,
        created_from=datetime.fromisoformat("2025-01-01T09:30:00+00:00"),
        created_to=_local_midnight(date(2025, 2, 1)),
        text="keeper",
        sort=SortOrder.OLDEST,
    )
    bar.set_query(query)
    assert spy.queries == [query] and bar.query() == query
    assert bar.search.text() == "keeper" and bar.panel.tags.text() == "dusk, lighthouse"
    assert bar.media_buttons[MediaType.MODEL_3D].isChecked() and not bar.media_all.isChecked()
    assert bar.provider_box.currentText() == "Pixverse + unknown-plugin"
    assert bar.panel.to_date.date() == QDate(2025, 1, 31)
    bar.panel.from_date.setDate(bar.panel.from_date.date().addDays(1))
    start = datetime.fromisoformat("2025-01-01T09:30:00+00:00").astimezone().date()
    assert spy.last.created_from == _local_midnight(start + timedelta(days=1))


def test_facets_show_on_the_toggles_and_providers(bar: FilterBar) -> None:
    bar.set_facets(
        Facets(
            total=15,
            media_types={MediaType.VIDEO: 12, MediaType.IMAGE: 3, MediaType.AUDIO: 0, MediaType.MODEL_3D: 0},
            providers={"pixverse": 10, "sora": 5},
        )
    )
    assert bar.media_all.text() == "All 15"
    assert [b.text() for b in bar.media_buttons.values()] == ["Video 12", "Image 3", "Audio 0", "3D 0"]
    assert bar.provider_box.itemText(1) == "Pixverse (10)" and bar.provider_box.itemText(3) == "Sandbox (0)"


def test_the_age_gate_is_passed_along(bar: FilterBar) -> None:
    spy = Spy(bar)
    bar.set_age_gate(True)
    assert spy.last.include_age_restricted
    bar.set_age_gate(True)
    assert len(spy.queries) == 1, "the same setting again changes nothing"
    bar.media_buttons[MediaType.IMAGE].click()
    assert spy.last.include_age_restricted and spy.last.media_types == {MediaType.IMAGE}
    bar.set_age_gate(False)
    assert not spy.last.include_age_restricted


def _answer_name(qtbot: QtBot, bar: FilterBar, name: str) -> None:
    qtbot.waitUntil(lambda: bar.findChild(QInputDialog) is not None, timeout=WAIT)
    dialog = bar.findChild(QInputDialog)
    assert dialog is not None and dialog.isVisible()
    dialog.setTextValue(name)
    dialog.accept()
    qtbot.waitUntil(lambda: bar.findChild(QInputDialog) is None, timeout=WAIT)


def _press(qtbot: QtBot, bar: FilterBar, button_text: str) -> None:
    qtbot.waitUntil(lambda: bar.findChild(QMessageBox) is not None, timeout=WAIT)
    box = bar.findChild(QMessageBox)
    assert box is not None
    [button] = [b for b in box.findChildren(QPushButton) if b.text() == button_text]
    button.click()
    qtbot.waitUntil(lambda: bar.findChild(QMessageBox) is None, timeout=WAIT)


def _names(bar: FilterBar) -> list[str]:
    return [bar.saved_box.itemText(i) for i in range(1, bar.saved_box.count())]


def test_saved_searches_round_trip(qtbot: QtBot, library: Library, saved_bar: FilterBar) -> None:
    bar = saved_bar
    spy = Spy(bar)
    bar.set_age_gate(True)
    bar.media_buttons[MediaType.VIDEO].click()
    bar.search.setText("lighthouse")
    bar.search.returnPressed.emit()
    night_videos = bar.query()
    assert not bar.rename_action.isEnabled() and not bar.delete_action.isEnabled()

    bar.save_action.trigger()
    _answer_name(qtbot, bar, "  Night   videos ")
    qtbot.waitUntil(lambda: _names(bar) == ["Night videos"], timeout=WAIT)
    assert bar.saved_box.currentText() == "Night videos" and bar.rename_action.isEnabled()
    assert "Saved" in bar.status.text()
    stored = library.core.run(library.service.saved_searches(), timeout=30)
    assert [s.query for s in stored] == [
        LibraryQuery(media_types=frozenset({MediaType.VIDEO}), text="lighthouse")
    ]

    bar.clear()
    assert bar.saved_box.currentIndex() == 0 and bar.saved_box.currentText() == "Saved searches…"
    assert spy.last.include_age_restricted, "clearing keeps the user's age setting"
    bar.saved_box.setCurrentIndex(1)
    bar.saved_box.activated.emit(1)
    assert spy.last == night_videos, "a saved search comes back with the user's age setting"

    bar.ask_rename()
    _answer_name(qtbot, bar, "Lighthouse clips")
    qtbot.waitUntil(lambda: _names(bar) == ["Lighthouse clips"], timeout=WAIT)
    assert bar.saved_box.currentText() == "Lighthouse clips"

    # The same name again asks before replacing.
    bar.media_buttons[MediaType.IMAGE].click()
    assert bar.saved_box.currentIndex() == 0, "a changed query is no longer the saved search"
    bar.save_action.trigger()
    _answer_name(qtbot, bar, "Lighthouse clips")
    qtbot.waitUntil(lambda: bar.findChild(QMessageBox) is not None, timeout=WAIT)
    box = bar.findChild(QMessageBox)
    assert box is not None and "already exists" in box.text()
    _press(qtbot, bar, "Replace")
    qtbot.waitUntil(lambda: bar.saved_box.currentText() == "Lighthouse clips", timeout=WAIT)
    stored = library.core.run(library.service.saved_searches(), timeout=30)
    assert [s.query.media_types for s in stored] == [{MediaType.VIDEO, MediaType.IMAGE}]

    bar.ask_delete()
    _press(qtbot, bar, "Delete")
    qtbot.waitUntil(lambda: _names(bar) == [], timeout=WAIT)
    assert bar.saved_box.itemText(0) == "No saved searches" and not bar.delete_action.isEnabled()
    assert library.core.run(library.service.saved_searches(), timeout=30) == []


def test_an_empty_name_saves_nothing(qtbot: QtBot, library: Library, saved_bar: FilterBar) -> None:
    saved_bar.save_action.trigger()
    _answer_name(qtbot, saved_bar, "   ")
    qtbot.wait(200)
    assert library.core.run(library.service.saved_searches(), timeout=30) == []


@POPUP
def test_tags_complete_from_the_library(qtbot: QtBot, library: Library, saved_bar: FilterBar) -> None:
    library.add_assets(2, tags=["lighthouse", "lights", "dusk"])
    library.add_assets(1, tags=["lightning"], age_restricted=True)
    completer = saved_bar.tag_completer
    assert completer is not None
    tags = saved_bar.panel.tags
    saved_bar.show()
    saved_bar.filters_button.click()
    qtbot.keyClicks(tags, "dusk, LIGH")
    qtbot.waitUntil(lambda: completer.suggestions() == ["lighthouse", "lights"], timeout=WAIT)
    assert completer.splitPath(tags.text()) == ["LIGH"]
    assert completer.pathFromIndex(completer.model().index(0, 0)) == "dusk, lighthouse, "
    saved_bar.panel.hide()
    assert split_tags("dusk, lighthouse, ") == ("dusk", "lighthouse")
