"""The inspector: facts, provider references, lineage and job of one asset from the real database;
edits saved; several assets classified at once; stale answers dropped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QTableWidget, QTableWidgetItem
from pytestqt.qtbot import QtBot
from sqlalchemy import delete

from core.db.enums import (
    ContentDomain,
    ContentRating,
    JobStatus,
    MediaType,
    OperationType,
    ParentRole,
    ProviderRefKind,
)
from core.db.models import Asset, AssetLineage, AssetProviderRef, Job, JobResultAsset, ProviderAccount
from core.library import AssetDetail
from tests.factories import add_asset, local_user_id
from tests.ui.conftest import Library
from ui.bridge import CoreBridge
from ui.filter_bar import ERROR_COLOR
from ui.inspector import EMPTY_TEXT, Inspector, LineageList

WAIT = 10_000


@dataclass(frozen=True)
class Family:
    first: int
    last: int
    video: int
    child: int
    job: int


def _family(library: Library) -> Family:
    """A transition made by a job from two stills, extended once, known to two providers."""

    async def build() -> Family:
        async with library.sessions() as session, session.begin():
            user_id = await local_user_id(session)
            first = await add_asset(
                session, title="First frame", media_type=MediaType.IMAGE, mime_type="image/png"
            )
            last = await add_asset(session, title="Last frame", media_type=MediaType.IMAGE)
            gated = await add_asset(session, title="Gated reference", age_restricted=True)
            video = await add_asset(
                session,
                title="Lighthouse at dusk",
                description="The keeper walks up",
                prompt="a lighthouse at dusk, slow dolly",
                tags=["lighthouse", "dusk"],
                width=1280,
                height=720,
                duration_sec=5.0,
                fps=30.0,
                file_size_bytes=2_500_000,
                mime_type="video/mp4",
            )
            child = await add_asset(session, title="Lighthouse, extended", provider_id="sora")
            account = ProviderAccount(user_id=user_id, provider_id="sora", label="studio", keyring_ref="k/1")
            job = Job(
                user_id=user_id,
                provider_id="pixverse",
                operation_type=OperationType.TRANSITION.value,
                params={"prompt": "a lighthouse at dusk", "duration": 5, "first_asset_id": first.id},
                status=JobStatus.SUCCEEDED,
                finished_at=datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
            )
            session.add_all([account, job])
            await session.flush()
            session.add_all(
                [
                    JobResultAsset(job_id=job.id, asset_id=video.id),
                    AssetLineage(
                        parent_asset_id=first.id,
                        child_asset_id=video.id,
                        operation=OperationType.TRANSITION.value,
                        parent_role=ParentRole.FIRST_FRAME.value,
                        provider_id="pixverse",
                        job_id=job.id,
                        sequence_order=0,
                    ),
                    AssetLineage(
                        parent_asset_id=last.id,
                        child_asset_id=video.id,
                        operation=OperationType.TRANSITION.value,
                        parent_role=ParentRole.LAST_FRAME.value,
                        provider_id="pixverse",
                        job_id=job.id,
                        sequence_order=1,
                    ),
                    AssetLineage(
                        parent_asset_id=gated.id,
                        child_asset_id=video.id,
                        operation=OperationType.TRANSITION.value,
                        parent_role=ParentRole.REFERENCE.value,
                        sequence_order=2,
                    ),
                    AssetLineage(
                        parent_asset_id=video.id,
                        child_asset_id=child.id,
                        operation=OperationType.VIDEO_EXTEND.value,
                        parent_role=ParentRole.SOURCE.value,
                        provider_id="sora",
                    ),
                    AssetProviderRef(
                        asset_id=video.id,
                        provider_id="pixverse",
                        ref_kind=ProviderRefKind.VIDEO_ID,
                        provider_ref="video_1",
                        is_origin=True,
                    ),
                    AssetProviderRef(
                        asset_id=video.id,
                        provider_id="sora",
                        account_id=account.id,
                        ref_kind=ProviderRefKind.MEDIA_ID,
                        provider_ref="media_9",
                        url="https://sora.example.test/v",
                        expires_at=datetime.now(UTC) - timedelta(hours=1),
                    ),
                    AssetProviderRef(
                        asset_id=video.id,
                        provider_id="comfyui",
                        ref_kind=ProviderRefKind.FILE_NAME,
                        provider_ref="lighthouse_00001.mp4",
                        expires_at=datetime.now(UTC) + timedelta(days=2),
                    ),
                ]
            )
            return Family(first.id, last.id, video.id, child.id, job.id)

    return library.core.run(build(), timeout=30)


@pytest.fixture
def inspector(qtbot: QtBot, library: Library) -> Inspector:
    widget = Inspector(CoreBridge(library.core), library.service)
    qtbot.addWidget(widget)
    widget.resize(420, 900)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def _shown(inspector: Inspector, qtbot: QtBot, asset_id: int) -> AssetDetail:
    inspector.show_asset(asset_id)
    qtbot.waitUntil(
        lambda: (
            inspector.detail is not None
            and inspector.detail.id == asset_id
            and inspector.pages.currentWidget() is inspector.asset_page
        ),
        timeout=WAIT,
    )
    assert inspector.detail is not None
    return inspector.detail


def _cell(table: QTableWidget, row: int, column: int) -> QTableWidgetItem:
    item = table.item(row, column)
    assert item is not None
    return item


def _texts(lineage: LineageList) -> list[str]:
    return [lineage.item(i).text() for i in range(lineage.count())]


def test_starts_with_a_friendly_empty_state(inspector: Inspector) -> None:
    assert inspector.pages.currentWidget() is inspector.empty_page
    assert inspector.empty_heading.text() == EMPTY_TEXT
    assert inspector.current_asset_id is None


def test_shows_facts_references_lineage_and_job(qtbot: QtBot, library: Library, inspector: Inspector) -> None:
    family = _family(library)
    inspector.set_provider_names({"pixverse": "Pixverse", "sora": "Sora"})
    _shown(inspector, qtbot, family.video)

    assert inspector.title_edit.text() == "Lighthouse at dusk"
    assert inspector.description_edit.toPlainText() == "The keeper walks up"
    assert inspector.tags_edit.text() == "lighthouse, dusk"
    facts = {key: label.text() for key, label in inspector.fact_labels.items()}
    assert facts["Type"] == "Video" and facts["Size"] == "1280 × 720"
    assert (facts["Duration"], facts["Frame rate"]) == ("5.0 s", "30 fps")
    assert (facts["File size"], facts["Format"], facts["Provider"]) == ("2.5 MB", "video/mp4", "Pixverse")
    assert facts["Audio"] == "" and not inspector.fact_labels["Audio"].isVisible()
    assert inspector.prompt.text() == "a lighthouse at dusk, slow dolly"

    table = inspector.refs_table
    rows = {
        _cell(table, r, 3).text(): [_cell(table, r, c).text() for c in range(5)]
        for r in range(table.rowCount())
    }
    assert rows["video_1"][:4] == ["Pixverse · origin", "—", "video id", "video_1"]
    assert rows["video_1"][4] == "never"
    assert rows["media_9"][:3] == ["Sora", "studio", "media id"] and rows["media_9"][4] == "expired"
    assert rows["lighthouse_00001.mp4"][0] == "comfyui" and rows["lighthouse_00001.mp4"][4] != "expired"
    expired_row = next(r for r in range(table.rowCount()) if _cell(table, r, 3).text() == "media_9")
    assert _cell(table, expired_row, 4).foreground().color() == QColor(ERROR_COLOR)
    assert "https://sora.example.test/v" in _cell(table, expired_row, 3).toolTip()

    assert _texts(inspector.parents_list) == [
        "First frame\ntransition · first frame · Pixverse",
        "Last frame\ntransition · last frame · Pixverse",
    ]
    assert _texts(inspector.children_list) == ["Lighthouse, extended\nvideo extend · source · Sora"]
    assert inspector.parents_heading.text() == "Made from (2)"
    assert inspector.hidden_note.isVisible() and "1 related asset is hidden" in inspector.hidden_note.text()

    assert inspector.job_labels["Job"].text().startswith(f"#{family.job}")
    assert inspector.job_labels["Provider"].text() == "Pixverse"
    assert inspector.job_labels["Operation"].text() == "transition"
    assert inspector.job_labels["Status"].text() == "Succeeded"
    params = inspector.job_params.toPlainText()
    assert '"prompt": "a lighthouse at dusk"' in params and '"duration": 5' in params
    assert inspector.job_params.isReadOnly()
    assert not inspector.save_button.isEnabled(), "nothing to save before an edit"


def test_choosing_a_relative_asks_to_navigate_to_it(
    qtbot: QtBot, library: Library, inspector: Inspector
) -> None:
    family = _family(library)
    _shown(inspector, qtbot, family.video)
    parents = inspector.parents_list
    inspector.scroll_area.ensureWidgetVisible(parents)
    with qtbot.waitSignal(inspector.navigate_requested, timeout=WAIT) as clicked:
        qtbot.mouseClick(
            parents.viewport(),
            Qt.MouseButton.LeftButton,
            pos=parents.visualItemRect(parents.item(1)).center(),
        )
    assert clicked.args == [family.last]

    children = inspector.children_list
    children.setFocus()
    children.setCurrentRow(0)
    with qtbot.waitSignal(inspector.navigate_requested, timeout=WAIT) as entered:
        qtbot.keyClick(children, Qt.Key.Key_Return)
    assert entered.args == [family.child]


def test_an_image_has_no_duration_and_no_job(qtbot: QtBot, library: Library, inspector: Inspector) -> None:
    family = _family(library)
    _shown(inspector, qtbot, family.first)
    assert inspector.fact_labels["Type"].text() == "Image"
    assert not inspector.fact_labels["Duration"].isVisible()
    assert inspector.job_none.isVisible() and not inspector.job_params.isVisible()
    assert inspector.refs_none.isVisible() and not inspector.refs_table.isVisible()
    assert _texts(inspector.children_list) == ["Lighthouse at dusk\ntransition · first frame · pixverse"]
    assert inspector.parents_none.isVisible()


def test_edits_are_saved_with_tags_normalised(qtbot: QtBot, library: Library, inspector: Inspector) -> None:
    family = _family(library)
    _shown(inspector, qtbot, family.video)
    inspector.title_edit.setText("  Lighthouse, final  ")
    inspector.tags_edit.setText("  Night   Sky, lighthouse, night sky, ")
    inspector.description_edit.setPlainText("")
    inspector.category_edit.setText("storyboard")
    inspector.domain_box.setCurrentIndex(inspector.domain_box.findData(ContentDomain.NATURE))
    inspector.rating_box.setCurrentIndex(inspector.rating_box.findData(ContentRating.MATURE))
    assert inspector.save_button.isEnabled() and inspector.revert_button.isEnabled()
    edit = inspector.pending_edit()
    assert edit.tags == ("night sky", "lighthouse") and edit.age_restricted is None

    with qtbot.waitSignal(inspector.asset_changed, timeout=WAIT) as changed:
        inspector.save_button.click()
    assert changed.args == [family.video]
    assert inspector.save_status.text() == "Saved."
    assert inspector.tags_edit.text() == "night sky, lighthouse"
    assert inspector.title_edit.text() == "Lighthouse, final"
    assert not inspector.save_button.isEnabled()

    stored = library.core.run(library.service.detail(family.video), timeout=30)
    assert (stored.title, stored.description, stored.tags) == (
        "Lighthouse, final",
        None,
        ("night sky", "lighthouse"),
    )
    assert (stored.content_domain, stored.content_category, stored.content_rating) == (
        ContentDomain.NATURE,
        "storyboard",
        ContentRating.MATURE,
    )


def test_revert_puts_back_the_loaded_values(qtbot: QtBot, library: Library, inspector: Inspector) -> None:
    family = _family(library)
    _shown(inspector, qtbot, family.video)
    inspector.title_edit.setText("something else")
    inspector.age_check.setChecked(True)
    inspector.revert_button.click()
    assert inspector.title_edit.text() == "Lighthouse at dusk" and not inspector.age_check.isChecked()
    assert not inspector.has_changes()


def test_a_failed_save_shows_the_error_inline(qtbot: QtBot, library: Library, inspector: Inspector) -> None:
    [asset_id] = library.add_assets(1, title="Soon gone")
    _shown(inspector, qtbot, asset_id)

    async def remove() -> None:
        async with library.sessions() as session, session.begin():
            await session.execute(delete(Asset).where(Asset.id == asset_id))

    library.core.run(remove(), timeout=30)
    inspector.title_edit.setText("Renamed")
    inspector.save()
    qtbot.waitUntil(lambda: inspector.save_status.text().startswith("Not saved"), timeout=WAIT)
    assert f"Asset {asset_id} is not in the library" in inspector.save_status.text()
    assert inspector.save_button.isEnabled(), "the edit is kept to try again"


def test_an_unknown_asset_shows_a_clear_message(qtbot: QtBot, library: Library, inspector: Inspector) -> None:
    inspector.show_asset(987_654)
    qtbot.waitUntil(lambda: inspector.pages.currentWidget() is inspector.message_page, timeout=WAIT)
    qtbot.waitUntil(lambda: "987654" in inspector.message.text(), timeout=WAIT)
    assert inspector.message.text() == "Asset 987654 is not in the library."
    assert inspector.detail is None


def test_a_stale_answer_is_dropped(
    qtbot: QtBot, library: Library, inspector: Inspector, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = library.add_assets(2)
    filled: list[int] = []
    fill = inspector._fill

    def record(detail: AssetDetail) -> None:
        filled.append(detail.id)
        fill(detail)

    monkeypatch.setattr(inspector, "_fill", record)
    inspector.show_asset(first)
    inspector.show_asset(second)
    qtbot.waitUntil(lambda: inspector.detail is not None, timeout=WAIT)
    qtbot.wait(300)  # give the first answer every chance to arrive
    assert inspector.detail is not None and inspector.detail.id == second
    assert filled == [second] and inspector.current_asset_id == second

    inspector.show_asset(first)
    inspector.show_nothing()
    qtbot.wait(300)
    assert inspector.pages.currentWidget() is inspector.empty_page and filled == [second]


def test_the_preview_slot_scales_the_image(qtbot: QtBot, library: Library, inspector: Inspector) -> None:
    [asset_id] = library.add_assets(1)
    _shown(inspector, qtbot, asset_id)
    image = QImage(640, 360, QImage.Format.Format_RGB32)
    image.fill(QColor("steelblue"))
    inspector.set_preview(image)
    assert inspector.preview.image is image
    assert not inspector.preview.pixmap().isNull()
    assert 0 < inspector.preview.height() <= 262
    inspector.set_preview(None, asset_id=asset_id + 1)
    assert inspector.preview.image is image, "an image for another asset is ignored"
    inspector.set_preview(None)
    assert inspector.preview.text() == "No preview"


def test_several_assets_are_classified_at_once(qtbot: QtBot, library: Library, inspector: Inspector) -> None:
    ids = library.add_assets(3)
    inspector.show_many(ids)
    assert inspector.pages.currentWidget() is inspector.many_page
    assert inspector.many_heading.text() == "3 assets selected"
    assert not inspector.apply_button.isEnabled(), "nothing chosen yet"
    inspector.bulk_rating.setCurrentIndex(inspector.bulk_rating.findData(ContentRating.MATURE))
    inspector.bulk_domain.setCurrentIndex(inspector.bulk_domain.findData(ContentDomain.GAMING))
    inspector.bulk_category.setText("cutscene")
    inspector.bulk_age.setCurrentIndex(inspector.bulk_age.findData(True))
    assert inspector.apply_button.text() == "Apply to 3 Assets" and inspector.apply_button.isEnabled()

    with qtbot.waitSignal(inspector.assets_changed, timeout=WAIT) as changed:
        inspector.apply_button.click()
    assert changed.args == [tuple(ids)]
    assert inspector.bulk_status.text() == "Changed 3 assets."
    for asset_id in ids:
        detail = library.core.run(library.service.detail(asset_id, include_age_restricted=True), timeout=30)
        assert (detail.content_rating, detail.content_domain) == (ContentRating.MATURE, ContentDomain.GAMING)
        assert detail.content_category == "cutscene" and detail.age_restricted
    assert detail.title is None, "bulk edits leave descriptions alone"

    inspector.show_many(ids[:1])
    qtbot.waitUntil(lambda: inspector.detail is not None and inspector.detail.id == ids[0], timeout=WAIT)
