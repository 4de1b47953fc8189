"""The job runner: claims due jobs from the database and moves each one step along its state machine.

    queued ──submit──▶ submitted ──poll──▶ running ──poll──▶ downloading ──import──▶ succeeded
       │                    │                 │                  │
       └────────────────────┴─────────────────┴──────────────────┴──▶ failed | cancelled

Every process that runs a runner (the app, ``pixsim worker``, ``pixsim generate``) cooperates through
the ``jobs`` table: a job is claimed with ``FOR UPDATE SKIP LOCKED`` and a lease; a step is done with
no transaction open; the outcome is written back only if the claim still holds and nobody cancelled
the job meanwhile. A process that dies leaves a lease that expires (or, on the same machine, is taken
over at once because its pid is gone), so the job resumes elsewhere. Results are imported in one
transaction keyed by the provider's own output id: a job's result becomes an asset exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.enums import ACTIVE_JOB_STATUSES, JobStatus, SyncStatus, UploadMethod
from core.db.models import (
    Asset,
    AssetBranchVariant,
    AssetLineage,
    AssetProviderRef,
    Job,
    JobResultAsset,
)
from core.errors import (
    MediaError,
    NetworkError,
    PixSimError,
    ProviderError,
    StaleReference,
    TransferError,
)
from core.jobs.service import JobEvent, JobEventKind, JobService
from core.net.http import SafeHttp
from core.providers.accounts import AccountResolver
from core.providers.base import (
    Credentials,
    GenerationRequest,
    JobHandle,
    JobUpdate,
    LocalInput,
    ProviderReference,
    ResultFile,
    SupportsGenerate,
    find_operation,
)
from core.providers.registry import ProviderRegistry
from core.providers.spec import Operation
from core.redact import redact_text
from core.transfer.service import StoredFile, TransferService

log = logging.getLogger(__name__)

_ACTIVE = [s.value for s in ACTIVE_JOB_STATUSES]

# The next due, unclaimed (or abandoned) jobs, claimed for this worker in one statement.
_CLAIM_SQL = text(
    """
    WITH next AS (
        SELECT id FROM jobs
        WHERE status = ANY(:active) AND next_poll_at <= now()
          AND (claimed_by IS NULL OR lease_expires_at < now() OR claimed_by = ANY(:abandoned))
        ORDER BY priority DESC, next_poll_at, id
        LIMIT :n
        FOR UPDATE SKIP LOCKED
    )
    UPDATE jobs SET claimed_by = :me, lease_expires_at = now() + :lease
    FROM next WHERE jobs.id = next.id
    RETURNING jobs.id
    """
)


@dataclass(frozen=True)
class JobPolicy:
    """How patiently jobs are driven. Tests shorten these; the defaults suit real providers."""

    lease: timedelta = timedelta(seconds=60)
    idle_poll_s: float = 1.0
    first_poll_s: float = 2.0
    max_poll_interval_s: float = 30.0
    # A failure to submit or to ask that may pass (rate limit, 5xx, network): retried later, this often.
    max_submit_attempts: int = 8
    max_poll_failures: int = 30
    retry_base_s: float = 2.0
    retry_max_s: float = 300.0
    # Retry-After longer than this: wait that long in the queue rather than in memory.
    jitter: float = 0.2

    def backoff(self, attempt: int) -> float:
        delay = min(self.retry_max_s, self.retry_base_s * 2.0 ** max(0, attempt - 1))
        return delay * (1 + random.uniform(-self.jitter, self.jitter))


def worker_identity() -> str:
    """host:pid:start-time, so a restarted process never mistakes another's claim for its own."""
    me = psutil.Process()
    return f"{socket.gethostname()}:{me.pid}:{int(me.create_time())}"


def _is_dead(worker: str, host: str) -> bool:
    """True for a claim made on this machine by a process that no longer runs."""
    parts = worker.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != host:
        return False
    try:
        pid, started = int(parts[1]), int(parts[2])
    except ValueError:
        return False
    try:
        return int(psutil.Process(pid).create_time()) != started
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


