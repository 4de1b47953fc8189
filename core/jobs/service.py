"""Generation jobs as the UI and CLI see them: create, list, look up, cancel.

A job is a row in ``jobs`` (a persisted state machine); ``core.jobs.runner`` moves it along. Creating
a job validates everything that can be checked before a provider is asked: the operation and its
parameters, that input assets exist and are of a media type the parameter accepts, and the account.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.enums import ACTIVE_JOB_STATUSES, JobStatus, MediaType
from core.db.models import Asset, Job, JobResultAsset, User
from core.errors import InvalidParameter, JobError
from core.providers.accounts import AccountResolver
from core.providers.base import find_operation
from core.providers.registry import ProviderRegistry
from core.providers.spec import ParamKind
from core.text import article

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobSummary:
    id: int
    provider_id: str
    account_id: int | None
    operation: str
    status: JobStatus
    progress: float
    params: dict[str, Any]
    provider_job_id: str | None
    error_code: str | None
    error_message: str | None
    attempts: int
    created_at: datetime
    finished_at: datetime | None
    next_poll_at: datetime | None
    result_asset_ids: tuple[int, ...] = ()

    @property
    def input_asset_ids(self) -> list[int]:
        ids: list[int] = []
        for key, value in self.params.items():
            if key.endswith("_asset_id") and isinstance(value, int):
                ids.append(value)
            elif key.endswith("_asset_ids") and isinstance(value, list):
                ids.extend(v for v in value if isinstance(v, int))
            elif key == "keyframes" and isinstance(value, list):
                ids.extend(k["asset_id"] for k in value if isinstance(k, dict) and "asset_id" in k)
        return ids


@dataclass(frozen=True)
class PreparedJob:
    """A validated job not yet written (``JobService.prepare`` → ``JobService.insert``)."""

    provider_id: str
    operation: str
    values: dict[str, Any]
    account_id: int | None
    priority: int
    input_params: tuple[Any, ...]


class JobEventKind(enum.StrEnum):
    CREATED = "created"
    CHANGED = "changed"


@dataclass(frozen=True, slots=True)
class JobEvent:
    job_id: int
    kind: JobEventKind
    status: JobStatus
    progress: float
    message: str | None = None
    result_asset_ids: tuple[int, ...] = ()


JobListener = Callable[[JobEvent], None]


class JobEvents:
    """Fan-out of job events to the UI, the CLI and the runner (which wakes on CREATED)."""

    def __init__(self) -> None:
        self._listeners: list[JobListener] = []

    def subscribe(self, listener: JobListener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def emit(self, event: JobEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("job event listener failed")


class JobService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        registry: ProviderRegistry,
        accounts: AccountResolver,
        events: JobEvents | None = None,
    ) -> None:
        self._sessions = sessions
        self._registry = registry
        self._accounts = accounts
        self.events = events or JobEvents()

    async def create(
        self,
        provider_id: str,
        operation: str,
        params: Mapping[str, Any],
        *,
        account: str | int | None = None,
        priority: int = 0,
    ) -> JobSummary:
        prepared = await self.prepare(provider_id, operation, params, account=account, priority=priority)
        async with self._sessions() as session, session.begin():
            job_id = await self.insert(session, prepared)
        return await self.announce(job_id)

    async def prepare(
        self,
        provider_id: str,
        operation: str,
        params: Mapping[str, Any],
        *,
        account: str | int | None = None,
        priority: int = 0,
    ) -> PreparedJob:
        """Everything about a new job that can be checked without a transaction: the operation, its
        parameters and the account. ``insert`` then writes it inside the caller's transaction (so a job
        and the rows that wait for it, like a pending branch variant, appear together or not at all)."""
        adapter = self._registry.generator(provider_id)
        op = find_operation(adapter, operation)
        values = op.validate(params, provider_id)
        account_id, _ = await self._accounts.resolve(provider_id, account, required=adapter.requires_account)
        return PreparedJob(provider_id, op.id, values, account_id, priority, op.input_params)

    async def insert(self, session: AsyncSession, prepared: PreparedJob) -> int:
        """Write a prepared job in ``session``'s transaction (its input assets are checked there).
        Call ``announce`` once the transaction has committed."""
        await self._check_inputs(session, prepared.provider_id, prepared.input_params, prepared.values)
        user_id = await session.scalar(select(User.id).where(User.username == "local"))
        job = Job(
            user_id=user_id,
            provider_id=prepared.provider_id,
            account_id=prepared.account_id,
            operation_type=prepared.operation,
            params=prepared.values,
            status=JobStatus.QUEUED,
            priority=prepared.priority,
            next_poll_at=func.now(),
        )
        session.add(job)
        await session.flush()
        return job.id

    async def announce(self, job_id: int) -> JobSummary:
        """Tell listeners (the runner wakes up) that a committed job exists."""
        summary = await self.get(job_id)
        self.events.emit(JobEvent(job_id, JobEventKind.CREATED, summary.status, 0.0))
        return summary

    async def _check_inputs(
        self, session: AsyncSession, provider_id: str, params: tuple[Any, ...], values: Mapping[str, Any]
    ) -> None:
        wanted: dict[int, list[tuple[str, tuple[MediaType, ...]]]] = {}
        for param in params:
            value = values.get(param.name)
            if value is None:
                continue
            if param.kind is ParamKind.ASSET:
                ids = [value]
            elif param.kind is ParamKind.ASSETS:
                ids = list(value)
            else:
                ids = [k["asset_id"] for k in value]
            for asset_id in ids:
                wanted.setdefault(asset_id, []).append((param.name, param.media_types))
        if not wanted:
            return
        found = await session.execute(select(Asset.id, Asset.media_type).where(Asset.id.in_(wanted)))
        rows = {asset_id: media_type for asset_id, media_type in found}
        problems: list[str] = []
        for asset_id, uses in wanted.items():
            media_type = rows.get(asset_id)
            if media_type is None:
                problems.append(f"asset {asset_id} ({uses[0][0]}) is not in the library")
                continue
            for name, accepted in uses:
                if accepted and media_type not in accepted:
                    kinds = " or ".join(m.value for m in accepted)
                    problems.append(
                        f"'{name}' needs {article(kinds)} {kinds}, but asset {asset_id} is {article(media_type.value)} {media_type.value}"
                    )
        if problems:
            raise InvalidParameter(
                "; ".join(problems).capitalize() + ".", provider_id=provider_id, code="bad_input"
            )

    async def get(self, job_id: int) -> JobSummary:
        async with self._sessions() as session:
            job = await session.get(Job, job_id)
            if job is None:
                raise JobError(f"There is no job {job_id}.")
            results = await _result_ids(session, [job_id])
            return _summary(job, results.get(job_id, ()))

    async def list(self, *, limit: int = 50, active_only: bool = False) -> list[JobSummary]:
        stmt = select(Job).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
        if active_only:
            stmt = stmt.where(Job.status.in_(ACTIVE_JOB_STATUSES))
        async with self._sessions() as session:
            jobs = list(await session.scalars(stmt))
            results = await _result_ids(session, [j.id for j in jobs])
            return [_summary(j, results.get(j.id, ())) for j in jobs]

    async def cancel(self, job_id: int) -> JobSummary:
        """Cancel a job that has not finished. The runner that holds it (in any process) notices at its
        next step and asks the provider to stop; results that arrive later are not imported."""
        async with self._sessions() as session, session.begin():
            cancelled = await session.scalar(
                update(Job)
                .where(Job.id == job_id, Job.status.in_(ACTIVE_JOB_STATUSES))
                .values(
                    status=JobStatus.CANCELLED,
                    finished_at=datetime.now(UTC),
                    error_message="Cancelled by the user.",
                    next_poll_at=None,
                )
                .returning(Job.id)
            )
        summary = await self.get(job_id)
        if cancelled is None and summary.status is not JobStatus.CANCELLED:
            raise JobError(f"Job {job_id} has already {summary.status.value}; there is nothing to cancel.")
        self.events.emit(
            JobEvent(job_id, JobEventKind.CHANGED, summary.status, summary.progress, summary.error_message)
        )
        return summary

    async def retry(self, job_id: int) -> JobSummary:
        """Queue a failed or cancelled job again, as a new job with the same parameters."""
        old = await self.get(job_id)
        if not old.status.is_terminal or old.status is JobStatus.SUCCEEDED:
            raise JobError(
                f"Job {job_id} is {old.status.value}; only failed or cancelled jobs can be retried."
            )
        return await self.create(old.provider_id, old.operation, old.params, account=old.account_id)


async def _result_ids(session: AsyncSession, job_ids: list[int]) -> dict[int, tuple[int, ...]]:
    if not job_ids:
        return {}
    rows = await session.execute(
        select(JobResultAsset.job_id, JobResultAsset.asset_id)
        .where(JobResultAsset.job_id.in_(job_ids))
        .order_by(JobResultAsset.job_id, JobResultAsset.output_index)
    )
    out: dict[int, list[int]] = {}
    for job_id, asset_id in rows:
        out.setdefault(job_id, []).append(asset_id)
    return {k: tuple(v) for k, v in out.items()}


def _summary(job: Job, results: tuple[int, ...]) -> JobSummary:
    return JobSummary(
        id=job.id,
        provider_id=job.provider_id,
        account_id=job.account_id,
        operation=job.operation_type,
        status=job.status,
        progress=job.progress,
        params=dict(job.params),
        provider_job_id=job.provider_job_id,
        error_code=job.error_code,
        error_message=job.error_message,
        attempts=job.attempts,
        created_at=job.created_at,
        finished_at=job.finished_at,
        next_poll_at=job.next_poll_at,
        result_asset_ids=results,
    )
