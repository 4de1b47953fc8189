"""The main window: library area, menus, and a status bar naming the database in use."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, QSize, Qt
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QLabel,
    QListView,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QWidget,
)

from core.library import LibraryService
from resources import resource_path
from ui.bridge import CoreBridge
from ui.empty_state import EmptyLibraryView
from ui.models.asset_list import AssetListModel

APP_TITLE = "PixSim"


class MainWindow(QMainWindow):
    def __init__(
        self,
        *,
        library: LibraryService,
        bridge: CoreBridge,
        database_description: str,
        state_file: Path | None = None,
        version: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowTitle(APP_TITLE)
        self.setWindowIcon(QIcon(str(resource_path("icons", "pixsim.svg"))))
        self._library = library
        self._bridge = bridge
        self._version = version
        self._state = QSettings(str(state_file), QSettings.Format.IniFormat) if state_file else None
        self.asset_count: int | None = None

        self.empty_view = EmptyLibraryView()
        self.asset_model = AssetListModel(library, bridge)
        self.asset_view = QListView()
        self.asset_view.setObjectName("assetList")
        self.asset_view.setModel(self.asset_model)
        self.asset_view.setUniformItemSizes(True)
        self.asset_view.setIconSize(QSize(24, 24))
        self.asset_view.setSelectionMode(QListView.SelectionMode.ExtendedSelection)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty_view)
        self.stack.addWidget(self.asset_view)
        self.setCentralWidget(self.stack)

        self.database_label = QLabel(f"Database: {database_description}")
        self.database_label.setObjectName("databaseLabel")
        self.database_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.count_label = QLabel("Loading library…")
        self.count_label.setObjectName("assetCountLabel")
        self.statusBar().addPermanentWidget(self.count_label)
        self.statusBar().addPermanentWidget(self.database_label)

        self._build_menus()
        bridge.operation_failed.connect(self._show_error)
        self._restore_state()
        self.refresh()

    # -- library ---------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Recount the library and reload the list (File → Refresh, after imports and jobs)."""
        self.asset_model.reset()
        self._bridge.call(self._library.count_assets(), self._on_count)

    def _on_count(self, count: int) -> None:
        self.asset_count = count
        self.count_label.setText("No assets" if count == 0 else f"{count:,} asset{'s' if count != 1 else ''}")
        if count == 0:
            self.stack.setCurrentWidget(self.empty_view)
        else:
            self.stack.setCurrentWidget(self.asset_view)
            self.asset_model.fetchMore()

    def _show_error(self, message: str) -> None:
        self.statusBar().showMessage(message, 10_000)

    # -- menus -----------------------------------------------------------------------------------

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.refresh_action = QAction("&Refresh Library", self)
        self.refresh_action.setShortcut(QKeySequence.StandardKey.Refresh)
        self.refresh_action.triggered.connect(self.refresh)
        file_menu.addAction(self.refresh_action)
        file_menu.addSeparator()
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)

        view_menu = self.menuBar().addMenu("&View")
        status_action = QAction("&Status Bar", self, checkable=True, checked=True)
        status_action.toggled.connect(self.statusBar().setVisible)
        view_menu.addAction(status_action)

        help_menu = self.menuBar().addMenu("&Help")
        about_action = QAction("&About PixSim", self)
        about_action.setMenuRole(QAction.MenuRole.AboutRole)
        about_action.triggered.connect(self._show_about)
        help_menu.addAction(about_action)

    def _show_about(self) -> None:
        box = QMessageBox(self)
        box.setWindowTitle("About PixSim")
        box.setIconPixmap(self.windowIcon().pixmap(64, 64))
        box.setText(f"<b>PixSim</b> {self._version}")
        box.setInformativeText(
            "One library for every AI-generated asset, usable on every provider.<br><br>"
            + self.database_label.text()
        )
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()  # never exec(): a nested loop would stall qasync tasks

    # -- window state ----------------------------------------------------------------------------

    def _restore_state(self) -> None:
        geometry = self._state.value("geometry") if self._state is not None else None
        if geometry is None:
            self.resize(1200, 780)
            return
        self.restoreGeometry(geometry)
        state = self._state.value("windowState") if self._state is not None else None
        if state is not None:
            self.restoreState(state)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._state is not None:
            self._state.setValue("geometry", self.saveGeometry())
            self._state.setValue("windowState", self.saveState())
            self._state.sync()
        super().closeEvent(event)