@dataclass
class _Claimed:
    id: int
    provider_id: str
    account_id: int | None
    operation: str
    params: dict[str, Any]
    status: JobStatus
    provider_job_id: str | None
    attempts: int
    polls: int = 0
    progress: float = 0.0
    # Set when a previous attempt was sending the submission and never recorded the answer.
    submit_started_at: datetime | None = None


@dataclass
class _JobInputs:
    """The InputResolver a job's adapter uses: everything goes through the transfer engine."""

    transfers: TransferService
    sessions: async_sessionmaker[AsyncSession]
    provider_id: str
    account_id: int | None
    stack: AsyncExitStack
    used: list[ProviderReference] = field(default_factory=list)

    async def reference(self, asset_id: int) -> ProviderReference:
        ref = await self.transfers.get_asset_for_provider(asset_id, self.provider_id, self.account_id)
        self.used.append(ref)
        return ref

    async def existing_reference(self, asset_id: int) -> ProviderReference | None:
        ref = await self.transfers.existing_reference(asset_id, self.provider_id, self.account_id)
        if ref is not None:
            self.used.append(ref)
        return ref

    async def local_file(self, asset_id: int) -> LocalInput:
        path = await self.stack.enter_async_context(self.transfers.using_local(asset_id))
        async with self.sessions() as session:
            asset = await session.get(Asset, asset_id)
        assert asset is not None  # using_local found it
        return LocalInput(
            asset_id=asset_id,
            path=path,
            sha256=path.name,
            size=path.stat().st_size,
            media_type=asset.media_type,
            mime_type=asset.mime_type,
            width=asset.width,
            height=asset.height,
            duration_sec=asset.duration_sec,
            fps=asset.fps,
        )


