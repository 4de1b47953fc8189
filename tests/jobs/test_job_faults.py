"""Jobs under faults: rate limits retried, permanent refusals reported at once, cancel, restart, and a
worker killed with SIGKILL whose job another process resumes and imports exactly once."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import func, select

from core.db.enums import JobStatus
from core.db.models import Asset, Job, JobResultAsset
from core.jobs.runner import JobRunner
from tests.fakes.http_server import Hang, Reset, Slow
from tests.fakes.pixverse import RESULT_PREFIX, STATUS_MODERATED, TEXT_GENERATE, FakePixverse
from tests.jobs.conftest import FAST, JobsEnv
from tests.transfer.conftest import REPO

KEY = "pv-test-key-123"


@pytest.fixture
async def pixverse(jobs_env: JobsEnv) -> FakePixverse:
    fake = FakePixverse(jobs_env.server, api_key=KEY)
    await jobs_env.services.accounts.add("pixverse", "main", api_key=KEY, base_url=jobs_env.server.base_url)
    jobs_env.services.registry.get("pixverse").poll_interval_s = 0.02  # type: ignore[attr-defined]
    return fake


async def _wait_status(env: JobsEnv, job_id: int, *statuses: JobStatus, limit_s: float = 20) -> None:
    async with asyncio.timeout(limit_s):
        while (await env.services.jobs.get(job_id)).status not in statuses:  # noqa: ASYNC110 (another process)
            await asyncio.sleep(0.02)


async def test_pixverse_concurrency_limit_500044_is_retried_then_succeeds(
    jobs_env: JobsEnv, pixverse: FakePixverse
) -> None:
    pixverse.fail_envelope(TEXT_GENERATE, 500044, "concurrent generation limit")
    pixverse.fail_envelope(TEXT_GENERATE, 500044, "concurrent generation limit")
    notes: list[str] = []
    jobs_env.services.jobs.events.subscribe(lambda e: notes.append(e.message or ""))
    job = await jobs_env.services.jobs.create("pixverse", "text_to_video", {"prompt": "a cat"})
    done = await jobs_env.run_until_done(job.id)
    assert done.status is JobStatus.SUCCEEDED and len(done.result_asset_ids) == 1
    assert jobs_env.server.count("POST", TEXT_GENERATE) == 3
    assert len(pixverse.generations) == 1  # one video was made, not three
    assert sum("Will retry" in n and "too many generations" in n for n in notes) == 2


async def test_http_429_with_retry_after_is_honoured(jobs_env: JobsEnv, pixverse: FakePixverse) -> None:
    from tests.fakes.http_server import Status

    jobs_env.server.fail("POST", TEXT_GENERATE, Status(429, {"Retry-After": "1"}))
    job = await jobs_env.services.jobs.create("pixverse", "text_to_video", {"prompt": "a cat"})
    started = asyncio.get_running_loop().time()
    done = await jobs_env.run_until_done(job.id)
    assert done.status is JobStatus.SUCCEEDED
    assert asyncio.get_running_loop().time() - started >= 0.9  # it waited as asked, not the fast backoff


async def test_moderation_is_reported_without_retry(jobs_env: JobsEnv, pixverse: FakePixverse) -> None:
    pixverse.next_outcome(STATUS_MODERATED, "content moderation failed")
    job = await jobs_env.services.jobs.create("pixverse", "text_to_video", {"prompt": "something"})
    done = await jobs_env.run_until_done(job.id)
    assert done.status is JobStatus.FAILED
    assert done.error_message and "moderation" in done.error_message.lower()
    assert len(pixverse.generations) == 1 and done.result_asset_ids == ()
    # Refused at submission (ErrCode 500054) is just as final: one request, no retry.
    pixverse.fail_envelope(TEXT_GENERATE, 500054, "content moderation")
    job = await jobs_env.services.jobs.create("pixverse", "text_to_video", {"prompt": "again"})
    done = await jobs_env.run_until_done(job.id)
    assert done.status is JobStatus.FAILED and "moderation" in (done.error_message or "")
    assert jobs_env.server.count("POST", TEXT_GENERATE) == 2
    assert await jobs_env.count_assets() == 0


async def test_a_submission_whose_answer_was_lost_is_not_sent_twice(
    jobs_env: JobsEnv, pixverse: FakePixverse
) -> None:
    # Pixverse reads the whole request, then the connection breaks before any answer: it may have
    # started (and charged) a generation, and it has no idempotency key to ask it.
    jobs_env.server.fail("POST", TEXT_GENERATE, Reset(after_bytes=1 << 30))
    job = await jobs_env.services.jobs.create("pixverse", "text_to_video", {"prompt": "a cat"})
    done = await jobs_env.run_until_done(job.id)
    assert done.status is JobStatus.FAILED and done.error_code == "submit_unconfirmed"
    message = done.error_message or ""
    assert "Pixverse may have accepted the job" in message and "did not send it again" in message
    await jobs_env.run_until_done(job.id)  # another pass of the runner sends nothing either
    assert jobs_env.server.count("POST", TEXT_GENERATE) == 1
    # Retry is the user's decision, and sends it once more.
    again = await jobs_env.services.jobs.retry(job.id)
    assert (await jobs_env.run_until_done(again.id)).status is JobStatus.SUCCEEDED
    assert jobs_env.server.count("POST", TEXT_GENERATE) == 2


async def test_cancel_while_generating_imports_nothing(jobs_env: JobsEnv, pixverse: FakePixverse) -> None:
    job = await jobs_env.services.jobs.create("pixverse", "text_to_video", {"prompt": "a cat"})
    stop = asyncio.Event()
    runner = asyncio.ensure_future(jobs_env.services.runner.run(stop))
    await _wait_status(jobs_env, job.id, JobStatus.SUBMITTED, JobStatus.RUNNING)
    pixverse.hold(pixverse.generations[0].video_id)
    await _wait_status(jobs_env, job.id, JobStatus.RUNNING)
    cancelled = await jobs_env.services.jobs.cancel(job.id)
    assert cancelled.status is JobStatus.CANCELLED
    pixverse.release(pixverse.generations[0].video_id)
    await asyncio.sleep(0.3)  # the runner would have polled and imported by now
    stop.set()
    await runner
    final = await jobs_env.services.jobs.get(job.id)
    assert final.status is JobStatus.CANCELLED and final.result_asset_ids == ()
    assert await jobs_env.count_assets() == 0


async def test_a_poll_without_a_figure_keeps_the_progress_already_shown(
    jobs_env: JobsEnv, pixverse: FakePixverse
) -> None:
    """Pixverse's status has no percentage: the bar must not jump back to 0 between figures (a
    ComfyUI job shows one only once its socket reports)."""
    from sqlalchemy import update

    job = await jobs_env.services.jobs.create("pixverse", "text_to_video", {"prompt": "a cat"})
    stop = asyncio.Event()
    runner = asyncio.ensure_future(jobs_env.services.runner.run(stop))
    await _wait_status(jobs_env, job.id, JobStatus.SUBMITTED, JobStatus.RUNNING)
    pixverse.hold(pixverse.generations[0].video_id)
    await _wait_status(jobs_env, job.id, JobStatus.RUNNING)
    stop.set()
    await runner
    async with jobs_env.services.sessions() as session, session.begin():
        await session.execute(update(Job).where(Job.id == job.id).values(progress=0.4))  # an earlier figure
    shown: list[float] = []
    jobs_env.services.jobs.events.subscribe(
        lambda e: shown.append(e.progress) if e.job_id == job.id else None
    )
    status_path = f"{RESULT_PREFIX}{pixverse.generations[0].video_id}"
    polls = jobs_env.server.count("GET", status_path)
    stop = asyncio.Event()
    runner = asyncio.ensure_future(jobs_env.services.runner.run(stop))
    async with asyncio.timeout(10):
        while jobs_env.server.count("GET", status_path) < polls + 2:  # noqa: ASYNC110 (a server count)
            await asyncio.sleep(0.02)
    stop.set()
    await runner
    assert (await jobs_env.services.jobs.get(job.id)).progress == pytest.approx(0.4)
    assert shown and all(p == pytest.approx(0.4) for p in shown)


async def test_two_runners_share_the_queue_and_each_job_runs_once(jobs_env: JobsEnv) -> None:
    services = jobs_env.services
    jobs = [
        await services.jobs.create("sandbox", "text_to_image", {"prompt": f"tile {i}", "seed": i})
        for i in range(8)
    ]
    other = JobRunner(
        sessions=services.sessions,
        registry=services.registry,
        transfers=services.transfers,
        accounts=services.runner._accounts,
        jobs=services.jobs,
        workdir=jobs_env.settings.data_dir / "jobs",
        concurrency=2,
        policy=FAST,
        worker_id=f"{services.runner.worker_id}-second",
    )
    stop = asyncio.Event()
    both = [asyncio.ensure_future(services.runner.run(stop)), asyncio.ensure_future(other.run(stop))]
    async with asyncio.timeout(60):
        while not all(j.status.is_terminal for j in [await services.jobs.get(j.id) for j in jobs]):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*both)
    finished = [await services.jobs.get(j.id) for j in jobs]
    assert all(j.status is JobStatus.SUCCEEDED and len(j.result_asset_ids) == 1 for j in finished)
    assert await jobs_env.count_assets() == 8


@asynccontextmanager
async def _worker(jobs_env: JobsEnv) -> AsyncIterator[asyncio.subprocess.Process]:
    """A `pixsim worker` process on this test's database, with the Pixverse key in its keyring;
    killed on the way out if the test has not killed it."""
    services = jobs_env.services
    account = (await services.accounts.list("pixverse"))[0]
    async with services.sessions() as session:
        from core.db.models import ProviderAccount

        ref = await session.scalar(
            select(ProviderAccount.keyring_ref).where(ProviderAccount.id == account.id)
        )
    env = {**os.environ, "PYTHONPATH": str(REPO), "PIXSIM_TEST_SECRETS": json.dumps({ref: KEY})}
    db_url = services.engine.url.render_as_string(hide_password=False).replace("+psycopg", "")
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.helpers.run_worker",
        db_url,
        str(jobs_env.settings.data_dir),
        jobs_env.server.base_url,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield worker
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()


async def test_a_worker_killed_while_sending_a_job_leaves_it_unconfirmed_not_resent(
    jobs_env: JobsEnv, pixverse: FakePixverse
) -> None:
    jobs_env.server.fail("POST", TEXT_GENERATE, Hang())  # the request arrives; no answer comes back
    job = await jobs_env.services.jobs.create("pixverse", "text_to_video", {"prompt": "in flight"})
    async with _worker(jobs_env) as worker:
        async with asyncio.timeout(30):
            while jobs_env.server.count("POST", TEXT_GENERATE) == 0:
                assert worker.returncode is None, "the worker exited early"
                await asyncio.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
    async with jobs_env.services.sessions() as session:
        row = await session.get(Job, job.id)
        assert row is not None and row.status is JobStatus.QUEUED and row.submit_started_at is not None

    # This process takes the job over (its claimant is dead) and does not send it a second time.
    done = await jobs_env.run_until_done(job.id)
    assert done.status is JobStatus.FAILED and done.error_code == "submit_unconfirmed"
    assert "PixSim stopped while sending it to Pixverse" in (done.error_message or "")
    assert jobs_env.server.count("POST", TEXT_GENERATE) == 1


async def test_killed_worker_job_resumes_in_another_process_and_imports_once(
    jobs_env: JobsEnv, pixverse: FakePixverse
) -> None:
    services = jobs_env.services
    job = await services.jobs.create("pixverse", "text_to_video", {"prompt": "survives a crash"})
    async with _worker(jobs_env) as worker:
        # The worker submits, then keeps polling a video Pixverse holds "generating".
        async with asyncio.timeout(30):
            while not pixverse.generations:
                assert worker.returncode is None, "the worker exited early"
                await asyncio.sleep(0.05)
        video_id = pixverse.generations[0].video_id
        pixverse.hold(video_id)
        await _wait_status(jobs_env, job.id, JobStatus.RUNNING, limit_s=30)
        # The result then downloads slowly; the worker is killed half-way through it.
        jobs_env.server.fail(
            "GET", f"/cdn/pixverse/video/{video_id}.mp4", Slow(chunk_size=200, interval_s=0.25)
        )
        pixverse.release(video_id)
        await _wait_status(jobs_env, job.id, JobStatus.DOWNLOADING, limit_s=30)
        await asyncio.sleep(0.8)
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
    async with services.sessions() as session:
        row = await session.get(Job, job.id)
        assert row is not None and row.status is JobStatus.DOWNLOADING
        assert row.claimed_by is not None  # the dead worker's claim, with a lease of 2 minutes
    assert await jobs_env.count_assets() == 0
    store = services.transfers.store
    assert [
        p for p in store.objects.rglob("*") if p.is_file()
    ] == []  # nothing half-written under a final name

    # This process takes over at once (the claimant's pid is gone), finishes and imports.
    started = asyncio.get_running_loop().time()
    done = await jobs_env.run_until_done(job.id)
    assert asyncio.get_running_loop().time() - started < 30  # well before the 2-minute lease ran out
    assert done.status is JobStatus.SUCCEEDED and len(done.result_asset_ids) == 1
    assert len(pixverse.generations) == 1  # resumed polling; not submitted again

    # Running again changes nothing: exactly one asset for the one result.
    await jobs_env.run_until_done(job.id)
    async with services.sessions() as session:
        assets = await session.scalar(
            select(func.count()).select_from(Asset).where(Asset.provider_id == "pixverse")
        )
        results = await session.scalar(select(func.count()).select_from(JobResultAsset))
    assert (assets, results) == (1, 1)
    asset = await jobs_env.asset(done.result_asset_ids[0])
    expected = hashlib.sha256(pixverse.result_body(video_id)).hexdigest()
    assert asset.sha256 == expected and store.object_path(expected).read_bytes() == pixverse.result_body(
        video_id
    )
    assert list(store.partials.glob("*")) == []
