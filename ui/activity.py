"""The transfers and jobs panel: every upload, download and generation job with its phase, progress,
speed, and Cancel / Retry / Open result.

Core events arrive on the core thread; ``CoreEvents`` re-emits them as Qt signals, which Qt queues to
the GUI thread. ``ActivityModel`` is a thin adapter over plain rows keyed by transfer or job id.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    Qt,
    Signal,
)
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from core.db.enums import JobStatus
from core.text import human_bytes
from core.transfer.events import Phase, TransferEvent

if TYPE_CHECKING:
    from core.embeddings.indexer import IndexEvent
    from core.jobs.service import JobEvent, JobSummary

AnyIndex = QModelIndex | QPersistentModelIndex
ProgressRole = Qt.ItemDataRole.UserRole + 1
KeyRole = Qt.ItemDataRole.UserRole + 2
MAX_FINISHED = 200
INDEX_KEY = "index"  # the one row of the background indexer


class CoreEvents(QObject):
    """Core event hubs as Qt signals (safe to emit from the core thread: delivery is queued)."""

    transfer_did_progress = Signal(object)  # TransferEvent
    job_did_change = Signal(object)  # JobEvent
    index_did_progress = Signal(object)  # IndexEvent


@dataclass(frozen=True)
class ActivityRow:
    key: str  # "transfer:<id>" or "job:<id>"
    title: str
    state: str
    progress: float | None  # None: indeterminate
    detail: str = ""
    finished: bool = False
    failed: bool = False
    # What the buttons act on.
    job_id: int | None = None
    transfer_id: str | None = None
    asset_id: int | None = None
    provider_id: str | None = None
    result_asset_ids: tuple[int, ...] = ()
    started: float = 0.0
    bytes_done: int = 0

    @property
    def can_cancel(self) -> bool:
        return not self.finished

    @property
    def can_retry(self) -> bool:
        return self.finished and self.failed

    @property
    def can_open(self) -> bool:
        return bool(self.result_asset_ids) or (self.transfer_id is not None and self.asset_id is not None)


COLUMNS = ("What", "State", "Progress", "Details")


class ActivityModel(QAbstractTableModel):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[ActivityRow] = []
        self._index: dict[str, int] = {}

    # -- Qt model -------------------------------------------------------------------------------

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.DisplayRole
            and 0 <= section < len(COLUMNS)
        ):
            return COLUMNS[section]
        return None

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 0:
                return row.title
            if column == 1:
                return row.state
            if column == 2:
                return "" if row.progress is None else f"{row.progress * 100:.0f}%"
            return row.detail
        if role == ProgressRole and column == 2:
            return row.progress
        if role == KeyRole:
            return row.key
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{row.title}\n{row.state}\n{row.detail}".strip()
        if role == Qt.ItemDataRole.ForegroundRole and row.failed and column in (1, 3):
            from PySide6.QtGui import QColor

            return QColor("#d04040")
        return None

    # -- rows -------------------------------------------------------------------------------------

    def row(self, index: int) -> ActivityRow:
        return self._rows[index]

    def find(self, key: str) -> ActivityRow | None:
        position = self._index.get(key)
        return self._rows[position] if position is not None else None

    def upsert(self, row: ActivityRow) -> None:
        position = self._index.get(row.key)
        if position is None:
            self.beginInsertRows(QModelIndex(), 0, 0)
            self._rows.insert(0, row)
            self._reindex()
            self.endInsertRows()
            self._trim()
            return
        self._rows[position] = row
        self.dataChanged.emit(self.index(position, 0), self.index(position, len(COLUMNS) - 1))

    def remove(self, key: str) -> bool:
        position = self._index.get(key)
        if position is None:
            return False
        self.beginRemoveRows(QModelIndex(), position, position)
        del self._rows[position]
        self._reindex()
        self.endRemoveRows()
        return True

    def _reindex(self) -> None:
        self._index = {r.key: i for i, r in enumerate(self._rows)}

    def _trim(self) -> None:
        finished = [i for i, r in enumerate(self._rows) if r.finished]
        while len(finished) > MAX_FINISHED:
            last = finished.pop()
            self.beginRemoveRows(QModelIndex(), last, last)
            del self._rows[last]
            self.endRemoveRows()
            self._reindex()

    # -- events -----------------------------------------------------------------------------------

    def on_transfer(self, event: TransferEvent) -> None:
        key = f"transfer:{event.transfer_id}"
        old = self.find(key)
        now = time.monotonic()
        started = old.started if old is not None else now
        if old is not None and old.state != _PHASE_LABEL.get(event.phase, event.phase.value):
            started = now  # speed is per phase
        what = "Download" if event.provider_id is None or event.phase is Phase.DOWNLOADING else "Push"
        if event.job_id is not None:
            title = f"Result of job {event.job_id}"
        elif event.asset_id is not None:
            title = f"{what} asset {event.asset_id}" + (
                f" → {event.provider_id}" if event.provider_id else ""
            )
        else:
            title = what
        if old is not None and old.title.startswith("Push"):
            title = old.title  # a push downloads first; keep calling it a push
        progress: float | None
        if event.phase is Phase.DONE:
            progress = 1.0
        elif event.bytes_total:
            progress = min(1.0, event.bytes_done / event.bytes_total)
        else:
            progress = None if event.phase in (Phase.DOWNLOADING, Phase.UPLOADING) else 0.0
        detail = event.message or ""
        if event.phase in (Phase.DOWNLOADING, Phase.UPLOADING) and event.bytes_done:
            speed = event.bytes_done / max(now - started, 1e-3)
            detail = f"{human_bytes(event.bytes_done)}" + (
                f" of {human_bytes(event.bytes_total)}" if event.bytes_total else ""
            )
            detail += f" · {human_bytes(speed)}/s"
        self.upsert(
            ActivityRow(
                key=key,
                title=title,
                state=_PHASE_LABEL.get(event.phase, event.phase.value),
                progress=progress,
                detail=detail,
                finished=event.phase.is_final,
                failed=event.phase in (Phase.FAILED, Phase.CANCELLED),
                transfer_id=event.transfer_id,
                asset_id=event.asset_id,
                provider_id=event.provider_id,
                started=started,
                bytes_done=event.bytes_done,
            )
        )

    def on_job(self, event: JobEvent) -> None:
        key = f"job:{event.job_id}"
        old = self.find(key)
        base = old or ActivityRow(
            key=key, title=f"Job {event.job_id}", state="", progress=0.0, job_id=event.job_id
        )
        self.upsert(
            replace(
                base,
                state=_STATUS_LABEL[event.status],
                progress=1.0 if event.status is JobStatus.SUCCEEDED else event.progress,
                detail=event.message or ("" if not event.status.is_terminal else base.detail),
                finished=event.status.is_terminal,
                failed=event.status in (JobStatus.FAILED, JobStatus.CANCELLED),
                result_asset_ids=event.result_asset_ids or base.result_asset_ids,
            )
        )

    def on_job_summary(self, job: JobSummary, title: str | None = None) -> None:
        """A job as listed by the service (initial load, after create or retry)."""
        key = f"job:{job.id}"
        detail = job.error_message or ""
        if job.status is JobStatus.SUCCEEDED and job.result_asset_ids:
            detail = "made " + ", ".join(f"asset {a}" for a in job.result_asset_ids)
        self.upsert(
            ActivityRow(
                key=key,
                title=title or f"Job {job.id} · {job.provider_id}: {job.operation.replace('_', ' ')}",
                state=_STATUS_LABEL[job.status],
                progress=1.0 if job.status is JobStatus.SUCCEEDED else job.progress,
                detail=detail,
                finished=job.status.is_terminal,
                failed=job.status in (JobStatus.FAILED, JobStatus.CANCELLED),
                job_id=job.id,
                provider_id=job.provider_id,
                result_asset_ids=job.result_asset_ids,
            )
        )

    def on_index(self, event: IndexEvent) -> None:
        """The background indexer's row: phase, done of total, Cancel. A pass that found nothing to
        do leaves no row (the periodic sweep would otherwise add one every few minutes); a pass that
        did something settles as Done; a failure stays, in red, with its message."""
        from core.embeddings.indexer import IndexPhase

        old = self.find(INDEX_KEY)
        if event.phase is IndexPhase.DONE and event.total == 0:
            if old is not None and not old.finished:
                self.remove(INDEX_KEY)
            return
        if event.phase is IndexPhase.EMBEDDING and event.total == 0:
            return  # nothing missing for this model: no row yet
        if event.phase is IndexPhase.ANALYSING:
            title, state = "Finding scenes in videos", "Analysing"
        elif event.phase is IndexPhase.EMBEDDING:
            model = event.model or ""
            what = "visual signature" if "visual-signature" in model else model.rsplit("/", 1)[-1]
            title, state = f"Indexing for similarity ({what})", "Indexing"
        else:
            title = old.title if old is not None else "Indexing for similarity"
            state = _INDEX_STATE[event.phase.value]
        if event.phase is IndexPhase.DONE:
            progress: float | None = 1.0
        elif event.phase.is_final:
            progress = old.progress if old is not None else 0.0
        else:
            progress = event.done / event.total if event.total else None
        detail = event.message or (
            f"{event.done:,} of {event.total:,}" if not event.phase.is_final else event.label
        )
        self.upsert(
            ActivityRow(
                key=INDEX_KEY,
                title=title,
                state=state,
                progress=progress,
                detail=detail,
                finished=event.phase.is_final,
                failed=event.phase.value in ("failed", "cancelled"),
                started=old.started if old is not None and not old.finished else time.monotonic(),
            )
        )


_INDEX_STATE = {"done": "Done", "cancelled": "Cancelled", "failed": "Failed"}


class ProgressDelegate(QStyledItemDelegate):
    """Draws the progress column as a progress bar (busy indicator when the total is unknown)."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: AnyIndex) -> None:
        progress = index.data(ProgressRole)
        if index.column() != 2:
            super().paint(painter, option, index)
            return
        bar = QStyleOptionProgressBar()
        bar.rect = QRect(option.rect).adjusted(4, 4, -4, -4)
        bar.minimum = 0
        bar.maximum = 0 if progress is None else 1000
        bar.progress = 0 if progress is None else round(progress * 1000)
        bar.text = "" if progress is None else f"{progress * 100:.0f}%"
        bar.textVisible = True
        # Horizontal must be said (the style fills vertically otherwise); no Selected: the bar stays legible.
        bar.state = QStyle.StateFlag.State_Enabled | QStyle.StateFlag.State_Horizontal
        style = QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter)