class JobRunner:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        registry: ProviderRegistry,
        transfers: TransferService,
        accounts: AccountResolver,
        jobs: JobService,
        workdir: Path,
        concurrency: int = 4,
        policy: JobPolicy | None = None,
        worker_id: str | None = None,
    ) -> None:
        self._sessions = sessions
        self._registry = registry
        self._transfers = transfers
        self._accounts = accounts
        self.jobs = jobs
        self._workdir = workdir
        self._concurrency = max(1, concurrency)
        self.policy = policy or JobPolicy()
        self.worker_id = worker_id or worker_identity()
        self._host = self.worker_id.rsplit(":", 2)[0]
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()

    # -- the loop --------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Work jobs until ``stop`` is set (or the task is cancelled); claims are released on the way out."""
        stop = stop or asyncio.Event()
        unsubscribe = self.jobs.events.subscribe(self._on_job_event)
        stop_wait = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                free = self._concurrency - len(self._tasks)
                claimed = await self._claim(free) if free > 0 else []
                for job in claimed:
                    self._start(job)
                if claimed and len(self._tasks) < self._concurrency:
                    continue
                self._wake.clear()
                wake_wait = asyncio.ensure_future(self._wake.wait())
                waiting: set[asyncio.Future[Any]] = {stop_wait, wake_wait, *self._tasks.values()}
                await asyncio.wait(
                    waiting, timeout=self.policy.idle_poll_s, return_when=asyncio.FIRST_COMPLETED
                )
                wake_wait.cancel()
        finally:
            unsubscribe()
            stop_wait.cancel()
            await self._shutdown()

    @property
    def concurrency(self) -> int:
        """How many jobs this runner works at once."""
        return self._concurrency

    @concurrency.setter
    def concurrency(self, value: int) -> None:
        self._concurrency = max(1, value)

    def wake(self) -> None:
        self._wake.set()

    def _on_job_event(self, event: JobEvent) -> None:
        if event.kind is JobEventKind.CREATED:
            self._wake.set()
        elif event.status is JobStatus.CANCELLED:
            task = self._tasks.get(event.job_id)
            if task is not None:
                task.cancel()  # its clean-up asks the provider to stop
            else:
                background = asyncio.ensure_future(self._cancel_idle_job(event.job_id))
                self._background.add(background)
                background.add_done_callback(self._background.discard)

    async def _shutdown(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, job: _Claimed) -> None:
        task = asyncio.ensure_future(self._work(job))
        self._tasks[job.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(job.id, None))

    async def _claim(self, n: int) -> list[_Claimed]:
        async with self._sessions() as session, session.begin():
            workers = await session.scalars(
                select(Job.claimed_by)
                .distinct()
                .where(Job.status.in_(ACTIVE_JOB_STATUSES), Job.claimed_by.like(f"{self._host}:%"))
            )
            abandoned = [w for w in workers if w and w != self.worker_id and _is_dead(w, self._host)]
            ids = list(
                await session.scalars(
                    _CLAIM_SQL,
                    {
                        "active": _ACTIVE,
                        "abandoned": abandoned,
                        "n": n,
                        "me": self.worker_id,
                        "lease": self.policy.lease,
                    },
                )
            )
            if not ids:
                return []
            jobs = await session.scalars(select(Job).where(Job.id.in_(ids)).order_by(Job.id))
            return [
                _Claimed(
                    id=j.id,
                    provider_id=j.provider_id,
                    account_id=j.account_id,
                    operation=j.operation_type,
                    params=dict(j.params),
                    status=j.status,
                    provider_job_id=j.provider_job_id,
                    attempts=j.attempts,
                    submit_started_at=j.submit_started_at,
                    progress=j.progress,
                )
                for j in jobs
            ]

    # -- one step of one job ---------------------------------------------------------------------

    async def _work(self, job: _Claimed) -> None:
        heartbeat = asyncio.ensure_future(self._heartbeat(job.id))
        try:
            await self._step(job)
        except asyncio.CancelledError:
            await asyncio.shield(self._after_cancel(job))
            raise
        except Exception as exc:  # a bug must not kill the runner, nor lose the job: fail it visibly
            log.exception("job %s: unexpected error", job.id)
            await self._fail(job, "internal_error", f"PixSim failed while running the job: {exc!r}")
        finally:
            heartbeat.cancel()

    async def _heartbeat(self, job_id: int) -> None:
        interval = max(0.5, self.policy.lease.total_seconds() / 3)
        while True:
            await asyncio.sleep(interval)
            async with self._sessions() as session, session.begin():
                await session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.claimed_by == self.worker_id)
                    .values(lease_expires_at=text("now() + :lease").bindparams(lease=self.policy.lease))
                )

    async def _step(self, job: _Claimed) -> None:
        try:
            adapter = self._registry.generator(job.provider_id)
            operation = find_operation(adapter, job.operation)
            values = operation.validate(job.params, job.provider_id)
            _, credentials = await self._accounts.resolve(
                job.provider_id, job.account_id, required=adapter.requires_account
            )
        except PixSimError as exc:
            await self._fail(job, getattr(exc, "code", None) or "config", str(exc))
            return
        http = self._transfers.http_for(adapter, credentials)
        if job.status is JobStatus.QUEUED:
            await self._submit(job, adapter, operation, values, credentials, http)
        else:
            await self._poll(job, adapter, operation, values, credentials, http)

    def _handle(
        self,
        job_id: int,
        provider_job_id: str,
        operation: Operation,
        params: dict[str, Any],
        credentials: Credentials,
    ) -> JobHandle:
        return JobHandle(
            provider_job_id=provider_job_id,
            operation=operation,
            params=params,
            credentials=credentials,
            workdir=self._job_dir(job_id),
            job_key=_job_key(job_id),
        )

    def _job_dir(self, job_id: int) -> Path:
        path = self._workdir / f"job-{job_id}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    async def _submit(
        self,
        job: _Claimed,
        adapter: SupportsGenerate,
        operation: Operation,
        values: dict[str, Any],
        credentials: Credentials,
        http: SafeHttp,
    ) -> None:
        name = adapter.display_name
        if job.submit_started_at is not None and not adapter.repeatable_submit:
            await self._fail(
                job, "submit_unconfirmed", _unconfirmed(name, f"PixSim stopped while sending it to {name}")
            )
            return
        self._emit(job.id, JobStatus.QUEUED, 0.0, "Preparing inputs")
        marked = False

        async def sending() -> None:
            # Committed before the request leaves: if this process dies before the answer is recorded,
            # the next claim knows the outcome is unknown (and does not send it again).
            nonlocal marked
            if not adapter.repeatable_submit:
                if not await self._set(job, submit_started_at=datetime.now(UTC)):
                    raise _ClaimLost  # cancelled (or taken over) during the uploads: send nothing
                marked = True

        async def answered() -> None:
            nonlocal marked
            if marked:
                marked = not await self._set(job, submit_started_at=None)

        for fresh_upload in (False, True):
            async with AsyncExitStack() as stack:
                inputs = _JobInputs(self._transfers, self._sessions, job.provider_id, job.account_id, stack)
                request = GenerationRequest(
                    operation=operation,
                    params=values,
                    credentials=credentials,
                    inputs=inputs,
                    workdir=self._job_dir(job.id),
                    job_key=_job_key(job.id),
                    sending=sending,
                )
                try:
                    submitted = await adapter.submit(http, request)
                except _ClaimLost:
                    log.info("job %s changed hands before it was sent to %s; not sending it", job.id, name)
                    return
                except NetworkError as exc:
                    if marked and exc.maybe_delivered:
                        await self._fail(job, "submit_unconfirmed", _unconfirmed(name, str(exc)))
                    else:
                        await answered()
                        await self._failed_step(job, exc, limit=self.policy.max_submit_attempts)
                    return
                except StaleReference as exc:
                    await answered()
                    if fresh_upload or not inputs.used:
                        await self._fail(job, exc.code or "stale_reference", str(exc))
                        return
                    log.info("job %s: %s; uploading its inputs again", job.id, exc)
                    # Uploaded copies first; a provider's own id is dropped only if nothing else was used.
                    for ref in [r for r in inputs.used if not r.is_origin] or inputs.used:
                        await self._transfers.invalidate(ref.asset_id, ref.provider_id, ref.account_id)
                    continue
                except PixSimError as exc:
                    await answered()
                    await self._failed_step(job, exc, limit=self.policy.max_submit_attempts)
                    return
            break
        first = submitted.poll_after_s if submitted.poll_after_s is not None else self.policy.first_poll_s
        ok = await self._finish_step(
            job,
            status=JobStatus.SUBMITTED,
            provider_job_id=submitted.provider_job_id,
            submitted_at=datetime.now(UTC),
            submit_started_at=None,
            attempts=0,
            error_code=None,
            error_message=None,
            next_poll_at=_after(first),
        )
        if ok:
            log.info("job %s submitted to %s as %s", job.id, job.provider_id, submitted.provider_job_id)
            self._emit(job.id, JobStatus.SUBMITTED, 0.0, f"Submitted to {adapter.display_name}")
        else:
            # Cancelled while we were submitting: tell the provider too.
            job.provider_job_id = submitted.provider_job_id
            await self._cancel_at_provider(job)

    async def _poll(
        self,
        job: _Claimed,
        adapter: SupportsGenerate,
        operation: Operation,
        values: dict[str, Any],
        credentials: Credentials,
        http: SafeHttp,
    ) -> None:
        assert job.provider_job_id is not None
        handle = self._handle(job.id, job.provider_job_id, operation, values, credentials)
        try:
            state = await adapter.poll(http, handle)
        except PixSimError as exc:
            await self._failed_step(job, exc, limit=self.policy.max_poll_failures)
            return
        if state.status is JobStatus.SUCCEEDED:
            await self._complete(job, operation, values, state, http)
        elif state.status is JobStatus.FAILED:
            error = state.error
            message = str(error) if error else f"{adapter.display_name} reported the job as failed."
            await self._fail(job, _code(error) if error else "provider_failed", message)
        elif state.status is JobStatus.CANCELLED:
            await self._finish_step(
                job,
                status=JobStatus.CANCELLED,
                finished_at=datetime.now(UTC),
                next_poll_at=None,
                error_message=f"Cancelled at {adapter.display_name}.",
            )
            self._emit(job.id, JobStatus.CANCELLED, 0.0, "Cancelled at the provider")
        else:
            # No figure this time (ComfyUI before its socket reports, say): keep the last one shown.
            progress = job.progress if state.progress is None else _fraction(state.progress)
            delay = state.poll_after_s
            if delay is None:
                delay = min(
                    self.policy.max_poll_interval_s, self.policy.first_poll_s * 1.5 ** min(job.polls, 20)
                )
            await self._finish_step(
                job,
                status=state.status,
                progress=progress,
                attempts=0,
                error_code=None,
                error_message=None,
                started_at=text("coalesce(started_at, now())") if state.status is JobStatus.RUNNING else None,
                next_poll_at=_after(delay),
            )
            self._emit(job.id, state.status, progress)

    async def _complete(
        self, job: _Claimed, operation: Operation, values: dict[str, Any], state: JobUpdate, http: SafeHttp
    ) -> None:
        if job.status is not JobStatus.DOWNLOADING:
            if not await self._set(job, status=JobStatus.DOWNLOADING, progress=1.0):
                return
            job.status = JobStatus.DOWNLOADING
        self._emit(job.id, JobStatus.DOWNLOADING, 1.0, "Importing the result")
        if not state.outputs:
            await self._fail(job, "no_output", "The provider reported success but returned no file.")
            return
        stored: list[tuple[ResultFile, StoredFile, Any]] = []
        try:
            for index, output in enumerate(state.outputs):
                key = f"job-{job.id}-{index}"
                if output.local_path is not None:
                    file = await self._transfers.store_file(output.local_path, key)
                elif output.download is not None:
                    file = await self._transfers.fetch_to_store(
                        output.download, key, http=http, job_id=job.id
                    )
                else:
                    raise ProviderError(
                        "The provider returned an output without a file.", provider_id=job.provider_id
                    )
                stored.append((output, file, await _probe(file.path)))
        except PixSimError as exc:
            await self._failed_step(
                job, exc, limit=self.policy.max_poll_failures, what="The result could not be downloaded"
            )
            return
        assets = await self._import(job, operation, values, stored)
        if assets is None:
            await self._cancel_at_provider(job)
            return
        log.info("job %s succeeded: assets %s", job.id, ", ".join(map(str, assets)))
        self._emit(job.id, JobStatus.SUCCEEDED, 1.0, None, assets)

    async def _import(
        self,
        job: _Claimed,
        operation: Operation,
        values: dict[str, Any],
        stored: Sequence[tuple[ResultFile, StoredFile, Any]],
    ) -> tuple[int, ...] | None:
        """Assets, references, lineage and the job's success in one transaction: all or nothing, once."""
        edges = operation.lineage_inputs(values)
        prompt = values.get("prompt")
        async with self._sessions() as session, session.begin():
            row = await session.scalar(select(Job).where(Job.id == job.id).with_for_update())
            if row is None or row.status is not JobStatus.DOWNLOADING or row.claimed_by != self.worker_id:
                return None
            parents = set(
                await session.scalars(select(Asset.id).where(Asset.id.in_([e.asset_id for e in edges])))
            )
            asset_ids: list[int] = []
            for index, (output, file, facts) in enumerate(stored):
                provider_asset_id = output.provider_asset_id or f"{job.provider_job_id}#{index}"
                values_row: dict[str, Any] = {
                    "user_id": row.user_id,
                    "media_type": facts.media_type if facts else output.media_type,
                    "provider_id": job.provider_id,
                    "provider_asset_id": provider_asset_id,
                    "remote_url": output.remote_url,
                    "remote_url_expires_at": output.remote_url_expires_at,
                    "sha256": file.sha256,
                    "file_size_bytes": file.size,
                    "mime_type": (facts.mime_type if facts else None) or output.mime_type,
                    "sync_status": SyncStatus.DOWNLOADED,
                    "width": facts.width if facts else None,
                    "height": facts.height if facts else None,
                    "duration_sec": facts.duration_sec if facts else None,
                    "fps": facts.fps if facts else None,
                    "prompt": prompt if isinstance(prompt, str) else None,
                    "upload_method": UploadMethod.GENERATED,
                }
                inserted = await session.scalar(
                    insert(Asset)
                    .values(**values_row)
                    .on_conflict_do_nothing(
                        index_elements=["user_id", "provider_id", "provider_asset_id"],
                        index_where=text("provider_asset_id IS NOT NULL"),
                    )
                    .returning(Asset.id)
                )
                asset_id = inserted or await session.scalar(
                    select(Asset.id).where(
                        Asset.user_id == row.user_id,
                        Asset.provider_id == job.provider_id,
                        Asset.provider_asset_id == provider_asset_id,
                    )
                )
                assert asset_id is not None
                asset_ids.append(asset_id)
                if output.reference is not None:
                    ref = output.reference
                    await session.execute(
                        insert(AssetProviderRef)
                        .values(
                            asset_id=asset_id,
                            provider_id=job.provider_id,
                            account_id=job.account_id,
                            ref_kind=ref.kind,
                            provider_ref=ref.ref,
                            url=ref.url,
                            expires_at=ref.expires_at,
                            is_origin=True,
                            details=ref.details,
                        )
                        .on_conflict_do_nothing()
                    )
                for edge in edges:
                    if edge.asset_id not in parents or edge.asset_id == asset_id:
                        continue
                    await session.execute(
                        insert(AssetLineage)
                        .values(
                            parent_asset_id=edge.asset_id,
                            child_asset_id=asset_id,
                            operation=operation.id,
                            parent_role=edge.role,
                            provider_id=job.provider_id,
                            job_id=job.id,
                            parent_start_sec=edge.parent_start_sec,
                            parent_frame=edge.parent_frame,
                            sequence_order=edge.sequence_order,
                            transformation=edge.transformation,
                        )
                        .on_conflict_do_nothing()
                    )
                await session.execute(
                    insert(JobResultAsset)
                    .values(job_id=job.id, asset_id=asset_id, output_index=index)
                    .on_conflict_do_nothing()
                )
            if asset_ids:
                # Branch variants waiting for this job ("continue from here") get its first result.
                await session.execute(
                    update(AssetBranchVariant)
                    .where(AssetBranchVariant.job_id == job.id, AssetBranchVariant.variant_asset_id.is_(None))
                    .values(variant_asset_id=asset_ids[0])
                )
            row.status = JobStatus.SUCCEEDED
            row.progress = 1.0
            row.finished_at = datetime.now(UTC)
            row.next_poll_at = None
            row.claimed_by = None
            row.lease_expires_at = None
            row.error_code = None
            row.error_message = None
            row.attempts = 0
        return tuple(asset_ids)

    # -- outcomes --------------------------------------------------------------------------------

    async def _set(self, job: _Claimed, **values: Any) -> bool:
        """Write ``values`` if the claim holds and the job is still where we left it; keep the claim."""
        async with self._sessions() as session, session.begin():
            done = await session.scalar(
                update(Job)
                .where(Job.id == job.id, Job.claimed_by == self.worker_id, Job.status == job.status)
                .values(**values)
                .returning(Job.id)
            )
        return done is not None

    async def _finish_step(self, job: _Claimed, **values: Any) -> bool:
        """Write the step's outcome and release the claim (another worker may take the next step)."""
        values = {k: v for k, v in values.items() if v is not None or k in _NULLABLE}
        return await self._set(job, claimed_by=None, lease_expires_at=None, **values)

    async def _fail(self, job: _Claimed, code: str, message: str) -> None:
        message = redact_text(message)
        log.warning("job %s failed: %s", job.id, message)
        if await self._finish_step(
            job,
            status=JobStatus.FAILED,
            error_code=code[:120],
            error_message=message,
            finished_at=datetime.now(UTC),
            next_poll_at=None,
        ):
            self._emit(job.id, JobStatus.FAILED, 0.0, message)

    async def _failed_step(self, job: _Claimed, exc: PixSimError, *, limit: int, what: str = "") -> None:
        """A step raised: retry later if it may pass (rate limit, 5xx, network), else fail the job."""
        if isinstance(exc, TransferError) and exc.retryable:
            await self._retry_later(job, exc, limit=limit)
        else:
            await self._fail(job, _code(exc), f"{what}: {exc}" if what else str(exc))

    async def _retry_later(self, job: _Claimed, exc: TransferError, *, limit: int) -> None:
        attempts = job.attempts + 1
        if attempts >= limit:
            await self._fail(job, _code(exc), f"{exc} (gave up after {attempts} attempts)")
            return
        asked = exc.retry_after if isinstance(exc, ProviderError) else None
        delay = asked if asked is not None else self.policy.backoff(attempts)
        note = f"Will retry in {delay:.0f} s: {redact_text(str(exc))}"
        log.info("job %s: %s", job.id, note)
        if await self._finish_step(
            job, attempts=attempts, error_code=_code(exc), error_message=note, next_poll_at=_after(delay)
        ):
            self._emit(job.id, job.status, 0.0, note)

    async def _after_cancel(self, job: _Claimed) -> None:
        """The step was interrupted: by the user's cancel (tell the provider) or by shutdown (let go)."""
        try:
            async with self._sessions() as session, session.begin():
                await session.execute(
                    update(Job)
                    .where(Job.id == job.id, Job.claimed_by == self.worker_id)
                    .values(claimed_by=None, lease_expires_at=None)
                )
                status = await session.scalar(select(Job.status).where(Job.id == job.id))
            if status is JobStatus.CANCELLED:
                await self._cancel_at_provider(job)
        except Exception:
            log.exception("job %s: releasing after cancellation failed", job.id)

    async def _cancel_at_provider(self, job: _Claimed) -> None:
        async with self._sessions() as session:
            provider_job_id = await session.scalar(select(Job.provider_job_id).where(Job.id == job.id))
        await self.cancel_at_provider(
            job.id,
            job.provider_id,
            job.account_id,
            provider_job_id or job.provider_job_id,
            job.operation,
            job.params,
        )

    async def _cancel_idle_job(self, job_id: int) -> None:
        """A job cancelled between two steps: nobody holds it, so tell the provider from here."""
        job = await self.jobs.get(job_id)
        await self.cancel_at_provider(
            job.id, job.provider_id, job.account_id, job.provider_job_id, job.operation, job.params
        )

    async def cancel_at_provider(
        self,
        job_id: int,
        provider_id: str,
        account_id: int | None,
        provider_job_id: str | None,
        operation_id: str,
        params: dict[str, Any],
    ) -> bool:
        """Best effort: ask the provider to stop a job we no longer want. True if it was asked."""
        if provider_job_id is None:
            return False
        try:
            canceller = self._registry.canceller(provider_id)
            if canceller is None:
                return False
            adapter = self._registry.generator(provider_id)
            operation = find_operation(adapter, operation_id)
            _, credentials = await self._accounts.resolve(
                provider_id, account_id, required=adapter.requires_account
            )
            handle = self._handle(job_id, provider_job_id, operation, params, credentials)
            await canceller.cancel(self._transfers.http_for(adapter, credentials), handle)
            return True
        except PixSimError as exc:
            log.warning("job %s: the provider could not be asked to cancel: %s", job_id, exc)
            return False

    def _emit(
        self,
        job_id: int,
        status: JobStatus,
        progress: float,
        message: str | None = None,
        results: tuple[int, ...] = (),
    ) -> None:
        self.jobs.events.emit(JobEvent(job_id, JobEventKind.CHANGED, status, progress, message, results))


