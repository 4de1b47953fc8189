"""The main window: the library grid with its filter bar, and docks for providers, the inspector and
the transfers & jobs panel. Menus and toolbar reach import, generate, the demo library and settings.

The window is shown before the core services exist (start-up stays fast); ``attach_services`` wires
the rest in when the app has built them on the core loop.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPoint,
    QSettings,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QFrame,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from core.db.enums import MediaType
from core.library import AssetCard, LibraryQuery, LibraryService, SimilarTo
from core.providers.base import ProviderReference, SupportsGenerate, SupportsUpload
from resources import resource_path
from ui.activity import INDEX_KEY, ActivityModel, ActivityPanel, ActivityRow, CoreEvents
from ui.bridge import CoreBridge
from ui.context import WindowServices
from ui.empty_state import EmptyLibraryView
from ui.filter_bar import FilterBar
from ui.generate_dialog import GenerateDialog, GenerateRequest, InputAsset, ProviderChoice
from ui.inspector import Inspector
from ui.library_grid import THUMB_BOX, AssetGridModel, AssetGridView, GridThumbnails
from ui.providers_dock import ProvidersPanel, ProviderTarget, ProviderTargetsModel
from ui.settings_dialog import ProviderOption, SettingsDialog, SettingsValues
from ui.thumbnail_cache import ThumbnailCache
from ui.thumbnail_loader import CoreThumbnails

if TYPE_CHECKING:
    from core.demo import DemoProgress, DemoReport
    from core.embeddings.base import Embedder
    from core.embeddings.duplicates import DuplicateSummary
    from core.importer import ImportProgress, ImportReport
    from core.jobs.service import JobEvent, JobSummary
    from core.providers.accounts import AccountInfo
    from ui.lineage_view import LineageView

APP_TITLE = "PixSim"
VISUAL_SIGNATURE = "pixsim/visual-signature@1"  # core.embeddings.visual's model id (no weights needed)
DUPLICATES_KEY = "duplicates"


class _Relay(QObject):
    """Progress callbacks from the core thread, delivered on the GUI thread (queued signals)."""

    import_progress = Signal(object)
    demo_progress = Signal(object)
    duplicates_progress = Signal(int, int)


class MainWindow(QMainWindow):
    settings_changed = Signal(object)  # SettingsValues, for the app to save

    def __init__(
        self,
        *,
        library: LibraryService,
        bridge: CoreBridge,
        database_description: str,
        state_file: Path | None = None,
        version: str = "",
        settings: SettingsValues | None = None,
        thumbnail_budget_bytes: int | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowTitle(APP_TITLE)
        self.setWindowIcon(QIcon(str(resource_path("icons", "pixsim.svg"))))
        self._library = library
        self._bridge = bridge
        self._version = version
        self._settings = settings
        self._state = QSettings(str(state_file), QSettings.Format.IniFormat) if state_file else None
        self.services: WindowServices | None = None
        self.asset_count: int | None = None
        self._relay = _Relay(self)
        self._accounts: list[AccountInfo] = []
        self._import_runs = 0
        self._reselect: set[int] = set()
        self.demo_scale = 1.0  # the share of optional demo items (tests build the essential ones only)
        # Embedders loaded from the data directory (visual signature, CLIP when installed).
        self.embedders: list[Embedder] = []
        self._duplicates_cancel: asyncio.Event | None = None
        include_gated = settings.show_age_restricted if settings else False

        # Library: filter bar over the grid (or the empty state).
        self.filter_bar = FilterBar(bridge, library, stack_duplicates=True)
        self.filter_bar.set_age_gate(include_gated)
        cache = ThumbnailCache(thumbnail_budget_bytes) if thumbnail_budget_bytes else ThumbnailCache()
        self.asset_model = AssetGridModel(library, bridge, cache)
        self.asset_view = AssetGridView()
        self.asset_view.setModel(self.asset_model)
        self.empty_view = EmptyLibraryView()
        self.demo_button = QPushButton("Load Demo Library")
        self.demo_button.setObjectName("loadDemoButton")
        self.demo_button.setToolTip("About 30 assets made offline by the Sandbox: lineage, a branch, clips.")
        self.import_button = QPushButton("Import Files…")
        self.empty_view.add_actions([self.import_button, self.demo_button])
        # Scrollable so the explanation never sets the window's minimum height on a small screen.
        self.empty_page = QScrollArea()
        self.empty_page.setObjectName("emptyPage")
        self.empty_page.setWidgetResizable(True)
        self.empty_page.setFrameShape(QFrame.Shape.NoFrame)
        self.empty_page.setWidget(self.empty_view)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty_page)
        self.stack.addWidget(self.asset_view)
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(6, 6, 6, 0)
        column.setSpacing(6)
        # The bar may be narrower than its controls on a small window rather than widen the window.
        self.filter_bar.setSizePolicy(
            QSizePolicy.Policy.Ignored, self.filter_bar.sizePolicy().verticalPolicy()
        )
        column.addWidget(self.filter_bar)
        column.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        # Docks.
        self.inspector = Inspector(bridge, library, include_gated)
        self.targets_model = ProviderTargetsModel(self)
        self.providers_panel = ProvidersPanel(self.targets_model)
        self.activity_model = ActivityModel(self)
        self.activity_panel = ActivityPanel(self.activity_model)
        self.events = CoreEvents(self)
        self.providers_dock = self._dock(
            "Providers", "providersDock", self.providers_panel, Qt.DockWidgetArea.LeftDockWidgetArea
        )
        self.inspector_dock = self._dock(
            "Inspector", "inspectorDock", self.inspector, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.activity_dock = self._dock(
            "Transfers and Jobs", "activityDock", self.activity_panel, Qt.DockWidgetArea.BottomDockWidgetArea
        )
        # The lineage graph follows the grid's selection; it shares the grid's thumbnail cache. Its
        # view (numpy, the layout code) is built the first time the tab is shown, not at start-up.
        self._thumbnail_cache = cache
        self._thumbnails: CoreThumbnails | None = None
        self.lineage_view: LineageView | None = None
        self.lineage_dock = self._dock(
            "Lineage", "lineageDock", QWidget(), Qt.DockWidgetArea.BottomDockWidgetArea
        )
        self.lineage_dock.visibilityChanged.connect(lambda shown: shown and self._ensure_lineage_view())
        self.tabifyDockWidget(self.activity_dock, self.lineage_dock)
        self.activity_dock.raise_()

        # Status bar.
        self.database_label = QLabel(f"Database: {database_description}")
        self.database_label.setObjectName("databaseLabel")
        self.database_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.count_label = QLabel("Loading library…")
        self.count_label.setObjectName("assetCountLabel")
        self.busy = QProgressBar()
        self.busy.setMaximumWidth(180)
        self.busy.setTextVisible(True)
        self.busy.hide()
        self.statusBar().addPermanentWidget(self.busy)
        self.statusBar().addPermanentWidget(self.count_label)
        self.statusBar().addPermanentWidget(self.database_label)

        self._reload_timer = QTimer(self)
        self._reload_timer.setSingleShot(True)
        self._reload_timer.setInterval(400)
        self._reload_timer.timeout.connect(self.refresh)

        self._build_actions()
        self._connect()
        self._restore_state()
        self.refresh()

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    # -- wiring ---------------------------------------------------------------------------------

    def _connect(self) -> None:
        self._bridge.operation_failed.connect(self._show_error)
        self.filter_bar.query_changed.connect(self._query_changed)
        self.asset_model.count_changed.connect(self._on_filtered_count)
        self.asset_model.load_failed.connect(self._show_error)
        self.asset_model.page_loaded.connect(self._restore_selection)
        self.asset_view.selectionModel().selectionChanged.connect(self._selection_changed)
        self.asset_view.files_dropped.connect(self.import_paths)
        self.asset_view.visible_rows_changed.connect(self.asset_model.keep_requests_near)
        self.asset_view.doubleClicked.connect(self._activated)
        self.asset_view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.asset_view.customContextMenuRequested.connect(self._grid_menu)
        self.inspector.story_requested.connect(self.open_story_editor_for)
        self.inspector.scene_requested.connect(self.open_story_editor_for)
        self.inspector.similar_requested.connect(self.find_similar_to_asset)
        self.inspector.navigate_requested.connect(self.reveal_asset)
        self.inspector.asset_changed.connect(lambda _: self._reload_timer.start())
        self.inspector.assets_changed.connect(lambda _: self._reload_timer.start())
        self.targets_model.push_requested.connect(self.push_assets)
        self.activity_panel.cancel_requested.connect(self._cancel_activity)
        self.activity_panel.retry_requested.connect(self._retry_activity)
        self.activity_panel.open_requested.connect(self.reveal_asset)
        self.events.transfer_did_progress.connect(self.activity_model.on_transfer)
        self.events.job_did_change.connect(self._on_job_event)
        self.events.index_did_progress.connect(self._on_index_event)
        self._relay.duplicates_progress.connect(self._on_duplicates_progress)
        self._relay.import_progress.connect(self._on_import_progress)
        self._relay.demo_progress.connect(self._on_demo_progress)
        self.demo_button.clicked.connect(self.load_demo_library)
        self.import_button.clicked.connect(self.choose_files_to_import)

    def attach_services(self, services: WindowServices) -> None:
        """The core services are up: providers, jobs, transfers, imports and thumbnails come alive."""
        self.services = services
        thumbnails = CoreThumbnails(services.transfers.store, services.thumbnails, THUMB_BOX)
        keyframes = services.segments.keyframe_file if services.segments is not None else None
        self.asset_model.set_loader(GridThumbnails(thumbnails, keyframes, THUMB_BOX))
        self._thumbnails = thumbnails
        if self.lineage_view is not None:
            self._attach_lineage(self.lineage_view)
        # Core events arrive on the core thread; the signals queue them to this one.
        services.transfers.events.subscribe(self.events.transfer_did_progress.emit)
        services.jobs.events.subscribe(self.events.job_did_change.emit)
        if services.indexer is not None:
            services.indexer.subscribe(self.events.index_did_progress.emit)
        self.inspector.set_services(services.segments, services.embeddings)
        self.load_embedders(start_indexing=True)
        for action in (self.generate_action, self.import_action, self.import_folder_action, self.demo_action):
            action.setEnabled(True)
        self.find_duplicates_action.setEnabled(services.embeddings is not None)
        self._update_asset_actions()
        self.demo_button.setEnabled(True)
        self.import_button.setEnabled(True)
        self.filter_bar.set_providers([(a.provider_id, a.display_name) for a in services.registry.all()])
        self.inspector.set_provider_names({a.provider_id: a.display_name for a in services.registry.all()})
        self.refresh_providers()
        self._bridge.call(services.jobs.list(limit=50), self._show_jobs)
        from core.demo import demo_present  # the demo's recipe loads only when asked about

        self._bridge.call(demo_present(services.sessions), self._offer_demo)

    # -- similarity ---------------------------------------------------------------------------

    def load_embedders(self, *, start_indexing: bool = False) -> None:
        """Load the installed embedders off the GUI thread (CLIP reads ~600 MB), hand them to the
        indexer (a new model is indexed from scratch), then use them here: describe search, frame
        search, suggestions. ``start_indexing``: the indexer's queue starts afterwards."""
        services = self.services
        if services is None or services.data_dir is None:
            return
        data_dir, indexer = services.data_dir, services.indexer

        async def load() -> list[Embedder]:
            from core.embeddings.models import installed_embedders

            embedders = await asyncio.to_thread(installed_embedders, data_dir)
            if indexer is not None:
                await indexer.set_embedders(embedders)
                if start_indexing:
                    indexer.start()
            return embedders

        self._bridge.call(load(), self.set_embedders, lambda e: self._show_error(f"Models not loaded: {e}"))

    def set_embedders(self, embedders: Sequence[Embedder]) -> None:
        self.embedders = list(embedders)
        self._library.set_embedders(self.embedders)
        self.filter_bar.set_describe_model(self._library.text_model)
        self.inspector.set_text_embedder(next((e for e in self.embedders if e.supports_text), None))

    @property
    def similarity_model(self) -> str:
        """The model find-similar uses: CLIP when it is loaded (likeness of content), else the
        visual signature (likeness of colour, texture and layout)."""
        return self._library.text_model or VISUAL_SIGNATURE

    def find_similar_to_asset(self, asset_id: int, name: str | None = None) -> None:
        """Show assets and scenes like ``asset_id`` in the grid, with the current filters."""
        row = self.asset_model.row_of(asset_id)
        if name is None:
            name = self.asset_model.card(row).display_name if row is not None else f"asset #{asset_id}"
        self.filter_bar.set_similar(SimilarTo(label=name, model=self.similarity_model, asset_id=asset_id))
        self.stack.setCurrentWidget(self.asset_view)

    def find_similar_selected(self) -> None:
        cards = self.selected_cards()
        if len(cards) == 1:
            card = cards[0]
            if card.segment_id is not None:
                label = f"{card.display_name} at {_clock(card.segment_start_sec or 0.0)}"
                self.filter_bar.set_similar(
                    SimilarTo(label=label, model=self.similarity_model, segment_id=card.segment_id)
                )
            else:
                self.find_similar_to_asset(card.id, card.display_name)

    def find_similar_to_frame(self, video_id: int, at_sec: float, name: str = "") -> None:
        """Embed the frame of ``video_id`` at ``at_sec`` (off the GUI thread) and show what looks
        like it. Uses CLIP when it is loaded, else the visual signature."""
        if self.services is None:
            return
        transfers = self.services.transfers
        model = self.similarity_model
        embedder = next((e for e in self.embedders if e.model_id == model), None)

        async def embed() -> tuple[float, ...]:
            from core.embeddings.visual import VisualSignatureEmbedder
            from core.thumbnails import render_frame

            path = await transfers.ensure_local(video_id)
            image = await asyncio.to_thread(render_frame, path, at_sec, 512)
            chosen = embedder or VisualSignatureEmbedder()
            vectors = await asyncio.to_thread(chosen.embed_images, [image.convert("RGB")])
            return tuple(float(v) for v in vectors[0])

        label = f"frame at {_clock(at_sec)} of {name or f'video #{video_id}'}"

        def show(vector: tuple[float, ...]) -> None:
            self.filter_bar.set_similar(SimilarTo(label=label, model=model, vector=vector))
            self.stack.setCurrentWidget(self.asset_view)
            self.raise_()
            self.activateWindow()

        self.statusBar().showMessage(f"Looking for pictures like the {label}…", 4000)
        self._bridge.call(embed(), show, lambda e: self._show_error(f"Find similar failed: {e}"))

    def show_duplicates_of(self, card: AssetCard) -> None:
        if card.duplicate_group_id is not None:
            self.filter_bar.show_duplicate_group(card.duplicate_group_id, card.display_name)

    def find_duplicates(self) -> None:
        """Group near-duplicates by their visual signatures, in the background (cancellable). Groups
        stack in the grid; nothing is ever deleted."""
        services = self.services
        if services is None or services.embeddings is None or self._duplicates_cancel is not None:
            return
        store, sessions, relay = services.embeddings, services.sessions, self._relay
        cancel = asyncio.Event()
        self._duplicates_cancel = cancel

        async def run() -> DuplicateSummary | None:
            from core.embeddings import duplicates
            from core.embeddings.visual import VisualSignatureEmbedder

            embedder = VisualSignatureEmbedder()
            model_id = await store.ensure_model(embedder)
            try:
                return await duplicates.refresh(
                    sessions,
                    model_id,
                    embedder.dimensions,
                    progress=lambda done, total: relay.duplicates_progress.emit(done, total),
                    cancel=cancel,
                )
            except asyncio.CancelledError:
                if cancel.is_set():
                    return None  # the user's Cancel: nothing was stored
                raise

        self.find_duplicates_action.setEnabled(False)
        self.activity_model.upsert(
            ActivityRow(key=DUPLICATES_KEY, title="Find near-duplicates", state="Comparing", progress=None)
        )
        self.activity_dock.show()
        self._bridge.call(run(), self._duplicates_found, self._duplicates_failed)

    def _on_duplicates_progress(self, done: int, total: int) -> None:
        row = self.activity_model.find(DUPLICATES_KEY)
        if row is not None and not row.finished:
            fraction = done / total if total else None
            self.activity_model.upsert(
                replace(row, progress=fraction, detail=f"{done:,} of {total:,} assets")
            )

    def _duplicates_found(self, summary: DuplicateSummary | None) -> None:
        self._duplicates_cancel = None
        self.find_duplicates_action.setEnabled(True)
        if summary is None:
            row = self.activity_model.find(DUPLICATES_KEY)
            if row is not None:
                self.activity_model.upsert(
                    replace(row, state="Cancelled", detail="Nothing was changed", finished=True, failed=True)
                )
            return
        detail = (
            f"{summary.groups} group{'s' if summary.groups != 1 else ''} of near-duplicates "
            f"({summary.assets} assets); nothing was deleted"
        )
        row = self.activity_model.find(DUPLICATES_KEY)
        if row is not None:
            self.activity_model.upsert(replace(row, state="Done", progress=1.0, detail=detail, finished=True))
        self.statusBar().showMessage(f"Find duplicates: {detail}.", 10_000)
        self._library.forget_similar()
        self.refresh()

    def _duplicates_failed(self, error: BaseException) -> None:
        self._duplicates_cancel = None
        self.find_duplicates_action.setEnabled(True)
        row = self.activity_model.find(DUPLICATES_KEY)
        if row is not None:
            self.activity_model.upsert(
                replace(row, state="Failed", detail=str(error), finished=True, failed=True)
            )
        self._show_error(f"Finding duplicates failed: {error}")

    def _on_index_event(self, event: Any) -> None:
        from core.embeddings.indexer import IndexPhase

        self.activity_model.on_index(event)
        stacked = event.duplicates
        if event.phase is IndexPhase.DONE and stacked is not None and stacked.changed:
            self._reload_timer.start()  # new assets joined stacks: the grid shows the stacks
        if event.phase is IndexPhase.DONE and event.total:
            self._library.forget_similar()  # new vectors: the next search sees them
            indexer = self.services.indexer if self.services is not None else None
            if indexer is not None:

                async def unreadable() -> int:
                    return len(indexer.failures)

                self._bridge.call(unreadable(), self._note_index_failures)

    def _note_index_failures(self, count: int) -> None:
        row = self.activity_model.find(INDEX_KEY)
        if count and row is not None and row.finished:
            detail = f"{row.detail} · {count} file{'s' if count != 1 else ''} could not be read (see the log)"
            self.activity_model.upsert(replace(row, detail=detail, failed=True))

    def notify_indexer(self) -> None:
        """New assets (imports, generated results, the demo): the indexer embeds them soon."""
        indexer = self.services.indexer if self.services is not None else None
        if indexer is None:
            return

        async def notify() -> None:
            indexer.notify()

        self._bridge.call(notify(), lambda _: None, lambda _e: None)

    def refresh_providers(self) -> None:
        if self.services is not None:
            self._bridge.call(self.services.accounts.list(), self._show_targets)

    def _show_targets(self, accounts: list[AccountInfo]) -> None:
        assert self.services is not None
        self._accounts = accounts
        targets: list[ProviderTarget] = []
        for adapter in self.services.registry.all():
            uploads = isinstance(adapter, SupportsUpload)
            mine = [a for a in accounts if a.provider_id == adapter.provider_id and a.enabled]
            if mine:
                targets.extend(
                    ProviderTarget(
                        adapter.provider_id, adapter.display_name, a.id, a.label, uploads, adapter.description
                    )
                    for a in mine
                )
            elif not adapter.requires_account:
                targets.append(
                    ProviderTarget(
                        adapter.provider_id, adapter.display_name, None, None, uploads, adapter.description
                    )
                )
        self.targets_model.set_targets(targets)

    def _show_jobs(self, jobs: list[JobSummary]) -> None:
        for job in reversed(jobs):
            self.activity_model.on_job_summary(job)

    def _offer_demo(self, present: bool) -> None:
        self.demo_button.setVisible(not present)
        self.demo_action.setEnabled(not present)

    # -- library --------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Recount the library and reload the grid (File → Refresh, after imports and jobs); the
        selection survives the reload."""
        self._reselect = {c.id for c in self.selected_cards()}
        self._bridge.call(self._library.count_assets(), self._on_count)
        self.asset_model.set_query(self.filter_bar.query())

    def _restore_selection(self, _rows: int) -> None:
        if not self._reselect:
            return
        selection = QItemSelection()
        for asset_id in list(self._reselect):
            row = self.asset_model.row_of(asset_id)
            if row is not None:
                index = self.asset_model.index(row)
                selection.select(index, index)
                self._reselect.discard(asset_id)
        if not selection.isEmpty():
            self.asset_view.selectionModel().select(selection, QItemSelectionModel.SelectionFlag.Select)

    def _query_changed(self, query: LibraryQuery) -> None:
        self.asset_model.set_query(query)

    def _on_count(self, count: int) -> None:
        self.asset_count = count
        self.stack.setCurrentWidget(self.empty_page if count == 0 else self.asset_view)
        self.filter_bar.setEnabled(count > 0)
        self._update_count_label()

    def _on_filtered_count(self, shown: int) -> None:
        self._update_count_label(shown)
        services_library = self._library
        self._bridge.call(services_library.facets(self.asset_model.query), self.filter_bar.set_facets)

    def _update_count_label(self, shown: int | None = None) -> None:
        total = self.asset_count
        if total is None:
            return
        if total == 0:
            text = "No assets"
        elif shown is not None and self.asset_model.query.similar_to is not None:
            text = f"{shown:,} similar (assets and scenes)"
        elif shown is not None and shown != total:
            text = f"{shown:,} of {total:,} assets"
        else:
            text = f"{total:,} asset{'s' if total != 1 else ''}"
        self.count_label.setText(text)

    def selected_cards(self) -> list[AssetCard]:
        rows = sorted(i.row() for i in self.asset_view.selectionModel().selectedIndexes())
        return [self.asset_model.card(r) for r in rows]

    def _selection_changed(self, selected: QItemSelection, deselected: QItemSelection) -> None:
        self._update_asset_actions()
        cards = self.selected_cards()
        if not cards:
            self.inspector.show_nothing()
        elif len(cards) == 1:
            self.inspector.show_asset(cards[0].id)
            self.inspector.set_preview(self.asset_model.cache.get((cards[0].id, "thumb")), cards[0].id)
            if self.lineage_view is not None:
                self.lineage_view.show_asset(cards[0].id)
        else:
            self.inspector.show_many([c.id for c in cards])

    def _ensure_lineage_view(self) -> LineageView:
        """The lineage view, built on first use (the tab shown)."""
        if self.lineage_view is not None:
            return self.lineage_view
        from ui.lineage_view import LineageView

        view = LineageView(self._bridge, cache=self._thumbnail_cache)
        view.include_age_restricted = self._settings.show_age_restricted if self._settings else False
        view.asset_selected.connect(self.reveal_asset)
        view.asset_activated.connect(self.reveal_asset)
        self.lineage_view = view
        self.lineage_dock.setWidget(view)
        if self.services is not None:
            self._attach_lineage(view)
        cards = self.selected_cards()
        if len(cards) == 1:
            view.show_asset(cards[0].id)
        return view

    def _attach_lineage(self, view: LineageView) -> None:
        from core.lineage_graph import LineageGraphService

        assert self.services is not None
        if self._thumbnails is not None:
            view.set_loader(self._thumbnails)
        view.set_service(LineageGraphService(self.services.sessions))

    def _selected_video(self) -> int | None:
        cards = self.selected_cards()
        if len(cards) == 1 and cards[0].media_type is MediaType.VIDEO:
            return cards[0].id
        return None

    def _update_asset_actions(self) -> None:
        self.story_action.setEnabled(self.services is not None and self._selected_video() is not None)
        self.find_similar_action.setEnabled(self.services is not None and len(self.selected_cards()) == 1)

    def _activated(self, index: QModelIndex) -> None:
        """Double-click: a video opens in the story editor (its player); anything else in the inspector."""
        card = self.asset_model.card(index.row())
        if card.media_type is MediaType.VIDEO and self.services is not None:
            self.open_story_editor_for(card.id, card.segment_start_sec)
        else:
            self.inspector_dock.show()

    def _grid_menu(self, pos: QPoint) -> None:
        index = self.asset_view.indexAt(pos)
        if not index.isValid():
            return
        if not self.asset_view.selectionModel().isSelected(index):
            self.asset_view.setCurrentIndex(index)
        menu = QMenu(self)
        card = self.asset_model.card(index.row())
        if card.segment_start_sec is not None:
            scene = menu.addAction(f"Open Scene at {_clock(card.segment_start_sec)}")
            scene.triggered.connect(
                lambda _=False: self.open_story_editor_for(card.id, card.segment_start_sec)
            )
        menu.addAction(self.story_action)
        menu.addAction(self.find_similar_action)
        if card.stack_size > 1 and card.duplicate_group_id is not None:
            shown = menu.addAction(f"Show Duplicates ({card.stack_size})")
            shown.setObjectName("showDuplicates")
            shown.triggered.connect(lambda _=False: self.show_duplicates_of(card))
        menu.addSeparator()
        inspector = menu.addAction("Show in Inspector")
        inspector.triggered.connect(lambda _=False: self.inspector_dock.show())
        menu.popup(self.asset_view.viewport().mapToGlobal(pos))

    def open_story_editor_selected(self) -> None:
        video_id = self._selected_video()
        if video_id is not None:
            self.open_story_editor_for(video_id)

    def open_story_editor_for(self, asset_id: int, at_sec: float | None = None) -> QWidget | None:
        """Open ``asset_id`` in the branch timeline editor (its own window), playhead at ``at_sec``."""
        if self.services is None:
            return None
        from ui.story_editor import open_story_editor  # pyqtgraph loads when the editor is first used

        editor = open_story_editor(self, self.services, self._bridge, asset_id, at_sec)
        editor.similar_frame_requested.connect(self.find_similar_to_frame)
        return editor

    def reveal_asset(self, asset_id: int) -> None:
        """Select the asset in the grid if it is shown; the inspector shows it either way."""
        row = self.asset_model.row_of(asset_id)
        if row is not None:
            index = self.asset_model.index(row)
            self.asset_view.setCurrentIndex(index)
            self.asset_view.scrollTo(index)
        else:
            self.asset_view.clearSelection()
            self.inspector.show_asset(asset_id)
        self.inspector_dock.show()

    def _show_error(self, message: str) -> None:
        self.statusBar().showMessage(message, 10_000)

    # -- import ---------------------------------------------------------------------------------

    def choose_files_to_import(self) -> None:
        dialog = QFileDialog(self, "Import into the library")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFiles)
        dialog.setNameFilter(
            "Media (*.mp4 *.mov *.webm *.mkv *.png *.jpg *.jpeg *.webp *.gif *.avif *.wav *.mp3 *.m4a *.aac *.flac *.ogg *.glb *.gltf);;All files (*)"
        )
        dialog.filesSelected.connect(lambda files: self.import_paths([Path(f) for f in files]))
        dialog.open()  # never exec(): a nested loop would stall the app's qasync tasks

    def choose_folder_to_import(self) -> None:
        dialog = QFileDialog(self, "Import a folder into the library")
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.fileSelected.connect(lambda folder: self.import_paths([Path(folder)]))
        dialog.open()

    def import_paths(self, paths: Sequence[Path]) -> None:
        if self.services is None or not paths:
            self._show_error("PixSim is still starting; try the import again in a moment.")
            return
        self._import_runs += 1
        key = f"import:{self._import_runs}"
        what = paths[0].name if len(paths) == 1 else f"{len(paths)} items"
        self.activity_model.upsert(
            ActivityRow(key=key, title=f"Import {what}", state="Importing", progress=None)
        )
        relay = self._relay

        def progress(event: ImportProgress) -> None:
            relay.import_progress.emit((key, event))

        self._bridge.call(
            self.services.importer.import_paths(list(paths), progress=progress),
            lambda report: self._imported(key, report),
            lambda error: self._import_failed(key, error),
        )

    def _on_import_progress(self, payload: tuple[str, ImportProgress]) -> None:
        key, event = payload
        row = self.activity_model.find(key)
        if row is None:
            return
        fraction = event.bytes_done / event.bytes_total if event.bytes_total else None
        detail = f"{event.files_done} of {event.files_total} files" + (
            f" · {event.current.name}" if event.current else ""
        )
        self.activity_model.upsert(replace(row, progress=fraction, detail=detail))

    def _imported(self, key: str, report: ImportReport) -> None:
        row = self.activity_model.find(key)
        parts = [f"{len(report.imported)} imported"]
        if report.duplicates:
            parts.append(f"{len(report.duplicates)} already in the library")
        if report.failed:
            parts.append(f"{len(report.failed)} skipped")
        if row is not None:
            self.activity_model.upsert(
                replace(
                    row,
                    state="Done",
                    progress=1.0,
                    detail=", ".join(parts),
                    finished=True,
                    failed=bool(report.failed),
                )
            )
        self.statusBar().showMessage("Import: " + ", ".join(parts), 8000)
        if report.imported:
            self.notify_indexer()
        if report.failed:
            box = QMessageBox(self)
            box.setIcon(QMessageBox.Icon.Warning)
            box.setWindowTitle("Some files were not imported")
            box.setText(
                f"{len(report.failed)} file{'s' if len(report.failed) != 1 else ''} could not be imported; nothing of them was kept."
            )
            box.setDetailedText("\n\n".join(f"{path}\n{reason}" for path, reason in report.failed))
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.setObjectName("importReport")
            box.open()
        self.refresh()

    def _import_failed(self, key: str, error: BaseException) -> None:
        row = self.activity_model.find(key)
        if row is not None:
            self.activity_model.upsert(
                replace(row, state="Failed", detail=str(error), finished=True, failed=True)
            )
        self._show_error(f"Import failed: {error}")

    # -- push ----------------------------------------------------------------------------------

    def push_assets(self, asset_ids: list[int], target: ProviderTarget) -> None:
        """Make each asset available on the target provider (download once, upload, remember the id)."""
        if self.services is None:
            return
        transfers = self.services.transfers
        for asset_id in asset_ids:
            self._bridge.call(
                transfers.get_asset_for_provider(asset_id, target.provider_id, target.account_id),
                functools.partial(self._pushed, asset_id, target),
                functools.partial(self._push_failed, asset_id, target),
            )

    def _push_failed(self, asset_id: int, target: ProviderTarget, error: BaseException) -> None:
        self._show_error(f"Asset {asset_id} → {target.label}: {error}")

    def _pushed(self, asset_id: int, target: ProviderTarget, ref: ProviderReference) -> None:
        self.statusBar().showMessage(
            f"Asset {asset_id} is on {target.label} ({ref.kind.value} {ref.ref}).", 6000
        )
        self._reload_timer.start()  # the card gets its badge

    # -- generate ------------------------------------------------------------------------------

    def open_generate_dialog(self, provider_id: str | None = None) -> GenerateDialog | None:
        if self.services is None:
            return None
        choices: list[ProviderChoice] = []
        for adapter in self.services.registry.all():
            if not isinstance(adapter, SupportsGenerate):
                continue
            accounts = tuple(
                (a.id, a.label) for a in self._accounts if a.provider_id == adapter.provider_id and a.enabled
            )
            choices.append(
                ProviderChoice(
                    adapter.provider_id,
                    adapter.display_name,
                    adapter.description,
                    tuple(adapter.operations()),
                    accounts,
                    adapter.requires_account,
                )
            )
        inputs = [InputAsset(c.id, c.display_name, c.media_type) for c in self.selected_cards()]
        dialog = GenerateDialog(choices, inputs, provider_id=provider_id or "sandbox", parent=self)
        dialog.request_ready.connect(self.create_job)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def create_job(self, request: GenerateRequest) -> None:
        if self.services is None:
            return
        self._bridge.call(
            self.services.jobs.create(
                request.provider_id, request.operation_id, request.params, account=request.account_id
            ),
            self._job_created,
            lambda error: self._show_error(f"The job was not created: {error}"),
        )

    def _job_created(self, job: JobSummary) -> None:
        self.activity_model.on_job_summary(job)
        self.activity_dock.show()
        self.statusBar().showMessage(f"Job {job.id} queued.", 5000)

    def _on_job_event(self, event: JobEvent) -> None:
        known = self.activity_model.find(f"job:{event.job_id}") is not None
        self.activity_model.on_job(event)
        if (not known or event.status.is_terminal) and self.services is not None:
            # Name the row after its provider and operation (events carry only the state).
            self._bridge.call(self.services.jobs.get(event.job_id), self.activity_model.on_job_summary)
        if event.result_asset_ids:
            self.statusBar().showMessage(
                f"Job {event.job_id} done: new asset {', '.join(map(str, event.result_asset_ids))}.", 8000
            )
            self._reload_timer.start()
            if event.status.is_terminal:
                self.notify_indexer()

    def _cancel_activity(self, row: ActivityRow) -> None:
        if self.services is None:
            return
        if row.key == INDEX_KEY and self.services.indexer is not None:
            indexer = self.services.indexer

            async def stop() -> None:
                indexer.cancel()

            self._bridge.call(stop(), lambda _: None)
        elif row.key == DUPLICATES_KEY and self._duplicates_cancel is not None:
            self._bridge.call(_set_event(self._duplicates_cancel), lambda _: None)
        elif row.job_id is not None:
            self._bridge.call(self.services.jobs.cancel(row.job_id), self.activity_model.on_job_summary)
        elif row.transfer_id is not None:
            transfers, transfer_id = self.services.transfers, row.transfer_id

            async def cancel() -> bool:
                return transfers.cancel(transfer_id)

            self._bridge.call(cancel(), lambda _: None)

    def _retry_activity(self, row: ActivityRow) -> None:
        if self.services is None:
            return
        if row.key == INDEX_KEY:
            self.notify_indexer()
        elif row.key == DUPLICATES_KEY:
            self.find_duplicates()
        elif row.job_id is not None:
            self._bridge.call(self.services.jobs.retry(row.job_id), self._job_created)
        elif row.asset_id is not None and row.provider_id is not None:
            target = next((t for t in self._current_targets() if t.provider_id == row.provider_id), None)
            if target is not None:
                self.push_assets([row.asset_id], target)

    def _current_targets(self) -> list[ProviderTarget]:
        return [self.targets_model.target(r) for r in range(self.targets_model.rowCount())]

    # -- demo ------------------------------------------------------------------------------------

    def load_demo_library(self) -> None:
        if self.services is None:
            return
        from core.demo import build_demo_library

        services = self.services
        relay = self._relay
        self.demo_button.setEnabled(False)
        self.demo_action.setEnabled(False)
        self.activity_model.upsert(
            ActivityRow(key="demo", title="Demo library", state="Building", progress=0.0)
        )
        self.activity_dock.show()

        def progress(event: DemoProgress) -> None:
            relay.demo_progress.emit(event)

        # The app's own runner makes the demo's jobs (None: do not start a second one).
        self._bridge.call(
            build_demo_library(
                services.jobs, services.sessions, None, progress=progress, scale=self.demo_scale
            ),
            self._demo_done,
            self._demo_failed,
        )

    def _on_demo_progress(self, event: DemoProgress) -> None:
        fraction = event.done / event.total if event.total else None
        self.busy.show()
        self.busy.setRange(0, max(1, event.total))
        self.busy.setValue(event.done)
        self.busy.setFormat("Demo %v/%m")
        row = self.activity_model.find("demo")
        if row is not None:
            self.activity_model.upsert(replace(row, progress=fraction, detail=event.label))
        if event.done:
            self._reload_timer.start()

    def _demo_done(self, report: DemoReport) -> None:
        self.busy.hide()
        row = self.activity_model.find("demo")
        detail = f"{len(report.asset_ids)} assets ({report.images} images, {report.videos} videos)"
        if row is not None:
            self.activity_model.upsert(replace(row, state="Done", progress=1.0, detail=detail, finished=True))
        self.demo_button.hide()
        self.statusBar().showMessage(f"Demo library ready: {detail}.", 8000)
        self.refresh()
        self.notify_indexer()

    def _demo_failed(self, error: BaseException) -> None:
        self.busy.hide()
        self.demo_button.setEnabled(True)
        self.demo_action.setEnabled(True)
        row = self.activity_model.find("demo")
        if row is not None:
            self.activity_model.upsert(
                replace(row, state="Failed", detail=str(error), finished=True, failed=True)
            )
        self._show_error(f"The demo library could not be built: {error}")

    # -- settings ----------------------------------------------------------------------------

    def open_settings(self) -> SettingsDialog | None:
        if self._settings is None:
            return None
        providers: list[ProviderOption] = []
        if self.services is not None:
            providers = [
                ProviderOption(a.provider_id, a.display_name, a.requires_account)
                for a in self.services.registry.all()
            ]
        dialog = SettingsDialog(
            self._settings,
            accounts=self.services.accounts if self.services else None,
            bridge=self._bridge,
            providers=providers,
            data_dir=self.services.data_dir if self.services else None,
            http=self.services.http if self.services else None,
            parent=self,
        )
        dialog.settings_saved.connect(self._settings_saved)
        dialog.models_changed.connect(self.load_embedders)
        dialog.finished.connect(lambda _: self.refresh_providers())
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def _settings_saved(self, values: SettingsValues) -> None:
        self._settings = values
        self.filter_bar.set_age_gate(values.show_age_restricted)
        self.inspector.set_include_age_restricted(values.show_age_restricted)
        if self.lineage_view is not None:
            self.lineage_view.set_include_age_restricted(values.show_age_restricted)
        self.settings_changed.emit(values)

    # -- menus ------------------------------------------------------------------------------------

    def _action(
        self,
        text: str,
        slot: Callable[[], Any],
        shortcut: QKeySequence | QKeySequence.StandardKey | str | None = None,
        *,
        enabled: bool = True,
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(lambda _=False: slot())
        action.setEnabled(enabled)
        return action

    def _build_actions(self) -> None:
        self.import_action = self._action(
            "&Import Files…", self.choose_files_to_import, "Ctrl+I", enabled=False
        )
        self.import_folder_action = self._action(
            "Import &Folder…", self.choose_folder_to_import, "Ctrl+Shift+I", enabled=False
        )
        self.generate_action = self._action("&Generate…", self.open_generate_dialog, "Ctrl+G", enabled=False)
        self.story_action = self._action(
            "Open in &Story Editor", self.open_story_editor_selected, "Ctrl+E", enabled=False
        )
        self.story_action.setToolTip("Branch points, variants and clips of the selected video")
        self.find_similar_action = self._action(
            "Find &Similar", self.find_similar_selected, "Ctrl+Shift+F", enabled=False
        )
        self.find_similar_action.setToolTip("Pictures, videos and scenes that look like the selected asset")
        self.find_duplicates_action = self._action("Find &Duplicates", self.find_duplicates, enabled=False)
        self.find_duplicates_action.setToolTip(
            "Group near-duplicates (re-encodes, resizes, crops) into stacks; nothing is deleted"
        )
        self.demo_action = self._action("Load &Demo Library", self.load_demo_library, enabled=False)
        self.demo_button.setEnabled(False)
        self.import_button.setEnabled(False)
        self.settings_action = self._action(
            "&Settings…", self.open_settings, QKeySequence.StandardKey.Preferences
        )
        self.settings_action.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.refresh_action = self._action("&Refresh Library", self.refresh, QKeySequence.StandardKey.Refresh)
        self.find_action = self._action("&Find…", self.filter_bar.focus_search, QKeySequence.StandardKey.Find)
        self.addAction(self.find_action)
        quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        quit_action.setMenuRole(QAction.MenuRole.QuitRole)

        file_menu = self.menuBar().addMenu("&File")
        for action in (
            self.import_action,
            self.import_folder_action,
            None,
            self.demo_action,
            None,
            self.settings_action,
            self.refresh_action,
            None,
            quit_action,
        ):
            if action is None:
                file_menu.addSeparator()
            else:
                file_menu.addAction(action)
        create_menu = self.menuBar().addMenu("&Create")
        create_menu.addAction(self.generate_action)
        self.asset_menu = self.menuBar().addMenu("&Asset")
        self.asset_menu.addAction(self.story_action)
        self.asset_menu.addAction(self.find_similar_action)
        self.asset_menu.addSeparator()
        self.asset_menu.addAction(self.find_duplicates_action)
        view_menu = self.menuBar().addMenu("&View")
        for dock in (self.providers_dock, self.inspector_dock, self.activity_dock, self.lineage_dock):
            view_menu.addAction(dock.toggleViewAction())
        status_action = QAction("&Status Bar", self, checkable=True, checked=True)
        status_action.toggled.connect(self.statusBar().setVisible)
        view_menu.addAction(status_action)
        help_menu = self.menuBar().addMenu("&Help")
        about_action = self._action("&About PixSim", self._show_about)
        about_action.setMenuRole(QAction.MenuRole.AboutRole)
        help_menu.addAction(about_action)

        toolbar = QToolBar("Main", self)
        toolbar.setObjectName("mainToolbar")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        toolbar.addAction(self.import_action)
        toolbar.addAction(self.generate_action)
        toolbar.addSeparator()
        toolbar.addAction(self.settings_action)
        self.addToolBar(toolbar)

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
            self.resize(1400, 860)
            self.resizeDocks(
                [self.providers_dock, self.inspector_dock], [220, 320], Qt.Orientation.Horizontal
            )
            self.resizeDocks([self.activity_dock], [170], Qt.Orientation.Vertical)
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


def _clock(seconds: float) -> str:
    whole = int(seconds + 0.5)
    return f"{whole // 60}:{whole % 60:02d}"


async def _set_event(event: asyncio.Event) -> None:
    event.set()
