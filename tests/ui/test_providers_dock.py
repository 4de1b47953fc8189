"""Provider drop targets: dropping library assets on an account asks for them on that provider."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, Qt
from pytestqt.modeltest import ModelTester

from ui.providers_dock import ProviderTarget, ProviderTargetsModel, asset_ids_mime

TARGETS = [
    ProviderTarget("sandbox", "Sandbox", None, None, can_upload=True),
    ProviderTarget("pixverse", "Pixverse", 3, "studio", can_upload=True),
    ProviderTarget("sora", "OpenAI Sora", 4, "main", can_upload=False),
]


def test_model_passes_the_model_tester(qtmodeltester: ModelTester) -> None:
    model = ProviderTargetsModel()
    model.set_targets(TARGETS)
    qtmodeltester.check(model)
    assert model.data(model.index(1, 0)) == "Pixverse · studio"


def test_a_drop_of_assets_requests_a_push_to_that_account() -> None:
    model = ProviderTargetsModel()
    model.set_targets(TARGETS)
    pushes: list[tuple[list[int], ProviderTarget]] = []
    model.push_requested.connect(lambda ids, target: pushes.append((ids, target)))
    assert model.dropMimeData(asset_ids_mime([12, 15]), Qt.DropAction.CopyAction, -1, -1, model.index(1, 0))
    assert pushes == [([12, 15], TARGETS[1])]


def test_drops_that_cannot_work_are_refused() -> None:
    model = ProviderTargetsModel()
    model.set_targets(TARGETS)
    plain = QMimeData()
    plain.setText("12")
    sora = model.index(2, 0)
    assert not model.canDropMimeData(asset_ids_mime([12]), Qt.DropAction.CopyAction, -1, -1, sora)
    assert not model.flags(sora) & Qt.ItemFlag.ItemIsDropEnabled
    assert not model.dropMimeData(plain, Qt.DropAction.CopyAction, -1, -1, model.index(0, 0))
