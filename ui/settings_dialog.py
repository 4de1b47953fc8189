"""The Settings dialog: library database, cache, concurrency, age gate, and provider accounts.

It edits a plain ``SettingsValues`` (the window's owner turns it into the app's settings file) and
manages accounts through ``AccountService`` on the core loop. API keys are typed into a password
field and go straight to the OS keyring; the dialog never shows one back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from ui.bridge import CoreBridge

if TYPE_CHECKING:
    from core.embeddings.models import InstallProgress, ModelSpec, ModelStatus
    from core.net.http import SafeHttp
    from core.providers.accounts import AccountInfo, AccountService

GIB = 1024**3


@dataclass(frozen=True)
class SettingsValues:
    database_url: str | None
    cache_dir: Path | None
    default_cache_dir: Path
    cache_max_bytes: int
    provider_concurrency: int
    show_age_restricted: bool


@dataclass(frozen=True)
class ProviderOption:
    provider_id: str
    display_name: str
    requires_account: bool
    default_base_url: str | None = None


class AccountDialog(QDialog):
    """Add or edit one account: provider, name, key (write-only), optional server address."""

    def __init__(
        self,
        providers: Sequence[ProviderOption],
        account: AccountInfo | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Edit Account" if account else "Add Account")
        self.setObjectName("accountDialog")
        self._providers = list(providers)
        self.provider_box = QComboBox()
        for option in self._providers:
            self.provider_box.addItem(option.display_name, option.provider_id)
        self.label_edit = QLineEdit(account.label if account else "")
        self.label_edit.setPlaceholderText("e.g. personal, studio")
        self.key_edit = QLineEdit()
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.key_edit.setObjectName("apiKey")
        self.base_url_edit = QLineEdit(account.base_url or "" if account else "")
        self.base_url_edit.setPlaceholderText("the provider's default address")
        if account is not None:
            self.provider_box.setCurrentIndex(max(0, self.provider_box.findData(account.provider_id)))
            self.provider_box.setEnabled(False)
            self.key_edit.setPlaceholderText(
                "stored in the OS keyring — type a new key to replace it"
                if account.has_key
                else "no key stored"
            )
        self.error = QLabel()
        self.error.setStyleSheet("color: #d04040;")
        self.error.setWordWrap(True)
        self.error.hide()
        form = QFormLayout()
        form.addRow("Provider", self.provider_box)
        form.addRow("Name", self.label_edit)
        form.addRow("API key", self.key_edit)
        form.addRow("Server address", self.base_url_edit)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._check_and_accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.provider_box.currentIndexChanged.connect(self._provider_changed)
        self._editing = account is not None
        self._provider_changed()

    @property
    def provider_id(self) -> str:
        return str(self.provider_box.currentData())

    def _option(self) -> ProviderOption | None:
        index = self.provider_box.currentIndex()
        return self._providers[index] if 0 <= index < len(self._providers) else None

    def _provider_changed(self) -> None:
        option = self._option()
        if option is None:
            return
        if not self._editing:
            self.key_edit.setPlaceholderText("required" if option.requires_account else "not needed")
        if option.default_base_url:
            self.base_url_edit.setPlaceholderText(option.default_base_url)

    def _check_and_accept(self) -> None:
        option = self._option()
        if not self.label_edit.text().strip():
            self._show("Give the account a name.")
        elif option and option.requires_account and not self._editing and not self.key_edit.text().strip():
            self._show(f"A {option.display_name} account needs an API key.")
        else:
            self.accept()

    def _show(self, message: str) -> None:
        self.error.setText(message)
        self.error.show()


class _InstallRelay(QObject):
    """Install progress from the core thread, delivered on the GUI thread (queued)."""

    progress = Signal(object)  # InstallProgress


class ModelsPage(QWidget):
    """Embedding models: the built-in visual signature, and CLIP with its status, Install (progress,
    Cancel) and Remove. Installing and removing run on the core loop; ``models_changed`` tells the
    window to load the new set (the indexer then builds the new model's vectors)."""

    models_changed = Signal()

    def __init__(
        self,
        bridge: CoreBridge,
        data_dir: Path | None,
        http: SafeHttp | None,
        *,
        specs: dict[str, ModelSpec] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("modelsPage")
        self._bridge = bridge
        self._data_dir = data_dir
        self._http = http
        self.specs = specs  # replaces the registry's entries (tests serve the files from a local server)
        self._cancel: asyncio.Event | None = None
        self._relay = _InstallRelay(self)
        self._relay.progress.connect(self._on_progress)
        self.installing = False
        self._note = ""  # what the last action did, shown before the status

        builtin = QLabel(
            "<b>Visual signature</b> — built in, always on<br>"
            "Colour, texture and layout of every picture and scene: finds near-duplicates and "
            "pictures that <i>look</i> alike. Needs no download."
        )
        builtin.setObjectName("visualSignatureInfo")
        builtin.setWordWrap(True)
        self.clip_title = QLabel("<b>CLIP ViT-B/32</b> (OpenAI weights, ONNX)")
        self.clip_about = QLabel(
            "Finds pictures by what they show, searches by description (the search field's "
            "Describe mode) and suggests a domain, category and rating. About 605 MB, downloaded "
            "only when you press Install and verified by its published hash."
        )
        self.clip_about.setWordWrap(True)
        self.clip_status = QLabel("Checking…")
        self.clip_status.setObjectName("clipStatus")
        self.clip_status.setWordWrap(True)
        self.clip_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setObjectName("clipProgress")
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.install_button = QPushButton("Install")
        self.install_button.setObjectName("installClip")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelClipInstall")
        self.cancel_button.hide()
        self.remove_button = QPushButton("Remove")
        self.remove_button.setObjectName("removeClip")
        self.install_button.clicked.connect(self.install)
        self.cancel_button.clicked.connect(self.cancel)
        self.remove_button.clicked.connect(self.remove)
        buttons = QHBoxLayout()
        buttons.addWidget(self.install_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(builtin)
        layout.addSpacing(12)
        layout.addWidget(self.clip_title)
        layout.addWidget(self.clip_about)
        layout.addWidget(self.clip_status)
        layout.addWidget(self.progress)
        layout.addLayout(buttons)
        layout.addStretch(1)
        if data_dir is None:
            self.clip_status.setText("Models can be managed once PixSim has started.")
            for button in (self.install_button, self.remove_button):
                button.setEnabled(False)
        else:
            self.refresh()

    def _call(
        self, coro: Any, on_done: Callable[[Any], None], on_error: Callable[[BaseException], None]
    ) -> None:
        """A core call whose answer is dropped if this page was closed (deleted) meanwhile."""
        self._bridge.call(
            coro,
            lambda result: on_done(result) if isValid(self) else None,
            lambda error: on_error(error) if isValid(self) else None,
        )

    def refresh(self) -> None:
        data_dir = self._data_dir
        if data_dir is None:
            return

        async def status() -> list[ModelStatus]:
            from core.embeddings.models import model_status

            return await asyncio.to_thread(model_status, data_dir)

        self._call(status(), self._show_status, lambda e: self.clip_status.setText(str(e)))

    def _show_status(self, statuses: list[ModelStatus]) -> None:
        clip = next((s for s in statuses if s.spec.name == "clip"), None)
        if clip is None or self.installing:
            return
        if not clip.installed:
            size = clip.spec.download_size / 1e6
            text = f"Not installed (download about {size:,.0f} MB). Or run `pixsim models install clip`."
        elif clip.unverified_files:
            text = (
                f"Installed ({clip.size_on_disk / 1e6:,.0f} MB, {clip.path}); unverified tokenizer files: "
                f"{', '.join(clip.unverified_files)} (no published hash exists; their hash is recorded)."
            )
        else:
            text = f"Installed and verified ({clip.size_on_disk / 1e6:,.0f} MB, {clip.path})."
        self.clip_status.setText(f"{self._note} {text}".strip())
        self.install_button.setText("Reinstall" if clip.installed else "Install")
        self.install_button.setEnabled(True)
        self.remove_button.setEnabled(clip.installed)

    def install(self) -> None:
        if self._data_dir is None or self._http is None or self.installing:
            return
        data_dir, http, relay = self._data_dir, self._http, self._relay
        spec = self.specs.get("clip") if self.specs else None
        cancel = asyncio.Event()
        self._cancel = cancel

        async def run() -> Path | None:
            from core.embeddings.models import install_model
            from core.errors import TransferCancelled

            try:
                return await install_model("clip", data_dir, http, relay.progress.emit, cancel, spec=spec)
            except TransferCancelled:
                return None

        self.installing = True
        self.progress.setRange(0, 0)
        self.progress.setFormat("Starting…")
        self.progress.show()
        self.install_button.setEnabled(False)
        self.remove_button.setEnabled(False)
        self.cancel_button.show()
        self.cancel_button.setEnabled(True)
        self.clip_status.setText("Downloading CLIP…")
        self._call(run(), self._installed, self._install_failed)

    def _on_progress(self, event: InstallProgress) -> None:
        if not self.installing:
            return
        if event.bytes_total:
            self.progress.setRange(0, 1000)
            self.progress.setValue(round(1000 * event.bytes_done / event.bytes_total))
            self.progress.setFormat(
                f"%p% · file {event.file_index} of {event.file_count} · {event.bytes_done / 1e6:,.0f} MB"
            )
        else:
            self.progress.setFormat(f"file {event.file_index} of {event.file_count}: {event.file}")

    def cancel(self) -> None:
        if self._cancel is not None:
            self.cancel_button.setEnabled(False)
            self._bridge.call(_set_event(self._cancel), lambda _: None)

    def _finish(self) -> None:
        self.installing = False
        self._cancel = None
        self.progress.hide()
        self.cancel_button.hide()

    def _installed(self, folder: Path | None) -> None:
        self._finish()
        if folder is None:
            self._note = "Install cancelled; nothing was kept."
            self.install_button.setEnabled(True)
            self.clip_status.setText(self._note)
            self.refresh()
            return
        self._note = ""
        self.refresh()
        self.models_changed.emit()

    def _install_failed(self, error: BaseException) -> None:
        self._finish()
        self._note = ""
        self.install_button.setEnabled(True)
        self.clip_status.setText(f"Not installed: {error}")
        self.clip_status.setStyleSheet("color: #d04040;")

    def remove(self) -> None:
        data_dir = self._data_dir
        if data_dir is None or self.installing:
            return

        async def run() -> bool:
            from core.embeddings.models import remove_model

            return await asyncio.to_thread(remove_model, "clip", data_dir)

        self.remove_button.setEnabled(False)

        def removed(_: bool) -> None:
            self._note = ""
            self.clip_status.setStyleSheet("")
            self.refresh()
            self.models_changed.emit()

        self._call(run(), removed, lambda e: self.clip_status.setText(f"Not removed: {e}"))


async def _set_event(event: asyncio.Event) -> None:
    event.set()


class SettingsDialog(QDialog):
    settings_saved = Signal(object)  # SettingsValues
    models_changed = Signal()  # a model was installed or removed: load the new set

    def __init__(
        self,
        values: SettingsValues,
        *,
        accounts: AccountService | None,
        bridge: CoreBridge,
        providers: Sequence[ProviderOption] = (),
        data_dir: Path | None = None,
        http: SafeHttp | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("settingsDialog")
        self.setWindowTitle("Settings")
        self.setMinimumSize(640, 440)
        self._values = values
        self._accounts = accounts
        self._bridge = bridge
        self._providers = list(providers)
        self._rows: list[AccountInfo] = []

        self.tabs = QTabWidget()
        self.tabs.addTab(self._general_page(), "General")
        self.tabs.addTab(self._storage_page(), "Storage")
        self.tabs.addTab(self._database_page(), "Database")
        self.tabs.addTab(self._accounts_page(), "Accounts")
        self.models_page = ModelsPage(bridge, data_dir, http)
        self.models_page.models_changed.connect(self.models_changed)
        self.tabs.addTab(self.models_page, "Models")
        self.restart_note = QLabel()
        self.restart_note.setWordWrap(True)
        self.restart_note.setStyleSheet("color: palette(placeholder-text);")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.restart_note)
        layout.addWidget(buttons)
        self.refresh_accounts()

    # -- pages ----------------------------------------------------------------------------------

    def _general_page(self) -> QWidget:
        page = QWidget()
        self.age_gate = QCheckBox("Show age-restricted assets in the library")
        self.age_gate.setObjectName("showAgeRestricted")
        self.age_gate.setChecked(self._values.show_age_restricted)
        self.concurrency = QSpinBox()
        self.concurrency.setObjectName("providerConcurrency")
        self.concurrency.setRange(1, 32)
        self.concurrency.setValue(self._values.provider_concurrency)
        form = QFormLayout(page)
        form.addRow(self.age_gate)
        form.addRow("Transfers and jobs at once, per provider", self.concurrency)
        return page

    def _storage_page(self) -> QWidget:
        page = QWidget()
        self.cache_dir = QLineEdit(str(self._values.cache_dir) if self._values.cache_dir else "")
        self.cache_dir.setObjectName("cacheDir")
        self.cache_dir.setPlaceholderText(str(self._values.default_cache_dir))
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._choose_cache_dir)
        row = QHBoxLayout()
        row.addWidget(self.cache_dir, 1)
        row.addWidget(browse)
        self.cache_cap = QDoubleSpinBox()
        self.cache_cap.setObjectName("cacheCap")
        self.cache_cap.setRange(0.5, 100_000)
        self.cache_cap.setDecimals(1)
        self.cache_cap.setSuffix(" GiB")
        self.cache_cap.setValue(self._values.cache_max_bytes / GIB)
        note = QLabel(
            "Downloaded copies beyond the cap are removed, least recently used first. Files that are the "
            "only copy of an asset (your imports, results whose links expired) are library storage and "
            "are never removed."
        )
        note.setWordWrap(True)
        form = QFormLayout(page)
        form.addRow("Cache folder", row)
        form.addRow("Cache size cap", self.cache_cap)
        form.addRow(note)
        return page

    def _database_page(self) -> QWidget:
        page = QWidget()
        self.embedded = QRadioButton("Embedded (this computer only; nothing to set up)")
        self.server = QRadioButton("A PostgreSQL server shared with your team")
        group = QButtonGroup(page)
        group.addButton(self.embedded)
        group.addButton(self.server)
        self.database_url = QLineEdit(self._values.database_url or "")
        self.database_url.setObjectName("databaseUrl")
        self.database_url.setPlaceholderText("postgresql://user@host:5432/pixsim")
        (self.server if self._values.database_url else self.embedded).setChecked(True)
        self.database_url.setEnabled(self.server.isChecked())
        self.server.toggled.connect(self.database_url.setEnabled)
        note = QLabel("The server needs the pgvector extension. A change takes effect at the next start.")
        note.setWordWrap(True)
        layout = QVBoxLayout(page)
        layout.addWidget(self.embedded)
        layout.addWidget(self.server)
        layout.addWidget(self.database_url)
        layout.addWidget(note)
        layout.addStretch(1)
        return page

    def _accounts_page(self) -> QWidget:
        page = QWidget()
        self.accounts_table = QTableWidget(0, 4)
        self.accounts_table.setObjectName("accountsTable")
        self.accounts_table.setHorizontalHeaderLabels(["Provider", "Name", "Key", "Last check"])
        self.accounts_table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.accounts_table.verticalHeader().hide()
        self.accounts_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.accounts_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.accounts_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.add_button = QPushButton("Add…")
        self.edit_button = QPushButton("Edit…")
        self.check_button = QPushButton("Check Key")
        self.remove_button = QPushButton("Remove")
        self.add_button.clicked.connect(self._add_account)
        self.edit_button.clicked.connect(self._edit_account)
        self.check_button.clicked.connect(self._check_account)
        self.remove_button.clicked.connect(self._remove_account)
        self.accounts_status = QLabel()
        self.accounts_status.setWordWrap(True)
        buttons = QHBoxLayout()
        for button in (self.add_button, self.edit_button, self.check_button, self.remove_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(page)
        layout.addWidget(self.accounts_table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.accounts_status)
        enabled = self._accounts is not None
        for button in (self.add_button, self.edit_button, self.check_button, self.remove_button):
            button.setEnabled(enabled)
        if not enabled:
            self.accounts_status.setText("Accounts become available once the providers have loaded.")
        return page

    # -- accounts ---------------------------------------------------------------------------------

    def refresh_accounts(self) -> None:
        if self._accounts is not None:
            self._run(self._accounts.list(), self._show_accounts)

    def _show_accounts(self, rows: list[AccountInfo]) -> None:
        self._rows = rows
        names = {p.provider_id: p.display_name for p in self._providers}
        self.accounts_table.setRowCount(len(rows))
        for index, info in enumerate(rows):
            if info.last_check_ok is None:
                check = "not checked yet"
            else:
                check = ("✓ " if info.last_check_ok else "✗ ") + (info.last_check_message or "")
            cells = [
                names.get(info.provider_id, info.provider_id),
                info.label + ("" if info.enabled else " (disabled)"),
                "in OS keyring" if info.has_key else "—",
                check,
            ]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                item.setData(Qt.ItemDataRole.UserRole, info.id)
                self.accounts_table.setItem(index, column, item)

    def selected_account(self) -> AccountInfo | None:
        rows = self.accounts_table.selectionModel().selectedRows()
        return self._rows[rows[0].row()] if rows else None

    def account_dialog(self, account: AccountInfo | None = None) -> AccountDialog:
        return AccountDialog(self._providers, account, self)

    def _add_account(self) -> None:
        dialog = self.account_dialog()
        dialog.accepted.connect(lambda: self.submit_account_dialog(dialog, None))
        dialog.open()

    def _edit_account(self) -> None:
        account = self.selected_account()
        if account is None:
            return
        dialog = self.account_dialog(account)
        dialog.accepted.connect(lambda: self.submit_account_dialog(dialog, account))
        dialog.open()

    def submit_account_dialog(self, dialog: AccountDialog, account: AccountInfo | None) -> None:
        assert self._accounts is not None
        key = dialog.key_edit.text().strip() or None
        base_url = dialog.base_url_edit.text().strip()
        label = dialog.label_edit.text().strip()
        dialog.key_edit.clear()  # the key leaves the widget at once
        if account is None:
            coro = self._accounts.add(dialog.provider_id, label, api_key=key, base_url=base_url or None)
        else:
            coro = self._accounts.edit(account.id, label=label, api_key=key, base_url=base_url)
        self._run(coro, lambda info: self._after_change(f"Saved {info.label}."))

    def _check_account(self) -> None:
        account = self.selected_account()
        if account is None or self._accounts is None:
            return
        self.accounts_status.setText(f"Checking {account.label}…")
        self._run(self._accounts.check(account.id), self._after_check)

    def _after_check(self, info: AccountInfo) -> None:
        verdict = "works" if info.last_check_ok else "failed"
        self._after_change(f"{info.label}: the key {verdict}. {info.last_check_message or ''}".strip())

    def _remove_account(self) -> None:
        account = self.selected_account()
        if account is None or self._accounts is None:
            return
        self._run(
            self._accounts.remove(account.id),
            lambda info: self._after_change(f"Removed {info.label} and its key from the keyring."),
        )

    def _after_change(self, message: str) -> None:
        self.accounts_status.setText(message)
        self.refresh_accounts()

    def _run(self, coro: Any, on_done: Callable[[Any], None]) -> None:
        self._bridge.call(coro, on_done, lambda error: self.accounts_status.setText(str(error)))

    # -- saving -----------------------------------------------------------------------------------

    def _choose_cache_dir(self) -> None:
        dialog = QFileDialog(
            self, "Cache folder", self.cache_dir.text() or str(self._values.default_cache_dir)
        )
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.fileSelected.connect(self.cache_dir.setText)
        dialog.open()

    def values(self) -> SettingsValues:
        url = self.database_url.text().strip() if self.server.isChecked() else ""
        folder = self.cache_dir.text().strip()
        return replace(
            self._values,
            database_url=url or None,
            cache_dir=Path(folder) if folder else None,
            cache_max_bytes=int(self.cache_cap.value() * GIB),
            provider_concurrency=self.concurrency.value(),
            show_age_restricted=self.age_gate.isChecked(),
        )

    def done(self, result: int) -> None:
        if self.models_page.installing:
            self.models_page.cancel()  # closing the dialog stops a download; nothing half is kept
        super().done(result)

    def _save(self) -> None:
        values = self.values()
        if values.database_url is not None and not values.database_url.startswith(
            ("postgresql://", "postgres://")
        ):
            self.tabs.setCurrentIndex(2)
            self.restart_note.setText("The server address must start with postgresql://")
            return
        self.settings_saved.emit(values)
        self.accept()
