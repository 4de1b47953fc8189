"""Settings: values come back as edited; accounts are added, checked and removed through the keyring."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from core.net.http import SafeHttp
from core.providers.accounts import KEYRING_SERVICE, AccountService
from core.providers.registry import ProviderRegistry
from core.runtime import CoreLoop
from tests.memory_keyring import MemoryKeyring
from tests.ui.conftest import Library
from ui.bridge import CoreBridge
from ui.settings_dialog import GIB, ProviderOption, SettingsDialog, SettingsValues

VALUES = SettingsValues(
    database_url=None,
    cache_dir=None,
    default_cache_dir=Path("/tmp/pixsim-cache"),
    cache_max_bytes=20 * GIB,
    provider_concurrency=4,
    show_age_restricted=False,
)
PROVIDERS = [
    ProviderOption("sandbox", "Sandbox", requires_account=False),
    ProviderOption("pixverse", "Pixverse", requires_account=True),
]


@pytest.fixture
def accounts(core: CoreLoop, library: Library, memory_keyring: MemoryKeyring) -> Iterator[AccountService]:
    async def build() -> tuple[SafeHttp, AccountService]:
        http = SafeHttp()
        return http, AccountService(library.sessions, ProviderRegistry.from_entry_points(), http)

    http, service = core.run(build(), timeout=30)
    yield service
    core.run(http.aclose(), timeout=10)


def _cell(dialog: SettingsDialog, row: int, column: int) -> str:
    item = dialog.accounts_table.item(row, column)
    return item.text() if item is not None else ""


def _row_named(dialog: SettingsDialog, label: str) -> int:
    return next(r for r in range(dialog.accounts_table.rowCount()) if _cell(dialog, r, 1) == label)


def test_values_come_back_as_edited(qtbot: QtBot, core: CoreLoop) -> None:
    dialog = SettingsDialog(VALUES, accounts=None, bridge=CoreBridge(core), providers=PROVIDERS)
    qtbot.addWidget(dialog)
    dialog.age_gate.setChecked(True)
    dialog.concurrency.setValue(2)
    dialog.cache_cap.setValue(5)
    dialog.server.setChecked(True)
    dialog.database_url.setText("not a url")
    saved: list[SettingsValues] = []
    dialog.settings_saved.connect(saved.append)
    dialog._save()
    assert saved == [] and "postgresql://" in dialog.restart_note.text()
    dialog.database_url.setText("postgresql://alice@db.studio.lan/pixsim")
    dialog._save()
    (values,) = saved
    assert values.show_age_restricted and values.provider_concurrency == 2
    assert (
        values.cache_max_bytes == 5 * GIB and values.database_url == "postgresql://alice@db.studio.lan/pixsim"
    )
    assert "Accounts become available" in dialog.accounts_status.text()


def test_accounts_are_added_checked_and_removed(
    qtbot: QtBot, core: CoreLoop, accounts: AccountService, memory_keyring: MemoryKeyring
) -> None:
    dialog = SettingsDialog(VALUES, accounts=accounts, bridge=CoreBridge(core), providers=PROVIDERS)
    qtbot.addWidget(dialog)
    add = dialog.account_dialog()
    add.provider_box.setCurrentIndex(add.provider_box.findData("pixverse"))
    add.label_edit.setText("studio")
    add.key_edit.setText("pv-secret-123")
    dialog.submit_account_dialog(add, None)
    assert add.key_edit.text() == ""  # the key left the widget at once
    qtbot.waitUntil(lambda: dialog.accounts_table.rowCount() == 1, timeout=10_000)
    assert [_cell(dialog, 0, c) for c in range(3)] == ["Pixverse", "studio", "in OS keyring"]
    assert list(memory_keyring._secrets) and KEYRING_SERVICE in next(iter(memory_keyring._secrets))
    assert "pv-secret-123" in memory_keyring._secrets.values()

    sandbox = dialog.account_dialog()
    sandbox.label_edit.setText("offline")
    dialog.submit_account_dialog(sandbox, None)
    qtbot.waitUntil(lambda: dialog.accounts_table.rowCount() == 2, timeout=10_000)
    dialog.accounts_table.selectRow(_row_named(dialog, "offline"))
    dialog.check_button.click()
    qtbot.waitUntil(lambda: "the key works" in dialog.accounts_status.text(), timeout=10_000)

    dialog.accounts_table.selectRow(_row_named(dialog, "studio"))
    dialog.remove_button.click()
    qtbot.waitUntil(lambda: dialog.accounts_table.rowCount() == 1, timeout=10_000)
    assert "pv-secret-123" not in memory_keyring._secrets.values()


def test_a_keyed_provider_needs_a_key_before_the_dialog_closes(qtbot: QtBot, core: CoreLoop) -> None:
    dialog = SettingsDialog(VALUES, accounts=None, bridge=CoreBridge(core), providers=PROVIDERS)
    qtbot.addWidget(dialog)
    add = dialog.account_dialog()
    add.provider_box.setCurrentIndex(add.provider_box.findData("pixverse"))
    add.label_edit.setText("studio")
    add._check_and_accept()
    assert add.result() == 0 and "needs an API key" in add.error.text()
