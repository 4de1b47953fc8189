"""The transfers and jobs panel: rows follow core events; buttons act on the selected row."""

from __future__ import annotations

from datetime import UTC, datetime

from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from core.db.enums import JobStatus
from core.jobs.service import JobEvent, JobEventKind, JobSummary
from core.transfer.events import Phase, TransferEvent
from ui.activity import ActivityModel, ActivityPanel, ActivityRow, CoreEvents


def _job(status: JobStatus, results: tuple[int, ...] = (), error: str | None = None) -> JobSummary:
    now = datetime.now(UTC)
    return JobSummary(
        id=5,
        provider_id="sandbox",
        account_id=None,
        operation="text_to_video",
        status=status,
        progress=0.0,
        params={"prompt": "x"},
        provider_job_id=None,
        error_code=None,
        error_message=error,
        attempts=0,
        created_at=now,
        finished_at=None,
        next_poll_at=now,
        result_asset_ids=results,
    )


def test_model_passes_qt_model_tester_through_a_transfer_and_a_job(qtmodeltester: ModelTester) -> None:
    model = ActivityModel()
    qtmodeltester.check(model)
    model.on_transfer(TransferEvent("t1", 7, "pixverse", Phase.QUEUED))
    model.on_transfer(TransferEvent("t1", 7, "pixverse", Phase.DOWNLOADING, 512, 2048))
    model.on_job_summary(_job(JobStatus.QUEUED))
    model.on_job(JobEvent(5, JobEventKind.CHANGED, JobStatus.RUNNING, 0.4))
    qtmodeltester.check(model)
    assert model.rowCount() == 2
    job, push = model.row(0), model.row(1)
    assert (job.state, job.progress) == ("Generating", 0.4)
    assert (
        push.title == "Push asset 7 → pixverse"
        and push.progress == 0.25
        and "512 B of 2.0 KiB" in push.detail
    )


def test_finished_rows_offer_retry_or_open(qtbot: QtBot) -> None:
    model = ActivityModel()
    panel = ActivityPanel(model)
    qtbot.addWidget(panel)
    model.on_job_summary(_job(JobStatus.QUEUED))
    panel.view.selectRow(0)
    assert panel.cancel_button.isEnabled() and not panel.retry_button.isEnabled()
    cancels: list[ActivityRow] = []
    panel.cancel_requested.connect(cancels.append)
    panel.cancel_button.click()
    assert [r.job_id for r in cancels] == [5]

    model.on_job(JobEvent(5, JobEventKind.CHANGED, JobStatus.FAILED, 0.0, "Pixverse's moderation refused it"))
    assert panel.retry_button.isEnabled() and not panel.cancel_button.isEnabled()
    assert "moderation" in model.row(0).detail

    model.on_job(JobEvent(5, JobEventKind.CHANGED, JobStatus.SUCCEEDED, 1.0, None, (42,)))
    opened: list[int] = []
    panel.open_requested.connect(opened.append)
    assert panel.open_button.isEnabled()
    panel.open_button.click()
    assert opened == [42]


def test_core_events_cross_threads_as_queued_signals(qtbot: QtBot) -> None:
    import threading

    events = CoreEvents()
    model = ActivityModel()
    events.job_did_change.connect(model.on_job)
    worker = threading.Thread(
        target=lambda: events.job_did_change.emit(JobEvent(9, JobEventKind.CREATED, JobStatus.QUEUED, 0.0))
    )
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: model.rowCount() == 1)
    assert model.row(0).job_id == 9
