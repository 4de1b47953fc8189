"""The Generate dialog builds its form from the providers' parameter specifications."""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QComboBox, QPlainTextEdit, QSpinBox, QTableWidget
from pytestqt.qtbot import QtBot

from core.db.enums import MediaType
from core.providers.base import SupportsGenerate
from core.providers.registry import ProviderRegistry
from ui.generate_dialog import GenerateDialog, GenerateRequest, InputAsset, ProviderChoice


def _choices() -> list[ProviderChoice]:
    registry = ProviderRegistry.from_entry_points()
    out = []
    for adapter in registry.all():
        assert isinstance(adapter, SupportsGenerate)
        accounts = ((7, "main"),) if adapter.requires_account else ()
        out.append(
            ProviderChoice(
                adapter.provider_id,
                adapter.display_name,
                adapter.description,
                tuple(adapter.operations()),
                accounts,
                adapter.requires_account,
            )
        )
    return out


VIDEO = InputAsset(12, "storm.mp4", MediaType.VIDEO)
STILL_A = InputAsset(3, "castle.png", MediaType.IMAGE)
STILL_B = InputAsset(4, "dragon.png", MediaType.IMAGE)


def test_a_selected_video_opens_on_an_operation_that_takes_it(qtbot: QtBot) -> None:
    dialog = GenerateDialog(_choices(), [VIDEO], provider_id="sandbox")
    qtbot.addWidget(dialog)
    assert dialog.operation is not None and dialog.operation.id == "video_extend"
    video = dialog.field("video_asset_id")
    assert isinstance(video, QComboBox) and video.currentData() == 12
    prompt = dialog.field("prompt")
    assert isinstance(prompt, QPlainTextEdit)
    prompt.setPlainText("the storm passes")
    requests: list[GenerateRequest] = []
    dialog.request_ready.connect(requests.append)
    dialog.generate_button.click()
    (request,) = requests
    assert (request.provider_id, request.operation_id, request.account_id) == (
        "sandbox",
        "video_extend",
        None,
    )
    assert request.params["video_asset_id"] == 12 and request.params["prompt"] == "the storm passes"
    assert "start_sec" not in request.params  # left at "(default)": the end of the video


def test_every_problem_is_shown_and_nothing_is_sent(qtbot: QtBot) -> None:
    dialog = GenerateDialog(_choices(), [], provider_id="sandbox")
    qtbot.addWidget(dialog)
    dialog.select_operation("text_to_video")
    requests: list[GenerateRequest] = []
    dialog.request_ready.connect(requests.append)
    dialog.generate_button.click()
    assert requests == [] and dialog.result() == 0  # still open: nothing accepted
    assert "'prompt' is required" in dialog.errors.text()
    assert not dialog.errors.isHidden()


def test_the_form_follows_the_specification(qtbot: QtBot) -> None:
    dialog = GenerateDialog(_choices(), [STILL_A, STILL_B], provider_id="pixverse")
    qtbot.addWidget(dialog)
    dialog.select_operation("transition")
    first, last = dialog.field("first_frame_asset_id"), dialog.field("last_frame_asset_id")
    assert isinstance(first, QComboBox) and isinstance(last, QComboBox)
    assert (first.currentData(), last.currentData()) == (3, 4)  # one selected image each, in order
    quality = dialog.field("quality")
    assert isinstance(quality, QComboBox)
    assert [quality.itemData(i) for i in range(quality.count())][-4:] == ["360p", "540p", "720p", "1080p"]
    assert dialog.account_box.currentData() == 7
    dialog.select_operation("text_to_video")
    water_mark = dialog.field("water_mark")
    assert isinstance(water_mark, QCheckBox)
    seed = dialog.field("seed")
    assert isinstance(seed, QSpinBox) and seed.maximum() == 2_147_483_647


def test_storyboard_keyframes_come_from_the_selected_images(qtbot: QtBot) -> None:
    dialog = GenerateDialog(_choices(), [STILL_A, STILL_B], provider_id="sandbox")
    qtbot.addWidget(dialog)
    dialog.select_operation("text_to_video")
    table = dialog.field("keyframes")
    assert isinstance(table, QTableWidget) and table.rowCount() == 2
    table.item(1, 1).setText("20")  # type: ignore[union-attr]
    table.item(0, 2).setText("zoom_in")  # type: ignore[union-attr]
    prompt = dialog.field("prompt")
    assert isinstance(prompt, QPlainTextEdit)
    prompt.setPlainText("a castle, then a dragon")
    request = dialog.request()
    assert request.params["keyframes"] == [
        {"asset_id": 3, "frame": 0, "action": "zoom_in"},
        {"asset_id": 4, "frame": 20},
    ]


def test_a_provider_without_an_account_says_so(qtbot: QtBot) -> None:
    choices = [
        c
        if c.provider_id != "sora"
        else ProviderChoice(c.provider_id, c.display_name, c.description, c.operations, (), True)
        for c in _choices()
    ]
    dialog = GenerateDialog(choices, [], provider_id="sora")
    qtbot.addWidget(dialog)
    assert "add one in Settings" in dialog.account_box.currentText()
    prompt = dialog.field("prompt")
    assert isinstance(prompt, QPlainTextEdit)
    prompt.setPlainText("x")
    dialog.generate_button.click()
    assert "needs an account" in dialog.errors.text()
