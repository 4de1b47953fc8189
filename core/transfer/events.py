"""Typed progress events of transfers, and the hub that broadcasts them to the UI and the CLI."""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


class Phase(enum.StrEnum):
    QUEUED = "queued"
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    UPLOADING = "uploading"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (Phase.DONE, Phase.FAILED, Phase.CANCELLED)


@dataclass(frozen=True, slots=True)
class TransferEvent:
    transfer_id: str
    asset_id: int | None  # None for a job's result, before it becomes an asset
    provider_id: str | None  # None for a download into the local store only
    phase: Phase
    bytes_done: int = 0
    bytes_total: int | None = None
    message: str | None = None  # the error for FAILED; a note for retries
    job_id: int | None = None  # set when the transfer fetches a generation job's result


Listener = Callable[[TransferEvent], None]


class EventHub:
    """Fan-out of events to listeners. A listener that raises is logged and kept."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def emit(self, event: TransferEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("transfer event listener failed")


class ByteProgress:
    """Turns byte counts into events at most every ``interval_s`` (plus the first and the last)."""

    def __init__(
        self,
        hub: EventHub,
        transfer_id: str,
        asset_id: int | None,
        provider_id: str | None,
        phase: Phase,
        interval_s: float = 0.1,
        *,
        job_id: int | None = None,
    ) -> None:
        self._hub = hub
        self._job_id = job_id
        self._base = (transfer_id, asset_id, provider_id, phase)
        self._interval_s = interval_s
        self._last = 0.0

    def __call__(self, done: int, total: int | None, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self._interval_s:
            return
        self._last = now
        transfer_id, asset_id, provider_id, phase = self._base
        self._hub.emit(
            TransferEvent(transfer_id, asset_id, provider_id, phase, done, total, job_id=self._job_id)
        )