_NULLABLE = {
    "error_code",
    "error_message",
    "next_poll_at",
    "claimed_by",
    "lease_expires_at",
    "submit_started_at",
}


class _ClaimLost(Exception):
    """The job was cancelled or taken over while this runner prepared it."""


def _unconfirmed(provider: str, what_happened: str) -> str:
    return (
        f"{what_happened.rstrip('.')}. {provider} may have accepted the job before the answer was lost, "
        f"so PixSim did not send it again: a second request could make (and charge) a second "
        f"generation. Check your {provider} account before you retry this job."
    )


def _job_key(job_id: int) -> str:
    return f"pixsim-job-{job_id}"


def _after(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=max(0.0, seconds))


def _fraction(value: float | None) -> float:
    if value is None:
        return 0.0
    return min(1.0, max(0.0, float(value)))


def _code(exc: BaseException | None) -> str:
    code = getattr(exc, "code", None)
    return str(code) if code else type(exc).__name__


async def _probe(path: Path) -> Any:
    """Media facts of a result (None if the file is not media PixSim can read: kept, but unprobed)."""
    from core.media.probe import probe

    try:
        return await asyncio.to_thread(probe, path)
    except MediaError as exc:
        log.warning("a job result could not be probed: %s", exc)
        return None


__all__ = ["JobPolicy", "JobRunner", "worker_identity"]