class ActivityPanel(QWidget):
    """The table plus its buttons. The window connects the request signals to the services."""

    cancel_requested = Signal(object)  # ActivityRow
    retry_requested = Signal(object)  # ActivityRow
    open_requested = Signal(int)  # asset id

    def __init__(self, model: ActivityModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("activityPanel")
        self.model = model
        self.view = QTableView()
        self.view.setObjectName("activityView")
        self.view.setModel(model)
        self.view.setItemDelegate(ProgressDelegate(self.view))
        self.view.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QTableView.SelectionMode.SingleSelection)
        self.view.verticalHeader().hide()
        self.view.setShowGrid(False)
        self.view.setAlternatingRowColors(True)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        header.resizeSection(0, 260)
        header.resizeSection(1, 110)
        header.resizeSection(2, 140)
        self.cancel_button = QPushButton("Cancel")
        self.retry_button = QPushButton("Retry")
        self.open_button = QPushButton("Open Result")
        for button in (self.cancel_button, self.retry_button, self.open_button):
            button.setEnabled(False)
        self.cancel_button.clicked.connect(lambda: self._emit(self.cancel_requested))
        self.retry_button.clicked.connect(lambda: self._emit(self.retry_requested))
        self.open_button.clicked.connect(self._open)
        self.view.selectionModel().selectionChanged.connect(self._update_buttons)
        model.dataChanged.connect(self._update_buttons)
        self.view.doubleClicked.connect(self._open)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.retry_button)
        buttons.addWidget(self.open_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.view, 1)
        layout.addLayout(buttons)

    def selected(self) -> ActivityRow | None:
        rows = self.view.selectionModel().selectedRows()
        return self.model.row(rows[0].row()) if rows else None

    def _update_buttons(self) -> None:
        row = self.selected()
        self.cancel_button.setEnabled(row is not None and row.can_cancel)
        self.retry_button.setEnabled(row is not None and row.can_retry)
        self.open_button.setEnabled(row is not None and row.can_open)

    def _emit(self, signal: Any) -> None:
        row = self.selected()
        if row is not None:
            signal.emit(row)

    def _open(self) -> None:
        row = self.selected()
        if row is None:
            return
        if row.result_asset_ids:
            self.open_requested.emit(row.result_asset_ids[0])
        elif row.asset_id is not None:
            self.open_requested.emit(row.asset_id)


_PHASE_LABEL = {
    Phase.QUEUED: "Queued",
    Phase.DOWNLOADING: "Downloading",
    Phase.VERIFYING: "Verifying",
    Phase.UPLOADING: "Uploading",
    Phase.DONE: "Done",
    Phase.FAILED: "Failed",
    Phase.CANCELLED: "Cancelled",
}
_STATUS_LABEL = {
    JobStatus.QUEUED: "Queued",
    JobStatus.SUBMITTED: "Submitted",
    JobStatus.RUNNING: "Generating",
    JobStatus.DOWNLOADING: "Importing",
    JobStatus.SUCCEEDED: "Done",
    JobStatus.FAILED: "Failed",
    JobStatus.CANCELLED: "Cancelled",
}
